//! Plain FFI-safe data added in ABI 0.1.4 for [`crate::LlmPlugin::generate_with`]: a
//! prompt given as template and content parts, lazily triggered grammars,
//! log-probabilities, and the text of a model's special tokens. Same rules as
//! [`crate::types`]: `#[repr(C)]`, `StableAbi`, `R*` containers.

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// One piece of a prompt given as parts (see [`GenerateOptions::prompt_parts`]).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PromptPart {
    /// The text.
    pub text: RString,
    /// `true`: text a chat template wrote, where the spelling of a control token (such as
    /// `<|im_start|>`) becomes that token. `false`: message content, tokenized as plain
    /// text, so a user who writes a control token's spelling gets those characters.
    pub special: bool,
}

/// Generation options added in ABI 0.1.4, passed to [`crate::LlmPlugin::generate_with`].
/// The defaults change nothing.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq)]
pub struct GenerateOptions {
    /// The prompt as parts, rendered by the host (for example from the model's chat
    /// template); when not empty it replaces [`crate::GenerateRequest::prompt`]. Parts are
    /// tokenized without adding BOS: the template writes it where the model wants it.
    pub prompt_parts: RVec<PromptPart>,
    /// Words that switch the grammar on. Empty: [`crate::SamplingParams::grammar`] constrains
    /// the output from the first token. Not empty: generation is free until one of these
    /// words appears in the output, and from the start of that word on the grammar
    /// applies (so the grammar must match text that begins with the word). Requires
    /// a grammar.
    pub grammar_triggers: RVec<RString>,
    /// Report each generated token's log-probability through
    /// [`crate::TokenSink::on_logprobs`].
    pub logprobs: bool,
    /// With `logprobs`, also the this many most likely tokens at each step (at most
    /// [`crate::limits::MAX_TOP_LOGPROBS`]).
    pub top_logprobs: u32,
}

impl GenerateOptions {
    /// The first option set to something other than its default, as the APIs name it.
    pub fn first_set(&self) -> Option<&'static str> {
        if !self.prompt_parts.is_empty() {
            Some("prompt_parts")
        } else if !self.grammar_triggers.is_empty() {
            Some("grammar_triggers")
        } else if self.logprobs {
            Some("logprobs")
        } else if self.top_logprobs > 0 {
            Some("top_logprobs")
        } else {
            None
        }
    }

    /// The prompt parts joined into one text.
    pub fn joined_prompt(&self) -> String {
        self.prompt_parts.iter().map(|p| p.text.as_str()).collect()
    }
}

/// A token and its log-probability (natural log), as reported by
/// [`crate::TokenSink::on_logprobs`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// Token id.
    pub token: i32,
    /// The token's text (may be part of a multi-byte character).
    pub text: RString,
    /// Natural log of its probability under the model, before sampling constraints.
    pub logprob: f32,
}

/// The text of a model's special tokens, for rendering chat templates
/// (`bos_token`, `eos_token`). Empty when the model has none.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: RString,
    /// End of sequence (of a turn, for chat models).
    pub eos: RString,
}
