//! # rustai-server: Ollama- and OpenAI-compatible HTTP APIs over the RustAI engine
//!
//! A library so the server can be embedded and tested; `rustai serve` is a
//! thin wrapper. Only this crate knows the Ollama and OpenAI JSON shapes: it
//! converts them to core types at the edge.
//!
//! ## Layout
//! - [`ServerConfig`] (`config`), [`router`], [`serve`]: settings, routes, the listener with
//!   graceful shutdown. `state`: what handlers share, and the sub-states middleware takes.
//! - Each API module returns its own routes, merged by [`router`]: `ollama`: `/api/*`
//!   (NDJSON streaming). `openai`: `/v1/*` (SSE streaming). `embed`: `/api/embed`,
//!   `/api/embeddings`, `/v1/embeddings`. `audio`: `/v1/audio/*`. `tools`: `/v1/tools`,
//!   `/v1/tools/{name}` (tool plugins' tools, listed and called). `anthropic`: `/v1/messages*`
//!   (Anthropic's Messages API); `responses`: `/v1/responses*` (OpenAI's Responses API, kept in
//!   `response_store`); both send replies as `blocks` (text, then tool calls).
//! - `runtime`: `/`, `/health`, `/metrics` (Prometheus; `counters`), `/plugins`, `/models/installed`,
//!   `/runtime/load/{model}`, `/runtime/unload/{model}`.
//! - `generate` + `stream`: the shared generation path; a client that disconnects
//!   cancels its generation.
//! - `listen`: the accept loop (header read timeout, graceful shutdown). `guard`: Host,
//!   Origin and content-type checks against cross-site requests and DNS rebinding.
//! - `admission`: a bounded queue per model (503 past it). `limit`: per-client rate limit
//!   (429 + `Retry-After`). `auth`: optional API keys (`api_key`: the key a request presents).
//!   `extract`: JSON bodies with clear 400/413 errors.
//! - [`fetch`]: one resumable, sha256-checked model file download (also `rustai pull`);
//!   `download_jobs`: those downloads run in the background (`/download/*`), through `egress`;
//!   `upstream`: requests for models not found here forwarded to another server.
//! - [`client`]: typed calls to a running server (`rustai ps`), so callers know no wire JSON.
//! - `error`: [`ApiError`], a status and a JSON body in each API's shape.
//!
//! **Invariant:** handlers never block the async runtime: model loads and
//! generation run on the blocking pool.
//!
//! **Invariant:** module imports run one way, never in a circle: `state` builds on
//! `auth`, `limit` and `download_jobs`, which take only their own sub-state (`FromRef`)
//! and never `AppState`; no module imports this root.

mod admission;
mod anthropic;
mod api_key;
mod audio;
mod auth;
mod blocks;
pub mod client;
mod config;
mod convert;
mod counters;
mod download_jobs;
mod egress;
mod embed;
pub mod error;
mod extract;
pub mod fetch;
mod generate;
mod guard;
mod limit;
mod listen;
mod ollama;
mod openai;
mod prompt;
mod response_store;
mod responses;
mod runtime;
mod state;
mod stream;
mod tool_wire;
mod tools;
mod upstream;

use std::sync::atomic::Ordering;

use axum::{
    extract::{DefaultBodyLimit, FromRef},
    http::StatusCode,
    middleware, Router,
};
use rustai_core::{Engine, EventKind};

pub use config::ServerConfig;
pub use error::{ApiError, ApiResult};
use state::AppState;

/// Every route (each API module's, merged), with authentication and the body limit.
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    let body_limit = config.body_limit;
    let read_timeout = config.read_timeout;
    let state = AppState::new(engine, config);
    count_plugin_events(&state);
    Router::new()
        .merge(runtime::routes())
        .merge(ollama::routes())
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(responses::routes())
        .merge(embed::routes())
        .merge(audio::routes())
        .merge(tools::routes())
        .merge(prompt::routes())
        .merge(download_jobs::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), upstream::fallback))
        // Outermost first at run time: authentication, then the rate limit (keyed by the valid key).
        // Each takes only its own part of the state.
        .layer(middleware::from_fn_with_state(limit::RateLimit::from_ref(&state), limit::rate_limit))
        .layer(middleware::from_fn_with_state(auth::ApiKeys::from_ref(&state), auth::require_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), runtime::count_http))
        .layer(DefaultBodyLimit::max(body_limit))
        // A body that stops part-way is cut off (the header timeout is in `listen`).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(read_timeout))
        // Outermost: Host, Origin and content-type checks before anything else runs.
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .with_state(state)
}

/// Count plugin reloads and rejections for `/metrics`.
fn count_plugin_events(state: &AppState) {
    let mut events = state.engine.plugins().subscribe();
    let counters = std::sync::Arc::clone(&state.counters);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) if e.kind == EventKind::Reloaded => _ = counters.reloads.fetch_add(1, Ordering::Relaxed),
                    Ok(e) if e.kind == EventKind::Rejected => _ = counters.rejections.fetch_add(1, Ordering::Relaxed),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// Listen on `listener` until `shutdown` resolves; then stop accepting and give
/// running requests `shutdown_grace` to finish (streams still running after
/// that are dropped, which cancels their generations).
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let read_timeout = config.read_timeout;
    let send_buffer = config.send_buffer;
    let app = router(engine, config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = listen::run(listener, app, read_timeout, send_buffer, async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let mut server = std::pin::pin!(server);
    tokio::select! {
        r = &mut server => r,
        () = async { let _ = rx.await; tokio::time::sleep(grace).await } => {
            tracing::warn!("shutdown grace of {grace:?} over; cancelling what is still running");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use rustai_core::{EngineConfig, PluginManager, Registry};

    use super::*;

    /// The merged routes behind the sub-state middleware: authentication first, then the
    /// rate limit keyed by the valid key; `/health` open; the download handlers on their sub-state.
    #[tokio::test]
    async fn merged_routes_behind_auth_and_rate_limit() {
        let none: [&std::path::Path; 0] = [];
        let engine = Engine::new(PluginManager::from_dirs(none).unwrap(), Registry::scan_only(none), None, EngineConfig::default());
        let config = ServerConfig { api_keys: vec!["secret".into()], rate_limit_per_minute: 2, ..ServerConfig::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener, engine, config, std::future::pending()));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let get = |path: &str, key: Option<&str>| {
            let mut r = http.get(format!("http://{addr}{path}"));
            if let Some(k) = key {
                r = r.header("x-api-key", k);
            }
            r.send()
        };
        assert_eq!(get("/health", None).await.unwrap().status(), 200, "no key needed");
        let refused = client::running_models(&addr, None).await.unwrap_err();
        assert!(matches!(refused, client::ClientError::Status { status: 401, .. }), "{refused}");
        assert!(matches!(client::running_models(&addr, Some("wrong")).await, Err(client::ClientError::Status { status: 401, .. })));
        // Two requests a minute with the key (refusals above never reached the limiter).
        assert_eq!(client::running_models(&addr, Some("secret")).await.unwrap(), Vec::new());
        let missing = get("/download/dl-9", Some("secret")).await.unwrap();
        assert_eq!(missing.status(), 404);
        assert!(missing.text().await.unwrap().contains("no download `dl-9`"));
        let limited = get("/", Some("secret")).await.unwrap();
        assert_eq!(limited.status(), 429);
        assert!(limited.headers().contains_key("retry-after"));
        assert_eq!(get("/nowhere", None).await.unwrap().status(), 401, "authentication before the fallback");
    }
}
