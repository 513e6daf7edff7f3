//! # ollama: remote models on an Ollama server
//!
//! A RustAI plugin (cdylib) implementing [`LlmPlugin`] with `/api/chat` and
//! `/api/generate` (raw prompts), and [`EmbeddingPlugin`] with `/api/embed`,
//! against an Ollama server or anything speaking its API (`rustai serve`).
//!
//! A model is addressed by `LoadModelParams.path` = the base URL (e.g.
//! `http://127.0.0.1:11434`) and `extra_json` = `{"model": "...", "api_key_env":
//! "...", "timeout_s": 120, "max_retries": 3, "stream": true}` (see
//! [`rustai_plugin::remote::config`]); `num_ctx` or `context_length` there is sent as
//! Ollama's `num_ctx`. Loading reads `/api/tags` and `/api/show`: a model the
//! server does not have is a `NotFound` error that lists the ones it has.
//!
//! Answers stream as NDJSON; pieces go to the host's sink as they arrive, and the
//! last line's counts and durations become the completion's counts and timings.
//!
//! ## Layout
//! - [`api`]: request bodies and answer parsing.
//! - this file: the plugin, model check, streaming loop and embeddings.

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
use serde_json::{json, Value};

/// Assumed context when neither the config nor the server tells.
const DEFAULT_CONTEXT: u32 = 2048;
/// Most model names quoted in a "not found" error.
const MAX_LISTED: usize = 30;

/// One remote model.
#[derive(Debug)]
pub struct Model {
    remote: Remote,
    shown: api::Shown,
    dimensions: OnceLock<u32>,
}

/// The plugin object.
#[derive(Debug, Default)]
pub struct OllamaPlugin {
    models: ModelStore<Model>,
}

