//! # openai: remote models behind an OpenAI-compatible API
//!
//! A RustAI plugin (cdylib) implementing [`LlmPlugin`] with `/chat/completions`
//! and `/completions`, and [`EmbeddingPlugin`] with `/embeddings`, against any
//! OpenAI-compatible server (OpenAI, `rustai serve`, llama.cpp, vLLM, Ollama's `/v1`).
//!
//! A model is addressed by `LoadModelParams.path` = the base URL (e.g.
//! `http://127.0.0.1:11434/v1`) and `extra_json` = `{"model": "...", "api_key_env":
//! "...", "timeout_s": 120, "max_retries": 3, "stream": true}` (see
//! [`rustai_plugin::remote::config`]). Loading asks `GET /models` once, so an unreachable
//! server or a rejected key fails at load time.
//!
//! Answers stream as server-sent events; pieces go to the host's sink as they
//! arrive, `stream_options.include_usage` supplies the token counts. Tokenizing
//! and chat templates are the server's business: those calls are `Unsupported`.
//!
//! ## Layout
//! - [`api`]: request bodies and answer parsing.
//! - this file: the plugin, streaming loop and embeddings.

pub mod api;

use rustai_plugin::serde_json;
use std::sync::{Arc, OnceLock};

use rustai_plugin::{
    ChatMessage, ChatRequest, Completion, EmbedRequest, EmbeddingPlugin, Embeddings, ErrorKind, Families, FinishReason,
    GenerateRequest, LlmPlugin, LoadModelParams, ModelHandle, ModelInfo, Plugin, PluginError, PluginExport, PluginInfo,
    ROption, RResult, RSlice, RStr, RString, RVec, TokenSinkMut,
};
use rustai_plugin::{
    remote::{client::truncate, stream, Collector, Lines, Remote, RemoteConfig, Usage},
    ModelStore,
};
use serde_json::Value;

/// Assumed longest embedding input when the config sets no `max_input_length`.
const DEFAULT_MAX_INPUT: u32 = 8191;

/// One remote model.
#[derive(Debug)]
pub struct Model {
    remote: Remote,
    dimensions: OnceLock<u32>,
}

/// The plugin object.
#[derive(Debug, Default)]
pub struct OpenAiPlugin {
    models: ModelStore<Model>,
}

impl Model {
    /// Connect and check that the server answers and accepts the key.
    fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        let remote = Remote::new(RemoteConfig::from_params(params)?, concat!("rustai-openai/", env!("CARGO_PKG_VERSION")))?;
        match remote.get("/models", &|| false) {
            Ok(_) => {}
            // Reachable and authorised is all this checks: some servers have no /models.
            Err(e) if matches!(e.kind, ErrorKind::NotReady) => return Err(e),
            Err(_) => {}
        }
        Ok(Self { remote, dimensions: OnceLock::new() })
    }

    fn info(&self) -> ModelInfo {
        let c = self.remote.config();
        let ctx = c.u32_key("context_length").unwrap_or(c.context_length);
        ModelInfo {
            path: c.display_url.as_str().into(),
            architecture: "remote".into(),
            parameters: 0,
            size_bytes: 0,
            trained_context_length: ctx,
            context_length: ctx,
            vocab_size: 0,
            embedding_length: self.dimensions.get().copied().unwrap_or(0),
            quantization: RString::new(),
            chat_template: ROption::RNone,
        }
    }

    /// Send `body` to `path` and stream the answer into `sink`.
    fn complete(&self, path: &str, body: &Value, had_stop: bool, sink: TokenSinkMut<'_>) -> Result<Completion, PluginError> {
        let mut out = Collector::new(sink);
        let resp = self.remote.post(path, body, &|| out.cancelled())?;
        let Some(resp) = resp else { return Ok(out.finish(FinishReason::Cancelled, Usage::default())) };
        let bad = |msg: String| PluginError::new(ErrorKind::Backend, self.remote.config().redact(&msg));
        let url = self.remote.url(path);
        let mut usage = Usage::default();
        if !self.remote.config().stream {
            let v = self.remote.read_json(path, resp)?;
            let chunk = api::parse(&v).map_err(|m| bad(format!("{url} answered with an error: {}", truncate(&m, 300))))?;
            merge(&mut usage, chunk.usage);
            if !out.push(chunk.piece.as_deref().unwrap_or("")) {
                return Ok(out.finish(FinishReason::Cancelled, usage));
            }
            let reason = chunk.finish.as_deref().map_or(FinishReason::Eos, |f| stream::finish_reason(f, had_stop));
            return Ok(out.finish(reason, usage));
        }
        let mut lines = Lines::new(&self.remote, path, resp);
        let (mut finish, mut done) = (None, false);
        while let Some(line) = lines.next_line()? {
            if out.cancelled() {
                return Ok(out.finish(FinishReason::Cancelled, usage));
            }
            let Some(data) = stream::sse_data(&line) else { continue };
            if data == "[DONE]" {
                done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| bad(format!("{url} streamed something that is not JSON ({e}): {}", truncate(data, 200))))?;
            let chunk = api::parse(&v).map_err(|m| bad(format!("{url} reported an error while streaming: {}", truncate(&m, 300))))?;
            merge(&mut usage, chunk.usage);
            finish = chunk.finish.or(finish);
            if !out.push(chunk.piece.as_deref().unwrap_or("")) {
                return Ok(out.finish(FinishReason::Cancelled, usage));
            }
        }
        drop(lines);
        let reason = match (finish, done) {
            (Some(f), _) => stream::finish_reason(&f, had_stop),
            (None, true) => FinishReason::Eos,
            (None, false) => {
                return Err(bad(format!("the stream from {url} ended before the answer was complete ({} bytes received)", out.text().len())))
            }
        };
        Ok(out.finish(reason, usage))
    }

    fn embed(&self, inputs: &[&str]) -> Result<(Vec<Vec<f32>>, u32), PluginError> {
        let body = api::embed_body(&self.remote.config().model, inputs);
        let v = self.remote.post_json("/embeddings", &body)?;
        let url = self.remote.url("/embeddings");
        let (vectors, tokens) = api::parse_embeddings(&v, inputs.len())
            .map_err(|m| PluginError::new(ErrorKind::Backend, format!("unexpected answer from {url}: {m}")))?;
        if let Some(first) = vectors.first() {
            let _ = self.dimensions.set(first.len() as u32);
        }
        Ok((vectors, tokens))
    }
}

