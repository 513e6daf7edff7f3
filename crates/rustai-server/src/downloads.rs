//! `POST /download/start` and `GET /download/{id}`: model downloads run in the
//! background into the first model folder; the registry picks the file up
//! when it is complete.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde_json::{json, Value};

use crate::{
    download::{fetch, DownloadRequest},
    error::{ApiError, ApiResult},
    extract::Body,
    state::AppState,
};

/// One download's state.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Job {
    id: String,
    url: String,
    name: String,
    status: &'static str,
    bytes: u64,
    total: Option<u64>,
    error: Option<String>,
}

/// Downloads running at once, at most.
pub(crate) const MAX_RUNNING: usize = 2;
/// Finished downloads remembered for `GET /download/{id}` (the oldest are forgotten).
pub(crate) const MAX_REMEMBERED: usize = 64;

/// Running downloads and the most recent finished ones.
#[derive(Debug, Default)]
pub(crate) struct Downloads {
    jobs: Mutex<HashMap<String, Job>>,
    next: AtomicU64,
}

impl Downloads {
    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(job) = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id) {
            f(job);
        }
    }
}

pub(crate) async fn start(State(state): State<AppState>, Body(req): Body<DownloadRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = req.file_name().map_err(|e| ApiError::bad_request(e.to_string()))?;
    crate::egress::check_start(&req.url, state.config.allow_private_downloads).map_err(ApiError::bad_request)?;
    let dir = state
        .engine
        .registry()
        .options()
        .dirs
        .first()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("the server has no model folder to download into"))?;
    let downloads = Arc::clone(&state.downloads);
    let id = format!("dl-{}", downloads.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
    {
        let mut jobs = downloads.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if jobs.values().any(|j| j.name == name && j.status == "running") {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("{name} is already being downloaded")));
        }
        if jobs.values().filter(|j| j.status == "running").count() >= MAX_RUNNING {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{MAX_RUNNING} downloads are running; try again when one ends")));
        }
        // Forget the oldest finished jobs: the map never grows past its bound.
        let mut finished: Vec<(u64, String)> =
            jobs.values().filter(|j| j.status != "running").map(|j| (j.id[3..].parse().unwrap_or(0), j.id.clone())).collect();
        if finished.len() >= MAX_REMEMBERED {
            finished.sort_unstable();
            for (_, old) in finished.iter().take(finished.len() + 1 - MAX_REMEMBERED) {
                jobs.remove(old);
            }
        }
        let url = crate::download::redacted(&req.url).to_owned();
        let job = Job { id: id.clone(), url, name, status: "running", bytes: 0, total: None, error: None };
        jobs.insert(id.clone(), job);
    }
    let client = state.download_http.clone();
    let max_bytes = state.config.max_download_bytes;
    let registry = state.engine.registry().clone();
    let job_id = id.clone();
    tokio::spawn(async move {
        let progress = |bytes, total| downloads.update(&job_id, |j| (j.bytes, j.total) = (bytes, total));
        let result = fetch(&client, &req, &dir, max_bytes, progress).await;
        match result {
            Ok(path) => {
                tracing::info!(file = %path.display(), "download complete");
                let _ = tokio::task::spawn_blocking(move || registry.refresh()).await;
                downloads.update(&job_id, |j| j.status = "done");
            }
            Err(e) => {
                tracing::warn!(url = %crate::download::redacted(&req.url), "download failed: {e}");
                downloads.update(&job_id, |j| (j.status, j.error) = ("failed", Some(e.to_string())));
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "running" }))))
}

pub(crate) async fn status(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    let jobs = state.downloads.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    jobs.get(&id).cloned().map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no download `{id}`")))
}
