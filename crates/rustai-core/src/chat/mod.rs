//! Conversations and tool calling, in core terms: what every API (OpenAI, Ollama,
//! Anthropic, Responses) and the CLI turn their requests into, and how a conversation
//! becomes a prompt.
//!
//! - [`template`]: the model's own Jinja chat template (`tokenizer.chat_template`),
//!   rendered with minijinja and its Python-compatibility methods, into prompt parts
//!   that keep template text and message content apart.
//! - [`format`]: the tool-call formats of the common model families (Hermes/Qwen
//!   `<tool_call>`, Llama 3.x JSON, Mistral `[TOOL_CALLS]`) and the generic one written
//!   here for templates with no tool support: how tools are offered, how calls are
//!   recognised in the output.
//! - [`grammar`]: a GBNF grammar from the tools' JSON schemas, so calls always parse.
//! - [`plan`]: a conversation and its tools, for one model, as one [`TextRequest`]
//!   plus the [`ToolReader`] that reads its output (streamed or whole).
//! - [`complete`]: one step run to the end on the caller's thread (the CLI).
//! - [`agent`]: server-side tool execution: the step logic the server and the CLI share.
//!
//! **Invariant:** nothing here knows wire JSON; the server converts at its edge. Tool-call
//! arguments reach a client or a tool only after they parsed and matched the tool's schema.
//!
//! [`TextRequest`]: crate::TextRequest

pub mod agent;
pub mod format;
pub mod grammar;
mod plan;
mod run;
mod stream;
pub mod template;

use serde_json::Value;

pub use format::ToolFormat;
pub use plan::{plan, render_prompt, ChatPlan};
pub use run::complete;
pub use stream::ToolReader;
pub use template::ChatTemplate;

/// One message of a conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text (may be empty for an assistant turn that only calls tools).
    pub content: String,
    /// Tools the assistant called in this turn.
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` turn: the call it answers.
    pub tool_call_id: Option<String>,
    /// For a `tool` turn: the tool's name, when known.
    pub name: Option<String>,
}

impl Turn {
    /// A plain message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into(), ..Self::default() }
    }

    /// An assistant turn that called `calls`.
    pub fn assistant_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self { role: "assistant".into(), content: content.into(), tool_calls: calls, ..Self::default() }
    }

    /// A tool's result, answering the call `call_id` of tool `name`.
    pub fn tool_result(call_id: impl Into<String>, name: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: "tool".into(), content: content.into(), tool_call_id: Some(call_id.into()), name: Some(name.into()), ..Self::default() }
    }
}

/// A call of a tool, as the model made it (arguments already checked against the schema).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Unique within the response, e.g. `call_3f2a…`.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments object.
    pub arguments: Value,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name (`[A-Za-z0-9_.-]`, at most 64 characters).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub parameters: Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (a grammar applies once it starts a call).
    #[default]
    Auto,
    /// No tool calls: the tools are not offered.
    None,
    /// The reply is one or more tool calls (constrained from the first token).
    Required,
    /// The reply is a call of this tool.
    Named(String),
}

/// The tools of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolSet {
    /// What is offered.
    pub tools: Vec<ToolSpec>,
    /// How the model may use them.
    pub choice: ToolChoice,
    /// Whether one reply may hold several calls.
    pub parallel: bool,
}

impl ToolSet {
    /// Whether the model may call a tool at all.
    pub fn active(&self) -> bool {
        !self.tools.is_empty() && self.choice != ToolChoice::None
    }
}

/// A conversation and the tools offered in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// The messages so far.
    pub turns: Vec<Turn>,
    /// Tools (empty: none).
    pub tools: ToolSet,
}

impl Conversation {
    /// A conversation without tools.
    pub fn new(turns: Vec<Turn>) -> Self {
        Self { turns, tools: ToolSet::default() }
    }
}

/// A reply read from the model's output: its text, and the tools it called.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Text meant for the user (tool-call markup removed).
    pub content: String,
    /// Calls, in order.
    pub tool_calls: Vec<ToolCall>,
}

/// A fresh call id: `call_` and 24 hex digits, unique within the process.
pub fn new_call_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    format!("call_{:016x}{:08x}", t ^ (u64::from(std::process::id()) << 40), n as u32)
}
