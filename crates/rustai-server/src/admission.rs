//! Admission control: a bounded queue per model with a fixed number of
//! requests running at once (as Ollama's `OLLAMA_NUM_PARALLEL` and
//! `OLLAMA_MAX_QUEUE`). A request past the queue is refused at once with 503
//! rather than waiting without bound.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

struct Lane {
    running: Arc<Semaphore>,
    /// Admitted requests (running or waiting).
    admitted: AtomicUsize,
}

/// Per-model lanes.
pub(crate) struct Admission {
    parallel: usize,
    max_queue: usize,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
}

/// A request's place: while held, it counts against the model's lane.
pub(crate) struct Ticket {
    lane: Arc<Lane>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.lane.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Undoes an admission when the wait is abandoned (client gone while queued).
struct Waiting(Option<Arc<Lane>>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(lane) = self.0.take() {
            lane.admitted.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Admission {
    pub(crate) fn new(parallel: usize, max_queue: usize) -> Self {
        Self { parallel: parallel.max(1), max_queue, lanes: Mutex::default() }
    }

    /// Wait for a turn on `model`'s lane; 503 when `parallel` are running and `max_queue` wait.
    pub(crate) async fn enter(&self, model: &str) -> Result<Ticket, ApiError> {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(lanes.entry(model.to_owned()).or_insert_with(|| {
                Arc::new(Lane { running: Arc::new(Semaphore::new(self.parallel)), admitted: AtomicUsize::new(0) })
            }))
        };
        let limit = self.parallel + self.max_queue;
        let admitted = lane.admitted.fetch_add(1, Ordering::AcqRel);
        let mut waiting = Waiting(Some(Arc::clone(&lane)));
        if admitted >= limit {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("server busy: {} running and {} queued for `{model}`; try again later", self.parallel, self.max_queue),
            ));
        }
        let permit = Arc::clone(&lane.running)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server shutting down"))?;
        waiting.0 = None; // the count now belongs to the ticket
        Ok(Ticket { lane, _permit: permit })
    }

    /// (running, waiting) per model, for `/metrics`.
    pub(crate) fn status(&self) -> Vec<(String, usize, usize)> {
        let lanes = self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v: Vec<_> = lanes
            .iter()
            .map(|(m, l)| {
                let running = self.parallel - l.running.available_permits();
                (m.clone(), running, l.admitted.load(Ordering::Acquire).saturating_sub(running))
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_then_refuse_then_admit_again() {
        let a = Arc::new(Admission::new(1, 1));
        let first = a.enter("m").await.unwrap();
        let a2 = Arc::clone(&a);
        let queued = tokio::spawn(async move { a2.enter("m").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = a.enter("m").await.err().unwrap();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(a.enter("other").await.is_ok(), "lanes are per model");
        drop(first);
        queued.await.unwrap().unwrap();
        assert!(a.enter("m").await.is_ok());
        assert_eq!(a.status()[0], ("m".into(), 0, 0));
    }

    #[tokio::test]
    async fn abandoned_waits_free_their_place() {
        let a = Arc::new(Admission::new(1, 1));
        let _first = a.enter("m").await.unwrap();
        let a2 = Arc::clone(&a);
        let queued = tokio::spawn(async move { a2.enter("m").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        queued.abort();
        let _ = queued.await;
        let a3 = Arc::clone(&a);
        let again = tokio::spawn(async move { a3.enter("m").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!again.is_finished(), "queued, not refused: the aborted wait gave its place back");
        again.abort();
    }
}
