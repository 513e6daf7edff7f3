//! The OpenAI Responses API: `POST /v1/responses` (SSE streaming with typed events,
//! each with a `sequence_number`), `GET` and `DELETE /v1/responses/{id}`. A request
//! becomes the core [`Conversation`] at this edge: `instructions` a system turn, message
//! items turns, `function_call` items an assistant turn's calls, `function_call_output`
//! items tool turns. A finished response is kept (unless `store: false`) in the bounded
//! in-memory `response_store`, so `previous_response_id` continues its conversation
//! (the earlier `instructions` are not carried over, as at OpenAI).

use std::{sync::Arc, time::SystemTime};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use rustai_core::{
    abi::SamplingExtras,
    chat::{Conversation, ToolCall, ToolSet, ToolSpec, Turn},
    Task,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    blocks::{self, Answer, Frames, Knobs},
    convert::unix,
    error::{ApiError, ApiResult},
    extract::Body,
    generate::{self, Input, TextJob},
    response_store::{ResponseStore, Stored},
    state::AppState,
};

/// `/v1/responses` and `/v1/responses/{id}`.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new().route("/v1/responses", post(create)).route("/v1/responses/{id}", get(fetch).delete(forget))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    model: String,
    /// A string, or a list of input items.
    #[serde(default)]
    input: Value,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", "schema"}}`.
    #[serde(default)]
    text: Option<Value>,
    // Asked for, but not something this server does: refused when set.
    #[serde(default)]
    background: Option<bool>,
    #[serde(default)]
    conversation: Option<Value>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct FunctionTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).openai()
}

fn str_field<'a>(item: &'a Value, field: &str, at: &str) -> ApiResult<&'a str> {
    item.get(field).and_then(Value::as_str).ok_or_else(|| bad(format!("{at}: `{field}` (a string) is required")))
}

/// The text of message content: a string, or text parts.
fn content_text(content: &Value, at: &str) -> ApiResult<String> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => text.push_str(str_field(p, "text", &format!("{at}[{j}]"))?),
                    Some("refusal") => text.push_str(str_field(p, "refusal", &format!("{at}[{j}]"))?),
                    other => return Err(bad(format!("{at}[{j}]: content parts of type {other:?} are not supported (text only)"))),
                }
            }
            Ok(text)
        }
        _ => Err(bad(format!("{at}: content must be a string or a list of content parts"))),
    }
}

/// The turns of `input`; `earlier` (the previous response's conversation) names the
/// tools whose calls its `function_call_output` items answer.
fn input_turns(input: &Value, earlier: &[Turn]) -> ApiResult<Vec<Turn>> {
    let items = match input {
        Value::String(s) => return Ok(vec![Turn::new("user", s.clone())]),
        Value::Array(items) if !items.is_empty() => items,
        _ => return Err(bad("`input` must be a string or a non-empty list of input items")),
    };
    let mut turns: Vec<Turn> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        match item.get("type").and_then(Value::as_str) {
            None | Some("message") => {
                let role = match str_field(item, "role", &at)? {
                    "developer" => "system",
                    r @ ("user" | "assistant" | "system") => r,
                    other => return Err(bad(format!("{at}: unknown role `{other}` (user, assistant, system or developer)"))),
                };
                let text = content_text(item.get("content").unwrap_or(&Value::Null), &format!("{at}.content"))?;
                turns.push(Turn::new(role, text));
            }
            Some("function_call") => {
                let arguments = str_field(item, "arguments", &at)?;
                let arguments: Value =
                    serde_json::from_str(arguments).map_err(|e| bad(format!("{at}: `arguments` is not JSON: {e}")))?;
                let call = ToolCall { id: str_field(item, "call_id", &at)?.to_owned(), name: str_field(item, "name", &at)?.to_owned(), arguments };
                // Calls join the assistant turn they follow (a replayed output: text, then calls).
                match turns.last_mut() {
                    Some(t) if t.role == "assistant" => t.tool_calls.push(call),
                    _ => turns.push(Turn::assistant_calls("", vec![call])),
                }
            }
            Some("function_call_output") => {
                let call_id = str_field(item, "call_id", &at)?;
                let name = earlier
                    .iter()
                    .chain(&turns)
                    .flat_map(|t| &t.tool_calls)
                    .find(|c| c.id == call_id)
                    .map(|c| c.name.clone())
                    .ok_or_else(|| bad(format!("{at}: no function call with `call_id` `{call_id}` came before this output")))?;
                let output = content_text(item.get("output").unwrap_or(&Value::Null), &format!("{at}.output"))?;
                turns.push(Turn::tool_result(call_id, name, output));
            }
            Some(other) => return Err(bad(format!("{at}: input items of type `{other}` are not supported (message, function_call, function_call_output)"))),
        }
    }
    Ok(turns)
}

