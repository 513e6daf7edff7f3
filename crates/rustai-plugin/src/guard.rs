//! Panic containment: every call from the host into a plugin runs inside
//! `catch_unwind` through a [`Guarded`] wrapper. A panic becomes a
//! [`ErrorKind::Panicked`] error for that call and is remembered, so the plugin's
//! `health()` turns `Degraded`; it never unwinds across the ABI (which would abort
//! the host). The plugin's identity in `info()` is the one the glue filled in.

use std::{
    any::Any,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{Arc, Mutex},
};

use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use rustai_abi::{
    error::{ErrorKind, PluginError},
    options::*,
    traits::*,
    types::*,
};

/// Shared by every guarded object of one plugin instance.
#[derive(Debug)]
pub(crate) struct GuardState {
    pub(crate) info: PluginInfo,
    pub(crate) last_panic: Mutex<Option<String>>,
}

/// A family object wrapped so that every call runs inside `catch_unwind`.
pub(crate) struct Guarded<T> {
    inner: Arc<T>,
    state: Arc<GuardState>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(inner: Arc<T>, state: &Arc<GuardState>) -> Self {
        Self { inner, state: Arc::clone(state) }
    }

    /// Run `f`, turning a panic into an error and remembering it for `health()`.
    fn call<R>(&self, what: &str, f: impl FnOnce(&T) -> RResult<R, PluginError>) -> RResult<R, PluginError> {
        match catch_unwind(AssertUnwindSafe(|| f(&self.inner))) {
            Ok(result) => result,
            Err(payload) => {
                let msg = format!("plugin `{}` panicked in {what}: {}", self.state.info.id, panic_message(&*payload));
                if let Ok(mut last) = self.state.last_panic.lock() {
                    *last = Some(msg.clone());
                }
                RResult::RErr(PluginError::new(ErrorKind::Panicked, msg))
            }
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl<T: Plugin> Plugin for Guarded<T> {
    fn info(&self) -> PluginInfo {
        self.state.info.clone()
    }
    fn init(&self, config_json: RStr<'_>) -> RResult<(), PluginError> {
        self.call("init", |p| p.init(config_json))
    }
    fn health(&self) -> Health {
        if let Ok(last) = self.state.last_panic.lock() {
            if let Some(msg) = last.as_ref() {
                return Health { status: HealthStatus::Degraded, message: RString::from(msg.as_str()) };
            }
        }
        match self.call("health", |p| RResult::ROk(p.health())) {
            RResult::ROk(h) => h,
            RResult::RErr(e) => Health { status: HealthStatus::Degraded, message: e.message },
        }
    }
    fn shutdown(&self) -> RResult<(), PluginError> {
        self.call("shutdown", |p| p.shutdown())
    }
    fn estimate_memory(&self, params: &LoadModelParams) -> RResult<u64, PluginError> {
        self.call("estimate_memory", |p| p.estimate_memory(params))
    }
}

impl<T: LlmPlugin> LlmPlugin for Guarded<T> {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        self.call("load_model", |p| p.load_model(params))
    }
    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        self.call("unload_model", |p| p.unload_model(model))
    }
    fn model_info(&self, model: ModelHandle) -> RResult<ModelInfo, PluginError> {
        self.call("model_info", |p| p.model_info(model))
    }
    fn tokenize(&self, model: ModelHandle, text: RStr<'_>, add_special: bool) -> RResult<RVec<i32>, PluginError> {
        self.call("tokenize", |p| p.tokenize(model, text, add_special))
    }
    fn detokenize(&self, model: ModelHandle, tokens: RSlice<'_, i32>) -> RResult<RString, PluginError> {
        self.call("detokenize", |p| p.detokenize(model, tokens))
    }
    fn apply_chat_template(
        &self,
        model: ModelHandle,
        messages: RSlice<'_, ChatMessage>,
        add_assistant: bool,
    ) -> RResult<RString, PluginError> {
        self.call("apply_chat_template", |p| p.apply_chat_template(model, messages, add_assistant))
    }
    fn generate(&self, model: ModelHandle, request: &GenerateRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        self.call("generate", |p| p.generate(model, request, sink))
    }
    fn chat(&self, model: ModelHandle, request: &ChatRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        self.call("chat", |p| p.chat(model, request, sink))
    }
    fn generate_ext(
        &self,
        model: ModelHandle,
        request: &GenerateRequest,
        extras: &SamplingExtras,
        sink: TokenSinkMut<'_>,
    ) -> RResult<Completion, PluginError> {
        self.call("generate_ext", |p| p.generate_ext(model, request, extras, sink))
    }
    fn chat_ext(
        &self,
        model: ModelHandle,
        request: &ChatRequest,
        extras: &SamplingExtras,
        sink: TokenSinkMut<'_>,
    ) -> RResult<Completion, PluginError> {
        self.call("chat_ext", |p| p.chat_ext(model, request, extras, sink))
    }
    fn special_tokens(&self, model: ModelHandle) -> RResult<SpecialTokens, PluginError> {
        self.call("special_tokens", |p| p.special_tokens(model))
    }
    fn generate_with(
        &self,
        model: ModelHandle,
        request: &GenerateRequest,
        extras: &SamplingExtras,
        options: &GenerateOptions,
        sink: TokenSinkMut<'_>,
    ) -> RResult<Completion, PluginError> {
        self.call("generate_with", |p| p.generate_with(model, request, extras, options, sink))
    }
}

impl<T: EmbeddingPlugin> EmbeddingPlugin for Guarded<T> {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        self.call("load_model", |p| p.load_model(params))
    }
    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        self.call("unload_model", |p| p.unload_model(model))
    }
    fn dimensions(&self, model: ModelHandle) -> RResult<u32, PluginError> {
        self.call("dimensions", |p| p.dimensions(model))
    }
    fn max_input_length(&self, model: ModelHandle) -> RResult<u32, PluginError> {
        self.call("max_input_length", |p| p.max_input_length(model))
    }
    fn embed(&self, model: ModelHandle, request: &EmbedRequest) -> RResult<Embeddings, PluginError> {
        self.call("embed", |p| p.embed(model, request))
    }
}

impl<T: SttPlugin> SttPlugin for Guarded<T> {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        self.call("load_model", |p| p.load_model(params))
    }
    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        self.call("unload_model", |p| p.unload_model(model))
    }
    fn transcribe(&self, model: ModelHandle, request: &TranscribeRequest) -> RResult<Transcription, PluginError> {
        self.call("transcribe", |p| p.transcribe(model, request))
    }
}

impl<T: TtsPlugin> TtsPlugin for Guarded<T> {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        self.call("load_model", |p| p.load_model(params))
    }
    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        self.call("unload_model", |p| p.unload_model(model))
    }
    fn voices(&self, model: ModelHandle) -> RResult<RVec<Voice>, PluginError> {
        self.call("voices", |p| p.voices(model))
    }
    fn synthesize(&self, model: ModelHandle, request: &SpeakRequest, sink: AudioSinkMut<'_>) -> RResult<SpeechInfo, PluginError> {
        self.call("synthesize", |p| p.synthesize(model, request, sink))
    }
}

impl<T: ToolPlugin> ToolPlugin for Guarded<T> {
    fn tools(&self) -> RVec<ToolDefinition> {
        match self.call("tools", |p| RResult::ROk(p.tools())) {
            RResult::ROk(t) => t,
            RResult::RErr(_) => RVec::new(),
        }
    }
    fn execute(&self, name: RStr<'_>, arguments_json: RStr<'_>) -> RResult<ToolOutput, PluginError> {
        self.call("execute", |p| p.execute(name, arguments_json))
    }
}
