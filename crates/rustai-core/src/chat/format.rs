//! Tool-call formats: how a model family writes a call, how tools are offered to it,
//! and how calls are read back out of its text.
//!
//! | format | a call looks like | chosen when the template |
//! |---|---|---|
//! | [`ToolFormat::Hermes`] | `<tool_call>{"name": …, "arguments": {…}}</tool_call>` | writes `<tool_call>` (Hermes, Qwen 2/2.5/3) |
//! | [`ToolFormat::Llama3`] | `{"name": …, "parameters": {…}}` (or after `<|python_tag|>`) | writes `<|python_tag|>` or Llama 3 headers with tools |
//! | [`ToolFormat::Mistral`] | `[TOOL_CALLS][{"name": …, "arguments": {…}}]` | writes `[TOOL_CALLS]` |
//! | [`ToolFormat::Generic`] | the Hermes markup, taught by a system prompt written here | knows nothing of tools (SmolLM2, Gemma, …) |
//!
//! The formats were learned from the model cards and templates; the prompt and the
//! readers are this project's.

use serde_json::{json, Value};

use super::{grammar::CallShape, new_call_id, Reply, ToolCall, ToolSpec, Turn};

/// The tool-call format a model's template implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>` JSON blocks (Hermes, Qwen).
    Hermes,
    /// A bare JSON object with `parameters` (Llama 3.x).
    Llama3,
    /// `[TOOL_CALLS]` and a JSON array (Mistral).
    Mistral,
    /// Templates without tool support: the Hermes markup, offered by a system prompt.
    Generic,
}

impl ToolFormat {
    /// The format the template `source` implies.
    pub fn detect(source: &str) -> Self {
        if source.contains("[TOOL_CALLS]") {
            Self::Mistral
        } else if source.contains("<tool_call>") {
            Self::Hermes
        } else if source.contains("<|python_tag|>") || (source.contains("<|start_header_id|>") && source.contains("tools")) {
            Self::Llama3
        } else {
            Self::Generic
        }
    }

    /// Lower-case name (for `/apply-template` and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hermes => "hermes",
            Self::Llama3 => "llama3",
            Self::Mistral => "mistral",
            Self::Generic => "generic",
        }
    }

    /// How calls are written, for the grammar.
    pub fn shape(self) -> CallShape {
        match self {
            Self::Hermes | Self::Generic => {
                CallShape { prefix: "<tool_call>\n", separator: "\n</tool_call>\n<tool_call>\n", suffix: "\n</tool_call>", args_key: "arguments" }
            }
            Self::Llama3 => CallShape { prefix: "", separator: "; ", suffix: "", args_key: "parameters" },
            Self::Mistral => CallShape { prefix: "[TOOL_CALLS][", separator: ", ", suffix: "]", args_key: "arguments" },
        }
    }

    /// Where a call starts: the words that switch a lazy grammar on.
    pub fn triggers(self) -> &'static [&'static str] {
        match self {
            Self::Hermes | Self::Generic => &["<tool_call>"],
            Self::Llama3 => &["{\"name\""],
            Self::Mistral => &["[TOOL_CALLS]"],
        }
    }

    /// The text that opens a call in a stream (content before it is the user's).
    pub(crate) fn opening(self) -> &'static [&'static str] {
        match self {
            Self::Hermes | Self::Generic => &["<tool_call>"],
            Self::Llama3 => &["<|python_tag|>", "{\"name\""],
            // `[TOOL_CALLS]` is a control token that plugins may not write out as text.
            Self::Mistral => &["[TOOL_CALLS]", "[{\"name\""],
        }
    }

    /// `call` as the model would have written it (for templates that do not render
    /// `tool_calls` themselves).
    pub fn write_calls(self, calls: &[ToolCall]) -> String {
        let shape = self.shape();
        // Name first, as the grammar and the prompt write it.
        let body: Vec<String> =
            calls.iter().map(|c| format!("{{\"name\": {}, \"{}\": {}}}", Value::String(c.name.clone()), shape.args_key, c.arguments)).collect();
        format!("{}{}{}", shape.prefix, body.join(shape.separator), shape.suffix)
    }

    /// Read the calls in `text`, checking each against `tools`.
    pub fn parse(self, text: &str, tools: &[ToolSpec]) -> Result<Reply, String> {
        let (content, raw) = match self {
            Self::Hermes | Self::Generic => hermes_calls(text)?,
            Self::Mistral => match text.find("[TOOL_CALLS]") {
                Some(at) => {
                    let rest = text[at + "[TOOL_CALLS]".len()..].trim();
                    let calls: Vec<Value> = match serde_json::from_str::<Value>(rest) {
                        Ok(Value::Array(a)) => a,
                        Ok(one @ Value::Object(_)) => vec![one],
                        _ => return Err(format!("the text after [TOOL_CALLS] is not a JSON list of calls: {}", clip(rest))),
                    };
                    (text[..at].trim().to_owned(), calls)
                }
                // The marker is a control token a plugin may not write out: a reply that is a
                // JSON list of calls is one.
                None if text.trim_start().starts_with("[{\"name\"") => match serde_json::from_str::<Value>(text.trim()) {
                    Ok(Value::Array(calls)) => (String::new(), calls),
                    _ => return Err(format!("a list of tool calls is not valid JSON: {}", clip(text))),
                },
                None => (text.to_owned(), Vec::new()),
            },
            Self::Llama3 => {
                let t = text.trim_start();
                let t = t.strip_prefix("<|python_tag|>").unwrap_or(t).trim();
                if t.starts_with('{') {
                    let calls = t
                        .split("; ")
                        .map(|c| serde_json::from_str::<Value>(c.trim()).map_err(|e| format!("a tool call is not valid JSON ({e}): {}", clip(c))))
                        .collect::<Result<Vec<_>, _>>()?;
                    (String::new(), calls)
                } else {
                    (text.to_owned(), Vec::new())
                }
            }
        };
        let args_key = self.shape().args_key;
        let mut tool_calls: Vec<ToolCall> = Vec::new();
        for c in raw {
            let call = read_call(&c, args_key, tools)?;
            // A small model may repeat a call word for word: the same call twice is one call.
            if !tool_calls.iter().any(|t| t.name == call.name && t.arguments == call.arguments) {
                tool_calls.push(call);
            }
        }
        Ok(Reply { content, tool_calls })
    }
}