impl CreateBody {
    fn check_unsupported(&self) -> ApiResult<()> {
        let refuse = |field: &str, why: &str| Err(bad(format!("`{field}` is not supported: {why}")));
        if self.background == Some(true) {
            return refuse("background", "responses run while the request is open");
        }
        if self.conversation.as_ref().is_some_and(|c| !c.is_null()) {
            return refuse("conversation", "continue a conversation with `previous_response_id`");
        }
        if self.prompt.as_ref().is_some_and(|p| !p.is_null()) {
            return refuse("prompt", "there are no stored prompt templates");
        }
        if self.top_logprobs.is_some_and(|n| n > 0) {
            return refuse("top_logprobs", "log probabilities are not returned here");
        }
        Ok(())
    }

    /// The tools (for the model, and as the response echoes them).
    fn tool_set(&self) -> ApiResult<(ToolSet, Vec<Value>)> {
        let (mut specs, mut echoed) = (Vec::new(), Vec::new());
        for (i, t) in self.tools.iter().enumerate() {
            match t.get("type").and_then(Value::as_str) {
                Some("function") => {}
                other => return Err(bad(format!("tools[{i}]: tools of type {other:?} are not supported (only `function`)"))),
            }
            let f: FunctionTool = serde_json::from_value(t.clone()).map_err(|e| bad(format!("tools[{i}]: {e}")))?;
            let parameters = f.parameters.unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
            let description = f.description.unwrap_or_default();
            echoed.push(json!({ "type": "function", "name": f.name, "description": description, "parameters": parameters, "strict": f.strict.unwrap_or(true) }));
            specs.push(ToolSpec { name: f.name, description, parameters });
        }
        // `{"type": "function", "name"}` here, where chat completions nest the name in `function`.
        let choice = crate::tool_wire::choice(self.tool_choice.as_ref()).map_err(bad)?.unwrap_or_default();
        Ok((ToolSet { tools: specs, choice, parallel: self.parallel_tool_calls.unwrap_or(true) }, echoed))
    }

    /// Sampling, with `text.format` as a JSON constraint.
    fn sampling(&self) -> ApiResult<rustai_core::abi::SamplingParams> {
        let format = self.text.as_ref().and_then(|t| t.get("format"));
        let schema = match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
            None | Some("text") => None,
            Some("json_object") => Some(json!({ "type": "object" })),
            Some("json_schema") => Some(format.and_then(|f| f.get("schema")).cloned().ok_or_else(|| bad("`text.format` of type json_schema needs a `schema`"))?),
            Some(other) => return Err(bad(format!("unknown `text.format` type `{other}` (text, json_object or json_schema)"))),
        };
        Ok(Knobs { temperature: self.temperature, top_p: self.top_p, max_tokens: self.max_output_tokens, schema, ..Knobs::default() }.sampling())
    }

    /// The response object before any output: what the request asked, echoed.
    fn skeleton(&self, id: &str, tools: Vec<Value>) -> Value {
        json!({
            "id": id, "object": "response", "created_at": unix(SystemTime::now()), "status": "in_progress",
            "error": null, "incomplete_details": null, "instructions": self.instructions, "model": self.model,
            "output": [], "parallel_tool_calls": self.parallel_tool_calls.unwrap_or(true),
            "previous_response_id": self.previous_response_id, "max_output_tokens": self.max_output_tokens,
            "temperature": self.temperature.unwrap_or(1.0), "top_p": self.top_p.unwrap_or(1.0),
            "tool_choice": self.tool_choice.clone().filter(|c| !c.is_null()).unwrap_or_else(|| json!("auto")),
            "tools": tools, "text": self.text.clone().unwrap_or_else(|| json!({ "format": { "type": "text" } })),
            "truncation": "disabled", "store": self.store.unwrap_or(true),
            "metadata": self.metadata.clone().unwrap_or_else(|| json!({})), "usage": null,
        })
    }
}

fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({ "type": "message", "id": id, "status": status, "role": "assistant", "content": content })
}

fn call_item(id: &str, call: &ToolCall, arguments: &str, status: &str) -> Value {
    json!({ "type": "function_call", "id": id, "call_id": call.id, "name": call.name, "arguments": arguments, "status": status })
}

