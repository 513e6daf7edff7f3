//! The Anthropic Messages API: `POST /v1/messages` (SSE streaming with Anthropic's
//! `event:` sequence) and `POST /v1/messages/count_tokens`, with errors in Anthropic's
//! shape. A request becomes the core [`Conversation`] at this edge: `system` a system
//! turn, `tool_use` blocks an assistant turn's calls, `tool_result` blocks tool turns,
//! `tools` and `tool_choice` the [`ToolSet`]. Keys come in `x-api-key` (see `auth`);
//! `anthropic-version` and `metadata` are accepted and ignored.

use std::collections::HashMap;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use rustai_core::{
    abi::{FinishReason, SamplingExtras, SamplingParams},
    chat::{render_prompt, Conversation, ToolCall, ToolChoice, ToolSet, ToolSpec, Turn},
    LoadOptions, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    blocks::{self, Answer, Frames, Knobs},
    error::{ApiError, ApiResult},
    extract::Body,
    generate::{self, Input, TextJob},
    state::AppState,
};

/// `/v1/messages` and `/v1/messages/count_tokens`.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new().route("/v1/messages", post(create)).route("/v1/messages/count_tokens", post(count_tokens))
}

/// A Messages request (also the body of `count_tokens`, which needs no `max_tokens`).
#[derive(Debug, Deserialize)]
struct MessagesBody {
    model: String,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// A string or an array of text blocks.
    #[serde(default)]
    system: Option<Value>,
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    tool_choice: Option<Choice>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<i32>,
    #[serde(default)]
    stream: bool,
    /// `{"format": {"type": "json_schema", "schema"}}` constrains the reply (`effort` is ignored).
    #[serde(default)]
    output_config: Option<Value>,
    /// Extended thinking: refused unless `disabled` (these models do not think aloud).
    #[serde(default)]
    thinking: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    /// A string or an array of blocks.
    content: Value,
}

#[derive(Debug, Deserialize)]
struct Tool {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    input_schema: Option<Value>,
    /// Absent or `custom` for client tools; Anthropic's server tools have their own types.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disable_parallel_tool_use: bool,
}

/// A content block this server takes (others are refused by [`block`]).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Value,
        #[serde(default)]
        is_error: bool,
    },
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).anthropic()
}

/// The blocks of `content` (a string is one text block).
fn blocks_of(content: &Value, at: &str) -> ApiResult<Vec<Block>> {
    match content {
        Value::String(s) => Ok(vec![Block::Text { text: s.clone() }]),
        Value::Array(items) => items.iter().enumerate().map(|(j, b)| block(b, &format!("{at}[{j}]"))).collect(),
        _ => Err(bad(format!("{at}: content must be a string or an array of content blocks"))),
    }
}

fn block(v: &Value, at: &str) -> ApiResult<Block> {
    match v.get("type").and_then(Value::as_str) {
        Some("text" | "tool_use" | "tool_result") => serde_json::from_value(v.clone()).map_err(|e| bad(format!("{at}: {e}"))),
        Some(other) => Err(bad(format!("{at}: content blocks of type `{other}` are not supported (text, tool_use and tool_result are)"))),
        None => Err(bad(format!("{at}: every content block needs a `type`"))),
    }
}

/// The text of `content` that may only hold text (`system`, a tool result).
fn text_only(content: &Value, at: &str) -> ApiResult<String> {
    if content.is_null() {
        return Ok(String::new());
    }
    let mut text = String::new();
    for b in blocks_of(content, at)? {
        match b {
            Block::Text { text: t } => text.push_str(&t),
            _ => return Err(bad(format!("{at}: only text blocks are allowed here"))),
        }
    }
    Ok(text)
}

