//! Bounds on every request value that reaches a plugin, checked before any
//! work or allocation: the host checks them at its edge (an HTTP 400 naming the
//! field), and plugins check them again, since a plugin cannot know which host
//! calls it. Nothing here changes the ABI: it is code both sides link.

use std::fmt;

use crate::{error::PluginError, types::SamplingParams};

/// Limits on the size-like request values.
pub mod limits {
    /// Most stop sequences in one request.
    pub const MAX_STOP_SEQUENCES: usize = 16;
    /// Longest stop sequence, in bytes.
    pub const MAX_STOP_BYTES: usize = 256;
    /// Largest `repeat_last_n` (a plugin also clamps it to the context).
    pub const MAX_PENALTY_WINDOW: i32 = 1 << 20;
    /// Largest GBNF grammar, in bytes.
    pub const MAX_GRAMMAR_BYTES: usize = 64 << 10;
    /// Largest JSON schema, in bytes (as JSON text).
    pub const MAX_SCHEMA_BYTES: usize = 64 << 10;
    /// Highest temperature.
    pub const MAX_TEMPERATURE: f32 = 100.0;
    /// Highest repetition penalty.
    pub const MAX_REPEAT_PENALTY: f32 = 100.0;
    /// Most CPU threads a request may ask for.
    pub const MAX_THREADS: u32 = 256;
    /// Largest context a request may ask for, in tokens.
    pub const MAX_CONTEXT: u32 = 1 << 22;
    /// Most `logit_bias` entries (OpenAI allows 300).
    pub const MAX_LOGIT_BIASES: usize = 1024;
    /// Most `top_logprobs` (OpenAI allows 20).
    pub const MAX_TOP_LOGPROBS: u32 = 20;
    /// Most grammar trigger words.
    pub const MAX_GRAMMAR_TRIGGERS: usize = 16;
    /// Most parts of a prompt given as parts.
    pub const MAX_PROMPT_PARTS: usize = 1 << 16;
}

/// A request value out of its range: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParam {
    /// The field, as the APIs name it (`temperature`, `stop`, `repeat_last_n`, ...).
    pub field: &'static str,
    /// What is wrong with it, including the allowed range.
    pub message: String,
}

impl fmt::Display for InvalidParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidParam {}

impl From<InvalidParam> for PluginError {
    fn from(e: InvalidParam) -> Self {
        PluginError::invalid_input(e.to_string())
    }
}

fn bad(field: &'static str, message: impl Into<String>) -> InvalidParam {
    InvalidParam { field, message: message.into() }
}

