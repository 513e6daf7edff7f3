//! # rustai-server: Ollama- and OpenAI-compatible HTTP APIs over the RustAI engine
//!
//! A library so the server can be embedded and tested; `rustai serve` is a
//! thin wrapper. Only this crate knows the Ollama and OpenAI JSON shapes: it
//! converts them to core types at the edge.
//!
//! ## Layout
//! - [`ServerConfig`], [`router`], [`serve`]: settings, routes, the listener with
//!   graceful shutdown.
//! - `ollama`: `/api/*` (NDJSON streaming). `openai`: `/v1/*` (SSE streaming).
//! - `runtime`: `/health`, `/metrics` (Prometheus), `/plugins`, `/models/installed`,
//!   `/runtime/load/{model}`, `/runtime/unload/{model}`.
//! - `generate` + `stream`: the shared generation path; a client that disconnects
//!   cancels its generation.
//! - `listen`: the accept loop (header read timeout, graceful shutdown). `guard`: Host,
//!   Origin and content-type checks against cross-site requests and DNS rebinding.
//! - `admission`: a bounded queue per model (503 past it). `limit`: per-client rate limit
//!   (429 + `Retry-After`). `auth`: optional API keys. `extract`: JSON bodies with clear 400/413 errors.
//! - [`download`] + `downloads`: resumable, sha256-checked model downloads (`/download/*`);
//!   `upstream`: requests for models not found here forwarded to another server.
//! - `error`: [`ApiError`], a status and a JSON body in each API's shape.
//!
//! **Invariant:** handlers never block the async runtime: model loads and
//! generation run on the blocking pool.

mod admission;
mod audio;
mod auth;
mod convert;
pub mod download;
mod downloads;
mod egress;
mod embed;
pub mod error;
mod extract;
mod generate;
mod guard;
mod limit;
mod listen;
mod ollama;
mod openai;
mod runtime;
mod state;
mod stream;
mod upstream;

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    routing::{get, post},
    Router,
};
use rustai_core::{Engine, EventKind};

pub use error::{ApiError, ApiResult};
use state::AppState;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (default 127.0.0.1:11434, Ollama's port).
    pub addr: SocketAddr,
    /// Accepted API keys; empty = no authentication.
    pub api_keys: Vec<String>,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Requests generating at once per model.
    pub parallel: usize,
    /// Requests that may wait per model beyond those running; more get 503.
    pub max_queue: usize,
    /// Requests per minute per client (API key, else IP address); 0 = unlimited.
    pub rate_limit_per_minute: u32,
    /// An Ollama/OpenAI-compatible server to forward requests for models not found here.
    pub upstream: Option<String>,
    /// A streaming client that reads nothing for this long is cut off and its generation cancelled.
    pub stall_timeout: Duration,
    /// A client that sends no request header bytes, or no body bytes, for this long is disconnected.
    pub read_timeout: Duration,
    /// Kernel send buffer per connection, bytes (fixed, so a client that stops reading pins little memory).
    pub send_buffer: usize,
    /// Longest audio `/v1/audio/transcriptions` accepts, in seconds.
    pub max_audio_secs: f64,
    /// Let `/download/start` fetch from loopback and private addresses (off: such URLs are refused).
    pub allow_private_downloads: bool,
    /// Largest file `/download/start` accepts, bytes.
    pub max_download_bytes: u64,
    /// Browser origins allowed to call the API (`*` = any); others get 403.
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback and the listen address (`*` = any).
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 11434)),
            api_keys: Vec::new(),
            body_limit: 8 << 20,
            shutdown_grace: Duration::from_secs(10),
            parallel: 4,
            max_queue: 64,
            rate_limit_per_minute: 0,
            upstream: None,
            stall_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            send_buffer: 128 << 10,
            max_audio_secs: 600.0,
            allow_private_downloads: false,
            max_download_bytes: 64 << 30,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Every route, with authentication and the body limit.
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    let body_limit = config.body_limit;
    let read_timeout = config.read_timeout;
    let state = AppState::new(engine, config);
    count_plugin_events(&state);
    Router::new()
        .route("/", get(|| async { "RustAI is running" }))
        .route("/api/version", get(ollama::version))
        .route("/api/tags", get(ollama::tags))
        .route("/api/ps", get(ollama::ps))
        .route("/api/show", post(ollama::show))
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/embed", post(embed::ollama))
        .route("/api/embeddings", post(embed::ollama))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(embed::openai))
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/audio/speech", post(audio::speech))
        .route("/health", get(runtime::health))
        .route("/metrics", get(runtime::metrics))
        .route("/plugins", get(runtime::plugins))
        .route("/models/installed", get(runtime::installed))
        .route("/runtime/load/{model}", post(runtime::load))
        .route("/runtime/unload/{model}", post(runtime::unload))
        .route("/download/start", post(downloads::start))
        .route("/download/{id}", get(downloads::status))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), upstream::fallback))
        // Outermost first at run time: authentication, then the rate limit (keyed by the valid key).
        .layer(middleware::from_fn_with_state(state.clone(), limit::rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
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