impl Model {
    /// Connect, and check that the server has the model.
    fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        let remote = Remote::new(RemoteConfig::from_params(params)?, concat!("rustai-ollama/", env!("CARGO_PKG_VERSION")))?;
        let name = remote.config().model.clone();
        let tags = remote.get_json("/api/tags").map_err(|e| match e.kind {
            ErrorKind::NotFound => PluginError::not_found(format!(
                "{} has no /api/tags: is it an Ollama server? (the base URL is the server's root, without /v1)",
                remote.config().display_url
            )),
            _ => e,
        })?;
        let names = api::tag_names(&tags);
        // /api/show also resolves names the server accepts but does not list verbatim.
        let shown = match remote.post_json("/api/show", &json!({ "model": name })) {
            Ok(v) => api::shown(&v),
            Err(_) if api::listed(&names, &name) => api::Shown::default(),
            Err(e) if e.kind == ErrorKind::NotFound => {
                let available = match names.len() {
                    0 => "it has none".to_owned(),
                    n if n > MAX_LISTED => format!("available: {}, ... ({n} in all)", names[..MAX_LISTED].join(", ")),
                    _ => format!("available: {}", names.join(", ")),
                };
                return Err(PluginError::not_found(format!(
                    "model `{name}` is not on the Ollama server at {} ({available}); pull it with `ollama pull {name}`",
                    remote.config().display_url
                )));
            }
            Err(e) => return Err(e),
        };
        Ok(Self { remote, shown, dimensions: OnceLock::new() })
    }

    /// `num_ctx` to send: only when the config sets one.
    fn num_ctx(&self) -> Option<u32> {
        let c = self.remote.config();
        c.u32_key("num_ctx").or_else(|| c.u32_key("context_length")).filter(|n| *n > 0)
    }

    fn info(&self) -> ModelInfo {
        let s = &self.shown;
        ModelInfo {
            path: self.remote.config().display_url.as_str().into(),
            architecture: s.architecture.as_deref().unwrap_or("remote").into(),
            parameters: s.parameters,
            size_bytes: 0,
            trained_context_length: s.context_length,
            context_length: self.num_ctx().unwrap_or(if s.context_length > 0 { s.context_length } else { DEFAULT_CONTEXT }),
            vocab_size: 0,
            embedding_length: self.dimensions.get().copied().unwrap_or(s.embedding_length),
            quantization: s.quantization.as_deref().unwrap_or("").into(),
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
        let finish = |out: Collector<'_>, chunk: &api::Chunk| {
            let usage = Usage {
                tokens_in: chunk.counts.0,
                tokens_out: chunk.counts.1,
                prompt_ms: chunk.durations_ms.0,
                generation_ms: chunk.durations_ms.1,
            };
            let reason = chunk.reason.as_deref().map_or(FinishReason::Eos, |r| stream::finish_reason(r, had_stop));
            out.finish(reason, usage)
        };
        if !self.remote.config().stream {
            let v = self.remote.read_json(path, resp)?;
            let chunk = api::parse(&v).map_err(|m| bad(format!("{url} answered with an error: {}", truncate(&m, 300))))?;
            if !out.push(chunk.piece.as_deref().unwrap_or("")) {
                return Ok(out.finish(FinishReason::Cancelled, Usage::default()));
            }
            return Ok(finish(out, &chunk));
        }
        let mut lines = Lines::new(&self.remote, path, resp);
        while let Some(line) = lines.next_line()? {
            if out.cancelled() {
                return Ok(out.finish(FinishReason::Cancelled, Usage::default()));
            }
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| bad(format!("{url} streamed something that is not JSON ({e}): {}", truncate(&line, 200))))?;
            let chunk = api::parse(&v).map_err(|m| bad(format!("{url} reported an error while streaming: {}", truncate(&m, 300))))?;
            if !out.push(chunk.piece.as_deref().unwrap_or("")) {
                return Ok(out.finish(FinishReason::Cancelled, Usage::default()));
            }
            if chunk.done {
                return Ok(finish(out, &chunk));
            }
        }
        Err(bad(format!("the stream from {url} ended before the answer was complete ({} bytes received)", out.text().len())))
    }

    fn embed(&self, inputs: &[&str]) -> Result<(Vec<Vec<f32>>, u32), PluginError> {
        let mut body = json!({ "model": self.remote.config().model, "input": inputs, "truncate": true });
        if let Some(n) = self.num_ctx() {
            body["options"] = json!({ "num_ctx": n });
        }
        let v = self.remote.post_json("/api/embed", &body)?;
        let url = self.remote.url("/api/embed");
        let (vectors, tokens) = api::parse_embeddings(&v, inputs.len())
            .map_err(|m| PluginError::new(ErrorKind::Backend, format!("unexpected answer from {url}: {m}")))?;
        if let Some(first) = vectors.first() {
            let _ = self.dimensions.set(first.len() as u32);
        }
        Ok((vectors, tokens))
    }
}

impl Plugin for OllamaPlugin {
    fn info(&self) -> PluginInfo {
        rustai_plugin::remote::plugin_info(
            "Ollama server",
            "Remote chat, completion and embedding models on an Ollama server (or one speaking its API)",
            "ollama",
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

impl LlmPlugin for OllamaPlugin {
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
            let c = m.remote.config();
            let body = api::generate_body(&c.model, request, c.stream, m.num_ctx())?;
            m.complete("/api/generate", &body, !request.params.stop.is_empty(), sink)
        }))
    }

    fn chat(&self, model: ModelHandle, request: &ChatRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            let c = m.remote.config();
            let body = api::chat_body(&c.model, request, c.stream, m.num_ctx())?;
            m.complete("/api/chat", &body, !request.params.stop.is_empty(), sink)
        }))
    }
}

impl EmbeddingPlugin for OllamaPlugin {
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
        RResult::from(self.models.get(model).map(|m| {
            let configured = m.remote.config().u32_key("max_input_length").or_else(|| m.num_ctx());
            configured.unwrap_or(if m.shown.context_length > 0 { m.shown.context_length } else { DEFAULT_CONTEXT })
        }))
    }

    fn embed(&self, model: ModelHandle, request: &EmbedRequest) -> RResult<Embeddings, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| rustai_plugin::remote::embeddings(request, m.dimensions.get().copied(), |inputs| m.embed(inputs))))
    }
}

impl PluginExport for OllamaPlugin {

    fn create() -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_llm(Arc::clone(this)).with_embedding(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(OllamaPlugin, id = "ollama");
