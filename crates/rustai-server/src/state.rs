//! Shared server state: the engine, settings, counters and caches.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::{Instant, SystemTime},
};

use rustai_core::Engine;

use crate::ServerConfig;

/// Counters the engine's metrics do not cover.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// HTTP requests by (route, status).
    pub(crate) http: Mutex<HashMap<(String, u16), u64>>,
    /// Generations running now.
    pub(crate) in_flight: AtomicU64,
    /// Generations cancelled (client disconnected).
    pub(crate) cancelled: AtomicU64,
    /// Streams cancelled because the client stopped reading.
    pub(crate) stalled: AtomicU64,
    /// Plugin hot reloads.
    pub(crate) reloads: AtomicU64,
    /// Plugin files refused.
    pub(crate) rejections: AtomicU64,
    /// Rate-limit checks (to prune the limiter now and then).
    pub(crate) rate_checks: AtomicU64,
    /// Requests refused by the rate limit.
    pub(crate) rate_limited: AtomicU64,
    /// Requests refused for a missing or wrong key.
    pub(crate) unauthorized: AtomicU64,
}

/// A model file version: path, size, modification time.
type FileKey = (PathBuf, u64, Option<SystemTime>);

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) started: Instant,
    pub(crate) admission: Arc<crate::admission::Admission>,
    pub(crate) limiter: Option<Arc<crate::limit::Limiter>>,
    pub(crate) downloads: Arc<crate::downloads::Downloads>,
    /// Outgoing HTTP to the configured upstream.
    pub(crate) http: reqwest::Client,
    /// Outgoing HTTP for downloads: internal addresses refused unless allowed (see `egress`).
    pub(crate) download_http: reqwest::Client,
    /// sha256 of model files, by (path, size, mtime); each computed once even when asked for at once.
    digests: Arc<DigestCache>,
}

impl AppState {
    pub(crate) fn new(engine: Engine, config: ServerConfig) -> Self {
        let admission = Arc::new(crate::admission::Admission::new(config.parallel, config.max_queue));
        let limiter = crate::limit::limiter(config.rate_limit_per_minute).map(Arc::new);
        let download_http = crate::egress::download_client(config.allow_private_downloads);
        Self {
            engine,
            config: Arc::new(config),
            counters: Arc::default(),
            started: Instant::now(),
            admission,
            limiter,
            downloads: Arc::default(),
            // Reads time out so a stalled peer cannot leave a download running forever;
            // generation streams relayed upstream send something at least every token.
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .read_timeout(std::time::Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
            download_http,
            digests: Arc::default(),
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
        self.digests.get(key, || rustai_core::trust::sha256_file(path).unwrap_or_default())
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
