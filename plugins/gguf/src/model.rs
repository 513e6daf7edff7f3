//! Loaded models: validation of the file, loading through llama.cpp, handles.

use std::{
    num::NonZeroU32,
    path::Path,
    sync::{Mutex, OnceLock},
};

use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    model::{params::LlamaModelParams, LlamaModel},
};
use rustai_abi::{LoadModelParams, ModelInfo, PluginError, ROption, RString};
use rustai_formats::GgufHeader;

/// Context length used when the caller asks for the model default (0): the
/// trained context, capped so a small machine does not reserve gigabytes of KV cache.
pub(crate) const DEFAULT_CONTEXT_CAP: u32 = 4096;

/// The process-wide llama.cpp backend (it may only be initialised once).
pub(crate) fn backend() -> Result<&'static LlamaBackend, PluginError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            if std::env::var_os("RUSTAI_LLAMA_LOG").is_none() {
                llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
            }
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PluginError::internal(format!("llama.cpp backend failed to start: {e}")))
}

/// A model loaded into memory.
pub(crate) struct LoadedModel {
    pub(crate) model: LlamaModel,
    pub(crate) info: ModelInfo,
    pub(crate) threads: i32,
    pub(crate) batch_size: u32,
    /// llama.cpp may mutate the model while creating a context: one at a time.
    context_lock: Mutex<()>,
}

impl LoadedModel {
    /// Check the file, then load it.
    pub(crate) fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        let path = Path::new(params.path.as_str());
        if !path.is_file() {
            return Err(PluginError::not_found(format!("model file {} does not exist", path.display())));
        }
        // llama.cpp is not built to survive arbitrary bytes: read the header ourselves first.
        let header = GgufHeader::read(path)
            .map_err(|e| PluginError::invalid_model(format!("{} is not a usable GGUF model: {e}", path.display())))?;
        let gpu_layers = u32::try_from(params.gpu_layers).unwrap_or(u32::MAX);
        let model_params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
        let model = LlamaModel::load_from_file(backend()?, path, &model_params).map_err(|e| {
            PluginError::invalid_model(format!("llama.cpp could not load {}: {e}", path.display()))
        })?;
        let trained = model.n_ctx_train();
        let context_length = match params.context_length {
            0 => trained.min(DEFAULT_CONTEXT_CAP),
            n => n.min(trained.max(1)),
        };
        let threads = match params.threads {
            0 => std::thread::available_parallelism().map_or(4, |n| n.get()) as i32,
            n => i32::try_from(n.min(rustai_abi::limits::MAX_THREADS)).unwrap_or(1),
        };
        let chat_template = model.chat_template(None).ok().and_then(|t| t.to_string().ok());
        let info = ModelInfo {
            path: params.path.clone(),
            architecture: RString::from(header.architecture().unwrap_or("unknown")),
            parameters: model.n_params(),
            size_bytes: model.size(),
            trained_context_length: trained,
            context_length,
            vocab_size: u32::try_from(model.n_vocab()).unwrap_or(0),
            embedding_length: u32::try_from(model.n_embd()).unwrap_or(0),
            quantization: RString::from(header.quantization()),
            chat_template: chat_template.map(RString::from).into(),
        };
        let batch_size = if params.batch_size == 0 { 512 } else { params.batch_size.clamp(1, 8192) };
        Ok(Self { model, info, threads, batch_size, context_lock: Mutex::new(()) })
    }

    /// A fresh context with room for `tokens` tokens (capped at the model's context length),
    /// running on `threads` CPU threads (0 = the load-time setting).
    pub(crate) fn new_context(&self, tokens: u32, threads: u32) -> Result<LlamaContext<'_>, PluginError> {
        let n_ctx = tokens.div_ceil(256).saturating_mul(256).clamp(256, self.info.context_length.max(256));
        let threads = match threads {
            0 => self.threads,
            n => i32::try_from(n.min(rustai_abi::limits::MAX_THREADS)).unwrap_or(self.threads),
        };
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(self.batch_size)
            .with_n_ubatch(self.batch_size)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let _guard = self.context_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.model
            .new_context(backend()?, params)
            .map_err(|e| PluginError::new(rustai_abi::ErrorKind::ResourceExhausted, format!("cannot create a context of {n_ctx} tokens: {e}")))
    }

    /// The chat template to use: the model's own, else ChatML.
    pub(crate) fn chat_template(&self) -> Option<&str> {
        match &self.info.chat_template {
            ROption::RSome(t) => Some(t.as_str()),
            ROption::RNone => None,
        }
    }
}

/// Handles to loaded models.
pub(crate) type ModelStore = rustai_abi::ModelStore<LoadedModel>;