impl MessagesBody {
    fn conversation(&self) -> ApiResult<Conversation> {
        let mut turns = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = &self.system {
            let text = text_only(system, "system")?;
            if !text.is_empty() {
                turns.push(Turn::new("system", text));
            }
        }
        if self.messages.is_empty() {
            return Err(bad("`messages` must not be empty"));
        }
        // Tool names by `tool_use` id, for the results that answer them.
        let mut names: HashMap<String, String> = HashMap::new();
        for (i, m) in self.messages.iter().enumerate() {
            let at = format!("messages[{i}].content");
            let blocks = blocks_of(&m.content, &at)?;
            match m.role.as_str() {
                "assistant" => {
                    let (mut text, mut calls) = (String::new(), Vec::new());
                    for b in blocks {
                        match b {
                            Block::Text { text: t } => text.push_str(&t),
                            Block::ToolUse { id, name, input } => {
                                names.insert(id.clone(), name.clone());
                                calls.push(ToolCall { id, name, arguments: if input.is_null() { json!({}) } else { input } });
                            }
                            Block::ToolResult { .. } => return Err(bad(format!("{at}: `tool_result` blocks belong in user messages"))),
                        }
                    }
                    turns.push(Turn::assistant_calls(text, calls));
                }
                "user" => {
                    let (mut text, mut answered) = (String::new(), false);
                    for b in blocks {
                        match b {
                            Block::Text { text: t } => text.push_str(&t),
                            Block::ToolResult { tool_use_id, content, is_error } => {
                                let name = names.get(&tool_use_id).ok_or_else(|| {
                                    bad(format!("{at}: `tool_result` for `{tool_use_id}`, which no earlier `tool_use` block has"))
                                })?;
                                let result = text_only(&content, &at)?;
                                let result = if is_error { format!("Error: {result}") } else { result };
                                turns.push(Turn::tool_result(tool_use_id, name.clone(), result));
                                answered = true;
                            }
                            Block::ToolUse { .. } => return Err(bad(format!("{at}: `tool_use` blocks belong in assistant messages"))),
                        }
                    }
                    if !text.is_empty() || !answered {
                        turns.push(Turn::new("user", text));
                    }
                }
                other => return Err(bad(format!("messages[{i}]: unknown role `{other}` (user or assistant; the system prompt goes in `system`)"))),
            }
        }
        Ok(Conversation { turns, tools: self.tool_set()? })
    }

    fn tool_set(&self) -> ApiResult<ToolSet> {
        let mut tools = Vec::with_capacity(self.tools.len());
        for (i, t) in self.tools.iter().enumerate() {
            if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
                return Err(bad(format!("tools[{i}]: tools of type `{kind}` are not supported (only client tools with an `input_schema`)")));
            }
            let schema = t.input_schema.clone().ok_or_else(|| bad(format!("tools[{i}]: `input_schema` is required")))?;
            tools.push(ToolSpec { name: t.name.clone(), description: t.description.clone(), parameters: schema });
        }
        let (choice, parallel) = match &self.tool_choice {
            None => (ToolChoice::Auto, true),
            Some(c) => {
                let choice = match (c.kind.as_str(), &c.name) {
                    ("auto", _) => ToolChoice::Auto,
                    ("any", _) => ToolChoice::Required,
                    ("none", _) => ToolChoice::None,
                    ("tool", Some(name)) => ToolChoice::Named(name.clone()),
                    ("tool", None) => return Err(bad("`tool_choice` of type `tool` needs the tool's `name`")),
                    (other, _) => return Err(bad(format!("unknown `tool_choice` type `{other}` (auto, any, tool or none)"))),
                };
                (choice, !c.disable_parallel_tool_use)
            }
        };
        Ok(ToolSet { tools, choice, parallel })
    }

    fn sampling(&self) -> ApiResult<SamplingParams> {
        if let Some(kind) = self.thinking.as_ref().and_then(|t| t.get("type")).and_then(Value::as_str).filter(|k| *k != "disabled") {
            return Err(bad(format!("`thinking` of type `{kind}` is not supported: these models have no extended thinking")));
        }
        let schema = match self.output_config.as_ref().and_then(|c| c.get("format")).filter(|f| !f.is_null()) {
            None => None,
            Some(f) if f.get("type").and_then(Value::as_str) == Some("json_schema") => {
                Some(f.get("schema").cloned().ok_or_else(|| bad("`output_config.format` needs a `schema`"))?)
            }
            Some(_) => return Err(bad("`output_config.format` must be {\"type\": \"json_schema\", \"schema\"}")),
        };
        let stop = self.stop_sequences.clone();
        Ok(Knobs { temperature: self.temperature, top_p: self.top_p, top_k: self.top_k, max_tokens: self.max_tokens, stop, schema }.sampling())
    }
}