/// The `<tool_call>` blocks of `text` (a last block may lack its closing tag) and the text
/// around them.
fn hermes_calls(text: &str) -> Result<(String, Vec<Value>), String> {
    let (mut content, mut calls, mut rest) = (String::new(), Vec::new(), text);
    while let Some(at) = rest.find("<tool_call>") {
        content.push_str(&rest[..at]);
        let body = &rest[at + "<tool_call>".len()..];
        let (inner, after) = match body.find("</tool_call>") {
            Some(end) => (&body[..end], &body[end + "</tool_call>".len()..]),
            None => (body, ""),
        };
        let call = serde_json::from_str::<Value>(inner.trim()).map_err(|e| format!("a tool call is not valid JSON ({e}): {}", clip(inner)))?;
        calls.push(call);
        rest = after;
    }
    content.push_str(rest);
    Ok((content.trim().to_owned(), calls))
}

/// One call object: its tool must be offered and its arguments must match the schema.
fn read_call(call: &Value, args_key: &str, tools: &[ToolSpec]) -> Result<ToolCall, String> {
    let name = call.get("name").and_then(Value::as_str).ok_or_else(|| format!("a tool call has no \"name\": {}", clip(&call.to_string())))?;
    let tool = tools.iter().find(|t| t.name == name).ok_or_else(|| format!("the model called `{name}`, which is not one of the tools offered"))?;
    let mut arguments = call.get(args_key).or_else(|| call.get("arguments")).cloned().unwrap_or_else(|| json!({}));
    if let Value::String(s) = &arguments {
        arguments = serde_json::from_str(s).map_err(|e| format!("the arguments of `{name}` are not JSON ({e})"))?;
    }
    validate_call(tool, &arguments)?;
    Ok(ToolCall { id: new_call_id(), name: name.to_owned(), arguments })
}

/// Check `arguments` against `tool`'s schema (JSON Schema, with the `jsonschema` crate).
pub fn validate_call(tool: &ToolSpec, arguments: &Value) -> Result<(), String> {
    if !arguments.is_object() {
        return Err(format!("the arguments of `{}` are not a JSON object", tool.name));
    }
    let validator = jsonschema::validator_for(&tool.parameters).map_err(|e| format!("the schema of tool `{}` is not a valid JSON schema: {e}", tool.name))?;
    let errors: Vec<String> = validator.iter_errors(arguments).take(3).map(|e| format!("{} at `{}`", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("the arguments of `{}` do not match its schema: {}", tool.name, errors.join("; ")))
    }
}

/// At most 200 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The system prompt that offers `tools` to a model whose template knows nothing of
/// tools. Written for this project.
pub fn generic_prompt(tools: &[ToolSpec], required: bool) -> String {
    let mut s = String::from("You can use tools. These are the tools, one JSON object per line:\n<tools>\n");
    for t in tools {
        s.push_str(&json!({ "name": t.name, "description": t.description, "parameters": t.parameters }).to_string());
        s.push('\n');
    }
    s.push_str("</tools>\nTo use a tool, answer with a JSON object in a <tool_call> block: <tool_call>\n{\"name\": <the tool's name>, \"arguments\": <an object with the tool's parameters>}\n</tool_call>");
    s.push_str(" and nothing after it. A tool's result comes back inside <tool_response></tool_response>.");
    if required {
        s.push_str(" Answer this message with a tool call.");
    } else {
        s.push_str(" If no tool is needed, answer directly.");
    }
    s
}