/// Keep the counts a chunk gives (the usage chunk comes last, alone).
fn merge(usage: &mut Usage, u: Option<(Option<u32>, Option<u32>)>) {
    if let Some((tokens_in, tokens_out)) = u {
        usage.tokens_in = tokens_in.or(usage.tokens_in);
        usage.tokens_out = tokens_out.or(usage.tokens_out);
    }
}

impl Plugin for OpenAiPlugin {
    fn info(&self) -> PluginInfo {
        rustai_plugin::remote::plugin_info(
            "OpenAI-compatible API",
            "Remote chat, completion and embedding models behind an OpenAI-compatible HTTP API",
            "openai",
        )
    }

    fn shutdown(&self) -> RResult<(), PluginError> {
        self.models.clear();
        RResult::ROk(())
    }
}

fn unsupported<T>(what: &str) -> RResult<T, PluginError> {
    RResult::RErr(PluginError::unsupported(format!("{what} is not available for remote models (the server does it)")))
}

impl LlmPlugin for OpenAiPlugin {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        RResult::from(Model::load(params).map(|m| self.models.insert(m)))
    }

    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        RResult::from(self.models.remove(model))
    }

    fn model_info(&self, model: ModelHandle) -> RResult<ModelInfo, PluginError> {
        RResult::from(self.models.get(model).map(|m| m.info()))
    }

    fn tokenize(&self, _model: ModelHandle, _text: RStr<'_>, _add_special: bool) -> RResult<RVec<i32>, PluginError> {
        unsupported("tokenizing")
    }

    fn detokenize(&self, _model: ModelHandle, _tokens: RSlice<'_, i32>) -> RResult<RString, PluginError> {
        unsupported("detokenizing")
    }

    fn apply_chat_template(&self, _model: ModelHandle, _messages: RSlice<'_, ChatMessage>, _add: bool) -> RResult<RString, PluginError> {
        unsupported("applying the chat template")
    }

    fn generate(&self, model: ModelHandle, request: &GenerateRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            let body = api::completion_body(&m.remote.config().model, request, m.remote.config().stream)?;
            m.complete("/completions", &body, !request.params.stop.is_empty(), sink)
        }))
    }

    fn chat(&self, model: ModelHandle, request: &ChatRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            let body = api::chat_body(&m.remote.config().model, request, m.remote.config().stream)?;
            m.complete("/chat/completions", &body, !request.params.stop.is_empty(), sink)
        }))
    }
}

impl EmbeddingPlugin for OpenAiPlugin {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        RResult::from(Model::load(params).map(|m| self.models.insert(m)))
    }

    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        RResult::from(self.models.remove(model))
    }

    fn dimensions(&self, model: ModelHandle) -> RResult<u32, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| rustai_plugin::remote::dimensions(m.dimensions.get().copied(), |inputs| m.embed(inputs))))
    }

    fn max_input_length(&self, model: ModelHandle) -> RResult<u32, PluginError> {
        RResult::from(self.models.get(model).map(|m| m.remote.config().u32_key("max_input_length").unwrap_or(DEFAULT_MAX_INPUT)))
    }

    fn embed(&self, model: ModelHandle, request: &EmbedRequest) -> RResult<Embeddings, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| rustai_plugin::remote::embeddings(request, m.dimensions.get().copied(), |inputs| m.embed(inputs))))
    }
}

impl PluginExport for OpenAiPlugin {

    fn create() -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_llm(Arc::clone(this)).with_embedding(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(OpenAiPlugin, id = "openai");
