//! The plugin manager: loads plugin files from folders, swaps in new builds,
//! retires old ones, remembers why files were rejected, hands out typed handles.
//!
//! Loaded plugins are shared as `Arc<LoadedPlugin>`: a request holds the
//! instance it started on, so a reload never pulls a plugin out from under a
//! running call. When the last holder of a replaced or removed instance lets
//! go, the instance is shut down (its models freed) and a `retired` event is
//! sent; the library itself stays mapped (it is never dlclosed).

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::SystemTime,
};

use tokio::sync::broadcast;

use super::{
    events::{EventKind, Events, PluginEvent},
    loaded::{FamilyKind, LoadedPlugin},
    loader::{self, is_library_path, RejectReason, TrustCheck},
    config::PluginConfigs,
    trust::{self, TrustPolicy},
};
use crate::error::{Error, Result};

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: RejectReason,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What [`PluginManager::sync_path`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SyncOutcome {
    /// A new plugin is serving.
    Loaded(Arc<LoadedPlugin>),
    /// A new build replaced the previous instance.
    Reloaded(Arc<LoadedPlugin>),
    /// The file has the digest of the instance already loaded from it.
    Unchanged,
    /// The file was rejected; a previous instance, if any, keeps serving.
    Rejected(Rejected),
    /// The file is gone; the plugin loaded from it was retired.
    Removed,
    /// Nothing was loaded from this path and there is nothing there to load.
    Nothing,
}

#[derive(Default)]
struct State {
    plugins: Vec<Arc<LoadedPlugin>>,
    rejected: Vec<Rejected>,
}

struct Inner {
    state: RwLock<State>,
    /// Serialises loads, so the checks and the swap of one file are atomic.
    load_lock: Mutex<()>,
    events: Events,
    trust: TrustPolicy,
    /// What each plugin receives in `init`.
    configs: RwLock<PluginConfigs>,
    dirs: RwLock<Vec<PathBuf>>,
    generations: AtomicU64,
    /// Private copies of plugin files are made here before loading.
    shadow_dir: tempfile::TempDir,
}

/// Loads plugins and keeps them. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager").field("plugins", &self.plugins()).field("rejected", &self.rejected()).finish()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl PluginManager {
    /// An empty manager with the default trust policy.
    pub fn new() -> Result<Self> {
        Self::with_trust(TrustPolicy::default())
    }

    /// An empty manager with `trust`.
    pub fn with_trust(trust: TrustPolicy) -> Result<Self> {
        let shadow_dir = tempfile::Builder::new()
            .prefix("rustai-plugins-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                state: RwLock::default(),
                load_lock: Mutex::new(()),
                events: Events::default(),
                trust,
                configs: RwLock::default(),
                dirs: RwLock::default(),
                generations: AtomicU64::new(0),
                shadow_dir,
            }),
        })
    }

    /// Give plugins loaded from now on (and new builds of loaded ones) `configs` in `init`.
    pub fn set_configs(&self, configs: PluginConfigs) {
        *write(&self.inner.configs) = configs;
    }

    /// A manager with every plugin found in `dirs` loaded. Folders that do not
    /// exist are remembered (for watching) but skipped; bad files are recorded in
    /// [`Self::rejected`].
    pub fn from_dirs<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Result<Self> {
        let manager = Self::new()?;
        for dir in dirs {
            manager.load_dir(dir.as_ref())?;
        }
        Ok(manager)
    }

    /// Manage `dir`: load every `*.so` / `*.dylib` / `*.dll` directly inside it, in name order.
    pub fn load_dir(&self, dir: &Path) -> Result<()> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        {
            let mut dirs = write(&self.inner.dirs);
            if !dirs.contains(&dir) {
                dirs.push(dir.clone());
            }
        }
        if !dir.is_dir() {
            return Ok(());
        }
        for file in plugin_files(&dir)? {
            self.sync_path(&file);
        }
        Ok(())
    }

    /// The folders this manager manages.
    pub fn dirs(&self) -> Vec<PathBuf> {
        read(&self.inner.dirs).clone()
    }

    /// Load one plugin file (or reload it, if it was loaded before and changed).
    pub fn load_file(&self, path: &Path) -> std::result::Result<Arc<LoadedPlugin>, Rejected> {
        match self.sync_path(path) {
            SyncOutcome::Loaded(p) | SyncOutcome::Reloaded(p) => Ok(p),
            SyncOutcome::Rejected(r) => Err(r),
            _ => {
                let path = absolute(path);
                match self.plugins().into_iter().find(|p| p.path == path) {
                    Some(p) => Ok(p),
                    None => Err(Rejected { reason: RejectReason::Unreadable("no such file".into()), path }),
                }
            }
        }
    }

    /// Bring the plugin at `path` in line with the file system: load it if it
    /// is new, swap in a changed build (only if it passes every check), retire
    /// the plugin if the file is gone. This is what the watcher calls.
    pub fn sync_path(&self, path: &Path) -> SyncOutcome {
        let path = absolute(path);
        let _serial = self.inner.load_lock.lock().unwrap_or_else(|p| p.into_inner());
        let events = &self.inner.events;
        let existing = read(&self.inner.state).plugins.iter().find(|p| p.path == path).cloned();

        // A dangling symlink is still there (and gets rejected with its reason), not removed.
        if path.symlink_metadata().is_err() {
            {
                let mut state = write(&self.inner.state);
                state.rejected.retain(|r| r.path != path);
                if let Some(old) = &existing {
                    state.plugins.retain(|p| !Arc::ptr_eq(p, old));
                }
            }
            // Dropped outside the lock: if this was the last holder, shutdown runs now.
            return match existing {
                Some(old) => {
                    tracing::info!(id = old.id(), path = %path.display(), "plugin file removed; retiring once idle");
                    drop(old);
                    SyncOutcome::Removed
                }
                None => SyncOutcome::Nothing,
            };
        }
        if let Some(old) = &existing {
            if trust::sha256_file(&path).is_ok_and(|d| d == old.digest) {
                // Same build. It still has to pass the trust rules as they are now
                // (an operator may have removed its digest from plugins.lock).
                let still_trusted = self.trust_check(&path).and_then(|check| match &check.allowed {
                    Some(allowed) if !allowed.contains(&old.digest) => {
                        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        Err(RejectReason::NotAllowed { digest: old.digest.clone(), file })
                    }
                    _ => Ok(()),
                });
                let mut state = write(&self.inner.state);
                state.rejected.retain(|r| r.path != path);
                match still_trusted {
                    Ok(()) => return SyncOutcome::Unchanged,
                    Err(reason) => {
                        state.plugins.retain(|p| !Arc::ptr_eq(p, old));
                        let rejected = Rejected { path: path.clone(), reason };
                        state.rejected.push(rejected.clone());
                        drop(state);
                        events.emit(EventKind::Rejected, &path, Some(old.id()), Some(old.version()), Some(format!("{}; retiring it", rejected.reason)));
                        return SyncOutcome::Rejected(rejected);
                    }
                }
            }
            events.emit(EventKind::Reloading, &path, Some(old.id()), Some(old.version()), None);
        } else {
            events.emit(EventKind::Discovered, &path, None, None, None);
        }

        let outcome = self.trust_check(&path).and_then(|check| loader::load(&path, self.inner.shadow_dir.path(), &check, &|id| read(&self.inner.configs).for_plugin(id)));
        let loaded = outcome.and_then(|loaded| {
            let clash = read(&self.inner.state).plugins.iter().find(|p| p.id() == loaded.info.id.as_str() && p.path != path).cloned();
            match clash {
                Some(other) => {
                    // Instantiated already: shut it down again (the library stays mapped).
                    let _ = loaded.instance.plugin.shutdown();
                    Err(RejectReason::DuplicateId { id: loaded.info.id.to_string(), loaded_from: other.path.clone() })
                }
                None => Ok(loaded),
            }
        });
        let loaded = match loaded {
            Ok(l) => l,
            Err(reason) => {
                let rejected = Rejected { path: path.clone(), reason };
                let detail = match &existing {
                    Some(old) => format!("{}; version {} keeps serving", rejected.reason, old.version()),
                    None => rejected.reason.to_string(),
                };
                events.emit(EventKind::Rejected, &path, existing.as_ref().map(|p| p.id()), None, Some(detail));
                let mut state = write(&self.inner.state);
                state.rejected.retain(|r| r.path != path);
                state.rejected.push(rejected.clone());
                return SyncOutcome::Rejected(rejected);
            }
        };
        let id = loaded.info.id.to_string();
        let version = loaded.info.version.to_string();
        events.emit(EventKind::Validated, &path, Some(&id), Some(&version), Some(format!("sha256 {}", loaded.digest)));
        let plugin = Arc::new(LoadedPlugin {
            info: loaded.info,
            handshake: loaded.handshake,
            path: path.clone(),
            digest: loaded.digest,
            generation: self.inner.generations.fetch_add(1, Ordering::Relaxed) + 1,
            loaded_at: SystemTime::now(),
            events: events.clone(),
            instance: loaded.instance,
        });
        events.emit(EventKind::Loaded, &path, Some(&id), Some(&version), None);
        {
            let mut state = write(&self.inner.state);
            state.rejected.retain(|r| r.path != path);
            match state.plugins.iter_mut().find(|p| p.path == path) {
                Some(slot) => *slot = Arc::clone(&plugin),
                None => state.plugins.push(Arc::clone(&plugin)),
            }
        }
        match existing {
            Some(old) => {
                let detail = format!("replaces version {}; it retires after its last request", old.version());
                // Announce the new version before the old one can retire (dropping `old` may be its last hold).
                events.emit(EventKind::Reloaded, &path, Some(&id), Some(&version), Some(detail));
                drop(old);
                SyncOutcome::Reloaded(plugin)
            }
            None => {
                events.emit(EventKind::Active, &path, Some(&id), Some(&version), None);
                SyncOutcome::Loaded(plugin)
            }
        }
    }

    fn trust_check(&self, path: &Path) -> std::result::Result<TrustCheck, RejectReason> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let lock = trust::lock_file_digests(dir)
            .map_err(|e| RejectReason::Unreadable(format!("{}: {e}", dir.join(trust::LOCK_FILE).display())))?;
        let policy = &self.inner.trust;
        let allowed = match lock {
            Some(mut digests) => {
                digests.extend(policy.allowed_digests.iter().cloned());
                Some(digests)
            }
            None if !policy.allowed_digests.is_empty() => Some(policy.allowed_digests.clone()),
            None => None,
        };
        Ok(TrustCheck { allowed, check_permissions: !policy.skip_permission_check })
    }

    /// Lifecycle events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PluginEvent> {
        self.inner.events.subscribe()
    }

    /// The serving plugins, in load order.
    pub fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        read(&self.inner.state).plugins.clone()
    }

    /// Files that are not loaded, with reasons (the latest attempt per file).
    pub fn rejected(&self) -> Vec<Rejected> {
        read(&self.inner.state).rejected.clone()
    }

    /// The serving plugin with id `id`.
    pub fn get(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        read(&self.inner.state).plugins.iter().find(|p| p.id() == id).cloned()
    }

    /// Plugin `id`, which must implement `family`.
    pub fn with_family(&self, id: &str, family: FamilyKind) -> Result<Arc<LoadedPlugin>> {
        let plugin = self.get(id).ok_or_else(|| Error::UnknownPlugin(id.to_owned()))?;
        if !plugin.offers(family) {
            return Err(Error::MissingFamily { plugin: id.to_owned(), family: family.trait_name() });
        }
        Ok(plugin)
    }

    /// The one rule for which plugin serves a model: the plugin the model names (its
    /// `provider`, or the one a request asks for) when given, which must implement
    /// `family`; otherwise the first serving plugin, in load order, that implements
    /// `family` and reads `format`.
    pub fn serving(&self, named: Option<&str>, format: &str, family: FamilyKind) -> Result<Arc<LoadedPlugin>> {
        if let Some(id) = named {
            return self.with_family(id, family);
        }
        read(&self.inner.state)
            .plugins
            .iter()
            .find(|p| p.offers(family) && p.reads_format(format))
            .cloned()
            .ok_or_else(|| Error::NoPluginFor(format!("{} from {format} models", family.verb())))
    }
}

/// `path` made absolute (without resolving symlinks of the file itself, so a
/// removed file still maps to the same key).
fn absolute(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (dir.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Plugin candidates directly inside `dir`: library extensions, not hidden, sorted.
pub(crate) fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).max_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::io(path, e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed")))
        })?;
        // Symlinks count too (people link their own builds in); the loader follows them and
        // checks the target, and a dangling link is reported, not skipped.
        let kind = entry.file_type();
        if (kind.is_file() || kind.is_symlink()) && is_candidate(entry.path()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// Whether `path` names a plugin candidate (a library extension, not a hidden file).
pub(crate) fn is_candidate(path: &Path) -> bool {
    let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
    !hidden && is_library_path(path)
}
