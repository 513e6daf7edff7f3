//! The Ollama API (`/api/*`): the shapes, streaming (NDJSON, on by default)
//! and duration fields (nanoseconds) of Ollama, so its clients work unchanged.

use std::time::{Instant, SystemTime};

use axum::{
    body::Body as HttpBody,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use rustai_core::{
    abi::Completion,
    chat::{Conversation, ToolCall, Turn},
    KeepAlive, StreamEvent, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    convert::{details, json_format, nanos, ollama_load, ollama_sampling, rfc3339, unix, Options},
    error::{ApiError, ApiResult},
    extract::Body,
    generate::{self, Generation, Input, TextJob},
    state::AppState,
    tool_wire,
};

/// Fields `/api/generate` and `/api/chat` share.
#[derive(Debug, Deserialize)]
pub(crate) struct Shared {
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    options: Options,
    #[serde(default)]
    keep_alive: Option<Value>,
    /// Log-probabilities of the generated tokens (Ollama 0.12).
    #[serde(default)]
    logprobs: bool,
    #[serde(default)]
    top_logprobs: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GenerateBody {
    #[serde(flatten)]
    shared: Shared,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    template: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    role: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    tool_calls: Option<Value>,
    /// For a `tool` message: the tool that answered.
    #[serde(default)]
    tool_name: Option<String>,
    /// For a `tool` message: the call it answers, when the client kept it.
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatBody {
    #[serde(flatten)]
    shared: Shared,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    /// Extension: how the model may use `tools` (`auto` when absent, as in Ollama).
    #[serde(default)]
    tool_choice: Option<Value>,
    /// Extension: plugin tools the server offers the model and runs itself.
    #[serde(default)]
    rustai_tools: Option<Vec<String>>,
    /// Extension: the most model steps of the server-side tool loop.
    #[serde(default)]
    rustai_max_steps: Option<usize>,
}

/// How the reply is shaped: `/api/generate` (`response`) or `/api/chat` (`message`).
#[derive(Clone, Copy)]
enum Shape {
    Generate,
    Chat,
}

fn piece(shape: Shape, model: &str, text: &str) -> Value {
    let mut v = json!({ "model": model, "created_at": rfc3339(SystemTime::now()), "done": false });
    match shape {
        Shape::Generate => v["response"] = text.into(),
        Shape::Chat => v["message"] = json!({ "role": "assistant", "content": text }),
    }
    v
}

/// Calls as Ollama writes them (arguments as an object).
fn ollama_calls(calls: &[ToolCall]) -> Value {
    calls.iter().map(|c| json!({ "id": c.id, "function": { "name": c.name, "arguments": c.arguments } })).collect()
}

fn last(shape: Shape, model: &str, text: &str, done: &Completion, gen: &Generation, started: Instant) -> Value {
    let mut v = piece(shape, model, text);
    if let (Shape::Chat, Some(reply)) = (shape, gen.reply()) {
        if !reply.tool_calls.is_empty() {
            v["message"]["tool_calls"] = ollama_calls(&reply.tool_calls);
        }
    }
    let t = &done.timings;
    v["done"] = true.into();
    v["done_reason"] = done.finish_reason.as_str().into();
    v["total_duration"] = nanos(started.elapsed()).into();
    v["load_duration"] = nanos(gen.prepared.load_duration).into();
    // As Ollama: the prompt tokens evaluated for this request; those reused from the cache
    // are not counted again (they are in `rustai.prompt_cached_tokens`).
    let cached = gen.cached_tokens().min(done.tokens_in);
    v["prompt_eval_count"] = (done.tokens_in - cached).into();
    v["prompt_eval_duration"] = ((t.prompt_eval_ms * 1e6) as u64).into();
    v["eval_count"] = done.tokens_out.into();
    v["eval_duration"] = ((t.generation_ms * 1e6) as u64).into();
    v["rustai"] = gen.metadata();
    v["rustai"]["prompt_tokens"] = done.tokens_in.into();
    v["rustai"]["prompt_cached_tokens"] = cached.into();
    v
}

/// Ollama's `logprobs` entries.
fn logprobs_json(entries: &[rustai_core::Logprobs]) -> Value {
    let one = |t: &rustai_core::abi::TokenLogprob| json!({ "token": t.text.as_str(), "logprob": t.logprob, "bytes": t.text.as_bytes() });
    entries
        .iter()
        .map(|l| {
            let mut v = one(&l.chosen);
            if !l.top.is_empty() {
                v["top_logprobs"] = l.top.iter().map(one).collect();
            }
            v
        })
        .collect()
}

/// The request's `logprobs` / `top_logprobs` as a job's option.
fn logprobs_option(s: &Shared) -> ApiResult<Option<u32>> {
    match (s.logprobs, s.top_logprobs) {
        (false, Some(n)) if n > 0 => Err(ApiError::bad_request("`top_logprobs` needs `logprobs: true`")),
        (false, _) => Ok(None),
        (true, n) => Ok(Some(n.unwrap_or(0))),
    }
}

/// Stream NDJSON, or collect into one object.
async fn respond(state: AppState, job: TextJob, stream: bool, shape: Shape, model: String) -> ApiResult<Response> {
    let started = Instant::now();
    let mut gen = generate::start(&state, job).await?;
    if !stream {
        let mut text = String::new();
        while let Some(event) = gen.next().await {
            match event {
                StreamEvent::Piece(p) => text.push_str(&p),
                StreamEvent::Done(done) => {
                    let mut v = last(shape, &model, &text, &done, &gen, started);
                    if !gen.logprobs().is_empty() {
                        v["logprobs"] = logprobs_json(gen.logprobs());
                    }
                    return Ok(Json(v).into_response());
                }
                StreamEvent::Error(e) => return Err(e.into()),
                StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_) => {}
            }
        }
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "generation ended without a result"));
    }
    let mut sent = 0usize;
    let lines = crate::stream::lines(gen, move |gen, event| {
        let mut v = match event {
            StreamEvent::Piece(p) => piece(shape, &model, &p),
            StreamEvent::Done(done) => last(shape, &model, "", &done, gen, started),
            StreamEvent::Error(e) => json!({ "error": ApiError::from(e).message }),
            StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_) => return Vec::new(),
        };
        let all = gen.logprobs();
        if all.len() > sent && v.get("error").is_none() {
            v["logprobs"] = logprobs_json(&all[sent..]);
            sent = all.len();
        }
        vec![format!("{v}\n")]
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(HttpBody::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// Resolve the model and convert the shared fields.
type Converted = (String, rustai_core::abi::SamplingParams, rustai_core::abi::SamplingExtras, rustai_core::LoadOptions);

fn shared(state: &AppState, s: &Shared, task: Task) -> ApiResult<Converted> {
    let id = generate::check_model(state, &s.model, task)?;
    if s.top_logprobs.is_some_and(|n| n > rustai_core::abi::limits::MAX_TOP_LOGPROBS) {
        return Err(ApiError::bad_request(format!("`top_logprobs` must be at most {}", rustai_core::abi::limits::MAX_TOP_LOGPROBS)));
    }
    let (mut sampling, extras) = ollama_sampling(&s.options)?;
    json_format(s.format.as_ref(), &mut sampling)?;
    Ok((id, sampling, extras, ollama_load(&s.options, s.keep_alive.as_ref())?))
}

pub(crate) async fn generate(State(state): State<AppState>, Body(body): Body<GenerateBody>) -> ApiResult<Response> {
    let (id, sampling, extras, load) = shared(&state, &body.shared, Task::Completion)?;
    if body.images.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request("`images` are not supported (no vision model support yet)"));
    }
    if body.suffix.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request("`suffix` (fill-in-the-middle) is not supported"));
    }
    if body.template.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request("`template` is not supported: the model's own chat template is used (or send `raw: true` with your own prompt)"));
    }
    if body.prompt.is_empty() {
        return load_or_unload(state, id, load, Shape::Generate).await;
    }
    let input = if body.raw {
        Input::Prompt(body.prompt)
    } else {
        let mut turns: Vec<Turn> = body.system.iter().map(|s| Turn::new("system", s.as_str())).collect();
        turns.push(Turn::new("user", body.prompt));
        Input::Chat(Conversation::new(turns))
    };
    let job = TextJob { load, logprobs: logprobs_option(&body.shared)?, ..TextJob::new(id, input, sampling, extras) };
    respond(state, job, body.shared.stream.unwrap_or(true), Shape::Generate, body.shared.model).await
}

