//! The model registry: every model found in the model folders or declared in
//! `models.toml`, kept current, looked up by name.
//!
//! A scan never fails: a file that cannot be used is kept in
//! [`Registry::unrecognised`] with the reason. Detection results are cached
//! by (path, size, modification time), so rescanning after a change only reads
//! what changed.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::SystemTime,
};

use tokio::sync::broadcast;

use super::{
    config::{expand, to_json, ConfigFile, ModelConfigEntry},
    detect::{self, Detected},
    Constraints, Location, ModelEntry, ModelFormat, Origin, Task,
};
use crate::{
    error::{Error, Result},
    plugins::{LoadedPlugin, PluginManager},
};

/// Where to look.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Model folders, in order of preference (an id found twice is served from the first).
    pub dirs: Vec<PathBuf>,
    /// `models.toml`; `None` = the first `models.toml` at the top of one of `dirs`.
    pub config_file: Option<PathBuf>,
    /// Model files or folders named by path (on the command line, say), registered before
    /// anything found in `dirs`, so their ids win.
    pub files: Vec<PathBuf>,
}

impl RegistryOptions {
    /// `./models` and `~/.rustai/models`.
    pub fn default_dirs() -> Vec<PathBuf> {
        let mut dirs = vec![PathBuf::from("models")];
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(home).join(".rustai/models"));
        }
        dirs
    }

    /// Scan `dirs`, with a `models.toml` found in them.
    pub fn new<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Self {
        Self { dirs: dirs.into_iter().map(|d| d.as_ref().to_path_buf()).collect(), config_file: None, files: Vec::new() }
    }

    fn config_path(&self) -> Option<PathBuf> {
        self.config_file.clone().or_else(|| self.dirs.iter().map(|d| d.join("models.toml")).find(|p| p.is_file()))
    }
}

/// A file in a model folder that is not a usable model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unrecognised {
    /// The file.
    pub path: PathBuf,
    /// Why it is not listed as a model.
    pub reason: String,
}

/// A change to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryEvent {
    /// A model appeared.
    Added(String),
    /// A model's file or settings changed.
    Changed(String),
    /// A model disappeared.
    Removed(String),
    /// `models.toml` could not be read; the previous settings stay in force.
    ConfigError(String),
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, ModelEntry>,
    unrecognised: Vec<Unrecognised>,
    config: Option<(PathBuf, ConfigFile)>,
    cache: HashMap<PathBuf, (Stamp, std::result::Result<Detected, String>)>,
}

struct Inner {
    options: RegistryOptions,
    state: RwLock<State>,
    events: broadcast::Sender<RegistryEvent>,
}

/// The models this process knows; a cheap handle (clones share the state).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("dirs", &self.inner.options.dirs).field("models", &self.len()).finish()
    }
}

impl Registry {
    /// Scan the folders and read `models.toml`. A malformed `models.toml` is an error here
    /// (at start-up); later, while watching, it is reported and the previous settings kept.
    pub fn open(options: RegistryOptions) -> Result<Self> {
        let config = match options.config_path() {
            Some(path) => Some((path.clone(), ConfigFile::read(&path)?)),
            None => None,
        };
        let registry = Self::with_state(options, State { config, ..State::default() });
        registry.refresh();
        Ok(registry)
    }

    /// Scan `dirs` only (no `models.toml`).
    pub fn scan_only<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Self {
        let registry = Self::with_state(RegistryOptions::new(dirs), State::default());
        registry.refresh();
        registry
    }

    fn with_state(options: RegistryOptions, state: State) -> Self {
        Self { inner: Arc::new(Inner { options, state: RwLock::new(state), events: broadcast::channel(256).0 }) }
    }

    /// Describe one file or folder given by path, whether or not it is in a model folder.
    pub fn entry_for_path(path: &Path) -> Result<ModelEntry> {
        let detected = if path.is_dir() { detect::detect_safetensors_dir(path) } else { detect::detect_file(path) };
        match detected {
            Ok(d) => Ok(entry_from(path, d, None)),
            Err(reason) => Err(Error::InvalidModel { path: path.to_path_buf(), reason }),
        }
    }

