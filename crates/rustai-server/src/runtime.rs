//! RustAI's own endpoints ([`routes`]): health, Prometheus metrics, plugins with
//! their lifecycle state, installed models, and explicit load / unload; and the
//! middleware that counts every HTTP request for the metrics.

use std::{fmt::Write, sync::atomic::Ordering};

use axum::{
    extract::{Path, State},
    http::header,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use rustai_core::{abi::HealthStatus, LoadOptions};
use serde_json::{json, Value};

use crate::{
    convert::{details, rfc3339},
    error::{ApiError, ApiResult},
    state::AppState,
};

/// RustAI's own routes: `/` (a greeting), health, metrics, plugins, installed models, load / unload.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { "RustAI is running" }))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/plugins", get(plugins))
        .route("/models/installed", get(installed))
        .route("/runtime/load/{model}", post(load))
        .route("/runtime/unload/{model}", post(unload))
}

pub(crate) async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "plugins": state.engine.plugins().plugins().len(),
        "models": state.engine.registry().len(),
        "loaded_models": state.engine.pool().status().len(),
    }))
}

pub(crate) async fn plugins(State(state): State<AppState>) -> Json<Value> {
    let manager = state.engine.plugins();
    let loaded: Vec<Value> = manager
        .plugins()
        .iter()
        .map(|p| {
            let h = p.health();
            let status = match h.status {
                HealthStatus::Healthy => "active",
                HealthStatus::Degraded => "degraded",
                HealthStatus::Unhealthy => "unhealthy",
            };
            json!({
                "id": p.id(), "name": p.info().name.as_str(), "version": p.version(),
                "category": p.info().category.as_str(), "families": p.families(),
                "formats": p.info().capabilities.formats.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "features": p.info().capabilities.features.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "state": status, "health": h.message.as_str(), "generation": p.generation(),
                "loaded_at": rfc3339(p.loaded_at()), "sha256": p.digest(),
            })
        })
        .collect();
    let rejected: Vec<Value> = manager
        .rejected()
        .iter()
        .map(|r| json!({ "file": r.path.file_name().map(|n| n.to_string_lossy().into_owned()), "state": "rejected", "reason": r.reason.to_string() }))
        .collect();
    Json(json!({ "plugins": loaded, "rejected": rejected }))
}

pub(crate) async fn installed(State(state): State<AppState>) -> Json<Value> {
    let registry = state.engine.registry();
    let models: Vec<Value> = registry
        .entries()
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "name": m.full_name(), "task": m.task.as_str(), "format": m.format.as_str(),
                "size": m.size, "local": m.is_local(), "details": details(m), "tags": m.tags, "priority": m.priority,
                "plugin": rustai_core::Registry::plugin_for(m, state.engine.plugins()).map(|p| p.id().to_owned()),
            })
        })
        .collect();
    let unusable: Vec<Value> = registry
        .unrecognised()
        .iter()
        .map(|u| json!({ "file": u.path.file_name().map(|n| n.to_string_lossy().into_owned()), "reason": u.reason }))
        .collect();
    Json(json!({ "models": models, "unusable": unusable }))
}

pub(crate) async fn load(State(state): State<AppState>, Path(model): Path<String>) -> ApiResult<Json<Value>> {
    let engine = state.engine.clone();
    let loaded = tokio::task::spawn_blocking(move || engine.preload(&model, &LoadOptions::default()))
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))??;
    Ok(Json(json!({
        "model": loaded.entry.id, "plugin": loaded.plugin, "family": loaded.entry.task.family().map(|f| f.as_str()),
        "status": "loaded", "load_ms": loaded.load_duration.as_millis() as u64,
    })))
}

/// Forget a model in the pool; it is unloaded as soon as its running requests end.
pub(crate) fn unload_model(state: &AppState, model: &str) -> ApiResult<bool> {
    let entry = state.engine.registry().lookup(model)?;
    let path = entry.path().ok_or_else(|| ApiError::bad_request(format!("`{}` is a remote model", entry.id)))?;
    Ok(state.engine.pool().unload(path))
}

pub(crate) async fn unload(State(state): State<AppState>, Path(model): Path<String>) -> ApiResult<Json<Value>> {
    let was_loaded = unload_model(&state, &model)?;
    Ok(Json(json!({ "model": model, "status": if was_loaded { "unloaded" } else { "not loaded" } })))
}

/// Count every HTTP request by route and status for `/metrics`.
pub(crate) async fn count_http(State(state): State<AppState>, req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let key = (route, response.status().as_u16());
    *state.counters.http.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
    response
}

