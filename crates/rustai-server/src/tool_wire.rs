//! Tools on the wire, OpenAI's shape (which Ollama's `/api/chat` shares): tool
//! definitions, `tool_choice`, assistant `tool_calls` and `tool` messages, converted
//! to and from the core's [`rustai_core::chat`] types.

use rustai_core::chat::{new_call_id, ToolCall, ToolChoice, ToolSpec, Turn};
use serde_json::{json, Value};

/// `tools`: `{"type": "function", "function": {name, description, parameters}}` each.
pub(crate) fn tools(list: &[Value]) -> Result<Vec<ToolSpec>, String> {
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
            if kind != "function" {
                return Err(format!("tools[{i}]: type `{kind}` is not supported (only `function`)"));
            }
            let f = t.get("function").ok_or_else(|| format!("tools[{i}]: a function tool needs a `function` object"))?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| format!("tools[{i}]: the function needs a `name`"))?;
            let parameters = match f.get("parameters") {
                None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
                Some(p) => p.clone(),
            };
            Ok(ToolSpec { name: name.to_owned(), description: f.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(), parameters })
        })
        .collect()
}

/// `tool_choice`: `auto`, `none`, `required`, or `{"type": "function", "function": {"name"}}`.
pub(crate) fn choice(v: Option<&Value>) -> Result<Option<ToolChoice>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" | "any" => Ok(Some(ToolChoice::Required)),
            other => Err(format!("unknown `tool_choice` `{other}` (auto, none, required, or a function)")),
        },
        Some(obj) => match obj.pointer("/function/name").or_else(|| obj.get("name")).and_then(Value::as_str) {
            Some(name) => Ok(Some(ToolChoice::Named(name.to_owned()))),
            None => Err("`tool_choice` as an object needs `function.name`".into()),
        },
    }
}

/// An assistant message's `tool_calls`; `arguments` is a JSON string (OpenAI) or an object (Ollama).
pub(crate) fn calls(v: &Value) -> Result<Vec<ToolCall>, String> {
    let Some(list) = v.as_array() else { return Err("`tool_calls` must be a list".into()) };
    list.iter()
        .map(|c| {
            let f = c.get("function").ok_or("a tool call needs a `function` object")?;
            let name = f.get("name").and_then(Value::as_str).ok_or("a tool call needs `function.name`")?;
            let arguments = match f.get("arguments") {
                None | Some(Value::Null) => json!({}),
                Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| format!("the arguments of call `{name}` are not JSON: {e}"))?,
                Some(other) => other.clone(),
            };
            let id = c.get("id").and_then(Value::as_str).map_or_else(new_call_id, str::to_owned);
            Ok(ToolCall { id, name: name.to_owned(), arguments })
        })
        .collect()
}

/// A `tool` message answering a call made earlier in `turns` (its tool's name looked up by id).
pub(crate) fn tool_turn(turns: &[Turn], call_id: &str, name: Option<&str>, content: String) -> Turn {
    let name = name.map(str::to_owned).or_else(|| {
        turns.iter().rev().flat_map(|t| t.tool_calls.iter()).find(|c| c.id == call_id).map(|c| c.name.clone())
    });
    Turn::tool_result(call_id, name.unwrap_or_default(), content)
}

/// Calls as OpenAI writes them (arguments as a JSON string).
pub(crate) fn openai_calls(calls: &[ToolCall]) -> Value {
    calls
        .iter()
        .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments.to_string() } }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_tools_and_choices_convert() {
        let t = tools(&[json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}})]).unwrap();
        assert_eq!(t[0].name, "f");
        assert!(tools(&[json!({"type": "web_search"})]).is_err());
        assert_eq!(choice(Some(&json!("required"))).unwrap(), Some(ToolChoice::Required));
        assert_eq!(choice(Some(&json!({"type": "function", "function": {"name": "f"}}))).unwrap(), Some(ToolChoice::Named("f".into())));
        assert!(choice(Some(&json!("sometimes"))).is_err());
        let c = calls(&json!([{"id": "x", "function": {"name": "f", "arguments": "{\"a\":1}"}}])).unwrap();
        assert_eq!(c[0].arguments, json!({"a": 1}));
        assert_eq!(openai_calls(&c)[0]["function"]["arguments"], "{\"a\":1}");
    }
}
