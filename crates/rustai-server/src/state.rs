//! Shared server state: the engine, settings, counters and caches, and the
//! sub-states the middleware and download handlers take instead of all of it
//! (`FromRef`): [`ApiKeys`] for `auth`, [`RateLimit`] for `limit`, [`Downloads`]
//! for `download_jobs`. Those modules know only their own sub-state, never
//! [`AppState`].

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use axum::extract::FromRef;
use rustai_core::Engine;

use crate::{
    admission::Admission, auth::ApiKeys, config::ServerConfig, counters::Counters, download_jobs::Downloads, limit::RateLimit,
    response_store::ResponseStore,
};

/// A model file version: path, size, modification time.
type FileKey = (PathBuf, u64, Option<SystemTime>);

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) started: Instant,
    pub(crate) admission: Arc<Admission>,
    /// Authentication's sub-state.
    auth: ApiKeys,
    /// The rate limit's sub-state.
    rate_limit: RateLimit,
    /// The download handlers' sub-state.
    downloads: Arc<Downloads>,
    /// Outgoing HTTP to the configured upstream.
    pub(crate) http: reqwest::Client,
    /// sha256 of model files, by (path, size, mtime); each computed once even when asked for at once.
    digests: Arc<DigestCache>,
    /// Finished Responses API responses, for `previous_response_id`.
    pub(crate) responses: Arc<ResponseStore>,
}

impl FromRef<AppState> for ApiKeys {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for RateLimit {
    fn from_ref(state: &AppState) -> Self {
        state.rate_limit.clone()
    }
}

impl FromRef<AppState> for Arc<Downloads> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.downloads)
    }
}

impl AppState {
    pub(crate) fn new(engine: Engine, config: ServerConfig) -> Self {
        let counters: Arc<Counters> = Arc::default();
        let admission = Arc::new(Admission::new(config.parallel, config.max_queue));
        let auth = ApiKeys::new(&config.api_keys, Arc::clone(&counters));
        let rate_limit = RateLimit::new(config.rate_limit_per_minute, !config.api_keys.is_empty(), Arc::clone(&counters));
        let downloads = Downloads::new(engine.registry().clone(), config.allow_private_downloads, config.max_download_bytes);
        Self {
            engine,
            config: Arc::new(config),
            counters,
            started: Instant::now(),
            admission,
            auth,
            rate_limit,
            downloads: Arc::new(downloads),
            // Reads time out so a stalled peer cannot leave a download running forever;
            // generation streams relayed upstream send something at least every token.
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .read_timeout(std::time::Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
            digests: Arc::default(),
            responses: Arc::default(),
        }
    }

    /// The sha256 of a model file, computed once per version of the file.
    pub(crate) fn digest(&self, entry: &rustai_core::ModelEntry) -> String {
        let Some(path) = entry.path().filter(|p| p.is_file()) else {
            // Folders and remote models: a digest of the id, marked as such.
            use sha2::Digest;
            return format!("{:x}", sha2::Sha256::digest(entry.id.as_bytes()));
        };
        let key = (path.to_path_buf(), entry.size, entry.modified);
        self.digests.get(key, || rustai_core::plugins::trust::sha256_file(path).unwrap_or_default())
    }
}

/// Digests by file version, computed once each: concurrent callers for the same key wait
/// for one computation (single flight), and a new version of a file replaces the old entry.
#[derive(Debug, Default)]
pub(crate) struct DigestCache {
    map: Mutex<HashMap<FileKey, Arc<std::sync::OnceLock<String>>>>,
}

impl DigestCache {
    pub(crate) fn get(&self, key: FileKey, compute: impl FnOnce() -> String) -> String {
        let cell = {
            let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !map.contains_key(&key) {
                map.retain(|(p, _, _), _| p != &key.0);
            }
            Arc::clone(map.entry(key).or_default())
        };
        cell.get_or_init(compute).clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn concurrent_cold_lookups_hash_once_and_versions_replace() {
        let cache = Arc::new(DigestCache::default());
        let computed = Arc::new(AtomicUsize::new(0));
        let key = (PathBuf::from("/m/a.gguf"), 10, None);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, computed, key) = (Arc::clone(&cache), Arc::clone(&computed), key.clone());
                std::thread::spawn(move || {
                    cache.get(key, || {
                        computed.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        "abc".to_owned()
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), "abc");
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1, "one hash for eight concurrent requests");
        let newer = (PathBuf::from("/m/a.gguf"), 11, None);
        assert_eq!(cache.get(newer, || "def".to_owned()), "def");
        assert_eq!(cache.map.lock().unwrap().len(), 1, "the old version's entry is gone");
    }
}
