//! The plugin manager: finds plugin files in folders, loads the good ones,
//! remembers why the others were rejected, and hands out typed handles.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustai_abi::{Category, Handshake, Health, PluginInfo, PluginInstance};
use tracing::{info, warn};

use crate::{
    error::{Error, Result},
    llm::Llm,
    loader::{self, is_library_path, RejectReason},
};

/// A plugin that is loaded and serving.
pub struct LoadedPlugin {
    info: PluginInfo,
    handshake: Handshake,
    path: PathBuf,
    pub(crate) instance: PluginInstance,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("id", &self.id()).field("path", &self.path).finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The plugin's id.
    pub fn id(&self) -> &str {
        self.info.id.as_str()
    }
    /// Everything the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
    /// Its handshake (API version, interface features).
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }
    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Ask the plugin for its health.
    pub fn health(&self) -> Health {
        self.instance.plugin.health()
    }
    /// Whether it advertises capability feature `feature` (e.g. `streaming`).
    pub fn has_feature(&self, feature: &str) -> bool {
        self.info.capabilities.features.iter().any(|f| f == feature)
    }
    /// Whether it reads model format `format` (e.g. `gguf`).
    pub fn reads_format(&self, format: &str) -> bool {
        self.info.capabilities.formats.iter().any(|f| f.as_str().eq_ignore_ascii_case(format))
    }
    /// Its families, by name, for display.
    pub fn families(&self) -> Vec<&'static str> {
        let i = &self.instance;
        [
            (i.llm.is_some(), "llm"),
            (i.embedding.is_some(), "embedding"),
            (i.stt.is_some(), "stt"),
            (i.tts.is_some(), "tts"),
            (i.tool.is_some(), "tool"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect()
    }
}

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

/// Loads plugins and keeps them.
pub struct PluginManager {
    plugins: Vec<Arc<LoadedPlugin>>,
    rejected: Vec<Rejected>,
    /// Private copies of plugin files are made here before loading.
    shadow_dir: tempfile::TempDir,
}

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager").field("plugins", &self.plugins).field("rejected", &self.rejected).finish()
    }
}

impl PluginManager {
    /// An empty manager.
    pub fn new() -> Result<Self> {
        let shadow_dir = tempfile::Builder::new()
            .prefix("rustai-plugins-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Ok(Self { plugins: Vec::new(), rejected: Vec::new(), shadow_dir })
    }

    /// A manager with every plugin found in `dirs` loaded. Folders that do not
    /// exist are skipped; bad files are recorded in [`Self::rejected`].
    pub fn from_dirs<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Result<Self> {
        let mut manager = Self::new()?;
        for dir in dirs {
            let dir = dir.as_ref();
            if dir.is_dir() {
                manager.load_dir(dir)?;
            }
        }
        Ok(manager)
    }

    /// Load every `*.so` / `*.dylib` / `*.dll` directly inside `dir`, in name order.
    pub fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(dir).min_depth(1).max_depth(1).sort_by_file_name() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(dir).to_path_buf();
                Error::io(path, e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed")))
            })?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().is_file() && is_library_path(entry.path()) {
                files.push(entry.into_path());
            }
        }
        for file in files {
            // Rejections are recorded, not fatal.
            let _ = self.load_file(&file);
        }
        Ok(())
    }

    /// Load one plugin file.
    pub fn load_file(&mut self, path: &Path) -> std::result::Result<Arc<LoadedPlugin>, Rejected> {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let outcome = loader::load(&path, self.shadow_dir.path()).and_then(|loaded| {
            if let Some(other) = self.get(loaded.info.id.as_str()) {
                // The duplicate was instantiated; shut it down again (its library stays mapped).
                let _ = loaded.instance.plugin.shutdown();
                return Err(RejectReason::DuplicateId { id: loaded.info.id.to_string(), loaded_from: other.path.clone() });
            }
            Ok(loaded)
        });
        match outcome {
            Ok(loaded) => {
                let plugin = Arc::new(LoadedPlugin {
                    info: loaded.info,
                    handshake: loaded.handshake,
                    path: path.clone(),
                    instance: loaded.instance,
                });
                info!(id = plugin.id(), version = %plugin.info.version, path = %path.display(), "plugin loaded");
                self.plugins.push(Arc::clone(&plugin));
                Ok(plugin)
            }
            Err(reason) => {
                let rejected = Rejected { path, reason };
                warn!("plugin rejected: {rejected}");
                self.rejected.push(rejected.clone());
                Err(rejected)
            }
        }
    }

    /// Loaded plugins, in load order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// Files that were not loaded, with reasons.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// The plugin with id `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.id() == id)
    }

    /// Plugins of category `category`.
    pub fn by_category(&self, category: Category) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.iter().filter(move |p| p.info.category == category)
    }

    /// Plugins advertising capability feature `feature`.
    pub fn with_feature<'a>(&'a self, feature: &'a str) -> impl Iterator<Item = &'a Arc<LoadedPlugin>> {
        self.plugins.iter().filter(move |p| p.has_feature(feature))
    }

    /// The text-generation interface of plugin `id`.
    pub fn llm(&self, id: &str) -> Result<Llm> {
        let plugin = self.get(id).ok_or_else(|| Error::UnknownPlugin(id.to_owned()))?;
        Llm::new(Arc::clone(plugin))
    }

    /// The first text-generation plugin that reads model format `format`.
    pub fn llm_for_format(&self, format: &str) -> Result<Llm> {
        self.plugins
            .iter()
            .find(|p| p.instance.llm.is_some() && p.reads_format(format))
            .ok_or_else(|| Error::NoPluginFor(format!("generates text from {format} models")))
            .and_then(|p| Llm::new(Arc::clone(p)))
    }
}
