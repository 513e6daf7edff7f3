//! Loaded models, shared between requests, kept within a memory budget, that
//! follow plugin reloads.
//!
//! - A request takes a [`Lease`] on a model; while any lease is held the model
//!   is in use and is never evicted.
//! - Before a load, the model's memory is estimated ([`crate::budget`]); idle
//!   models are evicted least recently used first to make room; if it still does
//!   not fit, the load is refused with the numbers.
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
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};

use rustai_abi::LoadModelParams;

use crate::{
    budget::{estimate_bytes, mib, Budget, KeepAlive},
    error::{Error, Result},
    llm::LlmModel,
    manager::PluginManager,
    models::ModelFile,
};

#[derive(Debug)]
struct Entry {
    model: Arc<LlmModel>,
    params: LoadModelParams,
    bytes: u64,
    last_used: Instant,
    /// `None`: in use or kept forever.
    expires: Option<Instant>,
    pinned: bool,
}

impl Entry {
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.model) > 1
    }
    fn evictable(&self) -> bool {
        !self.in_use() && !self.pinned
    }
}

/// What [`ModelPool::status`] reports per loaded model.
#[derive(Debug, Clone)]
pub struct LoadedModelStatus {
    /// The model file.
    pub path: PathBuf,
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

/// Models loaded through a [`PluginManager`], one per file. A cheap handle:
/// clones share the same models.
#[derive(Debug, Clone)]
pub struct ModelPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    manager: PluginManager,
    budget: Budget,
    models: Mutex<HashMap<PathBuf, Entry>>,
    /// Models removed from `models` while requests still held them, with their bytes.
    retired: Mutex<Vec<(Weak<LlmModel>, u64)>>,
    /// Serialises admission + load, so two loads cannot both claim the same room.
    loading: Mutex<()>,
}

/// A request's hold on a loaded model; derefs to [`LlmModel`]. It owns a
/// handle on the pool, so it can move into a task or thread.
#[derive(Debug)]
pub struct Lease {
    pool: ModelPool,
    model: Option<Arc<LlmModel>>,
    keep_alive: KeepAlive,
}

impl std::ops::Deref for Lease {
    type Target = LlmModel;
    fn deref(&self) -> &LlmModel {
        self.model.as_ref().expect("present until drop")
    }
}