/// Why the reply ended, and the stop sequence that ended it when it is known.
fn stop_reason<'a>(answer: &Answer, stops: &'a [String]) -> (&'static str, Option<&'a str>) {
    match answer.done.finish_reason {
        _ if !answer.calls.is_empty() => ("tool_use", None),
        FinishReason::Length => ("max_tokens", None),
        // The plugin says a stop sequence matched, not which: it is known when there is one.
        FinishReason::Stop if !stops.is_empty() => ("stop_sequence", (stops.len() == 1).then(|| stops[0].as_str())),
        _ => ("end_turn", None),
    }
}

/// Anthropic's usage: `input_tokens` are those not read from the cache.
fn usage(answer: &Answer) -> Value {
    json!({
        "input_tokens": answer.done.tokens_in.saturating_sub(answer.cached),
        "cache_read_input_tokens": answer.cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": answer.done.tokens_out,
    })
}

fn tool_use(call: &ToolCall, input: Value) -> Value {
    json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": input })
}

fn message(id: &str, model: &str, answer: &Answer, stops: &[String]) -> Value {
    let mut content: Vec<Value> = Vec::new();
    if answer.has_text() {
        content.push(json!({ "type": "text", "text": answer.text }));
    }
    content.extend(answer.calls.iter().map(|c| tool_use(c, c.arguments.clone())));
    let (reason, sequence) = stop_reason(answer, stops);
    json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": reason, "stop_sequence": sequence, "usage": usage(answer), "rustai": answer.metadata,
    })
}

async fn create(State(state): State<AppState>, body: Result<Body<MessagesBody>, ApiError>) -> ApiResult<Response> {
    let Body(body) = body.map_err(ApiError::anthropic)?;
    match body.max_tokens {
        None => return Err(bad("`max_tokens` is required")),
        Some(0) => return Err(bad("`max_tokens` must be at least 1 (warming the prompt cache without a reply is not supported)")),
        Some(_) => {}
    }
    let resolved = generate::check_model(&state, &body.model, Task::Chat).map_err(ApiError::anthropic)?;
    let conversation = body.conversation()?;
    let job = TextJob::new(resolved, Input::Chat(conversation), body.sampling()?, SamplingExtras::default());
    let gen = generate::start(&state, job).await.map_err(ApiError::anthropic)?;
    let id = blocks::new_id("msg_");
    if !body.stream {
        let answer = blocks::answer(gen).await.map_err(ApiError::anthropic)?;
        return Ok(Json(message(&id, &body.model, &answer, &body.stop_sequences)).into_response());
    }
    Ok(blocks::stream(gen, Events { id, model: body.model, stops: body.stop_sequences, index: 0 }))
}

/// Anthropic's stream: `message_start`, `content_block_*` per block, `message_delta`, `message_stop`.
struct Events {
    id: String,
    model: String,
    stops: Vec<String>,
    /// The index of the next content block.
    index: usize,
}

impl Events {
    fn block_start(&self, block: Value) -> String {
        blocks::event("content_block_start", &json!({ "type": "content_block_start", "index": self.index, "content_block": block }))
    }

    fn delta(&self, delta: Value) -> String {
        blocks::event("content_block_delta", &json!({ "type": "content_block_delta", "index": self.index, "delta": delta }))
    }

    /// Ends the current block.
    fn block_stop(&mut self) -> String {
        let e = blocks::event("content_block_stop", &json!({ "type": "content_block_stop", "index": self.index }));
        self.index += 1;
        e
    }
}

