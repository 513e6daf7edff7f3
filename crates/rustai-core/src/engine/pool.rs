//! Loaded models of every family, shared between requests, kept within one
//! memory budget, that follow plugin reloads.
//!
//! - A request takes a [`Lease`] on a model (an [`LlmModel`], an
//!   [`EmbeddingModel`](crate::EmbeddingModel), an [`SttModel`](crate::SttModel) or a
//!   [`TtsModel`](crate::TtsModel): any [`Family`]); while any lease is held the model is in
//!   use and is never evicted.
//! - Before a load, the model's memory is estimated: by the plugin that reads its format
//!   when it can say ([`LoadedPlugin::estimate_memory`]), else from the size on disk
//!   ([`super::budget`]). Idle models of any family are evicted least recently used first
//!   to make room; if it still does not fit, the load is refused with the numbers.
//! - When a lease ends, the request's [`KeepAlive`] decides when the model may
//!   be unloaded; [`ModelPool::reap`] (or the thread from
//!   [`ModelPool::spawn_reaper`]) unloads expired idle models.
//! - When the plugin that loaded a model has been replaced by a new build, the
//!   next request loads the model again through the new instance; requests still
//!   running keep the old one until they finish.
//!
//! **Invariant:** a model counts against the budget until its last lease drops,
//! whatever happens to its pool entry (unloaded, replaced, reloaded with other
//! parameters): a removed entry that is still leased moves to `retired`.

use std::{
    any::Any,
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};

use rustai_abi::LoadModelParams;

use super::budget::{estimate_from_disk, mib, Budget, KeepAlive};
use crate::{
    error::{Error, Result},
    families::{Family, LlmModel},
    models::{ModelFile, ModelFormat},
    plugins::{FamilyKind, LoadedPlugin, PluginManager},
};

/// A loaded model of any family.
type AnyModel = Arc<dyn Any + Send + Sync>;

/// Where a model sits in the pool: its file and the family it was loaded for.
type Key = (PathBuf, FamilyKind);

#[derive(Debug)]
struct Entry {
    model: AnyModel,
    plugin: Arc<LoadedPlugin>,
    params: LoadModelParams,
    bytes: u64,
    last_used: Instant,
    /// `None`: in use or kept forever.
    expires: Option<Instant>,
    pinned: bool,
}

impl Entry {
    fn in_use(&self) -> bool {
        // The pool's reference, plus one per lease.
        Arc::strong_count(&self.model) > 1
    }
    fn evictable(&self) -> bool {
        !self.in_use() && !self.pinned
    }
    fn holds(&self, model: &AnyModel) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.model), Arc::as_ptr(model))
    }
}

/// What [`ModelPool::status`] reports per loaded model.
#[derive(Debug, Clone)]
pub struct LoadedModelStatus {
    /// The model file.
    pub path: PathBuf,
    /// The family it was loaded for.
    pub family: FamilyKind,
    /// The plugin serving it.
    pub plugin: String,
    /// Estimated memory.
    pub bytes: u64,
    /// Last time a request ended (or started) on it.
    pub last_used: Instant,
    /// When it will be unloaded if still idle (`None`: in use or never).
    pub expires: Option<Instant>,
    /// Requests running on it now.
    pub in_use: bool,
    /// Exempt from eviction and expiry.
    pub pinned: bool,
}

/// Models loaded through a [`PluginManager`], one per file and family. A cheap
/// handle: clones share the same models.
#[derive(Debug, Clone)]
pub struct ModelPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    manager: PluginManager,
    budget: Budget,
    models: Mutex<HashMap<Key, Entry>>,
    /// Models removed from `models` while requests still held them, with their bytes.
    retired: Mutex<Vec<(Weak<dyn Any + Send + Sync>, u64)>>,
    /// Serialises admission + load, so two loads cannot both claim the same room.
    loading: Mutex<()>,
}

/// A request's hold on a loaded model of family `M`; derefs to `M`. It owns a
/// handle on the pool, so it can move into a task or thread.
#[derive(Debug)]
pub struct Lease<M: Family = LlmModel> {
    pool: ModelPool,
    model: Option<Arc<M>>,
    keep_alive: KeepAlive,
}

