//! Stop sequences and incremental UTF-8 decoding for streamed generation.
//!
//! Text is only released to the caller once it can no longer turn out to be
//! the start of a stop sequence, so a stop string is never partly streamed.

/// Decodes a byte stream into UTF-8 text, holding back incomplete characters.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Add `bytes`; return the text that is complete so far.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left (an incomplete character becomes U+FFFD).
    pub(crate) fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Accumulates generated text and decides what may be released.
#[derive(Debug)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    text: String,
    released: usize,
}

/// What [`StopMatcher::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Step<'a> {
    /// Text that may be released now.
    pub(crate) release: &'a str,
    /// A stop sequence was found; generation must end.
    pub(crate) stopped: bool,
}

impl StopMatcher {
    pub(crate) fn new(stops: impl IntoIterator<Item = String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), text: String::new(), released: 0 }
    }

    /// Add newly decoded text.
    pub(crate) fn push(&mut self, piece: &str) -> Step<'_> {
        let mut search_from = self.released.saturating_sub(self.stops.iter().map(String::len).max().unwrap_or(0));
        while !self.text.is_char_boundary(search_from) {
            search_from -= 1;
        }
        self.text.push_str(piece);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.text[search_from..].find(s.as_str()).map(|i| i + search_from))
            .min();
        if let Some(at) = first_stop {
            let start = self.released.min(at);
            self.text.truncate(at);
            self.released = at;
            return Step { release: &self.text[start..], stopped: true };
        }
        // Hold back the longest tail that could still grow into a stop sequence.
        let mut keep_from = self.text.len();
        for stop in &self.stops {
            for (i, _) in stop.char_indices().skip(1) {
                if self.text.ends_with(&stop[..i]) {
                    keep_from = keep_from.min(self.text.len() - i);
                }
            }
        }
        let start = self.released;
        let end = keep_from.max(start);
        self.released = end;
        Step { release: &self.text[start..end], stopped: false }
    }

    /// Release what was held back (generation ended for another reason).
    pub(crate) fn flush(&mut self) -> &str {
        let start = self.released;
        self.released = self.text.len();
        &self.text[start..]
    }

    /// All text, stop sequence excluded.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool, String) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()));
        let mut streamed = String::new();
        for p in pieces {
            let step = m.push(p);
            streamed.push_str(step.release);
            if step.stopped {
                return (streamed, true, m.text().to_owned());
            }
        }
        streamed.push_str(m.flush());
        (streamed, false, m.text().to_owned())
    }

    #[test]
    fn stop_split_across_pieces_is_never_streamed() {
        let (streamed, stopped, text) = run(&["\n\n"], &["Hello", " world", "\n", "\n", "more"]);
        assert!(stopped);
        assert_eq!(streamed, "Hello world");
        assert_eq!(text, "Hello world");
    }

    #[test]
    fn false_start_is_released() {
        let (streamed, stopped, _) = run(&["END"], &["a E", "N", "d b"]);
        assert!(!stopped);
        assert_eq!(streamed, "a ENd b");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (streamed, stopped, _) = run(&["c", "b"], &["xxabc"]);
        assert!(stopped);
        assert_eq!(streamed, "xxa");
    }

    #[test]
    fn multibyte_text_before_a_stop_is_safe() {
        // The search window starts inside "é" unless it is moved to a character boundary.
        let (streamed, stopped, _) = run(&["xyz"], &["aéé", "b", "cxyz"]);
        assert!(stopped);
        assert_eq!(streamed, "aéébc");
        let (streamed, stopped, _) = run(&["ab"], &["😀😀", "a", "b"]);
        assert!(stopped);
        assert_eq!(streamed, "😀😀");
    }

    #[test]
    fn no_stops_streams_everything() {
        let (streamed, stopped, _) = run(&[], &["a", "b"]);
        assert!(!stopped);
        assert_eq!(streamed, "ab");
    }

    #[test]
    fn utf8_split_characters_are_joined() {
        let bytes = "é😀".as_bytes();
        let mut d = Utf8Stream::default();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&d.push(&[*b]));
        }
        out.push_str(&d.finish());
        assert_eq!(out, "é😀");
        let mut d = Utf8Stream::default();
        assert_eq!(d.push(&[0xff, b'a']), "\u{fffd}a");
    }
}