/// `completed`, or `incomplete` when the token limit cut the reply.
fn status(answer: &Answer) -> &'static str {
    if answer.truncated() {
        "incomplete"
    } else {
        "completed"
    }
}

/// The finished response: `skeleton` with `output`, the status and the usage.
fn finished(skeleton: &Value, output: Vec<Value>, answer: &Answer) -> Value {
    let mut r = skeleton.clone();
    r["status"] = status(answer).into();
    if answer.truncated() {
        r["incomplete_details"] = json!({ "reason": "max_output_tokens" });
    }
    r["output"] = output.into();
    r["completed_at"] = unix(SystemTime::now()).into();
    let (input, output) = (answer.done.tokens_in, answer.done.tokens_out);
    r["usage"] = json!({
        "input_tokens": input, "input_tokens_details": { "cached_tokens": answer.cached, "cache_write_tokens": 0 },
        "output_tokens": output, "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": u64::from(input) + u64::from(output),
    });
    r["rustai"] = answer.metadata.clone();
    r
}

/// Where a finished response is kept (unless `store: false`), with its conversation so far.
struct Keep {
    store: Arc<ResponseStore>,
    turns: Vec<Turn>,
}

impl Keep {
    fn put(self, response: &Value, answer: &Answer) {
        let mut turns = self.turns;
        turns.push(Turn::assistant_calls(answer.text.clone(), answer.calls.clone()));
        let id = response["id"].as_str().unwrap_or_default().to_owned();
        self.store.put(id, Stored { turns, response: response.clone() });
    }
}

async fn create(State(state): State<AppState>, Body(body): Body<CreateBody>) -> ApiResult<Response> {
    body.check_unsupported()?;
    let resolved = generate::check_model(&state, &body.model, Task::Chat).map_err(ApiError::openai)?;
    let earlier = match &body.previous_response_id {
        None => Vec::new(),
        Some(id) => state
            .responses
            .get(id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("previous response `{id}` not found (responses are kept for an hour, in memory)")).openai())?
            .turns,
    };
    let mut kept = earlier;
    kept.extend(input_turns(&body.input, &kept)?);
    let (tools, echoed) = body.tool_set()?;
    let mut turns = Vec::with_capacity(kept.len() + 1);
    turns.extend(body.instructions.as_ref().filter(|i| !i.is_empty()).map(|i| Turn::new("system", i.clone())));
    turns.extend(kept.iter().cloned());
    let job = TextJob::new(resolved, Input::Chat(Conversation { turns, tools }), body.sampling()?, SamplingExtras::default());
    let gen = generate::start(&state, job).await.map_err(ApiError::openai)?;
    let skeleton = body.skeleton(&blocks::new_id("resp_"), echoed);
    let keep = body.store.unwrap_or(true).then(|| Keep { store: Arc::clone(&state.responses), turns: kept });
    if body.stream {
        let events = Events { seq: 0, skeleton, output: Vec::new(), message_id: blocks::new_id("msg_"), keep };
        return Ok(blocks::stream(gen, events));
    }
    let answer = blocks::answer(gen).await.map_err(ApiError::openai)?;
    let mut output = Vec::new();
    if answer.has_text() {
        output.push(message_item(&blocks::new_id("msg_"), status(&answer), vec![output_text(&answer.text)]));
    }
    output.extend(answer.calls.iter().map(|c| call_item(&blocks::new_id("fc_"), c, &blocks::arguments(c), "completed")));
    let response = finished(&skeleton, output, &answer);
    if let Some(keep) = keep {
        keep.put(&response, &answer);
    }
    Ok(Json(response).into_response())
}

/// The Responses stream: `response.created`, `response.in_progress`, per output item its
/// `added`, deltas and `done` events, then `response.completed` (or `.incomplete`).
struct Events {
    seq: u64,
    skeleton: Value,
    /// Finished output items.
    output: Vec<Value>,
    message_id: String,
    keep: Option<Keep>,
}

impl Events {
    fn emit(&mut self, kind: &str, mut data: Value) -> String {
        data["type"] = kind.into();
        data["sequence_number"] = self.seq.into();
        self.seq += 1;
        blocks::event(kind, &data)
    }

    /// Position of the item being sent.
    fn at(&self) -> usize {
        self.output.len()
    }
}

impl Frames for Events {
    fn start(&mut self) -> Vec<String> {
        let response = self.skeleton.clone();
        vec![self.emit("response.created", json!({ "response": response })), self.emit("response.in_progress", json!({ "response": response }))]
    }

