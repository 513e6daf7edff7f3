//! Loaded models: validation of the file, loading through whisper.cpp, handles,
//! and a small pool of decoder states per model.
//!
//! whisper.cpp separates the weights (a `WhisperContext`, shared and read-only)
//! from the per-transcription buffers (a `WhisperState`: mel, KV caches). A
//! state is taken from the model's pool for each request and returned after,
//! so concurrent requests on one model each have their own.

use std::{
    path::Path,
    sync::{Mutex, Once},
};

use rustai_plugin::{LoadModelParams, PluginError};
use rustai_plugin::formats::WhisperHeader;
use whisper_rs::{WhisperContext, WhisperContextParameters, WhisperState};

/// Idle decoder states kept per model (each holds tens of MiB for `tiny`).
const MAX_IDLE_STATES: usize = 2;

/// Most CPU threads used when the caller leaves the choice to the plugin.
const DEFAULT_THREADS_CAP: usize = 8;

/// Environment variable that lets whisper.cpp's own log lines through to stderr.
pub const LOG_ENV: &str = "RUSTAI_WHISPER_LOG";

/// Route whisper.cpp's and ggml's log lines nowhere, unless [`LOG_ENV`] is set.
///
/// whisper-rs's hooks forward to `log`/`tracing` only when one of its backend
/// features is enabled; this plugin enables neither, so the hooks drop the lines.
/// The hooks are per copy of whisper.cpp/ggml (this plugin links its own,
/// privately), so another plugin's ggml is not affected.
pub(crate) fn quiet_native_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(LOG_ENV).is_none() {
            whisper_rs::install_logging_hooks();
        }
    });
}

/// A model loaded into memory.
pub(crate) struct LoadedModel {
    ctx: WhisperContext,
    /// Whether the vocabulary has the language tokens (not an `.en` model).
    pub(crate) multilingual: bool,
    /// `tiny`, `base`, ... from the header.
    pub(crate) model_type: &'static str,
    /// Threads used when a request leaves the choice to the plugin.
    pub(crate) default_threads: u32,
    /// The file it was loaded from, for messages.
    pub(crate) path: String,
    idle: Mutex<Vec<WhisperState>>,
}

impl LoadedModel {
    /// Check the file, then load it.
    pub(crate) fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        quiet_native_logs();
        let path = Path::new(params.path.as_str());
        if !path.is_file() {
            return Err(PluginError::not_found(format!("model file {} does not exist", path.display())));
        }
        // whisper.cpp trusts the file: a truncated or corrupt one can make it read past
        // its buffers. Walk the whole structure ourselves first.
        let header = WhisperHeader::read(path).map_err(|e| {
            PluginError::invalid_model(format!("{} is not a usable whisper.cpp ggml model: {e}", path.display()))
        })?;
        let mut ctx_params = WhisperContextParameters::default();
        ctx_params.use_gpu(false);
        let ctx = WhisperContext::new_with_params(path, ctx_params).map_err(|e| {
            PluginError::invalid_model(format!(
                "whisper.cpp could not load {} ({e:?}); set {LOG_ENV}=1 to see its log",
                path.display()
            ))
        })?;
        let default_threads = match params.threads {
            0 => std::thread::available_parallelism().map_or(4, |n| n.get()).min(DEFAULT_THREADS_CAP) as u32,
            n => n,
        };
        Ok(Self {
            multilingual: ctx.is_multilingual() && header.is_multilingual(),
            model_type: header.model_type(),
            ctx,
            default_threads,
            path: params.path.to_string(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Tokens of `text` (no NUL characters), for the decoder prompt.
    pub(crate) fn tokenize(&self, text: &str) -> Result<Vec<std::ffi::c_int>, PluginError> {
        // Every token covers at least one byte, so this bound always suffices
        // (whisper-rs mishandles a bound that is too small).
        self.ctx
            .tokenize(text, text.len() + 8)
            .map_err(|e| PluginError::invalid_input(format!("the initial prompt cannot be tokenized ({e:?})")))
    }

    /// A decoder state: an idle one, or a new one.
    pub(crate) fn take_state(&self) -> Result<WhisperState, PluginError> {
        if let Some(state) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(state);
        }
        self.ctx.create_state().map_err(|e| {
            PluginError::new(
                rustai_plugin::ErrorKind::ResourceExhausted,
                format!("whisper.cpp could not allocate a decoder state for {} ({e:?})", self.path),
            )
        })
    }

    /// Give a state back for the next request (or free it when enough are idle).
    pub(crate) fn put_state(&self, state: WhisperState) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_STATES {
            idle.push(state);
        }
    }
}

/// Handles to loaded models.
pub(crate) type ModelStore = rustai_plugin::ModelStore<LoadedModel>;
