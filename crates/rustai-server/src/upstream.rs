//! Upstream fallback: a request naming a model this server does not
//! have is forwarded, body and headers as received, to another
//! Ollama/OpenAI-compatible server, and its answer (streams included) is
//! relayed back unchanged.

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, state::AppState};

/// Endpoints whose body names a model.
fn forwardable(path: &str) -> bool {
    matches!(
        path,
        "/api/generate" | "/api/chat" | "/api/show" | "/api/embed" | "/api/embeddings" | "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings"
    )
}

pub(crate) async fn fallback(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(upstream) = state.config.upstream.clone() else { return next.run(req).await };
    if !forwardable(req.uri().path()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.body_limit).await {
        Ok(b) => b,
        Err(_) => return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is larger than the server's limit").into_response(),
    };
    let model = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("model").or_else(|| v.get("name")).and_then(|m| m.as_str()).map(str::to_owned));
    // Only names that match nothing here go upstream (`auto` is the engine's own choice;
    // an ambiguous name gets its 400 here).
    let unknown = model.as_deref().is_some_and(|m| {
        m != rustai_core::AUTO && matches!(state.engine.registry().lookup(m), Err(rustai_core::Error::UnknownModel { .. }))
    });
    if !unknown {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    }
    let url = format!("{}{}", upstream.trim_end_matches('/'), parts.uri.path_and_query().map_or("", |p| p.as_str()));
    tracing::info!(model = model.as_deref().unwrap_or(""), %url, "model not here; forwarding upstream");
    forward(&state, &url, &parts.headers, bytes).await
}

async fn forward(state: &AppState, url: &str, headers: &axum::http::HeaderMap, body: Bytes) -> Response {
    let mut req = state.http.post(url).body(body);
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT] {
        // With keys configured here, the client's Authorization is *our* key: never pass it on.
        if name == header::AUTHORIZATION && !state.config.api_keys.is_empty() {
            continue;
        }
        if let Some(v) = headers.get(&name) {
            req = req.header(name.as_str(), v.as_bytes());
        }
    }
    match req.send().await {
        Ok(upstream) => {
            let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = upstream.headers().get(reqwest::header::CONTENT_TYPE).map(|v| v.as_bytes().to_vec());
            let mut r = Response::builder().status(status).header("x-rustai-upstream", "1");
            if let Some(ct) = content_type {
                r = r.header(header::CONTENT_TYPE, ct);
            }
            r.body(Body::from_stream(upstream.bytes_stream())).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            tracing::warn!("upstream {url} failed: {e}");
            ApiError::new(StatusCode::BAD_GATEWAY, "the model is not here and the upstream server did not answer").into_response()
        }
    }
}