impl<M: Family> std::ops::Deref for Lease<M> {
    type Target = M;
    fn deref(&self) -> &M {
        self.model.as_ref().expect("present until drop")
    }
}

impl<M: Family> Lease<M> {
    /// The shared model (for handing to a stream that outlives the lease, say).
    pub fn model(&self) -> &Arc<M> {
        self.model.as_ref().expect("present until drop")
    }
}

impl<M: Family> Drop for Lease<M> {
    fn drop(&mut self) {
        let Some(model) = self.model.take() else { return };
        let now = Instant::now();
        let any: AnyModel = model;
        {
            let mut models = self.pool.lock();
            if let Some(entry) = models.values_mut().find(|e| e.holds(&any)) {
                entry.last_used = now;
                entry.expires = match self.keep_alive {
                    KeepAlive::Unload => Some(now),
                    KeepAlive::Forever => None,
                    KeepAlive::For(d) => now.checked_add(d), // past the clock's range: never
                };
            }
        }
        drop(any);
        self.pool.reap();
    }
}

/// Whether a model loaded with `a` serves a request for `b`: everything but the
/// thread count must match (threads are chosen per request, never a reason to reload).
fn same_load(a: &LoadModelParams, b: &LoadModelParams) -> bool {
    LoadModelParams { threads: 0, ..a.clone() } == LoadModelParams { threads: 0, ..b.clone() }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModelPool {
    /// A pool over `manager`'s plugins with no memory limit.
    pub fn new(manager: PluginManager) -> Self {
        Self::with_budget(manager, Budget::unlimited())
    }

    /// A pool over `manager`'s plugins within `budget`.
    pub fn with_budget(manager: PluginManager, budget: Budget) -> Self {
        Self { inner: Arc::new(PoolInner { manager, budget, models: Mutex::default(), retired: Mutex::default(), loading: Mutex::new(()) }) }
    }

    /// The plugin manager.
    pub fn manager(&self) -> &PluginManager {
        &self.inner.manager
    }

    /// The budget.
    pub fn budget(&self) -> Budget {
        self.inner.budget
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        lock(&self.inner.models)
    }

    /// Take entries out of the pool: those still leased keep counting (see `retired`).
    fn retire(&self, entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut retired = lock(&self.inner.retired);
        for e in entries.iter().filter(|e| e.in_use()) {
            retired.push((Arc::downgrade(&e.model), e.bytes));
        }
        entries
    }

    /// Bytes and count of retired models that requests still hold.
    fn retired_use(&self) -> (u64, usize) {
        let mut retired = lock(&self.inner.retired);
        retired.retain(|(m, _)| m.strong_count() > 0);
        (retired.iter().map(|(_, b)| *b).sum(), retired.len())
    }

    /// [`Self::acquire`] of a language model with the budget's default keep-alive.
    pub fn llm(&self, file: &ModelFile, params: &LoadModelParams, plugin: Option<&str>) -> Result<Lease> {
        self.acquire(file, params, plugin, self.inner.budget.default_keep_alive)
    }

    /// The bytes a model in `file` would count against the budget when plugin `plugin`
    /// loads it with `params`: 0 for a remote model; the plugin's own estimate when it
    /// gives one; else the size on disk plus a working margin.
    pub fn estimate(&self, plugin: &LoadedPlugin, file: &ModelFile, params: &LoadModelParams) -> Result<u64> {
        if file.format == ModelFormat::Remote {
            return Ok(0); // a remote model costs this machine no model memory
        }
        let params = LoadModelParams { path: file.path.to_string_lossy().as_ref().into(), ..params.clone() };
        match plugin.estimate_memory(&params) {
            Some(bytes) => Ok(bytes),
            None => estimate_from_disk(&file.path).map_err(|e| Error::io(&file.path, e)),
        }
    }

    /// A lease on the model in `file` of family `M`, loaded with `params` by plugin
    /// `plugin` (or the plugin that serves the file's format: [`PluginManager::serving`]),
    /// loading it if needed. A model loaded by a replaced plugin instance, or with other
    /// parameters, is loaded again. `keep_alive` applies when the lease ends.
    pub fn acquire<M: Family>(&self, file: &ModelFile, params: &LoadModelParams, plugin: Option<&str>, keep_alive: KeepAlive) -> Result<Lease<M>> {
        let serving = self.inner.manager.serving(plugin, file.format.as_str(), M::KIND)?;
        let params = LoadModelParams { path: file.path.to_string_lossy().as_ref().into(), ..params.clone() };
        let key: Key = (file.path.clone(), M::KIND);
        let is_current = |entry: &Entry| {
            let p = &entry.plugin;
            p.id() == serving.id() && p.generation() == serving.generation() && same_load(&entry.params, &params)
        };
        let lease = |model: Arc<M>| Lease { pool: self.clone(), model: Some(model), keep_alive };
        let hit = |models: &mut HashMap<Key, Entry>| {
            let entry = models.get_mut(&key).filter(|e| is_current(e))?;
            entry.last_used = Instant::now();
            entry.expires = None;
            Arc::clone(&entry.model).downcast::<M>().ok()
        };
        // Dropped after the guards: stale or evicted models unload outside the locks.
        let mut _unload: Vec<Entry> = Vec::new();
        {
            let mut models = self.lock();
            _unload = self.retire(self.prune(&mut models));
            if let Some(model) = hit(&mut models) {
                return Ok(lease(model));
            }
        }
        let needed = self.estimate(&serving, file, &params)?;
        // Loads that take memory are admitted one at a time, so two cannot claim the same
        // room; a remote model (no memory here) does not wait behind a local load.
        let _loading = (needed > 0).then(|| lock(&self.inner.loading));
        {
            let mut models = self.lock();
            if let Some(model) = hit(&mut models) {
                return Ok(lease(model)); // loaded by another request while we waited
            }
            // A copy loaded with other parameters or by an old instance makes way.
            if let Some(old) = models.remove(&key) {
                _unload.extend(self.retire([old]));
            }
            _unload.extend(self.make_room(&mut models, &file.id, needed)?.into_iter().map(|(_, e)| e));
        }
        // The room is made before the load, not after: what was evicted goes now (outside the
        // models lock), so old and new are never resident together beyond the budget.
        drop(std::mem::take(&mut _unload));
        let model = Arc::new(M::load_with(Arc::clone(&serving), &params)?);
        let now = Instant::now();
        let any: AnyModel = Arc::clone(&model) as AnyModel;
        let entry = Entry { model: any, plugin: Arc::clone(&serving), params, bytes: needed, last_used: now, expires: None, pinned: false };
        self.lock().insert(key, entry);
        tracing::info!(model = %file.id, family = M::KIND.as_str(), plugin = serving.id(), estimate = %mib(needed), "model loaded");
        Ok(lease(model))
    }

    /// Evict idle models, least recently used first, until `needed` more bytes and one
    /// more model fit; refuse with the numbers if they cannot.
    fn make_room(&self, models: &mut HashMap<Key, Entry>, id: &str, needed: u64) -> Result<Vec<(Key, Entry)>> {
        let budget = self.inner.budget;
        // Models still serving requests after leaving the pool hold their memory too.
        let (retired_bytes, retired_count) = self.retired_use();
        let used = |m: &HashMap<Key, Entry>| m.values().map(|e| e.bytes).sum::<u64>().saturating_add(retired_bytes);
        let fits = |m: &HashMap<Key, Entry>| {
            used(m).saturating_add(needed) <= budget.max_bytes && m.len() + retired_count < budget.max_loaded
        };
        let mut evicted = Vec::new();
        while !fits(models) {
            let victim = models.iter().filter(|(_, e)| e.evictable()).min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone());
            match victim.and_then(|k| models.remove(&k).map(|e| (k, e))) {
                Some((key, entry)) => {
                    tracing::info!(model = %key.0.display(), family = key.1.as_str(), freed = %mib(entry.bytes), "evicting idle model to make room");
                    evicted.push((key, entry));
                }
                None => {
                    // Nothing left to evict: put back what we took and refuse.
                    models.extend(evicted.drain(..));
                    return Err(Error::OverBudget {
                        model: id.to_owned(),
                        needed: mib(needed),
                        budget: if budget.max_bytes == u64::MAX { "unlimited".into() } else { mib(budget.max_bytes) },
                        in_use: mib(used(models)),
                        loaded: models.len() + retired_count,
                        max_loaded: budget.max_loaded,
                    });
                }
            }
        }
        Ok(evicted)
    }

    /// Drop models whose plugin instance is no longer serving (replaced or
    /// removed), so the old instance can retire once its running requests end.
    fn prune(&self, models: &mut HashMap<Key, Entry>) -> Vec<Entry> {
        let stale: Vec<Key> = models
            .iter()
            .filter(|(_, e)| {
                let p = &e.plugin;
                self.inner.manager.get(p.id()).is_none_or(|current| current.generation() != p.generation())
            })
            .map(|(key, _)| key.clone())
            .collect();
        stale.iter().filter_map(|key| models.remove(key)).collect()
    }

    /// Unload idle models whose keep-alive has run out. Returns how many.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<(Key, Entry)> = {
            let mut models = self.lock();
            let keys: Vec<Key> = models
                .iter()
                .filter(|(_, e)| e.evictable() && e.expires.is_some_and(|t| t <= now))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| models.remove(&k).map(|e| (k, e))).collect()
        };
        for (key, _) in &expired {
            tracing::info!(model = %key.0.display(), family = key.1.as_str(), "keep-alive ran out; unloading");
        }
        expired.len()
    }

    /// Reap every `every` on a background thread, until the pool is dropped.
    pub fn spawn_reaper(&self, every: Duration) {
        let pool: Weak<PoolInner> = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new().name("rustai-model-reaper".into()).spawn(move || loop {
            std::thread::sleep(every);
            match pool.upgrade() {
                Some(inner) => {
                    ModelPool { inner }.reap();
                }
                None => return,
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the model reaper: {e}");
        }
    }

    /// Keys of the models loaded from `path` (one per family).
    fn keys_of(models: &HashMap<Key, Entry>, path: &Path) -> Vec<Key> {
        models.keys().filter(|(p, _)| p == path).cloned().collect()
    }

    /// Exempt the models in `path` from eviction and expiry (or end that).
    pub fn pin(&self, path: &Path, pinned: bool) -> bool {
        let mut models = self.lock();
        let keys = Self::keys_of(&models, path);
        for key in &keys {
            if let Some(e) = models.get_mut(key) {
                e.pinned = pinned;
            }
        }
        !keys.is_empty()
    }

    /// Forget the models in `path`; each is unloaded when its last request ends.
    pub fn unload(&self, path: &Path) -> bool {
        let removed: Vec<Entry> = {
            let mut models = self.lock();
            Self::keys_of(&models, path).iter().filter_map(|k| models.remove(k)).collect()
        };
        let found = !removed.is_empty();
        drop(self.retire(removed));
        found
    }

    /// Bytes the budget counts now: pooled models plus retired ones still leased.
    pub fn used_bytes(&self) -> u64 {
        let pooled: u64 = self.lock().values().map(|e| e.bytes).sum();
        pooled.saturating_add(self.retired_use().0)
    }

    /// Every loaded model of every family with size, last use and expiry (for `ps`).
    pub fn status(&self) -> Vec<LoadedModelStatus> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|((path, family), e)| LoadedModelStatus {
                path: path.clone(),
                family: *family,
                plugin: e.plugin.id().to_owned(),
                bytes: e.bytes,
                last_used: e.last_used,
                expires: e.expires,
                in_use: e.in_use(),
                pinned: e.pinned,
            })
            .collect();
        all.sort_by(|a, b| (&a.path, a.family).cmp(&(&b.path, b.family)));
        all
    }
}
