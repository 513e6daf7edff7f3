//! Loaded models, shared between requests, that follow plugin reloads.
//!
//! A model is loaded once and shared (`Arc<LlmModel>`). When the plugin that
//! loaded it has been replaced by a new build, the next request loads the
//! model again through the new instance; requests still running keep the old
//! model (and so the old plugin instance) until they finish.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rustai_abi::LoadModelParams;

use crate::{error::Result, llm::LlmModel, manager::PluginManager, models::ModelFile};

/// Models loaded through a [`PluginManager`], one per file.
#[derive(Debug)]
pub struct ModelPool {
    manager: PluginManager,
    models: Mutex<HashMap<PathBuf, Entry>>,
}

#[derive(Debug)]
struct Entry {
    model: Arc<LlmModel>,
    params: LoadModelParams,
}

impl ModelPool {
    /// A pool over `manager`'s plugins.
    pub fn new(manager: PluginManager) -> Self {
        Self { manager, models: Mutex::default() }
    }

    /// The plugin manager.
    pub fn manager(&self) -> &PluginManager {
        &self.manager
    }

    /// The model in `file`, loaded with `params` by plugin `plugin` (or the first
    /// that reads the file's format). A model loaded by a plugin instance that has
    /// since been replaced, or with other parameters, is loaded again.
    pub fn llm(&self, file: &ModelFile, params: &LoadModelParams, plugin: Option<&str>) -> Result<Arc<LlmModel>> {
        let llm = match plugin {
            Some(id) => self.manager.llm(id)?,
            None => self.manager.llm_for_format(file.format.as_str())?,
        };
        let params = LoadModelParams { path: file.path.to_string_lossy().as_ref().into(), ..params.clone() };
        let is_current = |entry: &Entry| {
            let p = entry.model.plugin();
            p.id() == llm.plugin().id() && p.generation() == llm.plugin().generation() && entry.params == params
        };
        {
            // Declared before the guard, so stale models are dropped (and unloaded) after it is released.
            let _stale: Vec<Entry>;
            let mut models = self.lock();
            _stale = self.prune(&mut models);
            if let Some(entry) = models.get(&file.path).filter(|e| is_current(e)) {
                return Ok(Arc::clone(&entry.model));
            }
        }
        // Loading takes seconds: not under the lock, so other models keep serving.
        let model = Arc::new(llm.load(&params)?);
        let mut models = self.lock();
        match models.get(&file.path).filter(|e| is_current(e)) {
            // Another request loaded it meanwhile; use that one (ours is unloaded on drop).
            Some(entry) => Ok(Arc::clone(&entry.model)),
            None => {
                models.insert(file.path.clone(), Entry { model: Arc::clone(&model), params });
                Ok(model)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.models.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop models whose plugin instance is no longer serving (replaced or removed),
    /// so the old instance can retire once its running requests end.
    fn prune(&self, models: &mut HashMap<PathBuf, Entry>) -> Vec<Entry> {
        let stale: Vec<PathBuf> = models
            .iter()
            .filter(|(_, e)| {
                let p = e.model.plugin();
                !self.manager.get(p.id()).is_some_and(|current| current.generation() == p.generation())
            })
            .map(|(path, _)| path.clone())
            .collect();
        stale.iter().filter_map(|path| models.remove(path)).collect()
    }

    /// Forget the model in `path`; it is unloaded when its last request ends.
    pub fn unload(&self, path: &Path) -> bool {
        self.lock().remove(path).is_some()
    }

    /// The models currently held.
    pub fn loaded(&self) -> Vec<Arc<LlmModel>> {
        self.lock().values().map(|e| Arc::clone(&e.model)).collect()
    }
}
