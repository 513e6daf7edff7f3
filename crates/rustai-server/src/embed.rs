//! Embeddings over HTTP: Ollama's `/api/embed` (and the older
//! `/api/embeddings`) and OpenAI's `/v1/embeddings` (float or base64), through
//! the engine's embedding models. Vectors are L2-normalised, as both APIs return them.

use std::time::Instant;

use axum::{extract::State, Json};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    convert::nanos,
    error::{ApiError, ApiResult},
    extract::Body,
    state::AppState,
};

/// One string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Input {
    One(String),
    Many(Vec<String>),
}

impl Input {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Most inputs in one request (OpenAI's limit too).
pub(crate) const MAX_INPUTS: usize = 2048;
/// Most input text in one request, in bytes (about 300k tokens, OpenAI's limit).
pub(crate) const MAX_INPUT_BYTES: usize = 1_200_000;

/// Embed `inputs` with `model` off the async runtime, within the limits and the model's lane.
async fn run(state: &AppState, model: String, inputs: Vec<String>) -> ApiResult<(String, rustai_core::abi::Embeddings, std::time::Duration)> {
    if inputs.is_empty() {
        return Err(ApiError::bad_request("`input` must not be empty"));
    }
    if inputs.len() > MAX_INPUTS {
        return Err(ApiError::bad_request(format!("`input` has {} items; at most {MAX_INPUTS} are accepted per request", inputs.len())));
    }
    let bytes: usize = inputs.iter().map(String::len).sum();
    if bytes > MAX_INPUT_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("`input` holds {bytes} bytes of text; at most {MAX_INPUT_BYTES} are accepted per request"),
        ));
    }
    let id = crate::generate::check_model(state, &model, rustai_core::Task::Embedding)?;
    let _ticket = state.admission.enter(&id).await?;
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let served = engine.embed(&model, &inputs, true)?;
        Ok((served.entry.id, served.output, served.load_duration))
    })
    .await
    .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))?
    .map_err(|e: rustai_core::Error| ApiError::from(e))
}

#[derive(Debug, Deserialize)]
pub(crate) struct OllamaEmbed {
    model: String,
    #[serde(default)]
    input: Option<Input>,
    /// `/api/embeddings` (legacy) sends `prompt`.
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    truncate: Option<bool>,
}

pub(crate) async fn ollama(State(state): State<AppState>, Body(body): Body<OllamaEmbed>) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let legacy = body.input.is_none();
    let inputs = match (body.input, body.prompt) {
        (Some(i), _) => i.into_vec(),
        (None, Some(p)) => vec![p],
        (None, None) => return Err(ApiError::bad_request("`input` is required")),
    };
    let (_, out, load) = run(&state, body.model.clone(), inputs).await?;
    if body.truncate == Some(false) && !out.truncated.is_empty() {
        return Err(ApiError::bad_request(format!("input {} exceeds the model's context length and truncate is false", out.truncated[0])));
    }
    let vectors: Vec<Vec<f32>> = out.vectors.iter().map(|v| v.to_vec()).collect();
    if legacy {
        return Ok(Json(json!({ "embedding": vectors.into_iter().next().unwrap_or_default() })));
    }
    Ok(Json(json!({
        "model": body.model,
        "embeddings": vectors,
        "total_duration": nanos(started.elapsed()),
        "load_duration": nanos(load),
        "prompt_eval_count": out.tokens_in,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct OpenAiEmbed {
    model: String,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

pub(crate) async fn openai(State(state): State<AppState>, Body(body): Body<OpenAiEmbed>) -> ApiResult<Json<Value>> {
    let fail = |e: ApiError| e.openai();
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(fail(ApiError::bad_request(format!("encoding_format `{other}`: use float or base64")))),
    };
    let (_, out, _) = run(&state, body.model.clone(), body.input.into_vec()).await.map_err(fail)?;
    if let Some(d) = body.dimensions.filter(|d| *d != out.dimensions) {
        return Err(fail(ApiError::bad_request(format!("this model has {} dimensions; it cannot return {d}", out.dimensions))));
    }
    let data: Vec<Value> = out
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(v.to_vec())
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": { "prompt_tokens": out.tokens_in, "total_tokens": out.tokens_in },
    })))
}

/// The embedding routes of both APIs.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/api/embed", post(ollama))
        .route("/api/embeddings", post(ollama))
        .route("/v1/embeddings", post(openai))
}
