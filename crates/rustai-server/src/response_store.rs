//! Finished Responses API responses, kept in memory so a request with
//! `previous_response_id` continues that conversation, and `GET /v1/responses/{id}`
//! can return it. Bounded: at most [`ResponseStore::CAPACITY`] responses (the oldest
//! go first), each for at most [`ResponseStore::TTL`]. Nothing survives a restart.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rustai_core::chat::Turn;
use serde_json::Value;

/// One kept response.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The conversation so far: earlier turns, this request's input, this response's output
    /// (the `instructions` are not kept: each request gives its own).
    pub(crate) turns: Vec<Turn>,
    /// The response object as it was sent.
    pub(crate) response: Value,
}

/// Responses by id.
#[derive(Debug)]
pub(crate) struct ResponseStore {
    map: Mutex<HashMap<String, (Instant, Stored)>>,
    capacity: usize,
    ttl: Duration,
}

impl Default for ResponseStore {
    fn default() -> Self {
        Self::new(Self::CAPACITY, Self::TTL)
    }
}

impl ResponseStore {
    /// Responses kept at most.
    pub(crate) const CAPACITY: usize = 1000;
    /// How long one is kept.
    pub(crate) const TTL: Duration = Duration::from_secs(3600);

    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self { map: Mutex::default(), capacity, ttl }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Stored)>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keep `stored` as `id`, dropping expired responses and, past the capacity, the oldest.
    pub(crate) fn put(&self, id: String, stored: Stored) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        while map.len() >= self.capacity {
            let Some(oldest) = map.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone()) else { break };
            map.remove(&oldest);
        }
        map.insert(id, (now, stored));
    }

    /// The response `id`, unless unknown or expired.
    pub(crate) fn get(&self, id: &str) -> Option<Stored> {
        let map = self.lock();
        map.get(id).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, s)| s.clone())
    }

    /// Forget `id`; whether it was kept.
    pub(crate) fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some_and(|(at, _)| at.elapsed() < self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u64) -> Stored {
        Stored { turns: vec![Turn::new("user", n.to_string())], response: Value::from(n) }
    }

    #[test]
    fn bounded_by_count_and_age() {
        let store = ResponseStore::new(2, Duration::from_secs(60));
        store.put("a".into(), stored(1));
        std::thread::sleep(Duration::from_millis(2));
        store.put("b".into(), stored(2));
        store.put("c".into(), stored(3));
        assert!(store.get("a").is_none(), "the oldest went first");
        assert_eq!(store.get("c").unwrap().response, 3);
        assert!(store.remove("b") && store.get("b").is_none());

        let brief = ResponseStore::new(10, Duration::from_millis(1));
        brief.put("x".into(), stored(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(brief.get("x").is_none(), "expired");
    }
}
