//! Loaded models: validation of the file, loading through llama.cpp, the load options
//! (`extra_json`: `parallel`, `cache_prompt`), handles, and the one context per model.

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
use rustai_plugin::{formats::GgufHeader, serde_json, LoadModelParams, ModelInfo, PluginError, ROption, RString};

/// Context length used when the caller asks for the model default (0): the
/// trained context, capped so a small machine does not reserve gigabytes of KV cache.
pub(crate) const DEFAULT_CONTEXT_CAP: u32 = 4096;

/// Fixed working memory added to every estimate (compute buffers, scratch).
const MARGIN_BYTES: u64 = 32 << 20;

/// The memory a model loaded with `params` takes, from its GGUF header alone: the weights
/// (the file size), the KV cache for the context it will get (f16 K and V per layer and
/// position, `head_count_kv × head_dim` wide, as this plugin allocates it: one cache shared
/// by all slots), and a working margin.
pub(crate) fn estimate_memory(params: &LoadModelParams) -> Result<u64, PluginError> {
    let path = Path::new(params.path.as_str());
    let size = std::fs::metadata(path).map_err(|e| PluginError::not_found(format!("{}: {e}", path.display())))?.len();
    let header = GgufHeader::read(path).map_err(|e| PluginError::invalid_model(format!("{} is not a usable GGUF model: {e}", path.display())))?;
    let arch = header.architecture().unwrap_or_default().to_owned();
    let get = |key: &str| header.get_u64(&format!("{arch}.{key}"));
    let trained = header.context_length().unwrap_or(2048);
    let ctx = match params.context_length {
        0 => trained.min(u64::from(DEFAULT_CONTEXT_CAP)),
        n => u64::from(n),
    };
    let layers = get("block_count").unwrap_or(0);
    let embd = get("embedding_length").unwrap_or(0);
    let heads = get("attention.head_count").unwrap_or(1).max(1);
    let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
    let kv_cache = layers.saturating_mul(ctx).saturating_mul(embd / heads * kv_heads).saturating_mul(2 * 2);
    Ok(size.saturating_add(kv_cache).saturating_add(MARGIN_BYTES))
}

/// Whether llama.cpp's own log is kept (the plugin's `llama_log` setting); read once, when
/// the backend starts.
static LLAMA_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The plugin's configuration (its table in `plugins.toml`, as JSON): `llama_log` (bool,
/// default false) keeps llama.cpp's own log on stderr, as `RUSTAI_LLAMA_LOG` does.
pub(crate) fn configure(config_json: &str) -> Result<(), PluginError> {
    let bad = |why: String| PluginError::invalid_input(format!("gguf configuration: {why}"));
    let config: serde_json::Value = serde_json::from_str(config_json).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = config else { return Err(bad("must be a table of settings".into())) };
    for (key, value) in &map {
        match (key.as_str(), value) {
            ("llama_log", serde_json::Value::Bool(on)) => LLAMA_LOG.store(*on, std::sync::atomic::Ordering::Relaxed),
            ("llama_log", other) => return Err(bad(format!("`llama_log` must be true or false, not {other}"))),
            (other, _) => return Err(bad(format!("unknown setting `{other}` (known: llama_log)"))),
        }
    }
    Ok(())
}

/// The process-wide llama.cpp backend (it may only be initialised once).
pub(crate) fn backend() -> Result<&'static LlamaBackend, PluginError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            if std::env::var_os("RUSTAI_LLAMA_LOG").is_none() && !LLAMA_LOG.load(std::sync::atomic::Ordering::Relaxed) {
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
    /// Sequences in the context: requests decoded together.
    pub(crate) slots: u32,
    /// Reuse cached prompt prefixes.
    pub(crate) cache_prompt: bool,
    /// llama.cpp may mutate the model while creating a context: one at a time.
    context_lock: Mutex<()>,
}

/// Slots when the host does not say (as llama-server's default).
pub(crate) const DEFAULT_SLOTS: u32 = 4;
/// Most slots a model may have.
pub(crate) const MAX_SLOTS: u32 = 64;

/// The options this plugin reads from `extra_json` (others, from `models.toml`, are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) slots: u32,
    pub(crate) cache_prompt: bool,
}

