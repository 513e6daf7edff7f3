//! Reading a streamed answer line by line (SSE or NDJSON) and handing the
//! pieces to the host's [`TokenSinkMut`], with timings.

use std::{
    io::{BufRead, BufReader, Read},
    time::Instant,
};

use reqwest::blocking::Response;
use rustai_abi::{Completion, ErrorKind, FinishReason, PluginError, RString, Timings, TokenSinkMut};

use super::client::Remote;

/// Longest line accepted from a stream.
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// The lines of a streamed response body.
pub struct Lines<'r> {
    remote: &'r Remote,
    path: String,
    reader: BufReader<Response>,
    buf: Vec<u8>,
}

impl<'r> Lines<'r> {
    /// Read `resp`, the answer to `path` (named in errors).
    pub fn new(remote: &'r Remote, path: &str, resp: Response) -> Self {
        Self { remote, path: path.to_owned(), reader: BufReader::new(resp), buf: Vec::new() }
    }

    /// The next line without its line ending; `None` at the end of the body.
    pub fn next_line(&mut self) -> Result<Option<String>, PluginError> {
        self.buf.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| self.remote.read_error(&self.path, &e))?;
        if n == 0 {
            return Ok(None);
        }
        if n as u64 == MAX_LINE && self.buf.last() != Some(&b'\n') {
            return Err(PluginError::new(
                ErrorKind::Backend,
                format!("{} sent a line longer than {} MiB", self.remote.url(&self.path), MAX_LINE >> 20),
            ));
        }
        let line = String::from_utf8_lossy(&self.buf);
        Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

/// The payload of a server-sent-events `data:` line; `None` for other lines
/// (blank separators, `event:`, `id:`, `:` comments).
pub fn sse_data(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("data:")?;
    Some(rest.strip_prefix(' ').unwrap_or(rest).trim_end())
}

/// Counts and durations the server reported, when it did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Prompt tokens.
    pub tokens_in: Option<u32>,
    /// Generated tokens.
    pub tokens_out: Option<u32>,
    /// Prompt processing, milliseconds.
    pub prompt_ms: Option<f64>,
    /// Generation, milliseconds.
    pub generation_ms: Option<f64>,
}

/// Sends pieces to the sink and accumulates the completion.
pub struct Collector<'a> {
    sink: TokenSinkMut<'a>,
    text: String,
    pieces: u32,
    started: Instant,
    first: Option<Instant>,
}

impl<'a> Collector<'a> {
    /// Start timing now.
    pub fn new(sink: TokenSinkMut<'a>) -> Self {
        Self { sink, text: String::new(), pieces: 0, started: Instant::now(), first: None }
    }

    /// Whether the host cancelled.
    pub fn cancelled(&self) -> bool {
        self.sink.is_cancelled()
    }

    /// Hand `piece` to the sink; `false` when the host wants to stop.
    pub fn push(&mut self, piece: &str) -> bool {
        if piece.is_empty() {
            return !self.cancelled();
        }
        self.first.get_or_insert_with(Instant::now);
        self.text.push_str(piece);
        self.pieces += 1;
        // Remote servers do not expose token ids.
        self.sink.on_token(piece.into(), -1)
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The completion, with the server's counts where it gave them (else the
    /// number of pieces) and measured durations where it did not.
    pub fn finish(self, finish_reason: FinishReason, usage: Usage) -> Completion {
        let end = Instant::now();
        let first = self.first.unwrap_or(end);
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
        let prompt_ms = usage.prompt_ms.unwrap_or_else(|| ms(self.started, first));
        let generation_ms = usage.generation_ms.unwrap_or_else(|| ms(first, end));
        let tokens_in = usage.tokens_in.unwrap_or(0);
        let tokens_out = usage.tokens_out.unwrap_or(self.pieces);
        let rate = |n: u32, ms: f64| if ms > 0.0 && n > 0 { f64::from(n) * 1000.0 / ms } else { 0.0 };
        Completion {
            text: RString::from(self.text),
            tokens_in,
            tokens_out,
            finish_reason,
            timings: Timings {
                prompt_eval_ms: prompt_ms,
                generation_ms,
                prompt_tokens_per_s: rate(tokens_in, prompt_ms),
                tokens_per_s: rate(tokens_out, generation_ms),
            },
        }
    }
}

/// Map a server's finish reason. OpenAI's and Ollama's `stop` means "a stop
/// sequence or the model's end": it is [`FinishReason::Stop`] when the request
/// had stop sequences and [`FinishReason::Eos`] otherwise.
pub fn finish_reason(reason: &str, had_stop_sequences: bool) -> FinishReason {
    match reason {
        "length" | "max_tokens" => FinishReason::Length,
        "eos" => FinishReason::Eos,
        "cancelled" => FinishReason::Cancelled,
        "stop" if !had_stop_sequences => FinishReason::Eos,
        _ => FinishReason::Stop,
    }
}

/// L2-normalise `v` in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines() {
        assert_eq!(sse_data("data: {\"a\":1}"), Some("{\"a\":1}"));
        assert_eq!(sse_data("data:[DONE]"), Some("[DONE]"));
        assert_eq!(sse_data(": keep-alive"), None);
        assert_eq!(sse_data("event: message"), None);
        assert_eq!(sse_data(""), None);
    }

    #[test]
    fn reasons_and_normalize() {
        assert_eq!(finish_reason("length", false), FinishReason::Length);
        assert_eq!(finish_reason("stop", false), FinishReason::Eos);
        assert_eq!(finish_reason("stop", true), FinishReason::Stop);
        assert_eq!(finish_reason("eos", true), FinishReason::Eos);
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
