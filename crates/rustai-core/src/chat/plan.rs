//! A conversation, for one loaded model, as one [`TextRequest`]: rendered with the
//! model's own chat template (when it has one) into prompt parts, with the tools offered
//! the way the model's format expects and a grammar that keeps its calls parseable;
//! plus the [`ToolReader`] that reads the output.
//!
//! A model without a template (remote providers, or a file that carries none) goes to
//! its plugin's own chat path, as before; tool calling needs a template.

use rustai_abi::{feature, ChatMessage, ChatRequest, GenerateOptions, GenerateRequest, RString, RVec, SamplingParams};
use serde_json::{json, Value};

use super::{
    format::{generic_prompt, generic_turns, ToolFormat},
    grammar, Conversation, ToolChoice, ToolReader, ToolSpec, Turn,
};
use crate::{
    error::{Error, Result},
    families::{LlmModel, TextRequest},
};

/// Most tools one request may offer.
const MAX_TOOLS: usize = 128;

/// What to run for a conversation, and how to read its output.
#[derive(Debug)]
pub struct ChatPlan {
    /// The request for the model.
    pub request: TextRequest,
    /// Reads tool calls out of the output; `None` when no tool may be called.
    pub reader: Option<ToolReader>,
}

/// Plan `conv` on `model` (whose id is `model_id`, for messages) with `params`; `options`
/// carries what the API asked beyond sampling (log-probabilities).
pub fn plan(model: &LlmModel, model_id: &str, conv: &Conversation, params: SamplingParams, options: GenerateOptions) -> Result<ChatPlan> {
    check(conv)?;
    let active = conv.tools.active();
    let Some(template) = model.chat_template().map_err(|message| Error::Template { model: model_id.to_owned(), message })? else {
        if active {
            return Err(Error::InvalidChat(format!("model `{model_id}` has no chat template, and tool calling needs one")));
        }
        if options.logprobs {
            return Err(Error::InvalidChat(format!("model `{model_id}` has no chat template; log-probabilities need one")));
        }
        let messages: RVec<ChatMessage> = generic_turns(&conv.turns, None).iter().map(|t| ChatMessage::new(t.role.clone(), t.content.clone())).collect();
        return Ok(ChatPlan { request: TextRequest::Chat(ChatRequest { messages, params }), reader: None });
    };
    let offered: Vec<ToolSpec> = match &conv.tools.choice {
        ToolChoice::Named(name) => conv.tools.tools.iter().filter(|t| &t.name == name).cloned().collect(),
        _ => conv.tools.tools.clone(),
    };
    let detected = ToolFormat::detect(template.source());
    let native = template.takes_tools() && detected != ToolFormat::Generic;
    let format = if native { detected } else { ToolFormat::Generic };
    let required = matches!(conv.tools.choice, ToolChoice::Required | ToolChoice::Named(_));
    let (messages, tools_json) = if native {
        let tools = active.then(|| offered.iter().map(openai_tool).collect::<Vec<_>>());
        (conv.turns.iter().map(openai_message).collect::<Vec<_>>(), tools)
    } else {
        let prompt = active.then(|| generic_prompt(&offered, required));
        (generic_turns(&conv.turns, prompt.as_deref()).iter().map(openai_message).collect(), None)
    };
    let parts = template
        .render_parts(&messages, tools_json.as_deref(), true)
        .map_err(|message| Error::Template { model: model_id.to_owned(), message })?;
    let mut params = params;
    let mut options = GenerateOptions { prompt_parts: parts.into(), ..options };
    let has = |f: &str| model.plugin().has_feature(f);
    if active {
        if params.grammar.is_some() || params.json_schema.is_some() {
            return Err(Error::InvalidChat("`tools` cannot be combined with a grammar or a JSON response format in one request".into()));
        }
        let parallel = conv.tools.parallel && !matches!(conv.tools.choice, ToolChoice::Named(_));
        let lazy_ok = has(feature::LAZY_GRAMMAR);
        if has(feature::GRAMMAR) && (required || lazy_ok) {
            let g = grammar::tool_calls(&offered, &format.shape(), parallel);
            if g.len() > rustai_abi::limits::MAX_GRAMMAR_BYTES {
                return Err(Error::InvalidChat(format!(
                    "the tools' schemas make a grammar of {} bytes, over the limit of {}: offer fewer or smaller tools",
                    g.len(),
                    rustai_abi::limits::MAX_GRAMMAR_BYTES
                )));
            }
            params.grammar = Some(RString::from(g)).into();
            if !required {
                options.grammar_triggers = format.triggers().iter().map(|t| RString::from(*t)).collect();
            }
        }
    }
    let request = GenerateRequest { prompt: RString::from(options.joined_prompt()), prompt_tokens: RVec::new(), add_special: false, params };
    let reader = active.then(|| ToolReader::new(format, offered, required));
    Ok(ChatPlan { request: TextRequest::With(request, options), reader })
}

