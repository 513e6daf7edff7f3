//! Reading a reply while it streams: text before a tool call goes to the user as it
//! comes; from the moment a call's opening appears (or could be appearing: a partial
//! marker is held back), the rest is kept for [`ToolReader::finish`], which reads the
//! calls out of the whole text.

use super::{format::ToolFormat, Reply, ToolSpec};

/// Splits a streamed reply into user text and tool calls.
#[derive(Debug, Clone)]
pub struct ToolReader {
    format: ToolFormat,
    tools: Vec<ToolSpec>,
    /// Every piece is a call (required or named choice): nothing is shown.
    all_calls: bool,
    /// Text received and not yet shown.
    held: String,
    /// A call has started: nothing more is shown.
    in_call: bool,
    /// Anything shown yet (Llama 3 calls open at the very start of the reply).
    started: bool,
}

impl ToolReader {
    /// A reader for `format` with `tools` offered; `all_calls` when the reply must be calls.
    pub fn new(format: ToolFormat, tools: Vec<ToolSpec>, all_calls: bool) -> Self {
        Self { format, tools, all_calls, held: String::new(), in_call: all_calls, started: false }
    }

    /// The format read.
    pub fn format(&self) -> ToolFormat {
        self.format
    }

    /// The tools offered.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// Take a piece; returns the text that can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        if self.in_call {
            return String::new();
        }
        self.held.push_str(piece);
        // A Llama 3 call is the whole reply: after text was shown, `{"name"` is just text.
        let openings: &[&str] = if self.format == ToolFormat::Llama3 && self.started { &[] } else { self.format.opening() };
        if let Some(at) = openings.iter().filter_map(|o| self.held.find(o)).min() {
            self.in_call = true;
            let shown: String = self.held.drain(..at).collect();
            self.started |= !shown.trim().is_empty();
            return shown;
        }
        // Hold back a suffix that could be the start of an opening; a Llama 3 call counts
        // only at the start of the reply.
        let mut keep = 0;
        for o in openings {
            for len in (1..o.len().min(self.held.len() + 1)).rev() {
                if self.held.is_char_boundary(self.held.len() - len) && o.starts_with(&self.held[self.held.len() - len..]) {
                    keep = keep.max(len);
                    break;
                }
            }
        }
        let cut = self.held.len() - keep;
        let shown: String = self.held.drain(..cut).collect();
        self.started |= !shown.trim().is_empty();
        shown
    }

    /// Whether a call has begun (the rest of the stream is being held).
    pub fn in_call(&self) -> bool {
        self.in_call
    }

    /// The reply from the whole generated `text`: calls read and checked. Text the stream
    /// held back and did not show is returned in `Reply::content` only when no call came
    /// (the caller shows [`Self::unshown`] then).
    ///
    /// `truncated`: the output was cut (`max_tokens`, a full context, a cancel), so a call
    /// that does not parse is an unfinished one: the reply is the text before it, with no
    /// calls, and the caller reports the cut (`length`), not an invalid call.
    pub fn finish(&self, text: &str, truncated: bool) -> Result<Reply, String> {
        let reply = match self.format.parse(text, &self.tools) {
            Ok(reply) => reply,
            Err(_) if truncated => {
                let before = self.format.opening().iter().filter_map(|o| text.find(o)).min().unwrap_or(text.len());
                return Ok(Reply { content: text[..before].trim().to_owned(), tool_calls: Vec::new() });
            }
            Err(e) => return Err(e),
        };
        if self.all_calls && reply.tool_calls.is_empty() && !truncated {
            return Err("the model was required to call a tool and did not".into());
        }
        Ok(reply)
    }

    /// Text held back at the end that turned out not to open a call.
    pub fn unshown(&self) -> &str {
        if self.in_call {
            ""
        } else {
            &self.held
        }
    }

    /// Whether any text was shown.
    pub fn shown_any(&self) -> bool {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_before_a_call_streams_and_the_call_is_held() {
        let mut r = ToolReader::new(ToolFormat::Hermes, Vec::new(), false);
        let mut shown = String::new();
        for piece in ["Sure", ", <", "tool", "_call>", "{\"name\"", "}</tool_call>"] {
            shown.push_str(&r.push(piece));
        }
        assert_eq!(shown, "Sure, ");
        assert!(r.in_call());
    }

    #[test]
    fn a_partial_marker_that_is_not_one_is_released() {
        let mut r = ToolReader::new(ToolFormat::Hermes, Vec::new(), false);
        assert_eq!(r.push("a <to"), "a ");
        assert_eq!(r.push("p>"), "<top>");
        assert_eq!(r.push("x <"), "x ");
        assert_eq!(r.unshown(), "<");
    }

    #[test]
    fn a_llama3_call_counts_only_at_the_start() {
        let mut r = ToolReader::new(ToolFormat::Llama3, Vec::new(), false);
        assert_eq!(r.push("Here is JSON: "), "Here is JSON: ");
        assert_eq!(r.push("{\"name\": 1}"), "{\"name\": 1}");
        assert!(!r.in_call());
        let mut r = ToolReader::new(ToolFormat::Llama3, Vec::new(), false);
        assert_eq!(r.push("{\"name\""), "");
        assert!(r.in_call());
    }

    #[test]
    fn required_calls_show_nothing() {
        let mut r = ToolReader::new(ToolFormat::Generic, Vec::new(), true);
        assert_eq!(r.push("<tool_call>"), "");
        assert!(r.finish("no call", false).is_err());
        assert_eq!(r.finish("<tool_call>{\"name\": \"x", true).unwrap().tool_calls.len(), 0);
    }
}
