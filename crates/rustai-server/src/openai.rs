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
    abi::{ChatMessage, Completion, ROption, RString, SamplingParams},
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

fn usage(done: &Completion) -> Value {
    json!({ "prompt_tokens": done.tokens_in, "completion_tokens": done.tokens_out, "total_tokens": done.tokens_in + done.tokens_out })
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

async fn respond(state: AppState, kind: Kind, common: Common, input: Input) -> ApiResult<Response> {
    let sampling = sampling(&common)?;
    let job = TextJob { model: common.model.clone(), input, sampling, load: LoadOptions::default() };
    let gen = generate::start(&state, job).await.map_err(ApiError::openai)?;
    let id = id(kind);
    let model = common.model;
    if !common.stream {
        let metadata = gen.metadata();
        let done = gen.collect().await.map_err(ApiError::openai)?;
        let choice = match kind {
            Kind::Chat => json!({ "index": 0, "message": { "role": "assistant", "content": done.text.as_str() }, "logprobs": null, "finish_reason": finish_reason(&done) }),
            Kind::Text => json!({ "index": 0, "text": done.text.as_str(), "logprobs": null, "finish_reason": finish_reason(&done) }),
        };
        let object = if kind == Kind::Chat { "chat.completion" } else { "text_completion" };
        return Ok(Json(json!({
            "id": id, "object": object, "created": unix(SystemTime::now()), "model": model,
            "choices": [choice], "usage": usage(&done), "rustai": metadata,
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
                u["usage"] = usage(&done);
                out.push(sse(u));
            }
            out
        }
        StreamEvent::Error(e) => {
            let e = ApiError::from(e);
            vec![sse(json!({ "error": { "message": e.message, "type": "server_error", "code": e.status.as_u16() } }))]
        }
    };
    let body = crate::stream::with_tail(gen, render, vec!["data: [DONE]\n\n".to_owned()]);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(HttpBody::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

pub(crate) async fn chat_completions(State(state): State<AppState>, Body(body): Body<ChatBody>) -> ApiResult<Response> {
    generate::check_model(&state, &body.common.model, Task::Chat).map_err(ApiError::openai)?;
    if body.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty").openai());
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for m in &body.messages {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("every message needs a `role`").openai())?;
        let role = if role == "developer" { "system" } else { role };
        messages.push(ChatMessage::new(role, content(m)?));
    }
    respond(state, Kind::Chat, body.common, Input::Chat(messages)).await
}

pub(crate) async fn completions(State(state): State<AppState>, Body(body): Body<CompletionBody>) -> ApiResult<Response> {
    generate::check_model(&state, &body.common.model, Task::Completion).map_err(ApiError::openai)?;
    let prompt = match &body.prompt {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_owned(),
        _ => return Err(ApiError::bad_request("`prompt` must be a string (one prompt per request)").openai()),
    };
    respond(state, Kind::Text, body.common, Input::Prompt(prompt)).await
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
