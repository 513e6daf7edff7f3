//! The OpenAI API (`/v1/*`): chat and text completions (SSE streaming with
//! `data: [DONE]`, `usage`, `stream_options.include_usage`), models, and clear
//! errors for the endpoints whose plugin family is not loaded.

use std::time::SystemTime;

use axum::{
    body::Body as HttpBody,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use rustai_core::{
    abi::{ChatMessage, Completion, LogitBias, ROption, RString, RVec, SamplingExtras, SamplingParams},
    LoadOptions, StreamEvent, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    convert::unix,
    error::{ApiError, ApiResult},
    extract::Body,
    generate::{self, Generation, Input, TextJob},
    state::AppState,
};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Fields shared by chat and text completions.
#[derive(Debug, Deserialize)]
pub(crate) struct Common {
    model: String,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    frequency_penalty: Option<f32>,
    #[serde(default)]
    presence_penalty: Option<f32>,
    /// Token id (as a string) -> bias.
    #[serde(default)]
    logit_bias: Option<std::collections::HashMap<String, f32>>,
    // Fields this server cannot honour yet: refused when they ask for something.
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    functions: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    modalities: Option<Vec<String>>,
    #[serde(default)]
    audio: Option<Value>,
    #[serde(default)]
    prediction: Option<Value>,
    #[serde(default)]
    best_of: Option<u32>,
    #[serde(default)]
    echo: Option<bool>,
    #[serde(default)]
    suffix: Option<String>,
}

impl Common {
    /// A 400 naming the first field that asks for something this server cannot do.
    fn check_unsupported(&self) -> ApiResult<()> {
        let refuse = |field: &str, why: &str| Err(ApiError::bad_request(format!("`{field}` is not supported: {why}")).openai());
        if self.logprobs.as_ref().is_some_and(|v| v != &Value::Bool(false) && !v.is_null() && v != &Value::from(0)) {
            return refuse("logprobs", "log probabilities are not returned yet");
        }
        if self.top_logprobs.is_some_and(|n| n > 0) {
            return refuse("top_logprobs", "log probabilities are not returned yet");
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) || self.functions.as_ref().is_some_and(|t| !t.is_empty()) {
            return refuse("tools", "tool calling is not implemented yet");
        }
        if self.tool_choice.as_ref().is_some_and(|c| !c.is_null() && !matches!(c.as_str(), Some("none" | "auto"))) {
            return refuse("tool_choice", "tool calling is not implemented yet");
        }
        if self.modalities.as_ref().is_some_and(|m| m.iter().any(|x| x != "text")) || self.audio.is_some() {
            return refuse("modalities", "only text output (use /v1/audio/speech for audio)");
        }
        if self.prediction.is_some() {
            return refuse("prediction", "predicted outputs are not implemented");
        }
        if self.best_of.is_some_and(|n| n > 1) {
            return refuse("best_of", "only one completion per request");
        }
        if self.echo == Some(true) {
            return refuse("echo", "the prompt is not echoed");
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return refuse("suffix", "fill-in-the-middle is not implemented");
        }
        Ok(())
    }

    /// `frequency_penalty`, `presence_penalty` and `logit_bias`.
    fn extras(&self) -> ApiResult<SamplingExtras> {
        let mut logit_bias = RVec::new();
        for (token, bias) in self.logit_bias.iter().flatten() {
            let token: i32 = token.trim().parse().map_err(|_| {
                ApiError::bad_request(format!("invalid `logit_bias`: key `{token}` is not a token id")).openai()
            })?;
            logit_bias.push(LogitBias { token, bias: *bias });
        }
        let d = SamplingExtras::default();
        Ok(SamplingExtras {
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            logit_bias,
            ..d
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatBody {
    messages: Vec<Value>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionBody {
    prompt: Value,
    #[serde(flatten)]
    common: Common,
}

fn sampling(c: &Common) -> ApiResult<SamplingParams> {
    if c.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported").openai());
    }
    let stop = match &c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    let mut p = SamplingParams {
        temperature: c.temperature.unwrap_or(1.0),
        top_k: 0,
        top_p: c.top_p.unwrap_or(1.0),
        min_p: 0.0,
        repeat_penalty: 1.0,
        max_tokens: c.max_completion_tokens.or(c.max_tokens).unwrap_or(0),
        seed: c.seed.into(),
        stop: stop.iter().map(|s| RString::from(s.as_str())).collect(),
        ..SamplingParams::default()
    };
    match c.response_format.as_ref().and_then(|f| f.get("type")).and_then(Value::as_str) {
        None | Some("text") => {}
        Some("json_object") => p.json_schema = ROption::RSome(RString::from(r#"{"type":"object"}"#)),
        Some("json_schema") => {
            let schema = c.response_format.as_ref().and_then(|f| f.pointer("/json_schema/schema")).ok_or_else(|| {
                ApiError::bad_request("response_format json_schema needs json_schema.schema").openai()
            })?;
            p.json_schema = ROption::RSome(RString::from(schema.to_string()));
        }
        Some(other) => return Err(ApiError::bad_request(format!("unknown response_format type `{other}`")).openai()),
    }
    Ok(p)
}

/// Message content: a string, or an array of `{type: "text", text}` parts.
fn content(v: &Value) -> ApiResult<String> {
    match v.get("content") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(t)) => Ok(t.to_owned()),
                (kind, _) => Err(ApiError::bad_request(format!("content part of type {kind:?} is not supported (text only)")).openai()),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(|v| v.join("")),
        Some(other) => Err(ApiError::bad_request(format!("invalid message content {other}")).openai()),
    }
}

fn finish_reason(done: &Completion) -> &'static str {
    match done.finish_reason {
        rustai_core::abi::FinishReason::Length => "length",
        _ => "stop",
    }
}

/// OpenAI's usage object; `cached` prompt tokens were reused from the model's cache.
fn usage(done: &Completion, cached: u32) -> Value {
    json!({
        "prompt_tokens": done.tokens_in,
        "completion_tokens": done.tokens_out,
        "total_tokens": u64::from(done.tokens_in) + u64::from(done.tokens_out),
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

fn id(kind: Kind) -> String {
    let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    match kind {
        Kind::Chat => format!("chatcmpl-{n:x}"),
        Kind::Text => format!("cmpl-{n:x}"),
    }
}

fn chunk(kind: Kind, id: &str, model: &str, text: Option<&str>, finish: Option<&str>, first: bool) -> Value {
    let choice = match kind {
        Kind::Chat => {
            let mut delta = json!({});
            if first {
                delta["role"] = "assistant".into();
            }
            if let Some(t) = text {
                delta["content"] = t.into();
            }
            json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish })
        }
        Kind::Text => json!({ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish }),
    };
    let object = if kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" };
    json!({ "id": id, "object": object, "created": unix(SystemTime::now()), "model": model, "choices": [choice] })
}

/// `resolved` is the model's id, looked up once by the handler.
async fn respond(state: AppState, kind: Kind, common: Common, resolved: String, input: Input) -> ApiResult<Response> {
    common.check_unsupported()?;
    let sampling = sampling(&common)?;
    let extras = common.extras()?;
    let job = TextJob { model: resolved, input, sampling, extras, load: LoadOptions::default() };
    let gen = generate::start(&state, job).await.map_err(ApiError::openai)?;
    let id = id(kind);
    let model = common.model;
    if !common.stream {
        let metadata = gen.metadata();
        let (done, cached) = gen.collect().await.map_err(ApiError::openai)?;
        let choice = match kind {
            Kind::Chat => json!({ "index": 0, "message": { "role": "assistant", "content": done.text.as_str() }, "logprobs": null, "finish_reason": finish_reason(&done) }),
            Kind::Text => json!({ "index": 0, "text": done.text.as_str(), "logprobs": null, "finish_reason": finish_reason(&done) }),
        };
        let object = if kind == Kind::Chat { "chat.completion" } else { "text_completion" };
        return Ok(Json(json!({
            "id": id, "object": object, "created": unix(SystemTime::now()), "model": model,
            "choices": [choice], "usage": usage(&done, cached), "rustai": metadata,
        }))
        .into_response());
    }
    let include_usage = common.stream_options.is_some_and(|o| o.include_usage);
    let sse = |v: Value| format!("data: {v}\n\n");
    let mut first = true;
    let render = move |gen: &Generation, event: StreamEvent| match event {
        StreamEvent::Piece(p) => {
            let c = chunk(kind, &id, &model, Some(&p), None, first);
            first = false;
            vec![sse(c)]
        }
        StreamEvent::Done(done) => {
            let mut last = chunk(kind, &id, &model, None, Some(finish_reason(&done)), first);
            last["rustai"] = gen.metadata();
            let mut out = vec![sse(last)];
            if include_usage {
                let mut u = chunk(kind, &id, &model, None, None, false);
                u["choices"] = json!([]);
                u["usage"] = usage(&done, gen.cached_tokens());
                out.push(sse(u));
            }
            out
        }
        StreamEvent::Error(e) => {
            let e = ApiError::from(e);
            vec![sse(json!({ "error": { "message": e.message, "type": "server_error", "code": e.status.as_u16() } }))]
        }
        StreamEvent::Prompt { .. } => Vec::new(),
    };
    let body = crate::stream::with_tail(gen, render, vec!["data: [DONE]\n\n".to_owned()]);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(HttpBody::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

pub(crate) async fn chat_completions(State(state): State<AppState>, Body(body): Body<ChatBody>) -> ApiResult<Response> {
    let resolved = generate::check_model(&state, &body.common.model, Task::Chat).map_err(ApiError::openai)?;
    if body.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty").openai());
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        let bad = |msg: String| ApiError::bad_request(format!("messages[{i}]: {msg}")).openai();
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad("every message needs a `role`".into()))?;
        let role = match role {
            "developer" => "system",
            "system" | "user" | "assistant" => role,
            "tool" if m.get("tool_call_id").and_then(Value::as_str).is_some_and(|id| !id.is_empty()) => role,
            "tool" => return Err(bad("a `tool` message needs the `tool_call_id` of the call it answers".into())),
            other => return Err(bad(format!("unknown role `{other}` (system, developer, user, assistant or tool)"))),
        };
        if m.get("tool_calls").and_then(Value::as_array).is_some_and(|c| !c.is_empty()) {
            return Err(bad("assistant `tool_calls` are not supported yet (tool calling is not implemented)".into()));
        }
        messages.push(ChatMessage::new(role, content(m).map_err(|e| bad(e.message))?));
    }
    respond(state, Kind::Chat, body.common, resolved, Input::Chat(messages)).await
}

pub(crate) async fn completions(State(state): State<AppState>, Body(body): Body<CompletionBody>) -> ApiResult<Response> {
    let resolved = generate::check_model(&state, &body.common.model, Task::Completion).map_err(ApiError::openai)?;
    let prompt = match &body.prompt {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_owned(),
        _ => return Err(ApiError::bad_request("`prompt` must be a string (one prompt per request)").openai()),
    };
    respond(state, Kind::Text, body.common, resolved, Input::Prompt(prompt)).await
}

pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .engine
        .registry()
        .entries()
        .iter()
        .map(|m| json!({ "id": m.id, "object": "model", "created": m.modified.map_or(0, unix), "owned_by": "rustai" }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// OpenAI's `/v1/*` text routes (embeddings are in `embed`, audio in `audio`).
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
}
