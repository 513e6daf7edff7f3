//! Background model downloads: [`Downloads`], the jobs running and recently
//! finished, and their endpoints `POST /download/start` and `GET /download/{id}`.
//! Each job fetches a file (`fetch`) into the first model folder, through the
//! egress-checked client (`egress`); the registry picks the file up when it is
//! complete.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex},
};

use axum::{
    extract::{FromRef, Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use rustai_core::Registry;
use serde_json::{json, Value};

use crate::{
    error::{ApiError, ApiResult},
    extract::Body,
    fetch::{fetch, redacted, DownloadRequest},
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

/// Running downloads and the most recent finished ones, with what starting one needs
/// (the handlers' sub-state of the server's state, shared as `Arc<Downloads>`).
#[derive(Debug)]
pub(crate) struct Downloads {
    jobs: Mutex<HashMap<String, Job>>,
    next: AtomicU64,
    /// Where finished files go (its first folder) and who is told about them.
    registry: Registry,
    /// Outgoing HTTP: internal addresses refused unless allowed (see `egress`).
    http: reqwest::Client,
    allow_private: bool,
    max_bytes: u64,
}

impl Downloads {
    /// No jobs yet; files up to `max_bytes`, from internal addresses only if `allow_private`.
    pub(crate) fn new(registry: Registry, allow_private: bool, max_bytes: u64) -> Self {
        let http = crate::egress::download_client(allow_private);
        Self { jobs: Mutex::default(), next: AtomicU64::default(), registry, http, allow_private, max_bytes }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(job) = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id) {
            f(job);
        }
    }
}

/// The download endpoints, for any router state that holds the [`Downloads`].
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Downloads>: FromRef<S>,
{
    Router::new().route("/download/start", post(start)).route("/download/{id}", get(status))
}

async fn start(State(downloads): State<Arc<Downloads>>, Body(req): Body<DownloadRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = req.file_name().map_err(|e| ApiError::bad_request(e.to_string()))?;
    crate::egress::check_start(&req.url, downloads.allow_private).map_err(ApiError::bad_request)?;
    let dir = downloads
        .registry
        .options()
        .dirs
        .first()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("the server has no model folder to download into"))?;
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
        let url = redacted(&req.url).to_owned();
        let job = Job { id: id.clone(), url, name, status: "running", bytes: 0, total: None, error: None };
        jobs.insert(id.clone(), job);
    }
    let client = downloads.http.clone();
    let max_bytes = downloads.max_bytes;
    let registry = downloads.registry.clone();
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
                tracing::warn!(url = %redacted(&req.url), "download failed: {e}");
                downloads.update(&job_id, |j| (j.status, j.error) = ("failed", Some(e.to_string())));
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "running" }))))
}

async fn status(State(downloads): State<Arc<Downloads>>, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    let jobs = downloads.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    jobs.get(&id).cloned().map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no download `{id}`")))
}