/// Prometheus text format.
/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let e = &state.engine;
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP rustai_{name} {help}\n# TYPE rustai_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "rustai_{name}{labels} {v}");
        }
    };
    let per_model = e.metrics().per_model();
    let by_model = |f: &dyn Fn(&rustai_core::Summary) -> f64| -> Vec<(String, f64)> {
        per_model.iter().map(|(m, s)| (format!("{{model=\"{}\"}}", label(m)), f(s))).collect()
    };
    metric("requests_total", "counter", "Requests of every family (generation, embeddings, speech), by model.", by_model(&|s| s.requests as f64));
    metric("request_failures_total", "counter", "Failed requests, by model.", by_model(&|s| s.failures as f64));
    metric("prompt_tokens_total", "counter", "Prompt tokens processed, by model.", by_model(&|s| s.tokens_in as f64));
    metric("generated_tokens_total", "counter", "Tokens generated, by model.", by_model(&|s| s.tokens_out as f64));
    // A Prometheus histogram: cumulative buckets, then _sum and _count.
    let mut latency = Vec::new();
    for (m, summary) in &per_model {
        let model = label(m);
        let mut cumulative = 0;
        for (i, n) in summary.latency_histogram.iter().enumerate() {
            cumulative += n;
            let le = rustai_core::engine::metrics::LATENCY_BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            latency.push((format!("_bucket{{model=\"{model}\",le=\"{le}\"}}"), cumulative as f64));
        }
        latency.push((format!("_sum{{model=\"{model}\"}}"), summary.total_latency.as_secs_f64()));
        latency.push((format!("_count{{model=\"{model}\"}}"), summary.requests as f64));
    }
    metric("request_latency_seconds", "histogram", "Request latency (lookup, load, generation), by model.", latency);
    metric("request_latency_seconds_max", "gauge", "Longest request latency, by model.", by_model(&|s| s.max_latency.as_secs_f64()));
    metric("generation_tokens_per_second", "gauge", "Mean generation speed, by model.", by_model(&|s| s.tokens_per_s()));
    let c = &state.counters;
    metric("requests_in_flight", "gauge", "Generations running now.", vec![(String::new(), c.in_flight.load(Ordering::Relaxed) as f64)]);
    let lanes = state.admission.status();
    metric("queue_waiting", "gauge", "Requests waiting for their turn, by model.", lanes.iter().map(|(m, _, w)| (format!("{{model=\"{}\"}}", label(m)), *w as f64)).collect());
    metric("rate_limited_total", "counter", "Requests refused with 429.", vec![(String::new(), c.rate_limited.load(Ordering::Relaxed) as f64)]);
    metric("requests_cancelled_total", "counter", "Generations cancelled because the client disconnected.", vec![(String::new(), c.cancelled.load(Ordering::Relaxed) as f64)]);
    metric("streams_stalled_total", "counter", "Streams cancelled because the client stopped reading.", vec![(String::new(), c.stalled.load(Ordering::Relaxed) as f64)]);
    metric("unauthorized_total", "counter", "Requests refused for a missing or wrong API key.", vec![(String::new(), c.unauthorized.load(Ordering::Relaxed) as f64)]);
    let http: Vec<(String, f64)> = {
        let counts = c.http.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v: Vec<_> = counts.iter().map(|((route, code), n)| (format!("{{route=\"{}\",status=\"{code}\"}}", label(route)), *n as f64)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    metric("http_requests_total", "counter", "HTTP requests by route and status.", http);
    let status = e.pool().status();
    metric("loaded_models", "gauge", "Models loaded now.", vec![(String::new(), status.len() as f64)]);
    metric("memory_budget_used_bytes", "gauge", "Estimated memory of loaded models.", vec![(String::new(), e.pool().used_bytes() as f64)]);
    let budget = e.pool().budget().max_bytes;
    metric("memory_budget_bytes", "gauge", "Memory budget for models (0 = unlimited).", vec![(String::new(), if budget == u64::MAX { 0.0 } else { budget as f64 })]);
    metric("plugins_loaded", "gauge", "Plugins serving now.", vec![(String::new(), e.plugins().plugins().len() as f64)]);
    metric("plugins_rejected", "gauge", "Plugin files refused.", vec![(String::new(), e.plugins().rejected().len() as f64)]);
    metric("plugin_reloads_total", "counter", "Plugin hot reloads since start.", vec![(String::new(), c.reloads.load(Ordering::Relaxed) as f64)]);
    metric("plugin_rejections_total", "counter", "Plugin files refused since start.", vec![(String::new(), c.rejections.load(Ordering::Relaxed) as f64)]);
    metric("uptime_seconds", "gauge", "Seconds since the server started.", vec![(String::new(), state.started.elapsed().as_secs_f64())]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
