//! Typed, safe access to a plugin's [`LlmPlugin`](rustai_abi::LlmPlugin):
//! loading models, blocking generation with a callback, and async streams.

use std::{
    panic::{catch_unwind, resume_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    task::{Context, Poll},
};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};
use rustai_abi::{
    ChatMessage, ChatRequest, Completion, GenerateOptions, GenerateRequest, LlmBox, LoadModelParams, ModelHandle, ModelInfo, RSlice,
    SamplingExtras, SpecialTokens, TokenLogprob, TokenSink, TokenSink_TO,
};
use tokio::sync::mpsc;

use super::Family;
use crate::{
    chat::ChatTemplate,
    error::{Error, Result},
    plugins::{FamilyKind, LoadedPlugin, PluginManager},
};

/// A cancellation flag shared between a caller and a running generation.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask the generation to stop; it ends with finish reason `cancelled`.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The text-generation family of one plugin.
#[derive(Debug, Clone)]
pub struct Llm {
    plugin: Arc<LoadedPlugin>,
}

impl Llm {
    pub(crate) fn new(plugin: Arc<LoadedPlugin>) -> Result<Self> {
        if plugin.instance.llm.is_none() {
            return Err(Error::MissingFamily { plugin: plugin.id().to_owned(), family: "LlmPlugin" });
        }
        Ok(Self { plugin })
    }

    fn api(&self) -> &LlmBox {
        self.plugin.instance.llm.as_ref().into_option().expect("checked in Llm::new")
    }

    /// The plugin behind this interface.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Load a model. It is unloaded when the returned [`LlmModel`] is dropped.
    pub fn load(&self, params: &LoadModelParams) -> Result<LlmModel> {
        let id = self.plugin.id();
        let handle = self.api().load_model(params).into_result().map_err(|e| Error::plugin(id, e))?;
        let info = match self.api().model_info(handle).into_result() {
            Ok(info) => info,
            Err(e) => {
                let _ = self.api().unload_model(handle);
                return Err(Error::plugin(id, e));
            }
        };
        Ok(LlmModel { llm: self.clone(), handle, info, template: OnceLock::new() })
    }
}

impl PluginManager {
    /// The `LlmPlugin` family of plugin `id` (its current instance).
    pub fn llm(&self, id: &str) -> Result<Llm> {
        self.with_family(id, FamilyKind::Llm).and_then(Llm::new)
    }
}

impl Family for LlmModel {
    const KIND: FamilyKind = FamilyKind::Llm;
    fn load_with(plugin: Arc<LoadedPlugin>, params: &LoadModelParams) -> Result<Self> {
        Llm::new(plugin)?.load(params)
    }
    fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.llm.plugin
    }
}

/// A model loaded in a plugin.
#[derive(Debug)]
pub struct LlmModel {
    llm: Llm,
    handle: ModelHandle,
    info: ModelInfo,
    /// The compiled chat template (or why it does not compile), on first use.
    template: OnceLock<std::result::Result<Option<Arc<ChatTemplate>>, String>>,
}

impl Drop for LlmModel {
    fn drop(&mut self) {
        let _ = self.llm.api().unload_model(self.handle);
    }
}

/// Forwards pieces to a closure; catches a panic in the closure so it never
/// crosses the ABI, and re-raises it on the host side afterwards.
struct FnSink<'a, F> {
    on_piece: F,
    on_prompt: Option<&'a mut dyn FnMut(u32, u32)>,
    on_logprobs: Option<&'a mut dyn FnMut(Logprobs)>,
    cancel: Option<&'a CancelToken>,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

impl<F: FnMut(&str) -> bool> TokenSink for FnSink<'_, F> {
    fn on_token(&mut self, text: RStr<'_>, _token: i32) -> bool {
        if self.panic.is_some() || self.is_cancelled() {
            return false;
        }
        if text.is_empty() {
            return true;
        }
        match catch_unwind(AssertUnwindSafe(|| (self.on_piece)(text.as_str()))) {
            Ok(go_on) => go_on,
            Err(p) => {
                self.panic = Some(p);
                false
            }
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }
    fn on_prompt(&mut self, tokens: u32, cached: u32) {
        if let (Some(f), None) = (self.on_prompt.as_mut(), self.panic.as_ref()) {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(tokens, cached))) {
                self.panic = Some(p);
            }
        }
    }
    fn on_logprobs(&mut self, chosen: TokenLogprob, top: RSlice<'_, TokenLogprob>) {
        if let (Some(f), None) = (self.on_logprobs.as_mut(), self.panic.as_ref()) {
            let l = Logprobs { chosen, top: top.to_vec() };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(l))) {
                self.panic = Some(p);
            }
        }
    }
}

