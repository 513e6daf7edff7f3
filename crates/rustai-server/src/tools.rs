//! Tools over HTTP ([`routes`]), behind the same authentication as every `/v1` route:
//!
//! - `GET /v1/tools`: `{"object": "list", "data": [{"type": "function", "plugin", "function":
//!   {"name", "description", "parameters"}}]}`, every tool of every loaded tool plugin, in
//!   the shape of OpenAI's `tools` (`name` is what `POST` takes: the tool's own name, or
//!   `plugin.name` when two plugins offer it).
//! - `POST /v1/tools/{name}`: the body is the arguments object itself (`{}` for none);
//!   the answer is `{"name", "plugin", "content", "is_error"}`. A tool that ran and failed is
//!   a 200 with `is_error: true` (its `content` says why, for the model). Unknown tool 404,
//!   arguments not an object or refused by the plugin 400, no answer within
//!   [`ServerConfig::tool_timeout`](crate::ServerConfig) 504, too many calls still running 503.
//!
//! The call runs on the blocking pool ([`rustai_core::Engine::call_tool`], which waits on
//! its own thread with the timeout).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    error::{ApiError, ApiResult},
    extract::Body,
    state::AppState,
};

/// `/v1/tools` and `/v1/tools/{name}`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/tools", get(list)).route("/v1/tools/{name}", post(call))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let engine = state.engine.clone();
    // Listing asks each tool plugin for its tools: plugin code, so off the async runtime.
    let tools = tokio::task::spawn_blocking(move || engine.tools()).await.map_err(worker_failed)?;
    let data: Vec<Value> = tools
        .into_iter()
        .map(|t| {
            json!({
                "type": "function",
                "plugin": t.plugin,
                "function": {"name": t.call_name, "description": t.description, "parameters": t.parameters},
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

async fn call(State(state): State<AppState>, Path(name): Path<String>, Body(arguments): Body<Value>) -> ApiResult<Json<Value>> {
    let engine = state.engine.clone();
    let timeout = state.config.tool_timeout;
    let result = tokio::task::spawn_blocking(move || engine.call_tool(&name, &arguments, timeout))
        .await
        .map_err(worker_failed)?
        .map_err(|e| ApiError::from(e).openai())?;
    Ok(Json(json!({ "name": result.name, "plugin": result.plugin, "content": result.content, "is_error": result.is_error })))
}

fn worker_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")).openai()
}