impl Frames for Events {
    fn start(&mut self) -> Vec<String> {
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": { "input_tokens": 0, "output_tokens": 0 },
        });
        vec![blocks::event("message_start", &json!({ "type": "message_start", "message": message }))]
    }

    fn text_start(&mut self) -> Vec<String> {
        vec![self.block_start(json!({ "type": "text", "text": "" }))]
    }

    fn text_delta(&mut self, piece: &str) -> Vec<String> {
        vec![self.delta(json!({ "type": "text_delta", "text": piece }))]
    }

    fn text_stop(&mut self, _: &Answer) -> Vec<String> {
        vec![self.block_stop()]
    }

    fn tool_call(&mut self, call: &ToolCall) -> Vec<String> {
        vec![
            self.block_start(tool_use(call, json!({}))),
            self.delta(json!({ "type": "input_json_delta", "partial_json": blocks::arguments(call) })),
            self.block_stop(),
        ]
    }

    fn finish(&mut self, answer: &Answer) -> Vec<String> {
        let (reason, sequence) = stop_reason(answer, &self.stops);
        let delta = json!({
            "type": "message_delta", "delta": { "stop_reason": reason, "stop_sequence": sequence },
            "usage": usage(answer), "rustai": answer.metadata,
        });
        vec![blocks::event("message_delta", &delta), blocks::event("message_stop", &json!({ "type": "message_stop" }))]
    }

    fn error(&mut self, error: ApiError) -> Vec<String> {
        vec![blocks::event("error", &error.anthropic().body())]
    }
}

/// `{"input_tokens": N}`: the prompt the chat template renders for these messages and
/// tools, counted with the model's tokenizer (the model is loaded if it is not).
async fn count_tokens(State(state): State<AppState>, body: Result<Body<MessagesBody>, ApiError>) -> ApiResult<Json<Value>> {
    let Body(body) = body.map_err(ApiError::anthropic)?;
    let resolved = generate::check_model(&state, &body.model, Task::Chat).map_err(ApiError::anthropic)?;
    let conversation = body.conversation()?;
    let (prepared, _) = generate::prepare(&state.engine, resolved, LoadOptions::default(), SamplingParams::default())
        .await
        .map_err(ApiError::anthropic)?;
    // Rendering a template and tokenizing are CPU work: off the async runtime.
    let counted = tokio::task::spawn_blocking(move || {
        let model = prepared.lease.model();
        let (prompt, _) = render_prompt(model, &prepared.entry.id, &conversation)?;
        model.tokenize(&prompt, false).map(|t| t.len())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")).anthropic())?;
    let n = counted.map_err(|e| ApiError::from(e).anthropic())?;
    Ok(Json(json!({ "input_tokens": n })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> MessagesBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn blocks_become_turns_and_tools() {
        let b = body(json!({
            "model": "m", "max_tokens": 8, "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Rome"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}], "is_error": true}, {"type": "text", "text": "And?"}]},
            ],
            "tools": [{"name": "w", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        }));
        let c = b.conversation().unwrap();
        let roles: Vec<&str> = c.turns.iter().map(|t| t.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(c.turns[2].tool_calls[0].arguments, json!({"city": "Rome"}));
        assert_eq!((c.turns[3].name.as_deref(), c.turns[3].content.as_str()), (Some("w"), "Error: sunny"));
        assert_eq!((c.tools.choice, c.tools.parallel), (ToolChoice::Required, false));
    }

    #[test]
    fn unsupported_input_is_a_clear_400() {
        let refuse = |v: Value| body(v).conversation().unwrap_err();
        let image = refuse(json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}));
        assert_eq!((image.status, image.flavor), (StatusCode::BAD_REQUEST, crate::error::Flavor::Anthropic));
        assert!(image.message.contains("`image`"), "{}", image.message);
        let orphan = refuse(json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]}));
        assert!(orphan.message.contains("`x`"), "{}", orphan.message);
        let server_tool = refuse(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web_search_20250305", "name": "s"}]}));
        assert!(server_tool.message.contains("web_search_20250305"), "{}", server_tool.message);
    }
}