    /// The options it was opened with.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// The `models.toml` in force, if any.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.read().config.as_ref().map(|(p, _)| p.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every model, sorted by id.
    pub fn entries(&self) -> Vec<ModelEntry> {
        self.read().entries.values().cloned().collect()
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Files that are in the folders but are not usable models, with the reason.
    pub fn unrecognised(&self) -> Vec<Unrecognised> {
        self.read().unrecognised.clone()
    }

    /// Subscribe to changes.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.inner.events.subscribe()
    }

    /// Look a model up: an exact id, then case-insensitively, then Ollama-style
    /// `name:tag` (`:latest` matches a name with a single tag), then the name,
    /// then an unambiguous prefix of the id or `name:tag`.
    pub fn lookup(&self, query: &str) -> Result<ModelEntry> {
        let state = self.read();
        let all: Vec<&ModelEntry> = state.entries.values().collect();
        lookup_in(&all, query).cloned()
    }

    /// Rescan the folders (and re-read `models.toml` if it changed); returns the changes.
    pub fn refresh(&self) -> Vec<RegistryEvent> {
        let mut events = Vec::new();
        let mut state = self.inner.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = self.inner.options.config_path() {
            match ConfigFile::read(&path) {
                Ok(file) => state.config = Some((path, file)),
                Err(e) => {
                    tracing::warn!("{e}; keeping the previous model settings");
                    events.push(RegistryEvent::ConfigError(e.to_string()));
                }
            }
        } else {
            state.config = None;
        }
        let (entries, unrecognised) = build(&self.inner.options, &mut state);
        for (id, new) in &entries {
            match state.entries.get(id) {
                None => events.push(RegistryEvent::Added(id.clone())),
                Some(old) if old != new => events.push(RegistryEvent::Changed(id.clone())),
                Some(_) => {}
            }
        }
        events.extend(state.entries.keys().filter(|id| !entries.contains_key(*id)).map(|id| RegistryEvent::Removed(id.clone())));
        state.entries = entries;
        state.unrecognised = unrecognised;
        drop(state);
        for e in &events {
            tracing::info!(event = ?e, "model registry");
            let _ = self.inner.events.send(e.clone());
        }
        events
    }

    /// The entry of the model file or folder at `path` (under whatever id `models.toml` gives it).
    pub fn entry_at(&self, path: &Path) -> Option<ModelEntry> {
        self.entries().into_iter().find(|e| e.path().is_some_and(|p| same_file(p, path)))
    }

    /// The loaded plugin that would serve `entry`: its `provider` if set, else the first
    /// plugin that reads the format and implements the task's family.
    pub fn plugin_for(entry: &ModelEntry, plugins: &PluginManager) -> Option<Arc<LoadedPlugin>> {
        Self::serving(entry, plugins, None).ok()
    }

    /// The plugin that serves `entry`, or why none can: `named` (a request's choice) or
    /// the entry's `provider` when set, else the first plugin of the task's family that
    /// reads the entry's format ([`PluginManager::serving`], the one rule).
    pub fn serving(entry: &ModelEntry, plugins: &PluginManager, named: Option<&str>) -> Result<Arc<LoadedPlugin>> {
        let family = entry.task.family().unwrap_or(crate::plugins::FamilyKind::Llm);
        plugins.serving(named.or(entry.provider.as_deref()), entry.format.as_str(), family)
    }
}

pub(super) fn lookup_in<'a>(all: &[&'a ModelEntry], query: &str) -> Result<&'a ModelEntry> {
    let pick = |matches: Vec<&'a ModelEntry>| -> Option<Result<&'a ModelEntry>> {
        match matches.as_slice() {
            [] => None,
            [one] => Some(Ok(*one)),
            many => Some(Err(Error::AmbiguousModel { name: query.to_owned(), candidates: many.iter().map(|m| m.full_name()).collect() })),
        }
    };
    let q = query.to_lowercase();
    let by = |f: &dyn Fn(&ModelEntry) -> bool| all.iter().copied().filter(|m| f(m)).collect::<Vec<_>>();
    let tagged = |m: &ModelEntry| match q.split_once(':') {
        Some((name, tag)) => m.name == name && (m.tag == tag || (tag == "latest" && all.iter().filter(|o| o.name == name).count() == 1)),
        None => false,
    };
    pick(by(&|m| m.id == query))
        .or_else(|| pick(by(&|m| m.id.to_lowercase() == q)))
        .or_else(|| pick(by(&|m| tagged(m))))
        .or_else(|| q.strip_suffix(":latest").and_then(|id| pick(by(&|m| m.id.to_lowercase() == id))))
        .or_else(|| pick(by(&|m| m.name == q)))
        .or_else(|| pick(by(&|m| m.id.to_lowercase().starts_with(&q) || m.full_name().starts_with(&q))))
        .unwrap_or_else(|| Err(Error::UnknownModel { name: query.to_owned(), known: all.iter().map(|m| m.id.clone()).collect() }))
}