/// A generated token's log-probability and the most likely alternatives (when asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Logprobs {
    /// The token generated.
    pub chosen: TokenLogprob,
    /// The most likely tokens at that step, best first.
    pub top: Vec<TokenLogprob>,
}

/// A text request of either shape, for [`LlmModel::run_observed`].
#[derive(Debug, Clone)]
pub enum TextRequest {
    /// A raw prompt.
    Generate(GenerateRequest),
    /// A conversation the plugin renders with its own template.
    Chat(ChatRequest),
    /// A prompt with [`GenerateOptions`] (prompt parts from a template rendered here,
    /// lazy grammars, log-probabilities).
    With(GenerateRequest, GenerateOptions),
}

impl LlmModel {
    /// What the plugin reports about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The plugin id serving this model.
    pub fn plugin_id(&self) -> &str {
        self.llm.plugin.id()
    }

    /// The plugin serving this model.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.llm.plugin
    }

    /// The text of the model's BOS and EOS tokens (empty when the plugin does not say).
    pub fn special_tokens(&self) -> SpecialTokens {
        self.llm.api().special_tokens(self.handle).into_result().unwrap_or_default()
    }

    /// The model's own chat template, compiled (once); `None` when the model has none.
    /// The error is the template's syntax error.
    pub fn chat_template(&self) -> std::result::Result<Option<Arc<ChatTemplate>>, String> {
        self.template
            .get_or_init(|| match self.info.chat_template.as_ref().into_option() {
                None => Ok(None),
                Some(src) if src.trim().is_empty() => Ok(None),
                Some(src) => {
                    let special = self.special_tokens();
                    ChatTemplate::new(src.as_str(), special.bos.as_str(), special.eos.as_str()).map(|t| Some(Arc::new(t)))
                }
            })
            .clone()
    }

    fn err(&self, e: rustai_abi::PluginError) -> Error {
        Error::plugin(self.plugin_id(), e)
    }

    /// Tokenize `text`.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<i32>> {
        let tokens = self.llm.api().tokenize(self.handle, text.into(), add_special).into_result();
        tokens.map(|t| t.into_vec()).map_err(|e| self.err(e))
    }

    /// Turn tokens back into text.
    pub fn detokenize(&self, tokens: &[i32]) -> Result<String> {
        let text = self.llm.api().detokenize(self.handle, tokens.into()).into_result();
        text.map(|s| s.into_string()).map_err(|e| self.err(e))
    }

    /// Render `messages` with the model's chat template.
    pub fn apply_chat_template(&self, messages: &[ChatMessage], add_assistant: bool) -> Result<String> {
        let text = self.llm.api().apply_chat_template(self.handle, messages.into(), add_assistant).into_result();
        text.map(|s| s.into_string()).map_err(|e| self.err(e))
    }

    fn with_sink<F: FnMut(&str) -> bool>(
        &self,
        cancel: Option<&CancelToken>,
        on_piece: F,
        call: impl FnOnce(&LlmBox, rustai_abi::TokenSinkMut<'_>) -> abi_stable::std_types::RResult<Completion, rustai_abi::PluginError>,
    ) -> Result<Completion> {
        self.with_observed_sink(cancel, on_piece, None, None, call)
    }

    fn with_observed_sink<'a, F: FnMut(&str) -> bool>(
        &self,
        cancel: Option<&'a CancelToken>,
        on_piece: F,
        on_prompt: Option<&'a mut dyn FnMut(u32, u32)>,
        on_logprobs: Option<&'a mut dyn FnMut(Logprobs)>,
        call: impl FnOnce(&LlmBox, rustai_abi::TokenSinkMut<'_>) -> abi_stable::std_types::RResult<Completion, rustai_abi::PluginError>,
    ) -> Result<Completion> {
        let mut sink = FnSink { on_piece, on_prompt, on_logprobs, cancel, panic: None };
        let result = call(self.llm.api(), TokenSink_TO::from_ptr(&mut sink, TD_Opaque)).into_result();
        if let Some(p) = sink.panic.take() {
            resume_unwind(p);
        }
        result.map_err(|e| self.err(e))
    }

    /// Complete a raw prompt; `on_piece` gets each piece of text and returns
    /// `false` to stop (finish reason `cancelled`).
    pub fn generate(&self, request: &GenerateRequest, on_piece: impl FnMut(&str) -> bool) -> Result<Completion> {
        self.generate_with(request, None, on_piece)
    }

    /// [`Self::generate`] with a [`CancelToken`] that another thread can trigger.
    pub fn generate_with(
        &self,
        request: &GenerateRequest,
        cancel: Option<&CancelToken>,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        self.with_sink(cancel, on_piece, |api, sink| api.generate(self.handle, request, sink))
    }

    /// [`Self::generate_with`] with the sampling options of [`SamplingExtras`]; a plugin that
    /// cannot honour one that is set refuses the request, naming it.
    pub fn generate_ext(
        &self,
        request: &GenerateRequest,
        extras: &SamplingExtras,
        cancel: Option<&CancelToken>,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        extras.validate()?;
        self.with_sink(cancel, on_piece, |api, sink| api.generate_ext(self.handle, request, extras, sink))
    }

    /// [`Self::chat_with`] with the sampling options of [`SamplingExtras`].
    pub fn chat_ext(
        &self,
        request: &ChatRequest,
        extras: &SamplingExtras,
        cancel: Option<&CancelToken>,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        extras.validate()?;
        self.with_sink(cancel, on_piece, |api, sink| api.chat_ext(self.handle, request, extras, sink))
    }

    /// Run `request` with [`SamplingExtras`]: `on_piece` gets the text, `on_prompt` how many
    /// prompt tokens there were and how many of them the plugin reused from its cache
    /// (reported once, before the first piece, by plugins with the `prompt-cache` feature).
    pub fn run_observed(
        &self,
        request: &TextRequest,
        extras: &SamplingExtras,
        cancel: Option<&CancelToken>,
        on_piece: impl FnMut(&str) -> bool,
        on_prompt: &mut dyn FnMut(u32, u32),
    ) -> Result<Completion> {
        self.run_full(request, extras, cancel, on_piece, on_prompt, None)
    }

    /// [`Self::run_observed`] that also reports log-probabilities to `on_logprobs` (when the
    /// request asked for them in its [`GenerateOptions`]).
    pub fn run_full<'a>(
        &self,
        request: &TextRequest,
        extras: &SamplingExtras,
        cancel: Option<&'a CancelToken>,
        on_piece: impl FnMut(&str) -> bool,
        on_prompt: &'a mut dyn FnMut(u32, u32),
        on_logprobs: Option<&'a mut dyn FnMut(Logprobs)>,
    ) -> Result<Completion> {
        extras.validate()?;
        if let TextRequest::With(_, options) = request {
            options.validate()?;
        }
        self.with_observed_sink(cancel, on_piece, Some(on_prompt), on_logprobs, |api, sink| match request {
            TextRequest::Generate(r) => api.generate_ext(self.handle, r, extras, sink),
            TextRequest::Chat(r) => api.chat_ext(self.handle, r, extras, sink),
            TextRequest::With(r, options) => api.generate_with(self.handle, r, extras, options, sink),
        })
    }

    /// Continue a conversation using the model's chat template.
    pub fn chat(&self, request: &ChatRequest, on_piece: impl FnMut(&str) -> bool) -> Result<Completion> {
        self.chat_with(request, None, on_piece)
    }

    /// [`Self::chat`] with a [`CancelToken`].
    pub fn chat_with(
        &self,
        request: &ChatRequest,
        cancel: Option<&CancelToken>,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Completion> {
        self.with_sink(cancel, on_piece, |api, sink| api.chat(self.handle, request, sink))
    }

    /// Stream a completion on tokio's blocking pool. Dropping the stream cancels the generation.
    pub fn stream_generate(self: &Arc<Self>, request: GenerateRequest) -> TokenStream {
        TokenStream::spawn(Arc::clone(self), move |model, cancel, on_piece, _, _| {
            model.generate_with(&request, Some(cancel), on_piece)
        })
    }

    /// Stream a chat reply. Dropping the stream cancels the generation.
    pub fn stream_chat(self: &Arc<Self>, request: ChatRequest) -> TokenStream {
        TokenStream::spawn(Arc::clone(self), move |model, cancel, on_piece, _, _| {
            model.chat_with(&request, Some(cancel), on_piece)
        })
    }

    /// [`Self::stream_generate`] with [`SamplingExtras`]; the stream reports
    /// [`StreamEvent::Prompt`] before the first piece when the plugin says what it reused.
    pub fn stream_generate_ext(self: &Arc<Self>, request: GenerateRequest, extras: SamplingExtras) -> TokenStream {
        self.stream_observed(TextRequest::Generate(request), extras)
    }

    /// [`Self::stream_chat`] with [`SamplingExtras`] (and [`StreamEvent::Prompt`]).
    pub fn stream_chat_ext(self: &Arc<Self>, request: ChatRequest, extras: SamplingExtras) -> TokenStream {
        self.stream_observed(TextRequest::Chat(request), extras)
    }

    /// Stream any [`TextRequest`] with [`SamplingExtras`] (and [`StreamEvent::Prompt`],
    /// and [`StreamEvent::Logprobs`] when its options ask).
    pub fn stream_observed(self: &Arc<Self>, request: TextRequest, extras: SamplingExtras) -> TokenStream {
        TokenStream::spawn(Arc::clone(self), move |model, cancel, on_piece, on_prompt, on_logprobs| {
            model.run_full(&request, &extras, Some(cancel), on_piece, on_prompt, Some(on_logprobs))
        })
    }
}