/// `v` is finite and within `lo..=hi`.
fn in_range(field: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), InvalidParam> {
    if !v.is_finite() {
        return Err(bad(field, format!("{v} is not a finite number")));
    }
    if v < lo || v > hi {
        return Err(bad(field, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

impl SamplingParams {
    /// Check every value against its range and the [`limits`]. Cheap: no
    /// allocation proportional to the request.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        in_range("temperature", self.temperature, 0.0, limits::MAX_TEMPERATURE)?;
        in_range("top_p", self.top_p, 0.0, 1.0)?;
        in_range("min_p", self.min_p, 0.0, 1.0)?;
        in_range("repeat_penalty", self.repeat_penalty, 0.0, limits::MAX_REPEAT_PENALTY)?;
        if self.top_k < 0 {
            return Err(bad("top_k", format!("{} is negative (0 disables top-k)", self.top_k)));
        }
        if !(-1..=limits::MAX_PENALTY_WINDOW).contains(&self.repeat_last_n) {
            return Err(bad(
                "repeat_last_n",
                format!("{} is outside -1..={} (-1 = the whole context, 0 = off)", self.repeat_last_n, limits::MAX_PENALTY_WINDOW),
            ));
        }
        if self.stop.len() > limits::MAX_STOP_SEQUENCES {
            return Err(bad("stop", format!("{} stop sequences; at most {} are allowed", self.stop.len(), limits::MAX_STOP_SEQUENCES)));
        }
        for s in self.stop.iter() {
            if s.is_empty() {
                return Err(bad("stop", "a stop sequence is empty"));
            }
            if s.len() > limits::MAX_STOP_BYTES {
                return Err(bad("stop", format!("a stop sequence of {} bytes; at most {} are allowed", s.len(), limits::MAX_STOP_BYTES)));
            }
        }
        if let Some(g) = self.grammar.as_ref().into_option() {
            if g.len() > limits::MAX_GRAMMAR_BYTES {
                return Err(bad("grammar", format!("{} bytes; at most {} are allowed", g.len(), limits::MAX_GRAMMAR_BYTES)));
            }
        }
        if let Some(s) = self.json_schema.as_ref().into_option() {
            if s.len() > limits::MAX_SCHEMA_BYTES {
                return Err(bad("format", format!("the JSON schema has {} bytes; at most {} are allowed", s.len(), limits::MAX_SCHEMA_BYTES)));
            }
        }
        Ok(())
    }
}

impl crate::types::SamplingExtras {
    /// Check every value against its range (token ids are the plugin's to check).
    pub fn validate(&self) -> Result<(), InvalidParam> {
        in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        in_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        in_range("typical_p", self.typical_p, 0.0, 1.0)?;
        if self.mirostat > 2 {
            return Err(bad("mirostat", format!("{} is not 0 (off), 1 or 2", self.mirostat)));
        }
        in_range("mirostat_tau", self.mirostat_tau, 0.0, 100.0)?;
        in_range("mirostat_eta", self.mirostat_eta, 0.0, 1.0)?;
        if self.threads > limits::MAX_THREADS {
            return Err(bad("num_thread", format!("{} threads; at most {} are allowed", self.threads, limits::MAX_THREADS)));
        }
        if self.logit_bias.len() > limits::MAX_LOGIT_BIASES {
            return Err(bad("logit_bias", format!("{} entries; at most {} are allowed", self.logit_bias.len(), limits::MAX_LOGIT_BIASES)));
        }
        for b in self.logit_bias.iter() {
            in_range("logit_bias", b.bias, -100.0, 100.0)?;
            if b.token < 0 {
                return Err(bad("logit_bias", format!("token id {} is negative", b.token)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RString, RVec};

    fn field(p: SamplingParams) -> &'static str {
        p.validate().unwrap_err().field
    }

    #[test]
    fn defaults_and_greedy_are_valid() {
        SamplingParams::default().validate().unwrap();
        SamplingParams::greedy().validate().unwrap();
    }

    #[test]
    fn non_finite_and_out_of_range_values_name_their_field() {
        let d = SamplingParams::default;
        assert_eq!(field(SamplingParams { temperature: f32::NAN, ..d() }), "temperature");
        assert_eq!(field(SamplingParams { temperature: f32::INFINITY, ..d() }), "temperature");
        assert_eq!(field(SamplingParams { temperature: -0.5, ..d() }), "temperature");
        assert_eq!(field(SamplingParams { temperature: 1e30, ..d() }), "temperature");
        assert_eq!(field(SamplingParams { top_p: 1.5, ..d() }), "top_p");
        assert_eq!(field(SamplingParams { min_p: f32::NEG_INFINITY, ..d() }), "min_p");
        assert_eq!(field(SamplingParams { repeat_penalty: -1.0, ..d() }), "repeat_penalty");
        assert_eq!(field(SamplingParams { top_k: -3, ..d() }), "top_k");
        assert_eq!(field(SamplingParams { repeat_last_n: -2, ..d() }), "repeat_last_n");
        assert_eq!(field(SamplingParams { repeat_last_n: i32::MAX, ..d() }), "repeat_last_n");
        // Tiny but valid: the plugin's sampler must cope (see the gguf plugin's sampling).
        SamplingParams { temperature: 1e-40, ..d() }.validate().unwrap();
    }

    #[test]
    fn extras_are_checked_and_default_to_nothing() {
        use crate::types::{LogitBias, SamplingExtras};
        let d = SamplingExtras::default;
        d().validate().unwrap();
        assert_eq!(d().first_set(), None);
        let e = |x: SamplingExtras| x.validate().unwrap_err().field;
        assert_eq!(e(SamplingExtras { frequency_penalty: 3.0, ..d() }), "frequency_penalty");
        assert_eq!(e(SamplingExtras { presence_penalty: f32::NAN, ..d() }), "presence_penalty");
        assert_eq!(e(SamplingExtras { mirostat: 3, ..d() }), "mirostat");
        assert_eq!(e(SamplingExtras { logit_bias: vec![LogitBias { token: 5, bias: 1e9 }].into(), ..d() }), "logit_bias");
        assert_eq!(e(SamplingExtras { logit_bias: vec![LogitBias { token: -1, bias: 1.0 }].into(), ..d() }), "logit_bias");
        assert_eq!(SamplingExtras { presence_penalty: 0.5, ..d() }.first_set(), Some("presence_penalty"));
    }

    #[test]
    fn size_like_values_are_bounded() {
        let d = SamplingParams::default;
        let many: RVec<RString> = (0..17).map(|i| RString::from(format!("s{i}"))).collect();
        assert_eq!(field(SamplingParams { stop: many, ..d() }), "stop");
        let long: RVec<RString> = vec![RString::from("x".repeat(257))].into();
        assert_eq!(field(SamplingParams { stop: long, ..d() }), "stop");
        let empty: RVec<RString> = vec![RString::new()].into();
        assert_eq!(field(SamplingParams { stop: empty, ..d() }), "stop");
        let grammar = crate::ROption::RSome(RString::from("x".repeat(limits::MAX_GRAMMAR_BYTES + 1)));
        assert_eq!(field(SamplingParams { grammar, ..d() }), "grammar");
        let schema = crate::ROption::RSome(RString::from("x".repeat(limits::MAX_SCHEMA_BYTES + 1)));
        assert_eq!(field(SamplingParams { json_schema: schema, ..d() }), "format");
    }
}

impl crate::options::GenerateOptions {
    /// Check every value against its range (that a trigger comes with a grammar is the
    /// plugin's to check, since the grammar travels in [`SamplingParams`]).
    pub fn validate(&self) -> Result<(), InvalidParam> {
        if self.top_logprobs > limits::MAX_TOP_LOGPROBS {
            return Err(bad("top_logprobs", format!("{}; at most {} are allowed", self.top_logprobs, limits::MAX_TOP_LOGPROBS)));
        }
        if self.grammar_triggers.len() > limits::MAX_GRAMMAR_TRIGGERS {
            return Err(bad("grammar_triggers", format!("{} words; at most {} are allowed", self.grammar_triggers.len(), limits::MAX_GRAMMAR_TRIGGERS)));
        }
        if self.grammar_triggers.iter().any(|t| t.is_empty() || t.len() > limits::MAX_STOP_BYTES) {
            return Err(bad("grammar_triggers", format!("a trigger word must have 1..={} bytes", limits::MAX_STOP_BYTES)));
        }
        if self.prompt_parts.len() > limits::MAX_PROMPT_PARTS {
            return Err(bad("prompt_parts", format!("{} parts; at most {} are allowed", self.prompt_parts.len(), limits::MAX_PROMPT_PARTS)));
        }
        Ok(())
    }
}