    fn text_start(&mut self) -> Vec<String> {
        let (at, item_id) = (self.at(), self.message_id.clone());
        vec![
            self.emit("response.output_item.added", json!({ "output_index": at, "item": message_item(&item_id, "in_progress", Vec::new()) })),
            self.emit("response.content_part.added", json!({ "item_id": item_id, "output_index": at, "content_index": 0, "part": output_text("") })),
        ]
    }

    fn text_delta(&mut self, piece: &str) -> Vec<String> {
        let (at, item_id) = (self.at(), self.message_id.clone());
        let delta = json!({ "item_id": item_id, "output_index": at, "content_index": 0, "delta": piece, "logprobs": [] });
        vec![self.emit("response.output_text.delta", delta)]
    }

    fn text_stop(&mut self, answer: &Answer) -> Vec<String> {
        let (at, item_id, text) = (self.at(), self.message_id.clone(), answer.text.as_str());
        let item = message_item(&item_id, status(answer), vec![output_text(text)]);
        let out = vec![
            self.emit("response.output_text.done", json!({ "item_id": item_id, "output_index": at, "content_index": 0, "text": text, "logprobs": [] })),
            self.emit("response.content_part.done", json!({ "item_id": item_id, "output_index": at, "content_index": 0, "part": output_text(text) })),
            self.emit("response.output_item.done", json!({ "output_index": at, "item": item })),
        ];
        self.output.push(item);
        out
    }

    fn tool_call(&mut self, call: &ToolCall) -> Vec<String> {
        let (at, item_id, arguments) = (self.at(), blocks::new_id("fc_"), blocks::arguments(call));
        let item = call_item(&item_id, call, &arguments, "completed");
        let out = vec![
            self.emit("response.output_item.added", json!({ "output_index": at, "item": call_item(&item_id, call, "", "in_progress") })),
            self.emit("response.function_call_arguments.delta", json!({ "item_id": item_id, "output_index": at, "delta": arguments })),
            self.emit("response.function_call_arguments.done", json!({ "item_id": item_id, "output_index": at, "name": call.name, "arguments": arguments })),
            self.emit("response.output_item.done", json!({ "output_index": at, "item": item })),
        ];
        self.output.push(item);
        out
    }

    fn finish(&mut self, answer: &Answer) -> Vec<String> {
        let response = finished(&self.skeleton, std::mem::take(&mut self.output), answer);
        if let Some(keep) = self.keep.take() {
            keep.put(&response, answer);
        }
        let kind = if answer.truncated() { "response.incomplete" } else { "response.completed" };
        vec![self.emit(kind, json!({ "response": response }))]
    }

    fn error(&mut self, error: ApiError) -> Vec<String> {
        let code = error.code.map_or_else(|| error.status.as_u16().to_string(), str::to_owned);
        vec![self.emit("error", json!({ "code": code, "message": error.message, "param": null }))]
    }
}

async fn fetch(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.responses.get(&id).map(|s| Json(s.response)).ok_or_else(|| not_found(&id))
}

async fn forget(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if state.responses.remove(&id) {
        Ok(Json(json!({ "id": id, "object": "response", "deleted": true })))
    } else {
        Err(not_found(&id))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("response `{id}` not found")).openai()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_turns() {
        let earlier = vec![Turn::assistant_calls("", vec![ToolCall { id: "c0".into(), name: "old".into(), arguments: json!({}) }])];
        let input = json!([
            {"type": "function_call_output", "call_id": "c0", "output": "done"},
            {"role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ]);
        let turns = input_turns(&input, &earlier).unwrap();
        let roles: Vec<&str> = turns.iter().map(|t| t.role.as_str()).collect();
        assert_eq!(roles, ["tool", "system", "assistant", "tool"]);
        assert_eq!(turns[0].name.as_deref(), Some("old"), "named from the earlier response");
        assert_eq!((turns[2].content.as_str(), turns[2].tool_calls[0].arguments.clone()), ("Let me look.", json!({"city": "Rome"})));
        assert_eq!(turns[3].name.as_deref(), Some("w"));
    }

    #[test]
    fn bad_items_are_clear_400s() {
        let refuse = |v: Value| input_turns(&v, &[]).unwrap_err();
        assert!(refuse(json!([{"type": "function_call_output", "call_id": "nope", "output": "x"}])).message.contains("`nope`"));
        assert!(refuse(json!([{"role": "user", "content": [{"type": "input_image"}]}])).message.contains("input_image"));
        assert!(refuse(json!([{"type": "function_call", "call_id": "c", "name": "w", "arguments": "{"}])).message.contains("not JSON"));
        assert_eq!(refuse(json!([])).status, StatusCode::BAD_REQUEST);
    }
}