impl Lease {
    /// The shared model (for handing to a stream that outlives the lease, say).
    pub fn model(&self) -> &Arc<LlmModel> {
        self.model.as_ref().expect("present until drop")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(model) = self.model.take() else { return };
        let now = Instant::now();
        {
            let mut models = self.pool.lock();
            if let Some(entry) = models.values_mut().find(|e| Arc::ptr_eq(&e.model, &model)) {
                entry.last_used = now;
                entry.expires = match self.keep_alive {
                    KeepAlive::Unload => Some(now),
                    KeepAlive::Forever => None,
                    KeepAlive::For(d) => now.checked_add(d), // past the clock's range: never
                };
            }
        }
        drop(model);
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

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Entry>> {
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

    /// [`Self::acquire`] with the budget's default keep-alive.
    pub fn llm(&self, file: &ModelFile, params: &LoadModelParams, plugin: Option<&str>) -> Result<Lease> {
        self.acquire(file, params, plugin, self.inner.budget.default_keep_alive)
    }

    /// A lease on the model in `file`, loaded with `params` by plugin `plugin` (or
    /// the first that reads the file's format), loading it if needed. A model
    /// loaded by a replaced plugin instance, or with other parameters, is loaded
    /// again. `keep_alive` applies when the lease ends.
    pub fn acquire(&self, file: &ModelFile, params: &LoadModelParams, plugin: Option<&str>, keep_alive: KeepAlive) -> Result<Lease> {
        let llm = match plugin {
            Some(id) => self.inner.manager.llm(id)?,
            None => self.inner.manager.llm_for_format(file.format.as_str())?,
        };
        let params = LoadModelParams { path: file.path.to_string_lossy().as_ref().into(), ..params.clone() };
        let is_current = |entry: &Entry| {
            let p = entry.model.plugin();
            p.id() == llm.plugin().id() && p.generation() == llm.plugin().generation() && same_load(&entry.params, &params)
        };
        let lease = |model: Arc<LlmModel>| Lease { pool: self.clone(), model: Some(model), keep_alive };
        let hit = |models: &mut HashMap<PathBuf, Entry>| {
            let entry = models.get_mut(&file.path).filter(|e| is_current(e))?;
            entry.last_used = Instant::now();
            entry.expires = None;
            Some(Arc::clone(&entry.model))
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
        let _loading = lock(&self.inner.loading);
        // A remote model costs this machine no model memory.
        let needed = if file.format == crate::models::ModelFormat::Remote {
            0
        } else {
            estimate_bytes(&file.path, params.context_length).map_err(|e| Error::io(&file.path, e))?
        };
        {
            let mut models = self.lock();
            if let Some(model) = hit(&mut models) {
                return Ok(lease(model)); // loaded by another request while we waited
            }
            // A copy loaded with other parameters or by an old instance makes way.
            if let Some(old) = models.remove(&file.path) {
                _unload.extend(self.retire([old]));
            }
            _unload.extend(self.make_room(&mut models, &file.id, needed)?.into_iter().map(|(_, e)| e));
        }
        let model = Arc::new(llm.load(&params)?);
        let now = Instant::now();
        let entry = Entry { model: Arc::clone(&model), params, bytes: needed, last_used: now, expires: None, pinned: false };
        self.lock().insert(file.path.clone(), entry);
        tracing::info!(model = %file.id, plugin = llm.plugin().id(), estimate = %mib(needed), "model loaded");
        Ok(lease(model))
    }

    /// Evict idle models, least recently used first, until `needed` more bytes and one
    /// more model fit; refuse with the numbers if they cannot.
    fn make_room(&self, models: &mut HashMap<PathBuf, Entry>, id: &str, needed: u64) -> Result<Vec<(PathBuf, Entry)>> {
        let budget = self.inner.budget;
        // Models still serving requests after leaving the pool hold their memory too.
        let (retired_bytes, retired_count) = self.retired_use();
        let used = |m: &HashMap<PathBuf, Entry>| m.values().map(|e| e.bytes).sum::<u64>().saturating_add(retired_bytes);
        let fits = |m: &HashMap<PathBuf, Entry>| {
            used(m).saturating_add(needed) <= budget.max_bytes && m.len() + retired_count < budget.max_loaded
        };
        let mut evicted = Vec::new();
        while !fits(models) {
            let victim = models.iter().filter(|(_, e)| e.evictable()).min_by_key(|(_, e)| e.last_used).map(|(p, _)| p.clone());
            match victim.and_then(|p| models.remove(&p).map(|e| (p, e))) {
                Some((path, entry)) => {
                    tracing::info!(model = %path.display(), freed = %mib(entry.bytes), "evicting idle model to make room");
                    evicted.push((path, entry));
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
    fn prune(&self, models: &mut HashMap<PathBuf, Entry>) -> Vec<Entry> {
        let stale: Vec<PathBuf> = models
            .iter()
            .filter(|(_, e)| {
                let p = e.model.plugin();
                self.inner.manager.get(p.id()).is_none_or(|current| current.generation() != p.generation())
            })
            .map(|(path, _)| path.clone())
            .collect();
        stale.iter().filter_map(|path| models.remove(path)).collect()
    }

    /// Unload idle models whose keep-alive has run out. Returns how many.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Entry> = {
            let mut models = self.lock();
            let paths: Vec<PathBuf> = models
                .iter()
                .filter(|(_, e)| e.evictable() && e.expires.is_some_and(|t| t <= now))
                .map(|(p, _)| p.clone())
                .collect();
            paths.iter().filter_map(|p| models.remove(p)).collect()
        };
        for e in &expired {
            tracing::info!(model = %e.model.info().path, "keep-alive ran out; unloading");
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

    /// Exempt the model in `path` from eviction and expiry (or end that).
    pub fn pin(&self, path: &Path, pinned: bool) -> bool {
        self.lock().get_mut(path).map(|e| e.pinned = pinned).is_some()
    }

    /// Forget the model in `path`; it is unloaded when its last request ends.
    pub fn unload(&self, path: &Path) -> bool {
        let removed = self.lock().remove(path);
        let found = removed.is_some();
        drop(self.retire(removed));
        found
    }

    /// Bytes the budget counts now: pooled models plus retired ones still leased.
    pub fn used_bytes(&self) -> u64 {
        let pooled: u64 = self.lock().values().map(|e| e.bytes).sum();
        pooled.saturating_add(self.retired_use().0)
    }

    /// The models currently held.
    pub fn loaded(&self) -> Vec<Arc<LlmModel>> {
        self.lock().values().map(|e| Arc::clone(&e.model)).collect()
    }

    /// Every loaded model with size, last use and expiry (for `ps`).
    pub fn status(&self) -> Vec<LoadedModelStatus> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(path, e)| LoadedModelStatus {
                path: path.clone(),
                plugin: e.model.plugin_id().to_owned(),
                bytes: e.bytes,
                last_used: e.last_used,
                expires: e.expires,
                in_use: e.in_use(),
                pinned: e.pinned,
            })
            .collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        all
    }
}