impl Options {
    pub(crate) fn parse(extra_json: &str) -> Result<Self, PluginError> {
        let mut out = Self { slots: DEFAULT_SLOTS, cache_prompt: true };
        let text = extra_json.trim();
        if text.is_empty() {
            return Ok(out);
        }
        let bad = |m: String| PluginError::invalid_input(format!("model options (extra_json): {m}"));
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let map = value.as_object().ok_or_else(|| bad("must be a JSON object".into()))?;
        if let Some(v) = map.get("parallel").filter(|v| !v.is_null()) {
            out.slots = v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_SLOTS)).contains(n))
                .ok_or_else(|| bad(format!("`parallel` must be a whole number from 1 to {MAX_SLOTS}, got {v}")))? as u32;
        }
        if let Some(v) = map.get("cache_prompt").filter(|v| !v.is_null()) {
            out.cache_prompt = v.as_bool().ok_or_else(|| bad(format!("`cache_prompt` must be true or false, got {v}")))?;
        }
        Ok(out)
    }
}

impl LoadedModel {
    /// Check the file, then load it.
    pub(crate) fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        let path = Path::new(params.path.as_str());
        if !path.is_file() {
            return Err(PluginError::not_found(format!("model file {} does not exist", path.display())));
        }
        // llama.cpp is not built to survive arbitrary bytes: read the header ourselves first.
        let options = Options::parse(params.extra_json.as_str())?;
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
            0 => i32::try_from(rustai_plugin::cpu::usable_cores()).unwrap_or(1),
            n => i32::try_from(n.min(rustai_plugin::limits::MAX_THREADS)).unwrap_or(1),
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
        Ok(Self {
            model,
            info,
            threads,
            batch_size,
            slots: options.slots,
            cache_prompt: options.cache_prompt,
            context_lock: Mutex::new(()),
        })
    }

    /// CPU threads for a request asking for `threads` (0 = the load-time setting).
    pub(crate) fn threads_for(&self, threads: u32) -> i32 {
        match threads {
            0 => self.threads,
            n => i32::try_from(n.min(rustai_plugin::limits::MAX_THREADS)).unwrap_or(self.threads),
        }
    }

    /// Tokens decoded in one step: the prompt batch, and at least one token per slot.
    pub(crate) fn step_tokens(&self) -> u32 {
        self.batch_size.max(self.slots)
    }

    /// The model's context: the configured length as one KV cache shared by all slots
    /// (llama.cpp's unified cache: any slot may use all of it, together they never use more,
    /// so memory is the same whatever the number of slots), on `threads` CPU threads.
    pub(crate) fn new_context(&self, threads: i32) -> Result<LlamaContext<'_>, PluginError> {
        let n_ctx = self.info.context_length.max(16);
        let n_batch = self.step_tokens();
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(self.batch_size.min(n_batch))
            .with_n_seq_max(self.slots)
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let _guard = self.context_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.model
            .new_context(backend()?, params)
            .map_err(|e| PluginError::new(rustai_plugin::ErrorKind::ResourceExhausted, format!("cannot create a context of {n_ctx} tokens: {e}")))
    }

    /// The chat template to use: the model's own, else ChatML.
    pub(crate) fn chat_template(&self) -> Option<&str> {
        match &self.info.chat_template {
            ROption::RSome(t) => Some(t.as_str()),
            ROption::RNone => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        assert!(configure("{}").is_ok());
        assert!(configure(r#"{"llama_log": false}"#).is_ok());
        let unknown = configure(r#"{"parallel": 2}"#).unwrap_err();
        assert!(unknown.message.contains("unknown setting `parallel`"), "{unknown}");
        let wrong = configure(r#"{"llama_log": "yes"}"#).unwrap_err();
        assert!(wrong.message.contains("true or false"), "{wrong}");
        assert!(configure("[1]").is_err() && configure("not json").is_err());
    }

    #[test]
    fn load_options_default_and_parse() {
        assert_eq!(Options::parse("").unwrap(), Options { slots: DEFAULT_SLOTS, cache_prompt: true });
        assert_eq!(
            Options::parse(r#"{"parallel": 2, "cache_prompt": false, "model": "ignored"}"#).unwrap(),
            Options { slots: 2, cache_prompt: false }
        );
        assert_eq!(Options::parse(r#"{"parallel": null}"#).unwrap().slots, DEFAULT_SLOTS);
        for bad in [r#"{"parallel": 0}"#, r#"{"parallel": 65}"#, r#"{"parallel": -1}"#, r#"{"parallel": 1.5}"#, r#"{"cache_prompt": "yes"}"#, "[]", "{"] {
            assert!(Options::parse(bad).is_err(), "{bad}");
        }
    }
}