pub(crate) async fn chat(State(state): State<AppState>, Body(body): Body<ChatBody>) -> ApiResult<Response> {
    let (id, sampling, extras, load) = shared(&state, &body.shared, Task::Chat)?;
    if body.messages.is_empty() {
        return load_or_unload(state, id, load, Shape::Chat).await;
    }
    let mut turns: Vec<Turn> = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.into_iter().enumerate() {
        let bad = |msg: String| ApiError::bad_request(format!("messages[{i}]: {msg}"));
        if m.images.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(bad("images are not supported (no vision model support yet)".into()));
        }
        let turn = match m.role.as_str() {
            "system" | "user" => Turn::new(m.role, m.content),
            "assistant" => match &m.tool_calls {
                Some(calls) if !calls.is_null() => Turn::assistant_calls(m.content, tool_wire::calls(calls).map_err(bad)?),
                _ => Turn::new("assistant", m.content),
            },
            "tool" => {
                // Ollama names the tool, not the call: answer the latest call of that tool.
                let id = m.tool_call_id.clone().or_else(|| {
                    let name = m.tool_name.as_deref()?;
                    turns.iter().rev().flat_map(|t| t.tool_calls.iter()).find(|c| c.name == name).map(|c| c.id.clone())
                });
                tool_wire::tool_turn(&turns, &id.unwrap_or_default(), m.tool_name.as_deref(), m.content)
            }
            other => return Err(bad(format!("unknown role `{other}` (system, user, assistant or tool)"))),
        };
        turns.push(turn);
    }
    let (tools, agent) = crate::openai::tool_set(&state, body.tools.as_deref(), body.tool_choice.as_ref(), None, body.rustai_tools.as_deref(), body.rustai_max_steps)?;
    let logprobs = logprobs_option(&body.shared)?;
    let job = TextJob { load, agent, logprobs, ..TextJob::new(id, Input::Chat(Conversation { turns, tools }), sampling, extras) };
    respond(state, job, body.shared.stream.unwrap_or(true), Shape::Chat, body.shared.model).await
}

