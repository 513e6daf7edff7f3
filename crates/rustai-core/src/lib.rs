//! # rustai-core: the RustAI host library
//!
//! Loads plugins (cdylibs built against [`rustai_abi`]) from folders, checks
//! them, and gives Rust applications a typed, safe API over them.
//!
//! ```no_run
//! use rustai_core::{abi::{GenerateRequest, LoadModelParams, SamplingParams}, PluginManager};
//! let plugins = PluginManager::from_dirs(["plugins-dist"])?;
//! let llm = plugins.llm_for_format("gguf")?;
//! let model = llm.load(&LoadModelParams::new("models/SmolLM2-135M-Instruct.Q4_1.gguf"))?;
//! let done = model.generate(&GenerateRequest::new("Once upon a time", SamplingParams::greedy()), |piece| {
//!     print!("{piece}");
//!     true
//! })?;
//! println!("\n{} tokens at {:.1} tokens/s", done.tokens_out, done.timings.tokens_per_s);
//! # Ok::<(), rustai_core::Error>(())
//! ```
//!
//! ## Layout
//! - [`manager`]: [`PluginManager`]: folders, the serving plugins, rejections, and
//!   [`PluginManager::sync_path`], which loads, reloads (load new, retire old) or retires.
//! - [`watch`]: [`PluginWatcher`]: notify-based, debounced hot reload of plugin folders.
//! - [`events`]: [`PluginEvent`] lifecycle events, logged and broadcast.
//! - [`loader`]: one file: sniff, private copy, dlopen, layout/API/id checks, instantiate.
//! - [`trust`]: folder permission checks and the sha256 allowlist (`plugins.lock`).
//! - [`engine`]: [`Engine`]: registry lookup → adaptive rules → pooled model → metrics, the
//!   path every request takes (server, CLI, embedding apps).
//! - [`pool`]: [`ModelPool`]: shared loaded models within a memory budget (LRU eviction,
//!   keep-alive, idle unload) that follow plugin reloads.
//! - [`budget`]: [`Budget`], [`KeepAlive`] and memory estimates.
//! - [`audio`]: WAV decoding/resampling to 16 kHz mono PCM and WAV encoding.
//! - [`families`]: [`Embedder`], [`Transcriber`], [`Synthesizer`]: typed embedding, speech-to-text
//!   and text-to-speech calls (models unloaded on drop).
//! - [`tool`]: [`Tools`]: typed calls into a tool plugin.
//! - [`llm`]: [`Llm`] / [`LlmModel`]: blocking generation with a callback, async
//!   [`TokenStream`]s, [`CancelToken`].
//! - [`models`]: [`Registry`]: models found on disk (GGUF, safetensors folders, ONNX, Piper,
//!   whisper.cpp; detected by content) or declared in `models.toml`, live updates, lookup
//!   by id / prefix / `name:tag`, and explained selection.
//! - [`adaptive`]: power profiles and thermal / battery / memory rules that adjust a
//!   request's parameters, reporting each change.
//! - [`monitor`]: [`ResourceMonitor`]: memory, CPU, temperature and battery snapshots from an
//!   injectable source (sysinfo and /sys/class/power_supply on the real machine).
//! - [`metrics`]: [`Metrics`]: per-request records summed per model and in total.
//! - [`error`]: [`Error`] and [`Result`].
//!
//! **Invariant:** this crate never links llama.cpp, candle, ONNX Runtime or an
//! HTTP stack; everything model-specific happens in plugins.

pub mod adaptive;
pub mod audio;
mod aux_models;
pub mod budget;
pub mod engine;
pub mod error;
pub mod events;
pub mod families;
mod fswatch;
pub mod llm;
pub mod loader;
pub mod manager;
pub mod metrics;
pub mod models;
pub mod monitor;
pub mod pool;
pub mod tool;
pub mod trust;
pub mod watch;

/// The plugin ABI, re-exported so applications need only this crate.
pub use rustai_abi as abi;

/// Model file readers (and the Whisper CTranslate2 → ggml converter), re-exported.
pub use rustai_formats as formats;

pub use engine::{Engine, EngineConfig, LoadOptions, Prepared, AUTO};
pub use error::{Error, Result};
pub use llm::{CancelToken, Llm, LlmModel, StreamEvent, TextRequest, TokenStream};
pub use loader::RejectReason;
pub use events::{EventKind, PluginEvent};
pub use families::{Embedder, EmbeddingModel, SttModel, Synthesizer, TtsModel, Transcriber};
pub use manager::{LoadedPlugin, PluginManager, Rejected, SyncOutcome};
pub use metrics::{Metrics, RequestRecord, Summary};
pub use models::{ModelEntry, ModelFile, ModelFormat, Registry, RegistryOptions, SelectionCriteria, Task};
pub use monitor::{ResourceMonitor, ResourceSnapshot};
pub use budget::{Budget, KeepAlive};
pub use pool::{Lease, LoadedModelStatus, ModelPool};
pub use tool::Tools;
pub use trust::TrustPolicy;
pub use watch::PluginWatcher;
