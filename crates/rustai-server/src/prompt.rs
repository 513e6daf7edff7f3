//! What a model sees: `/tokenize`, `/detokenize` and `/apply-template` (the prompt the
//! model's chat template renders for a conversation, tools included), as llama-server
//! offers them, with a `model` field since this server serves many models (the default
//! model when it is absent).

use axum::{extract::State, Json};
use rustai_core::{
    abi::SamplingParams,
    chat::{render_prompt, Conversation},
    LoadOptions, Prepared, Task,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    error::{ApiError, ApiResult},
    extract::Body,
    generate,
    state::AppState,
};

/// Most token ids one `/detokenize` takes.
const MAX_TOKENS: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenizeBody {
    #[serde(default)]
    model: Option<String>,
    content: String,
    #[serde(default)]
    add_special: bool,
    #[serde(default)]
    with_pieces: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetokenizeBody {
    #[serde(default)]
    model: Option<String>,
    tokens: Vec<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TemplateBody {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Value>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
}

/// Lease `model` (or the default chat model), loading it if needed.
async fn lease(state: &AppState, model: Option<&str>) -> ApiResult<Prepared> {
    let id = generate::check_model(state, model.unwrap_or(rustai_core::AUTO), Task::Chat)?;
    let (prepared, _) = generate::prepare(&state.engine, id, LoadOptions::default(), SamplingParams::default()).await?;
    Ok(prepared)
}

/// Run `f` with the leased model on the blocking pool.
async fn with_model<T: Send + 'static>(
    state: &AppState,
    model: Option<&str>,
    f: impl FnOnce(&Prepared) -> rustai_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let prepared = lease(state, model).await?;
    tokio::task::spawn_blocking(move || f(&prepared))
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))?
        .map_err(ApiError::from)
}

pub(crate) async fn tokenize(State(state): State<AppState>, Body(body): Body<TokenizeBody>) -> ApiResult<Json<Value>> {
    let TokenizeBody { model, content, add_special, with_pieces } = body;
    let out = with_model(&state, model.as_deref(), move |p| {
        let m = p.lease.model();
        let tokens = m.tokenize(&content, add_special)?;
        if !with_pieces {
            return Ok(json!({ "tokens": tokens }));
        }
        let pieces = tokens
            .iter()
            .map(|&t| Ok(json!({ "id": t, "piece": m.detokenize(&[t])? })))
            .collect::<rustai_core::Result<Vec<_>>>()?;
        Ok(json!({ "tokens": pieces }))
    })
    .await?;
    Ok(Json(out))
}

pub(crate) async fn detokenize(State(state): State<AppState>, Body(body): Body<DetokenizeBody>) -> ApiResult<Json<Value>> {
    if body.tokens.len() > MAX_TOKENS {
        return Err(ApiError::bad_request(format!("{} tokens; at most {MAX_TOKENS} per request", body.tokens.len())));
    }
    let tokens = body
        .tokens
        .iter()
        .map(|&t| i32::try_from(t).map_err(|_| ApiError::bad_request(format!("token id {t} is out of range"))))
        .collect::<ApiResult<Vec<i32>>>()?;
    let content = with_model(&state, body.model.as_deref(), move |p| p.lease.model().detokenize(&tokens)).await?;
    Ok(Json(json!({ "content": content })))
}

pub(crate) async fn apply_template(State(state): State<AppState>, Body(body): Body<TemplateBody>) -> ApiResult<Json<Value>> {
    let turns = crate::openai::turns(&body.messages)?;
    let (tools, _) = crate::openai::tool_set(&state, body.tools.as_deref(), body.tool_choice.as_ref(), body.parallel_tool_calls, None, None)?;
    let conv = Conversation { turns, tools };
    let (prompt, format) = with_model(&state, body.model.as_deref(), move |p| render_prompt(p.lease.model(), &p.entry.id, &conv)).await?;
    Ok(Json(json!({ "prompt": prompt, "tool_format": format.as_str() })))
}

/// llama-server's prompt routes.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/apply-template", post(apply_template))
}
