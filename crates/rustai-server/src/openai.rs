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
    abi::{Completion, LogitBias, ROption, RString, RVec, SamplingExtras, SamplingParams, TokenLogprob},
    chat::{agent::Agent, Conversation, Reply, ToolSet, Turn},
    Logprobs, StreamEvent, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    convert::unix,
    error::{ApiError, ApiResult},
    extract::Body,
    generate::{self, Generation, Input, TextJob},
    state::AppState,
    tool_wire,
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
    /// Chat: `true`; text completions: the number of alternatives (0..=5).
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    /// Extension: plugin tools the server offers the model and runs itself.
    #[serde(default)]
    rustai_tools: Option<Vec<String>>,
    /// Extension: the most model steps of the server-side tool loop.
    #[serde(default)]
    rustai_max_steps: Option<usize>,
    // Fields this server cannot honour: refused when they ask for something.
    #[serde(default)]
    functions: Option<Vec<Value>>,
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
        if self.functions.as_ref().is_some_and(|t| !t.is_empty()) {
            return refuse("functions", "the deprecated `functions` field is not supported; use `tools`");
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

/// Most choices one request may ask for (`n`).
const MAX_CHOICES: u32 = 8;

fn finish_reason(done: &Completion, reply: Option<&Reply>) -> &'static str {
    if reply.is_some_and(|r| !r.tool_calls.is_empty()) {
        return "tool_calls";
    }
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

/// Log-probabilities in the API's shape: chat's `{"content": [...]}`, or the legacy
/// completions' parallel lists.
fn logprobs_json(kind: Kind, entries: &[Logprobs]) -> Value {
    let one = |t: &TokenLogprob| json!({ "token": t.text.as_str(), "logprob": t.logprob, "bytes": t.text.as_bytes() });
    match kind {
        Kind::Chat => json!({ "content": entries.iter().map(|l| {
            let mut v = one(&l.chosen);
            v["top_logprobs"] = l.top.iter().map(one).collect();
            v
        }).collect::<Vec<_>>() }),
        Kind::Text => json!({
            "tokens": entries.iter().map(|l| l.chosen.text.as_str()).collect::<Vec<_>>(),
            "token_logprobs": entries.iter().map(|l| l.chosen.logprob).collect::<Vec<_>>(),
            "top_logprobs": entries.iter().map(|l| l.top.iter().map(|t| (t.text.to_string(), json!(t.logprob))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
        }),
    }
}

/// The request's log-probability option: `Some(top)` when asked.
fn logprobs_option(kind: Kind, c: &Common) -> ApiResult<Option<u32>> {
    let bad = |m: &str| Err(ApiError::bad_request(m.to_owned()).openai());
    match (kind, &c.logprobs) {
        (_, None | Some(Value::Null) | Some(Value::Bool(false))) => {
            if c.top_logprobs.is_some_and(|n| n > 0) {
                return bad("`top_logprobs` needs `logprobs: true`");
            }
            Ok(None)
        }
        (Kind::Chat, Some(Value::Bool(true))) => Ok(Some(c.top_logprobs.unwrap_or(0))),
        (Kind::Text, Some(Value::Number(n))) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(k) if k <= 5 => Ok(Some(k as u32)),
            _ => bad("`logprobs` must be 0..=5 for completions"),
        },
        (Kind::Chat, _) => bad("`logprobs` must be a boolean"),
        (Kind::Text, _) => bad("`logprobs` must be an integer 0..=5"),
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

/// One whole choice, read to the end.
async fn whole_choice(kind: Kind, index: u32, mut gen: Generation) -> ApiResult<(Value, Completion, u32, Value)> {
    let metadata_before = gen.metadata();
    let done = loop {
        match gen.next().await {
            Some(StreamEvent::Done(done)) => break done,
            Some(StreamEvent::Error(e)) => return Err(ApiError::from(e).openai()),
            Some(_) => {}
            None => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "generation ended without a result").openai()),
        }
    };
    let reply = gen.reply();
    let logprobs = if gen.logprobs().is_empty() { Value::Null } else { logprobs_json(kind, gen.logprobs()) };
    let choice = match kind {
        Kind::Chat => {
            let mut message = json!({ "role": "assistant", "content": reply.map_or(done.text.as_str(), |r| r.content.as_str()) });
            if let Some(r) = reply.filter(|r| !r.tool_calls.is_empty()) {
                message["tool_calls"] = tool_wire::openai_calls(&r.tool_calls);
                if r.content.is_empty() {
                    message["content"] = Value::Null;
                }
            }
            json!({ "index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason(&done, reply) })
        }
        Kind::Text => json!({ "index": index, "text": done.text.as_str(), "logprobs": logprobs, "finish_reason": finish_reason(&done, None) }),
    };
    let metadata = if gen.executed_calls().is_some() { gen.metadata() } else { metadata_before };
    let cached = gen.cached_tokens();
    Ok((choice, done, cached, metadata))
}

/// What a request asks beyond sampling: the conversation (chat) or prompt, and its tools.
struct Ask {
    kind: Kind,
    input: Input,
    agent: Option<Agent>,
}

/// `resolved` is the model's id, looked up once by the handler.
async fn respond(state: AppState, common: Common, resolved: String, ask: Ask) -> ApiResult<Response> {
    common.check_unsupported()?;
    let kind = ask.kind;
    let sampling = sampling(&common)?;
    let extras = common.extras()?;
    let logprobs = logprobs_option(kind, &common)?;
    let n = common.n.unwrap_or(1);
    if n == 0 || n > MAX_CHOICES {
        return Err(ApiError::bad_request(format!("`n` must be 1..={MAX_CHOICES}")).openai());
    }
    if n > 1 && common.stream {
        return Err(ApiError::bad_request("`n` > 1 is supported without streaming").openai());
    }
    if n > 1 && ask.agent.is_some() {
        return Err(ApiError::bad_request("`n` > 1 cannot be combined with `rustai_tools` (each choice would run the tools)").openai());
    }
    if common.top_logprobs.is_some_and(|t| t > rustai_core::abi::limits::MAX_TOP_LOGPROBS) {
        return Err(ApiError::bad_request(format!("`top_logprobs` must be at most {}", rustai_core::abi::limits::MAX_TOP_LOGPROBS)).openai());
    }
    let job_for = |i: u32| {
        let mut sampling = sampling.clone();
        if i > 0 {
            // Each choice its own draw; with a seed, a reproducible one.
            sampling.seed = match sampling.seed {
                ROption::RSome(s) => ROption::RSome(s.wrapping_add(u64::from(i))),
                ROption::RNone => ROption::RNone,
            };
        }
        TextJob { logprobs, agent: ask.agent.clone(), ..TextJob::new(resolved.clone(), ask.input.clone(), sampling, extras.clone()) }
    };
    let id = id(kind);
    let model = common.model;
    if !common.stream {
        let (mut choices, mut total, mut cached_all, mut metadata) = (Vec::new(), (0u64, 0u64), 0u32, Value::Null);
        for i in 0..n {
            let gen = generate::start(&state, job_for(i)).await.map_err(ApiError::openai)?;
            let (choice, done, cached, meta) = whole_choice(kind, i, gen).await?;
            // The prompt is the same for every choice: counted once, as OpenAI does.
            if i == 0 {
                total.0 = u64::from(done.tokens_in);
                cached_all = cached;
                metadata = meta;
            }
            total.1 += u64::from(done.tokens_out);
            choices.push(choice);
        }
        let object = if kind == Kind::Chat { "chat.completion" } else { "text_completion" };
        let usage = json!({
            "prompt_tokens": total.0, "completion_tokens": total.1, "total_tokens": total.0 + total.1,
            "prompt_tokens_details": { "cached_tokens": cached_all },
        });
        return Ok(Json(json!({
            "id": id, "object": object, "created": unix(SystemTime::now()), "model": model,
            "choices": choices, "usage": usage, "rustai": metadata,
        }))
        .into_response());
    }
    let gen = generate::start(&state, job_for(0)).await.map_err(ApiError::openai)?;
    let include_usage = common.stream_options.is_some_and(|o| o.include_usage);
    let sse = |v: Value| format!("data: {v}\n\n");
    let mut first = true;
    let mut sent_logprobs = 0usize;
    let render = move |gen: &Generation, event: StreamEvent| {
        let mut new_logprobs = |c: &mut Value| {
            let all = gen.logprobs();
            if all.len() > sent_logprobs {
                c["choices"][0]["logprobs"] = logprobs_json(kind, &all[sent_logprobs..]);
                sent_logprobs = all.len();
            }
        };
        match event {
            StreamEvent::Piece(p) => {
                let mut c = chunk(kind, &id, &model, Some(&p), None, first);
                new_logprobs(&mut c);
                first = false;
                vec![sse(c)]
            }
            StreamEvent::Done(done) => {
                let mut out = Vec::new();
                let reply = gen.reply();
                if let Some(r) = reply.filter(|r| !r.tool_calls.is_empty()) {
                    // OpenAI's clients assemble calls from deltas: the id, type and name first,
                    // then the arguments.
                    for (i, call) in r.tool_calls.iter().enumerate() {
                        let mut open = chunk(kind, &id, &model, None, None, first);
                        first = false;
                        open["choices"][0]["delta"]["tool_calls"] =
                            json!([{ "index": i, "id": call.id, "type": "function", "function": { "name": call.name, "arguments": "" } }]);
                        let mut args = chunk(kind, &id, &model, None, None, false);
                        args["choices"][0]["delta"]["tool_calls"] = json!([{ "index": i, "function": { "arguments": call.arguments.to_string() } }]);
                        out.extend([sse(open), sse(args)]);
                    }
                }
                let mut last = chunk(kind, &id, &model, None, Some(finish_reason(&done, reply)), first);
                new_logprobs(&mut last);
                last["rustai"] = gen.metadata();
                out.push(sse(last));
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
            StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_) => Vec::new(),
        }
    };
    let body = crate::stream::with_tail(gen, render, vec!["data: [DONE]\n\n".to_owned()]);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(HttpBody::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// The request's messages as turns.
pub(crate) fn turns(messages: &[Value]) -> ApiResult<Vec<Turn>> {
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let bad = |msg: String| ApiError::bad_request(format!("messages[{i}]: {msg}")).openai();
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad("every message needs a `role`".into()))?;
        let text = content(m).map_err(|e| bad(e.message))?;
        let turn = match role {
            "developer" | "system" => Turn::new("system", text),
            "user" => Turn::new("user", text),
            "assistant" => match m.get("tool_calls") {
                Some(calls) if !calls.is_null() => Turn::assistant_calls(text, tool_wire::calls(calls).map_err(bad)?),
                _ => Turn::new("assistant", text),
            },
            "tool" => match m.get("tool_call_id").and_then(Value::as_str).filter(|id| !id.is_empty()) {
                Some(call_id) => tool_wire::tool_turn(&turns, call_id, m.get("name").and_then(Value::as_str), text),
                None => return Err(bad("a `tool` message needs the `tool_call_id` of the call it answers".into())),
            },
            other => return Err(bad(format!("unknown role `{other}` (system, developer, user, assistant or tool)"))),
        };
        turns.push(turn);
    }
    Ok(turns)
}

/// The request's tools, and the server-side tool loop when it names plugin tools.
pub(crate) fn tool_set(
    state: &AppState,
    tools: Option<&[Value]>,
    choice: Option<&Value>,
    parallel: Option<bool>,
    server: Option<&[String]>,
    max_steps: Option<usize>,
) -> ApiResult<(ToolSet, Option<Agent>)> {
    let specs = tool_wire::tools(tools.unwrap_or_default()).map_err(ApiError::bad_request)?;
    let choice = tool_wire::choice(choice).map_err(ApiError::bad_request)?;
    // One call per reply unless the client asks for more (as llama-server): small local
    // models given the choice repeat a call until `max_tokens`.
    let set = ToolSet { tools: specs, choice: choice.clone().unwrap_or_default(), parallel: parallel.unwrap_or(false) };
    let agent = match server.filter(|s| !s.is_empty()) {
        None => None,
        Some(names) => {
            use rustai_core::chat::agent::{MAX_STEPS, MIN_STEPS};
            if max_steps.is_some_and(|m| !(MIN_STEPS..=MAX_STEPS).contains(&m)) {
                return Err(ApiError::bad_request(format!("`rustai_max_steps` must be {MIN_STEPS}..={MAX_STEPS}")));
            }
            let server_tools = state.engine.server_tools(names)?;
            Some(Agent::new(server_tools, set.clone(), choice, max_steps.unwrap_or(rustai_core::chat::agent::DEFAULT_MAX_STEPS)))
        }
    };
    Ok((set, agent))
}

pub(crate) async fn chat_completions(State(state): State<AppState>, Body(body): Body<ChatBody>) -> ApiResult<Response> {
    let resolved = generate::check_model(&state, &body.common.model, Task::Chat).map_err(ApiError::openai)?;
    if body.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty").openai());
    }
    let turns = turns(&body.messages)?;
    let c = &body.common;
    let (tools, agent) = tool_set(&state, c.tools.as_deref(), c.tool_choice.as_ref(), c.parallel_tool_calls, c.rustai_tools.as_deref(), c.rustai_max_steps)
        .map_err(ApiError::openai)?;
    let ask = Ask { kind: Kind::Chat, input: Input::Chat(Conversation { turns, tools }), agent };
    respond(state, body.common, resolved, ask).await
}

pub(crate) async fn completions(State(state): State<AppState>, Body(body): Body<CompletionBody>) -> ApiResult<Response> {
    let resolved = generate::check_model(&state, &body.common.model, Task::Completion).map_err(ApiError::openai)?;
    let prompt = match &body.prompt {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_owned(),
        _ => return Err(ApiError::bad_request("`prompt` must be a string (one prompt per request)").openai()),
    };
    let c = &body.common;
    if c.tools.as_ref().is_some_and(|t| !t.is_empty()) || c.rustai_tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::bad_request("tools are for chat completions (/v1/chat/completions)").openai());
    }
    respond(state, body.common, resolved, Ask { kind: Kind::Text, input: Input::Prompt(prompt), agent: None }).await
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
