//! # rustai-abi: the stable contract between the RustAI host and its plugins
//!
//! Everything that crosses a `dlopen` boundary lives here and nowhere else.
//! The crate is deliberately small and depends on `abi_stable` alone: no tokio,
//! no notify, no sysinfo, no HTTP, and no plugin-side glue. The host
//! (`rustai-core`) and the plugin SDK (`rustai-plugin`) both build on it.
//!
//! ## Layout
//! - [`error`]: the FFI-safe [`PluginError`] with its `#[repr(u8)]` [`ErrorKind`].
//! - [`types`]: plain data that crosses the boundary (requests, responses, metadata);
//!   [`options`]: the data added in 0.1.4 (prompt parts, lazy grammars, log-probabilities).
//! - [`traits`]: the `#[sabi_trait]` families: [`Plugin`], [`LlmPlugin`],
//!   [`EmbeddingPlugin`], [`SttPlugin`], [`TtsPlugin`], [`ToolPlugin`] and the
//!   callback sinks [`TokenSink`] and [`AudioSink`].
//! - [`module`]: the one root module every plugin library exports, and the
//!   [`Handshake`] (API semver + feature list) the host checks before anything else.
//! - [`validate`]: bounds on every request value ([`SamplingParams::validate`],
//!   [`limits`]), checked by the host at its edge and again by plugins.
//!
//! Plugin authors do not depend on this crate directly: the `rustai-plugin` SDK
//! re-exports all of it, with the export glue (panic guards, the root module, the
//! handshake) and helpers such as a model-handle store.
//!
//! ## Versioning
//! The crate version *is* the ABI version ([`API_VERSION`]). A new trait method
//! appended after the `#[sabi(last_prefix_field)]` marker, with a default body, or
//! a new type, is a compatible change (patch level for 0.x); any other change to a
//! type here is a breaking one (minor level for 0.x). Compatible in abi_stable's
//! sense: a host loads plugins built against the same or a *newer* `0.1.z` (it
//! ignores methods it does not know); a plugin built against an older `0.1.z`
//! whose traits this host has since extended is refused with the mismatch named,
//! and must be rebuilt. 0.1.1 added [`SamplingExtras`] and
//! [`LlmPlugin::generate_ext`] / [`LlmPlugin::chat_ext`]; 0.1.2 added
//! [`TokenSink::on_prompt`] (prompt tokens reused from a cache) and the `prompt-cache` /
//! `batching` features; 0.1.3 added [`Plugin::estimate_memory`] (a load's memory, as the
//! plugin that knows the format estimates it). See `docs/plugin-guide.md`.

pub mod cpu;
pub mod error;
pub mod module;
pub mod options;
pub mod traits;
pub mod types;
pub mod validate;

#[doc(hidden)]
pub use abi_stable;

pub use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec};
pub use error::{ErrorKind, PluginError, CONTEXT_LENGTH_EXCEEDED};
pub use module::{Handshake, PluginInstance, PluginMod, PluginModRef};
pub use traits::{
    AudioSink, AudioSinkMut, AudioSink_TO, EmbeddingBox, EmbeddingPlugin, EmbeddingPlugin_TO,
    LlmBox, LlmPlugin, LlmPlugin_TO, Plugin, PluginBox, Plugin_TO, SttBox, SttPlugin, SttPlugin_TO,
    TokenSink, TokenSinkMut, TokenSink_TO, ToolBox, ToolPlugin, ToolPlugin_TO, TtsBox, TtsPlugin,
    TtsPlugin_TO,
};
pub use options::*;
pub use types::*;
pub use validate::{limits, InvalidParam};

/// The version of this interface, which plugins report in their [`Handshake`].
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Interface features this build of the contract offers. A plugin lists the
/// ones it was built with; a host can refuse a plugin that needs one it lacks.
pub const API_FEATURES: &[&str] = &[
    "llm.v1",
    "embedding.v1",
    "stt.v1",
    "tts.v1",
    "tool.v1",
    "token-sink.cancel",
    "token-sink.prompt",
    "plugin.estimate-memory",
    "llm.generate-with",
    "token-sink.logprobs",
];

/// Well-known capability feature names a plugin may advertise in
/// [`Capabilities::features`].
pub mod feature {
    /// Tokens are streamed through a [`crate::TokenSink`] as they are produced.
    pub const STREAMING: &str = "streaming";
    /// Chat requests with the model's own chat template.
    pub const CHAT: &str = "chat";
    /// GBNF grammar-constrained sampling.
    pub const GRAMMAR: &str = "grammar";
    /// JSON-schema-constrained sampling.
    pub const JSON_SCHEMA: &str = "json_schema";
    /// Reproducible sampling for a given seed.
    pub const SEED: &str = "seed";
    /// Host-side cancellation of a running generation.
    pub const CANCEL: &str = "cancel";
    /// Tokenize / count tokens.
    pub const TOKENIZE: &str = "tokenize";
    /// Prompt prefixes already evaluated are reused from a cache (reported through
    /// [`crate::TokenSink::on_prompt`]).
    pub const PROMPT_CACHE: &str = "prompt-cache";
    /// Concurrent requests on one model are decoded together in one batch.
    pub const BATCHING: &str = "batching";
    /// [`crate::GenerateOptions::prompt_parts`]: template text and content tokenized apart.
    pub const PROMPT_PARTS: &str = "prompt-parts";
    /// [`crate::GenerateOptions::grammar_triggers`]: a grammar that applies from a trigger word on.
    pub const LAZY_GRAMMAR: &str = "lazy-grammar";
    /// [`crate::GenerateOptions::logprobs`]: per-token log-probabilities.
    pub const LOGPROBS: &str = "logprobs";
}
