//! A generation as content blocks, the way the Anthropic Messages API (`anthropic`) and
//! the OpenAI Responses API (`responses`) both see a reply: text first, then the tools
//! the model called. Those two modules share the sampling fields, running a generation
//! to its [`Answer`], and the SSE stream with `event:` lines, whose order ([`Frames`]) is
//! the same in both: start, a text block (opened at the first piece), its end, one block
//! per tool call, the finish.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use axum::{
    body::Body as HttpBody,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use rustai_core::{
    abi::{Completion, FinishReason, RString, SamplingParams},
    chat::ToolCall,
    StreamEvent,
};
use serde_json::Value;

use crate::{
    error::{ApiError, ApiResult},
    generate::Generation,
};

/// The sampling fields both APIs have. Unset fields mean what they mean at OpenAI and
/// Anthropic (temperature 1, no top-k or top-p cut), not the engine's own defaults.
#[derive(Debug, Default)]
pub(crate) struct Knobs {
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) top_k: Option<i32>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) stop: Vec<String>,
    /// A JSON schema the reply must match.
    pub(crate) schema: Option<Value>,
}

impl Knobs {
    /// As core sampling parameters (validated later, with the job).
    pub(crate) fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self.top_k.unwrap_or(0),
            top_p: self.top_p.unwrap_or(1.0),
            min_p: 0.0,
            repeat_penalty: 1.0,
            max_tokens: self.max_tokens.unwrap_or(0),
            stop: self.stop.iter().map(|s| RString::from(s.as_str())).collect(),
            json_schema: self.schema.as_ref().map(|s| RString::from(s.to_string())).into(),
            ..SamplingParams::default()
        }
    }
}

/// A finished reply: its text, the tools it called, and the completion's counts.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The text for the user (tool-call markup removed).
    pub(crate) text: String,
    pub(crate) calls: Vec<ToolCall>,
    /// Prompt and generated tokens, and why it ended.
    pub(crate) done: Completion,
    /// Prompt tokens reused from the model's cache.
    pub(crate) cached: u32,
    /// The `rustai` object: which model and plugin served, what was adapted.
    pub(crate) metadata: Value,
}

impl Answer {
    fn new(gen: &Generation, done: Completion, streamed: Option<String>) -> Self {
        let (text, calls) = match gen.reply() {
            Some(r) => (streamed.unwrap_or_else(|| r.content.clone()), r.tool_calls.clone()),
            None => (streamed.unwrap_or_else(|| done.text.to_string()), Vec::new()),
        };
        Self { text, calls, done, cached: gen.cached_tokens(), metadata: gen.metadata() }
    }

    /// Whether generation stopped at the token limit.
    pub(crate) fn truncated(&self) -> bool {
        self.done.finish_reason == FinishReason::Length
    }

    /// Whether the reply has a text block: some text, or nothing else.
    pub(crate) fn has_text(&self) -> bool {
        !self.text.is_empty() || self.calls.is_empty()
    }
}

/// Run `gen` to the end (non-streaming requests).
pub(crate) async fn answer(mut gen: Generation) -> ApiResult<Answer> {
    loop {
        match gen.next().await {
            Some(StreamEvent::Done(done)) => return Ok(Answer::new(&gen, done, None)),
            Some(StreamEvent::Error(e)) => return Err(e.into()),
            Some(_) => {}
            None => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "generation ended without a result")),
        }
    }
}

/// An id with `prefix`, unique within the process (e.g. `msg_…`, `resp_…`).
pub(crate) fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{t:x}{n:04x}")
}

/// A tool call's arguments as the JSON text both APIs stream.
pub(crate) fn arguments(call: &ToolCall) -> String {
    call.arguments.to_string()
}

/// One server-sent event with an `event:` line.
pub(crate) fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// What a streamed reply is sent as, in this order: [`Self::start`]; [`Self::text_start`],
/// [`Self::text_delta`]s and [`Self::text_stop`] when there is text (or no tool call);
/// [`Self::tool_call`] for each call; [`Self::finish`]. [`Self::error`] can end it early.
pub(crate) trait Frames: Send + 'static {
    fn start(&mut self) -> Vec<String>;
    fn text_start(&mut self) -> Vec<String>;
    fn text_delta(&mut self, piece: &str) -> Vec<String>;
    /// The text block ends; `answer.text` is all of it.
    fn text_stop(&mut self, answer: &Answer) -> Vec<String>;
    fn tool_call(&mut self, call: &ToolCall) -> Vec<String>;
    fn finish(&mut self, answer: &Answer) -> Vec<String>;
    fn error(&mut self, error: ApiError) -> Vec<String>;
}

/// Stream `gen` as server-sent events rendered by `frames`.
pub(crate) fn stream(gen: Generation, mut frames: impl Frames) -> Response {
    let mut started = false;
    // The text sent so far; `None` until the text block opens.
    let mut text: Option<String> = None;
    let render = move |gen: &Generation, event: StreamEvent| {
        let mut out = Vec::new();
        if !std::mem::replace(&mut started, true) {
            out.extend(frames.start());
        }
        match event {
            StreamEvent::Piece(p) if p.is_empty() => {}
            StreamEvent::Piece(p) => {
                if text.is_none() {
                    out.extend(frames.text_start());
                }
                text.get_or_insert_with(String::new).push_str(&p);
                out.extend(frames.text_delta(&p));
            }
            StreamEvent::Done(done) => {
                let opened = text.is_some();
                let answer = Answer::new(gen, done, Some(text.take().unwrap_or_default()));
                if !opened && answer.has_text() {
                    out.extend(frames.text_start());
                }
                if opened || answer.has_text() {
                    out.extend(frames.text_stop(&answer));
                }
                for call in &answer.calls {
                    out.extend(frames.tool_call(call));
                }
                out.extend(frames.finish(&answer));
            }
            StreamEvent::Error(e) => out.extend(frames.error(ApiError::from(e))),
            StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_) => {}
        }
        out
    };
    sse(crate::stream::lines(gen, render))
}

/// An SSE response over `body`.
fn sse(body: impl futures_util::Stream<Item = Result<String, std::convert::Infallible>> + Send + 'static) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(HttpBody::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_prefixed() {
        let (a, b) = (new_id("msg_"), new_id("msg_"));
        assert!(a.starts_with("msg_") && a != b);
    }

    #[test]
    fn unset_knobs_mean_no_cut() {
        let p = Knobs { max_tokens: Some(5), stop: vec!["\n".into()], ..Knobs::default() }.sampling();
        assert_eq!((p.temperature, p.top_k, p.top_p, p.max_tokens, p.stop.len()), (1.0, 0, 1.0, 5, 1));
    }
}
