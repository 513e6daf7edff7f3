//! The OpenAI wire format: request bodies for `/chat/completions`,
//! `/completions` and `/embeddings`, and the parsing of their answers (a
//! whole answer and a streamed chunk share one parser).

use rustai_plugin::serde_json;
use rustai_plugin::{ChatRequest, GenerateRequest, PluginError, ROption, SamplingParams};
use serde_json::{json, Map, Value};

/// Sampling fields of the OpenAI API. Fields it does not have (top-k, min-p,
/// repetition penalty) are not sent: strict servers reject unknown fields.
pub(crate) fn sampling(body: &mut Map<String, Value>, p: &SamplingParams) -> Result<(), PluginError> {
    if let ROption::RSome(_) = p.grammar {
        return Err(PluginError::unsupported("GBNF grammars cannot be sent to an OpenAI-compatible server; use a JSON schema"));
    }
    body.insert("temperature".into(), json!(p.temperature.max(0.0)));
    if p.top_p > 0.0 && p.top_p < 1.0 {
        body.insert("top_p".into(), json!(p.top_p));
    }
    if p.max_tokens > 0 {
        body.insert("max_tokens".into(), json!(p.max_tokens));
    }
    if let ROption::RSome(seed) = p.seed {
        body.insert("seed".into(), json!(seed));
    }
    if !p.stop.is_empty() {
        body.insert("stop".into(), p.stop.iter().map(|s| Value::from(s.as_str())).collect());
    }
    if let ROption::RSome(schema) = &p.json_schema {
        let schema: Value = serde_json::from_str(schema.as_str())
            .map_err(|e| PluginError::invalid_input(format!("the JSON schema is not valid JSON: {e}")))?;
        body.insert("response_format".into(), json!({ "type": "json_schema", "json_schema": { "name": "output", "schema": schema } }));
    }
    Ok(())
}

fn common(model: &str, stream: bool) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("stream".into(), stream.into());
    if stream {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    body
}

/// The body of a `/chat/completions` request.
pub(crate) fn chat_body(model: &str, req: &ChatRequest, stream: bool) -> Result<Value, PluginError> {
    if req.messages.is_empty() {
        return Err(PluginError::invalid_input("a chat request needs at least one message"));
    }
    let mut body = common(model, stream);
    let messages: Vec<Value> = req.messages.iter().map(|m| json!({ "role": m.role.as_str(), "content": m.content.as_str() })).collect();
    body.insert("messages".into(), messages.into());
    sampling(&mut body, &req.params)?;
    Ok(body.into())
}

/// The body of a `/completions` request.
pub(crate) fn completion_body(model: &str, req: &GenerateRequest, stream: bool) -> Result<Value, PluginError> {
    if !req.prompt_tokens.is_empty() {
        return Err(PluginError::unsupported("remote models take the prompt as text, not token ids"));
    }
    if req.prompt.is_empty() {
        return Err(PluginError::invalid_input("the prompt is empty"));
    }
    let mut body = common(model, stream);
    body.insert("prompt".into(), req.prompt.as_str().into());
    sampling(&mut body, &req.params)?;
    Ok(body.into())
}

/// What one answer or stream chunk says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Chunk {
    /// New text (`delta.content`, `message.content` or `text`).
    pub(crate) piece: Option<String>,
    /// `finish_reason`, once given.
    pub(crate) finish: Option<String>,
    /// `(prompt_tokens, completion_tokens)`.
    pub(crate) usage: Option<(Option<u32>, Option<u32>)>,
}

fn count(v: &Value, key: &str) -> Option<u32> {
    v.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// Parse an answer or a chunk; `Err` carries the error message the server sent in it.
pub(crate) fn parse(v: &Value) -> Result<Chunk, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let msg = e.get("message").and_then(Value::as_str).map(str::to_owned).or_else(|| e.as_str().map(str::to_owned));
        return Err(msg.unwrap_or_else(|| e.to_string()));
    }
    let choice = v.get("choices").and_then(|c| c.get(0));
    let piece = choice.and_then(|c| {
        c.pointer("/delta/content").or_else(|| c.pointer("/message/content")).or_else(|| c.get("text")).and_then(Value::as_str)
    });
    let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
    let usage = v.get("usage").filter(|u| u.is_object()).map(|u| (count(u, "prompt_tokens"), count(u, "completion_tokens")));
    Ok(Chunk { piece: piece.map(str::to_owned), finish: finish.map(str::to_owned), usage })
}

