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
    models: Mutex<HashMap<PathBuf, Arc<LlmModel>>>,
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
    /// since been replaced is loaded again by the current one.
    pub fn llm(&self, file: &ModelFile, params: &LoadModelParams, plugin: Option<&str>) -> Result<Arc<LlmModel>> {
        let llm = match plugin {
            Some(id) => self.manager.llm(id)?,
            None => self.manager.llm_for_format(file.format.as_str())?,
        };
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = models.get(&file.path) {
            let current = model.plugin().id() == llm.plugin().id() && model.plugin().generation() == llm.plugin().generation();
            if current {
                return Ok(Arc::clone(model));
            }
            tracing::info!(
                model = %file.id,
                plugin = llm.plugin().id(),
                version = llm.plugin().version(),
                "plugin was replaced; loading the model through the new instance"
            );
        }
        let params = LoadModelParams { path: file.path.to_string_lossy().as_ref().into(), ..params.clone() };
        let model = Arc::new(llm.load(&params)?);
        models.insert(file.path.clone(), Arc::clone(&model));
        Ok(model)
    }

    /// Forget the model in `path`; it is unloaded when its last request ends.
    pub fn unload(&self, path: &Path) -> bool {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).remove(path).is_some()
    }

    /// The models currently held.
    pub fn loaded(&self) -> Vec<Arc<LlmModel>> {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}