/// Name and tag for an id: GGUF files are tagged with their quantization.
fn name_and_tag(id: &str, format: ModelFormat, quantization: Option<&str>) -> (String, String) {
    let lower = id.to_lowercase();
    if let (ModelFormat::Gguf, Some(q)) = (format, quantization) {
        let q = q.to_lowercase();
        for sep in ['.', '-', '_'] {
            if let Some(base) = lower.strip_suffix(&format!("{sep}{q}")) {
                return (base.to_owned(), q);
            }
        }
        return (lower, q);
    }
    match lower.split_once(':') {
        Some((n, t)) => (n.to_owned(), t.to_owned()),
        None => (lower, "latest".into()),
    }
}

fn entry_from(path: &Path, d: Detected, id: Option<String>) -> ModelEntry {
    let id = id.unwrap_or_else(|| {
        let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
        stem.map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    });
    let (name, tag) = name_and_tag(&id, d.format, d.meta.quantization.as_deref());
    ModelEntry {
        id,
        name,
        tag,
        format: d.format,
        task: d.task,
        location: Location::Local(path.to_path_buf()),
        size: d.size,
        modified: std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        meta: d.meta,
        provider: None,
        priority: 0,
        tags: Vec::new(),
        config: BTreeMap::new(),
        constraints: Constraints::default(),
        origin: Origin::Discovered,
    }
}

/// Size and modification time of a file and of its `.json` sidecar (a Piper voice's config).
type Stamp = (u64, Option<SystemTime>, Option<(u64, Option<SystemTime>)>);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    let sidecar = std::fs::metadata(format!("{}.json", path.display())).ok().map(|m| (m.len(), m.modified().ok()));
    Ok((meta.len(), meta.modified().ok(), sidecar))
}

fn detect_cached(state: &mut State, path: &Path, is_dir: bool) -> std::result::Result<Detected, String> {
    // A folder's own mtime does not change when a file inside is rewritten: never cache folders.
    if is_dir {
        return detect::detect_safetensors_dir(path);
    }
    let stamp = stamp(path).map_err(|e| format!("cannot read: {e}"))?;
    if let Some((seen, result)) = state.cache.get(path) {
        if *seen == stamp {
            return result.clone();
        }
    }
    let result = detect::detect_file(path);
    state.cache.insert(path.to_path_buf(), (stamp, result.clone()));
    result
}

fn hidden(e: &walkdir::DirEntry) -> bool {
    e.depth() > 0 && e.file_name().to_str().is_some_and(|n| n.starts_with('.'))
}