/// The body of an `/embeddings` request.
pub(crate) fn embed_body(model: &str, inputs: &[&str]) -> Value {
    json!({ "model": model, "input": inputs, "encoding_format": "float" })
}

/// Vectors of an `/embeddings` answer in input order, and the prompt tokens.
pub(crate) fn parse_embeddings(v: &Value, expected: usize) -> Result<(Vec<Vec<f32>>, u32), String> {
    let data = v.get("data").and_then(Value::as_array).ok_or("the answer has no `data` list")?;
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (pos, item) in data.iter().enumerate() {
        let index = item.get("index").and_then(Value::as_u64).map_or(pos, |i| i as usize);
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or("an item has no `embedding` list (only encoding_format \"float\" is read)")?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32).ok_or("an embedding holds something that is not a number"))
            .collect::<Result<Vec<f32>, _>>()?;
        let slot = out.get_mut(index).ok_or_else(|| format!("embedding index {index} is out of range (sent {expected} inputs)"))?;
        *slot = Some(vector);
    }
    let vectors = out.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| format!("got {} embeddings for {expected} inputs", data.len()))?;
    Ok((vectors, v.get("usage").and_then(|u| count(u, "prompt_tokens")).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustai_plugin::{ChatMessage, RString};

    #[test]
    fn chat_body_maps_sampling() {
        let mut params = SamplingParams::greedy();
        params.max_tokens = 7;
        params.seed = ROption::RSome(42);
        params.stop = vec![RString::from("\n")].into();
        params.json_schema = ROption::RSome(r#"{"type":"object"}"#.into());
        let req = ChatRequest { messages: vec![ChatMessage::new("user", "hi")].into(), params };
        let b = chat_body("m", &req, true).unwrap();
        assert_eq!(b["messages"][0]["content"], "hi");
        assert_eq!((b["temperature"].as_f64(), b["max_tokens"].as_u64(), b["seed"].as_u64()), (Some(0.0), Some(7), Some(42)));
        assert_eq!(b["stop"][0], "\n");
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["response_format"]["json_schema"]["schema"]["type"], "object");
        assert!(b.get("top_k").is_none() && b.get("min_p").is_none() && b.get("repeat_penalty").is_none());
    }

    #[test]
    fn parses_chunks_and_answers() {
        let c = parse(&json!({"choices":[{"delta":{"content":"Par"},"finish_reason":null}]})).unwrap();
        assert_eq!((c.piece.as_deref(), c.finish), (Some("Par"), None));
        let c = parse(&json!({"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}})).unwrap();
        assert_eq!(c.usage, Some((Some(5), Some(2))));
        let c = parse(&json!({"choices":[{"message":{"content":"Paris"},"finish_reason":"stop"}]})).unwrap();
        assert_eq!((c.piece.as_deref(), c.finish.as_deref()), (Some("Paris"), Some("stop")));
        let c = parse(&json!({"choices":[{"text":" is","finish_reason":"length"}]})).unwrap();
        assert_eq!(c.piece.as_deref(), Some(" is"));
        assert_eq!(parse(&json!({"error":{"message":"boom"}})).unwrap_err(), "boom");
    }

    #[test]
    fn parses_embeddings_in_index_order() {
        let v = json!({"data":[{"index":1,"embedding":[1.0]},{"index":0,"embedding":[0.5]}],"usage":{"prompt_tokens":3}});
        assert_eq!(parse_embeddings(&v, 2).unwrap(), (vec![vec![0.5], vec![1.0]], 3));
        assert!(parse_embeddings(&v, 3).is_err());
    }
}
