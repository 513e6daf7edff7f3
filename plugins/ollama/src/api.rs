//! The Ollama wire format: bodies for `/api/chat`, `/api/generate` and
//! `/api/embed`, and parsing of their answers, of `/api/tags` and of `/api/show`.

use rustai_plugin::serde_json;
use rustai_plugin::{ChatRequest, GenerateRequest, PluginError, ROption, SamplingParams};
use serde_json::{json, Map, Value};

/// Ollama's `options` for `p`, plus `num_ctx` when the config sets a context length.
pub(crate) fn options(p: &SamplingParams, num_ctx: Option<u32>) -> Value {
    let mut o = Map::new();
    if p.max_tokens > 0 {
        o.insert("num_predict".into(), json!(p.max_tokens));
    }
    o.insert("temperature".into(), json!(p.temperature.max(0.0)));
    o.insert("top_k".into(), json!(p.top_k.max(0)));
    o.insert("top_p".into(), json!(if p.top_p > 0.0 { p.top_p.min(1.0) } else { 1.0 }));
    o.insert("min_p".into(), json!(p.min_p.max(0.0)));
    o.insert("repeat_penalty".into(), json!(p.repeat_penalty));
    o.insert("repeat_last_n".into(), json!(p.repeat_last_n));
    if let ROption::RSome(seed) = p.seed {
        // Ollama reads a signed integer and treats negative seeds as "random".
        o.insert("seed".into(), json!(seed & (i64::MAX as u64)));
    }
    if !p.stop.is_empty() {
        o.insert("stop".into(), p.stop.iter().map(|s| Value::from(s.as_str())).collect());
    }
    if let Some(n) = num_ctx {
        o.insert("num_ctx".into(), json!(n));
    }
    o.into()
}

fn common(model: &str, p: &SamplingParams, stream: bool, num_ctx: Option<u32>) -> Result<Map<String, Value>, PluginError> {
    if let ROption::RSome(_) = p.grammar {
        return Err(PluginError::unsupported("GBNF grammars cannot be sent to an Ollama server; use a JSON schema"));
    }
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("stream".into(), stream.into());
    body.insert("options".into(), options(p, num_ctx));
    if let ROption::RSome(schema) = &p.json_schema {
        let schema: Value = serde_json::from_str(schema.as_str())
            .map_err(|e| PluginError::invalid_input(format!("the JSON schema is not valid JSON: {e}")))?;
        body.insert("format".into(), schema);
    }
    Ok(body)
}

/// The body of an `/api/chat` request.
pub(crate) fn chat_body(model: &str, req: &ChatRequest, stream: bool, num_ctx: Option<u32>) -> Result<Value, PluginError> {
    if req.messages.is_empty() {
        return Err(PluginError::invalid_input("a chat request needs at least one message"));
    }
    let mut body = common(model, &req.params, stream, num_ctx)?;
    let messages: Vec<Value> = req.messages.iter().map(|m| json!({ "role": m.role.as_str(), "content": m.content.as_str() })).collect();
    body.insert("messages".into(), messages.into());
    Ok(body.into())
}

/// The body of an `/api/generate` request: a raw prompt, no template.
pub(crate) fn generate_body(model: &str, req: &GenerateRequest, stream: bool, num_ctx: Option<u32>) -> Result<Value, PluginError> {
    if !req.prompt_tokens.is_empty() {
        return Err(PluginError::unsupported("remote models take the prompt as text, not token ids"));
    }
    if req.prompt.is_empty() {
        return Err(PluginError::invalid_input("the prompt is empty"));
    }
    let mut body = common(model, &req.params, stream, num_ctx)?;
    body.insert("prompt".into(), req.prompt.as_str().into());
    body.insert("raw".into(), true.into());
    Ok(body.into())
}

/// What one NDJSON line (or a whole answer) says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Chunk {
    /// New text (`message.content` or `response`).
    pub(crate) piece: Option<String>,
    /// `done`.
    pub(crate) done: bool,
    /// `done_reason`.
    pub(crate) reason: Option<String>,
    /// `prompt_eval_count`, `eval_count`.
    pub(crate) counts: (Option<u32>, Option<u32>),
    /// `prompt_eval_duration`, `eval_duration`, in milliseconds.
    pub(crate) durations_ms: (Option<f64>, Option<f64>),
}

fn count(v: &Value, key: &str) -> Option<u32> {
    v.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

fn ms(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_u64).filter(|n| *n > 0).map(|ns| ns as f64 / 1e6)
}

/// Parse a line; `Err` carries the error the server sent in it.
pub(crate) fn parse(v: &Value) -> Result<Chunk, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Err(e.as_str().map_or_else(|| e.to_string(), str::to_owned));
    }
    let piece = v.pointer("/message/content").or_else(|| v.get("response")).and_then(Value::as_str);
    Ok(Chunk {
        piece: piece.map(str::to_owned),
        done: v.get("done").and_then(Value::as_bool).unwrap_or(false),
        reason: v.get("done_reason").and_then(Value::as_str).map(str::to_owned),
        counts: (count(v, "prompt_eval_count"), count(v, "eval_count")),
        durations_ms: (ms(v, "prompt_eval_duration"), ms(v, "eval_duration")),
    })
}