/// One item of a [`TokenStream`].
#[derive(Debug)]
pub enum StreamEvent {
    /// A piece of generated text.
    Piece(String),
    /// How the prompt was read: `tokens` in all, `cached` of them reused from the plugin's
    /// cache (sent before the first piece, by plugins that report it).
    Prompt {
        /// Prompt tokens.
        tokens: u32,
        /// Of which reused, not evaluated.
        cached: u32,
    },
    /// The log-probabilities of the piece just sent (when the request asked for them).
    Logprobs(Logprobs),
    /// The generation ended; always the last item unless an error came.
    Done(Completion),
    /// The generation failed.
    Error(Error),
}

/// An async stream of [`StreamEvent`]s. Must be created inside a tokio runtime.
#[derive(Debug)]
pub struct TokenStream {
    rx: mpsc::Receiver<StreamEvent>,
    cancel: CancelToken,
}

/// A generation run on the blocking pool: the model, the cancel flag, where pieces go and where
/// the prompt report goes.
type Job = Box<
    dyn FnOnce(&LlmModel, &CancelToken, &mut dyn FnMut(&str) -> bool, &mut dyn FnMut(u32, u32), &mut dyn FnMut(Logprobs)) -> Result<Completion>
        + Send,
>;

impl TokenStream {
    fn spawn(
        model: Arc<LlmModel>,
        job: impl FnOnce(&LlmModel, &CancelToken, &mut dyn FnMut(&str) -> bool, &mut dyn FnMut(u32, u32), &mut dyn FnMut(Logprobs)) -> Result<Completion>
            + Send
            + 'static,
    ) -> Self {
        let job: Job = Box::new(job);
        let (tx, rx) = mpsc::channel(64);
        let cancel = CancelToken::new();
        let token = cancel.clone();
        tokio::task::spawn_blocking(move || {
            let mut forward = |piece: &str| tx.blocking_send(StreamEvent::Piece(piece.to_owned())).is_ok();
            let prompt_tx = tx.clone();
            let mut on_prompt = |tokens, cached| {
                let _ = prompt_tx.blocking_send(StreamEvent::Prompt { tokens, cached });
            };
            let logprobs_tx = tx.clone();
            let mut on_logprobs = |l| {
                let _ = logprobs_tx.blocking_send(StreamEvent::Logprobs(l));
            };
            let last = match job(&model, &token, &mut forward, &mut on_prompt, &mut on_logprobs) {
                Ok(done) => StreamEvent::Done(done),
                Err(e) => StreamEvent::Error(e),
            };
            // Let go of the model before reporting the end, so a request that ends here
            // (keep-alive 0) finds the model idle and can unload it at once.
            drop(model);
            let _ = tx.blocking_send(last);
        });
        Self { rx, cancel }
    }

    /// Stop the generation; the stream then ends with a `cancelled` completion.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The next event, or `None` when the stream is finished.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for TokenStream {
    type Item = StreamEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