/// An empty prompt loads the model (or, with `keep_alive: 0`, unloads it), as in Ollama.
async fn load_or_unload(state: AppState, id: String, load: rustai_core::LoadOptions, shape: Shape) -> ApiResult<Response> {
    let mut v = piece(shape, &id, "");
    v["done"] = true.into();
    if load.keep_alive == Some(KeepAlive::Unload) {
        crate::runtime::unload_model(&state, &id)?;
        v["done_reason"] = "unload".into();
    } else {
        let started = Instant::now();
        let (prepared, _) = generate::prepare(&state.engine, id, load, Default::default()).await?;
        drop(prepared);
        v["done_reason"] = "load".into();
        v["load_duration"] = nanos(started.elapsed()).into();
    }
    Ok(Json(v).into_response())
}

/// Runs `f` on the blocking pool: listing models hashes model files (once per file version).
async fn blocking(state: AppState, f: fn(&AppState) -> Value) -> Json<Value> {
    Json(tokio::task::spawn_blocking(move || f(&state)).await.unwrap_or_else(|_| json!({ "models": [] })))
}

pub(crate) async fn tags(State(state): State<AppState>) -> Json<Value> {
    blocking(state, tags_now).await
}

fn tags_now(state: &AppState) -> Value {
    let models: Vec<Value> = state
        .engine
        .registry()
        .entries()
        .iter()
        .map(|m| {
            json!({
                "name": m.full_name(),
                "model": m.full_name(),
                "modified_at": rfc3339(m.modified.unwrap_or(SystemTime::UNIX_EPOCH)),
                "size": m.size,
                "digest": state.digest(m),
                "details": details(m),
            })
        })
        .collect();
    json!({ "models": models })
}

pub(crate) async fn ps(State(state): State<AppState>) -> Json<Value> {
    blocking(state, ps_now).await
}

fn ps_now(state: &AppState) -> Value {
    let entries = state.engine.registry().entries();
    let now = Instant::now();
    let models: Vec<Value> = state
        .engine
        .pool()
        .status()
        .iter()
        .filter_map(|s| {
            let m = entries.iter().find(|e| e.path() == Some(s.path.as_path()))?;
            let expires = match s.expires {
                Some(t) => SystemTime::now() + t.saturating_duration_since(now),
                None if s.in_use => SystemTime::now(),
                // Kept forever: far in the future, as Ollama shows it.
                None => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix(SystemTime::now()) + 100 * 365 * 86_400),
            };
            Some(json!({
                "name": m.full_name(),
                "model": m.full_name(),
                "size": s.bytes,
                "digest": state.digest(m),
                "details": details(m),
                "expires_at": rfc3339(expires),
                "size_vram": 0,
                "plugin": s.plugin,
                "family": s.family.as_str(),
                "in_use": s.in_use,
                "pinned": s.pinned,
                "last_used": rfc3339(SystemTime::now() - now.saturating_duration_since(s.last_used)),
            }))
        })
        .collect();
    json!({ "models": models })
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShowBody {
    #[serde(alias = "name")]
    model: String,
}

pub(crate) async fn show(State(state): State<AppState>, Body(body): Body<ShowBody>) -> ApiResult<Json<Value>> {
    let m = state.engine.registry().lookup(&body.model)?;
    let arch = m.meta.architecture.clone().unwrap_or_default();
    let mut info = serde_json::Map::new();
    info.insert("general.architecture".into(), arch.clone().into());
    if let Some(p) = m.meta.parameters {
        info.insert("general.parameter_count".into(), p.into());
    }
    if let Some(c) = m.meta.context_length {
        info.insert(format!("{arch}.context_length"), c.into());
    }
    if let Some(d) = m.meta.embedding_dim {
        info.insert(format!("{arch}.embedding_length"), d.into());
    }
    let mut capabilities = vec![m.task.as_str()];
    if m.task == Task::Chat {
        capabilities = vec!["completion", "chat"];
        if m.meta.chat_template {
            capabilities.push("tools");
        }
    }
    Ok(Json(json!({
        "modelfile": format!("FROM {}\n", m.id),
        "parameters": "",
        "template": if m.meta.chat_template { "{{ .Prompt }} (the model's own chat template)" } else { "" },
        "details": details(&m),
        "model_info": info,
        "capabilities": capabilities,
        "modified_at": rfc3339(m.modified.unwrap_or(SystemTime::UNIX_EPOCH)),
    })))
}

pub(crate) async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// Ollama's `/api/*` routes (its embedding routes are in `embed`).
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/show", post(show))
        .route("/api/generate", post(generate))
        .route("/api/chat", post(chat))
}