/// After the tool results of a generic turn: small models otherwise copy the results
/// instead of answering with them.
const RESULT_NOTE: &str = "\nUse this result to answer my question.";

/// `turns` rewritten for a template without tool support: the tool prompt joins the
/// system message (or becomes one), assistant calls become their markup, and tool
/// results become user messages (templates without tools often refuse other roles).
pub fn generic_turns(turns: &[Turn], prompt: Option<&str>) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len() + 1);
    if let Some(prompt) = prompt {
        match turns.first() {
            Some(first) if first.role == "system" => out.push(Turn::new("system", format!("{}\n\n{prompt}", first.content))),
            _ => out.push(Turn::new("system", prompt)),
        }
    }
    let skip = usize::from(prompt.is_some() && turns.first().is_some_and(|t| t.role == "system"));
    for t in &turns[skip..] {
        match t.role.as_str() {
            "assistant" if !t.tool_calls.is_empty() => {
                let calls = ToolFormat::Generic.write_calls(&t.tool_calls);
                let content = if t.content.is_empty() { calls } else { format!("{}\n{calls}", t.content) };
                out.push(Turn::new("assistant", content));
            }
            "tool" => {
                let body = json!({ "name": t.name.clone().unwrap_or_default(), "content": t.content }).to_string();
                let text = format!("<tool_response>\n{body}\n</tool_response>");
                match out.last_mut() {
                    Some(prev) if prev.role == "user" && prev.content.ends_with(RESULT_NOTE) => {
                        prev.content.truncate(prev.content.len() - RESULT_NOTE.len());
                        prev.content.push('\n');
                        prev.content.push_str(&text);
                        prev.content.push_str(RESULT_NOTE);
                    }
                    _ => out.push(Turn::new("user", format!("{text}{RESULT_NOTE}"))),
                }
            }
            _ => out.push(Turn::new(t.role.clone(), t.content.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "get_weather".into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}),
        }]
    }

    #[test]
    fn formats_are_detected_from_the_template() {
        assert_eq!(ToolFormat::detect("{{ '<tool_call>' }}"), ToolFormat::Hermes);
        assert_eq!(ToolFormat::detect("[TOOL_CALLS]"), ToolFormat::Mistral);
        assert_eq!(ToolFormat::detect("<|start_header_id|>{% if tools %}"), ToolFormat::Llama3);
        assert_eq!(ToolFormat::detect("<|im_start|>"), ToolFormat::Generic);
    }

    #[test]
    fn calls_of_each_format_parse() {
        let r = ToolFormat::Hermes.parse("Let me see.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", &tools()).unwrap();
        assert_eq!(r.content, "Let me see.");
        assert_eq!(r.tool_calls[0].arguments, json!({"city": "Paris"}));
        let r = ToolFormat::Llama3.parse("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", &tools()).unwrap();
        assert_eq!(r.tool_calls[0].arguments["city"], "Oslo");
        let r = ToolFormat::Mistral.parse("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}]", &tools()).unwrap();
        assert_eq!(r.tool_calls[0].arguments["city"], "Rome");
        // Mistral's marker is a control token a plugin may not print: a bare list is calls too.
        let r = ToolFormat::Mistral.parse("[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}]", &tools()).unwrap();
        assert_eq!(r.tool_calls[0].arguments["city"], "Lima");
        let plain = ToolFormat::Hermes.parse("It is sunny.", &tools()).unwrap();
        assert!(plain.tool_calls.is_empty());
        assert_eq!(plain.content, "It is sunny.");
    }

    #[test]
    fn bad_calls_are_errors_not_calls() {
        let t = tools();
        assert!(ToolFormat::Hermes.parse("<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>", &t).unwrap_err().contains("not one of the tools"));
        assert!(ToolFormat::Hermes.parse("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"town\": 1}}</tool_call>", &t).unwrap_err().contains("do not match"));
        assert!(ToolFormat::Hermes.parse("<tool_call>{\"name\": ", &t).unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn generic_turns_fold_tool_results_into_user_messages() {
        let call = ToolCall { id: "c1".into(), name: "get_weather".into(), arguments: json!({"city": "Paris"}) };
        let turns = vec![Turn::new("user", "Weather?"), Turn::assistant_calls("", vec![call]), Turn::tool_result("c1", "get_weather", "sunny")];
        let out = generic_turns(&turns, Some("PROMPT"));
        assert_eq!(out[0].role, "system");
        assert!(out[2].content.starts_with("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {"), "{:?}", out[2]);
        assert_eq!(out[3].role, "user");
        assert!(out[3].content.contains("\"content\":\"sunny\""));
    }
}
