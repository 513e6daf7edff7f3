//! # rustai-core: the RustAI host library
//!
//! Loads plugins (cdylibs built against the `rustai-abi` contract, usually through the
//! `rustai-plugin` SDK) from folders, checks them, and gives Rust applications one
//! engine over them.
//!
//! ```no_run
//! use rustai_core::{abi::{GenerateRequest, LoadModelParams, SamplingParams}, PluginManager};
//! let plugins = PluginManager::from_dirs(["plugins-dist"])?;
//! let llm = plugins.llm("gguf")?;
//! let model = llm.load(&LoadModelParams::new("models/SmolLM2-135M-Instruct.Q4_1.gguf"))?;
//! let done = model.generate(&GenerateRequest::new("Once upon a time", SamplingParams::greedy()), |piece| {
//!     print!("{piece}");
//!     true
//! })?;
//! println!("\n{} tokens at {:.1} tokens/s", done.tokens_out, done.timings.tokens_per_s);
//! # Ok::<(), rustai_core::Error>(())
//! ```
//!
//! ## Layout (three jobs, three folders)
//! - [`plugins`]: hosting plugins: [`PluginManager`] (folders, loads, hot reload, the one
//!   rule for which plugin serves a model), loader, trust, configuration, events, watcher.
//! - [`models`]: [`Registry`]: models found on disk (detected by content) or declared in
//!   `models.toml`, live updates, lookup by id / prefix / `name:tag`, explained selection.
//! - [`engine`]: [`Engine`], the request path every request takes (server, CLI,
//!   applications): resolve once, adapt once, lease from the [`ModelPool`] (every family,
//!   one budget), run, record in the [`Metrics`]; with budget, adaptive rules, monitor.
//! - [`families`]: typed handles on each plugin family ([`Llm`], [`Embedder`],
//!   [`Transcriber`], [`Synthesizer`], [`Tools`]) and their loaded models.
//! - [`chat`]: conversations and tool calling in core terms: the model's Jinja chat
//!   template (minijinja), the tool-call formats, grammars from tool schemas, the
//!   server-side tool loop's steps.
//! - [`audio`]: WAV decoding/resampling to 16 kHz mono PCM and WAV encoding.
//! - [`error`]: [`Error`] and [`Result`].
//!
//! Dependencies between them run one way: `engine` → `models` → `plugins`,
//! `engine` → `families` → `plugins`.
//!
//! **Invariant:** this crate never links llama.cpp, candle, ONNX Runtime or an
//! HTTP stack, and knows no model format's internals beyond detection; everything
//! model-specific (memory estimates included) happens in plugins.

pub mod audio;
pub mod chat;
pub mod engine;
pub mod error;
pub mod families;
mod fswatch;
pub mod models;
pub mod plugins;

/// The plugin contract, re-exported so applications need only this crate.
pub use rustai_abi as abi;

/// Model file header readers, re-exported.
pub use rustai_formats as formats;

pub use engine::{
    budget::{Budget, KeepAlive}, metrics::{Metrics, RequestRecord, Summary}, monitor::{ResourceMonitor, ResourceSnapshot},
    pool::{Lease, LoadedModelStatus, ModelPool}, Engine, EngineConfig, LoadOptions, Prepared, Served, ToolInfo, ToolResult, AUTO,
};
pub use error::{Error, Result};
pub use families::{
    CancelToken, Embedder, EmbeddingModel, Family, Llm, LlmModel, Logprobs, StreamEvent, SttModel, Synthesizer, TextRequest, TokenStream, Tools,
    Transcriber, TtsModel,
};
pub use models::{ModelEntry, ModelFile, ModelFormat, Registry, RegistryOptions, SelectionCriteria, Task};
pub use plugins::{
    EventKind, FamilyKind, LoadedPlugin, PluginConfigs, PluginEvent, PluginManager, PluginWatcher, Rejected, RejectReason, SyncOutcome,
    TrustPolicy,
};