/// Model names listed by `/api/tags`.
pub(crate) fn tag_names(v: &Value) -> Vec<String> {
    let models = v.get("models").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    models.iter().filter_map(|m| m.get("name").or_else(|| m.get("model")).and_then(Value::as_str)).map(str::to_owned).collect()
}

/// Whether `name` is one of `names` (`x` and `x:latest` are the same model).
pub(crate) fn listed(names: &[String], name: &str) -> bool {
    let bare = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_owned();
    names.iter().any(|n| bare(n) == bare(name))
}

/// What `/api/show` tells about a model.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Shown {
    pub(crate) architecture: Option<String>,
    pub(crate) parameters: u64,
    pub(crate) context_length: u32,
    pub(crate) embedding_length: u32,
    pub(crate) quantization: Option<String>,
}

/// Parse an `/api/show` answer.
pub(crate) fn shown(v: &Value) -> Shown {
    let info = v.get("model_info");
    let arch = info.and_then(|i| i.get("general.architecture")).and_then(Value::as_str).map(str::to_owned);
    let arch_key = |k: &str| arch.as_ref().and_then(|a| info?.get(format!("{a}.{k}"))?.as_u64()).and_then(|n| u32::try_from(n).ok());
    Shown {
        parameters: info.and_then(|i| i.get("general.parameter_count")).and_then(Value::as_u64).unwrap_or(0),
        context_length: arch_key("context_length").unwrap_or(0),
        embedding_length: arch_key("embedding_length").unwrap_or(0),
        quantization: v.pointer("/details/quantization_level").and_then(Value::as_str).filter(|q| !q.is_empty()).map(str::to_owned),
        architecture: arch,
    }
}

/// Vectors of an `/api/embed` answer and the prompt tokens.
pub(crate) fn parse_embeddings(v: &Value, expected: usize) -> Result<(Vec<Vec<f32>>, u32), String> {
    let list = v.get("embeddings").and_then(Value::as_array).ok_or("the answer has no `embeddings` list")?;
    if list.len() != expected {
        return Err(format!("got {} embeddings for {expected} inputs", list.len()));
    }
    let vectors = list
        .iter()
        .map(|e| {
            let nums = e.as_array().ok_or("an embedding is not a list")?;
            nums.iter().map(|x| x.as_f64().map(|f| f as f32).ok_or("an embedding holds something that is not a number")).collect()
        })
        .collect::<Result<Vec<Vec<f32>>, &str>>()?;
    Ok((vectors, count(v, "prompt_eval_count").unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustai_plugin::{ChatMessage, RString};

    #[test]
    fn bodies_map_sampling() {
        let mut params = SamplingParams::greedy();
        params.max_tokens = 9;
        params.seed = ROption::RSome(7);
        params.stop = vec![RString::from("END")].into();
        params.json_schema = ROption::RSome(r#"{"type":"object"}"#.into());
        let req = ChatRequest { messages: vec![ChatMessage::new("user", "hi")].into(), params: params.clone() };
        let b = chat_body("m", &req, false, Some(2048)).unwrap();
        let o = &b["options"];
        assert_eq!((o["num_predict"].as_u64(), o["seed"].as_u64(), o["num_ctx"].as_u64()), (Some(9), Some(7), Some(2048)));
        assert_eq!((o["temperature"].as_f64(), o["stop"][0].as_str()), (Some(0.0), Some("END")));
        assert_eq!((b["stream"].as_bool(), b["format"]["type"].as_str()), (Some(false), Some("object")));
        let g = generate_body("m", &GenerateRequest::new("Once", params), true, None).unwrap();
        assert_eq!((g["raw"].as_bool(), g["prompt"].as_str()), (Some(true), Some("Once")));
        assert!(g["options"].get("num_ctx").is_none());
    }

    #[test]
    fn parses_lines_tags_and_show() {
        let c = parse(&json!({"message":{"role":"assistant","content":"Pa"},"done":false})).unwrap();
        assert_eq!((c.piece.as_deref(), c.done), (Some("Pa"), false));
        let c = parse(&json!({"response":"","done":true,"done_reason":"length","prompt_eval_count":4,"eval_count":2,"eval_duration":2_000_000})).unwrap();
        assert_eq!((c.done, c.reason.as_deref(), c.counts, c.durations_ms), (true, Some("length"), (Some(4), Some(2)), (None, Some(2.0))));
        assert_eq!(parse(&json!({"error":"boom"})).unwrap_err(), "boom");
        let names = tag_names(&json!({"models":[{"name":"llama3:latest"},{"name":"qwen:0.5b"}]}));
        assert!(listed(&names, "llama3") && listed(&names, "qwen:0.5b") && !listed(&names, "qwen"));
        let s = shown(&json!({"model_info":{"general.architecture":"llama","llama.context_length":8192,"general.parameter_count":135},"details":{"quantization_level":"Q4_1"}}));
        assert_eq!((s.architecture.as_deref(), s.context_length, s.parameters, s.quantization.as_deref()), (Some("llama"), 8192, 135, Some("Q4_1")));
    }
}