/// What the template renders for `conv` (the prompt text, as `/apply-template` shows it),
/// and the tool-call format used.
pub fn render_prompt(model: &LlmModel, model_id: &str, conv: &Conversation) -> Result<(String, ToolFormat)> {
    let planned = plan(model, model_id, conv, SamplingParams::default(), GenerateOptions::default())?;
    let format = planned.reader.as_ref().map_or(ToolFormat::Generic, ToolReader::format);
    match planned.request {
        TextRequest::With(_, options) => Ok((options.joined_prompt(), format)),
        TextRequest::Chat(r) => {
            let text = model.apply_chat_template(r.messages.as_slice(), true)?;
            Ok((text, format))
        }
        TextRequest::Generate(r) => Ok((r.prompt.into_string(), format)),
    }
}

/// The request's own consistency: messages present, tool names valid and unique, a named
/// choice among the tools, schemas that are objects.
fn check(conv: &Conversation) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidChat(m));
    if conv.turns.is_empty() {
        return bad("a chat request needs at least one message".into());
    }
    let tools = &conv.tools.tools;
    if tools.len() > MAX_TOOLS {
        return bad(format!("{} tools offered; at most {MAX_TOOLS} are allowed", tools.len()));
    }
    for (i, t) in tools.iter().enumerate() {
        let valid = !t.name.is_empty() && t.name.len() <= 64 && t.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return bad(format!("tool name {:?} is not valid: use 1 to 64 letters, digits, `_`, `-` or `.`", t.name));
        }
        if tools[..i].iter().any(|o| o.name == t.name) {
            return bad(format!("tool `{}` is offered twice", t.name));
        }
        if !t.parameters.is_object() {
            return bad(format!("the parameters of tool `{}` must be a JSON schema object", t.name));
        }
        if let Err(e) = jsonschema::validator_for(&t.parameters) {
            return bad(format!("the parameters of tool `{}` are not a valid JSON schema: {e}", t.name));
        }
    }
    match &conv.tools.choice {
        ToolChoice::Named(name) if !tools.iter().any(|t| &t.name == name) => {
            bad(format!("`tool_choice` names `{name}`, which is not among the tools offered"))
        }
        ToolChoice::Required if tools.is_empty() => bad("`tool_choice` is `required` but no tools are offered".into()),
        _ => Ok(()),
    }
}

/// A turn as the OpenAI-shaped message object chat templates are written for.
fn openai_message(t: &Turn) -> Value {
    let mut m = json!({ "role": t.role, "content": t.content });
    if !t.tool_calls.is_empty() {
        m["tool_calls"] = t
            .tool_calls
            .iter()
            .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } }))
            .collect();
    }
    if let Some(id) = &t.tool_call_id {
        m["tool_call_id"] = json!(id);
    }
    if let Some(name) = &t.name {
        m["name"] = json!(name);
    }
    m
}

/// A tool as the OpenAI-shaped object chat templates are written for.
fn openai_tool(t: &ToolSpec) -> Value {
    json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } })
}