/// Whether `a` and `b` name the same file or folder.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn build(options: &RegistryOptions, state: &mut State) -> (BTreeMap<String, ModelEntry>, Vec<Unrecognised>) {
    let mut entries: BTreeMap<String, ModelEntry> = BTreeMap::new();
    let mut unrecognised = Vec::new();
    let config = state.config.clone();
    let (config_base, config) = match &config {
        Some((path, file)) => (path.parent().unwrap_or(Path::new(".")).to_path_buf(), Some(file)),
        None => (PathBuf::from("."), None),
    };
    let mut dirs = Vec::new();
    if config.is_none_or(|c| c.registry.auto_discover) {
        dirs.extend(options.dirs.iter().cloned());
        if let Some(c) = config {
            dirs.extend(c.registry.scan_paths.iter().map(|p| expand(p, &config_base)));
        }
    }
    let mut seen_dirs = Vec::new();
    let mut live = std::collections::HashSet::new();
    for path in &options.files {
        live.insert(path.clone());
        match detect_cached(state, path, path.is_dir()) {
            Ok(d) => {
                let entry = entry_from(path, d, None);
                entries.entry(entry.id.clone()).or_insert(entry);
            }
            Err(reason) => unrecognised.push(Unrecognised { path: path.clone(), reason }),
        }
    }
    for dir in dirs {
        let Ok(canonical) = dir.canonicalize() else { continue };
        if seen_dirs.contains(&canonical) {
            continue;
        }
        seen_dirs.push(canonical);
        let mut walk = walkdir::WalkDir::new(&dir).follow_links(true).sort_by_file_name().into_iter().filter_entry(|e| !hidden(e));
        while let Some(item) = walk.next() {
            let e = match item {
                Ok(e) => e,
                Err(err) => {
                    let path = err.path().map(Path::to_path_buf).unwrap_or_else(|| dir.clone());
                    unrecognised.push(Unrecognised { path, reason: format!("cannot read: {err}") });
                    continue;
                }
            };
            let path = e.path();
            let is_dir = e.file_type().is_dir();
            if is_dir && (e.depth() == 0 || !detect::is_safetensors_dir(path)) {
                continue;
            }
            if !is_dir && detect::is_ignored_file(&e.file_name().to_string_lossy()) {
                continue;
            }
            if is_dir {
                walk.skip_current_dir();
            }
            live.insert(path.to_path_buf());
            match detect_cached(state, path, is_dir) {
                Ok(d) => {
                    let entry = entry_from(path, d, None);
                    if let Some(first) = entries.get(&entry.id) {
                        if first.path().is_some_and(|p| same_file(p, path)) {
                            continue; // also named by path
                        }
                        let reason = format!("same id `{}` as {}; rename one of them", entry.id, first.path().unwrap_or(Path::new("?")).display());
                        unrecognised.push(Unrecognised { path: path.to_path_buf(), reason });
                    } else {
                        entries.insert(entry.id.clone(), entry);
                    }
                }
                Err(reason) => unrecognised.push(Unrecognised { path: path.to_path_buf(), reason }),
            }
        }
    }
    state.cache.retain(|p, _| live.contains(p));
    if let Some(c) = config {
        for m in &c.models {
            if let Err(reason) = apply_config(m, &config_base, &mut entries) {
                unrecognised.push(Unrecognised { path: PathBuf::from(&m.location), reason: format!("models.toml entry `{}`: {reason}", m.id) });
            }
        }
    }
    (entries, unrecognised)
}

fn apply_config(m: &ModelConfigEntry, base: &Path, entries: &mut BTreeMap<String, ModelEntry>) -> std::result::Result<(), String> {
    let mut entry = if m.is_remote() {
        let provider = m.provider.clone().ok_or("a remote model needs `provider` (e.g. openai, ollama)")?;
        let (name, tag) = name_and_tag(&m.id, ModelFormat::Remote, None);
        ModelEntry {
            id: m.id.clone(),
            name,
            tag,
            format: ModelFormat::Remote,
            task: Task::Chat,
            location: Location::Remote(m.location.clone()),
            size: 0,
            modified: None,
            meta: Default::default(),
            provider: Some(provider),
            priority: 0,
            tags: Vec::new(),
            config: BTreeMap::new(),
            constraints: Constraints::default(),
            origin: Origin::Configured,
        }
    } else {
        let path = m.local_path(base);
        let canonical = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        let found = entries.iter().find(|(_, e)| e.path().and_then(|p| p.canonicalize().ok()).as_ref() == Some(&canonical)).map(|(id, _)| id.clone());
        match found {
            Some(old_id) => {
                let mut e = entries.remove(&old_id).ok_or("vanished")?;
                e.origin = Origin::Both;
                e
            }
            None => {
                let mut e = Registry::entry_for_path(&path).map_err(|e| e.to_string())?;
                e.origin = Origin::Configured;
                e
            }
        }
    };
    if entries.contains_key(&m.id) {
        return Err(format!("id `{}` is already used by a discovered model", m.id));
    }
    entry.id = m.id.clone();
    let (name, tag) = name_and_tag(&m.id, entry.format, entry.meta.quantization.as_deref());
    (entry.name, entry.tag) = (name, tag);
    entry.provider = m.provider.clone().or(entry.provider);
    entry.priority = m.priority;
    entry.tags = m.tags.clone();
    if let Some(task) = m.task {
        entry.task = task;
    }
    entry.config = m.config.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    entry.constraints = m.constraints.clone();
    entries.insert(entry.id.clone(), entry);
    Ok(())
}
