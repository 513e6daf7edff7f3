//! Embedding, speech-to-text and text-to-speech models held by the [`Engine`]:
//! loaded on first use through the plugin that reads the model's format (or
//! its `provider`), shared between requests, and loaded again when that
//! plugin has been hot-reloaded since.
//!
//! These models are small next to LLMs and are kept until the engine drops;
//! they are not (yet) counted against the memory budget.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use rustai_abi::LoadModelParams;

use crate::{
    engine::Engine,
    error::{Error, Result},
    families::{EmbeddingModel, SttModel, TtsModel},
    manager::{LoadedPlugin, PluginManager},
    models::{Location, ModelEntry, Task},
};

/// Loaded models of one family by (model id, plugin id, plugin generation).
type Cache<M> = Mutex<HashMap<(String, String, u64), Arc<M>>>;

/// The engine's auxiliary models.
#[derive(Debug, Default)]
pub(crate) struct AuxModels {
    embedding: Cache<EmbeddingModel>,
    stt: Cache<SttModel>,
    tts: Cache<TtsModel>,
}

fn params(entry: &ModelEntry) -> LoadModelParams {
    let path = match &entry.location {
        Location::Local(p) => p.to_string_lossy().into_owned(),
        Location::Remote(url) => url.clone(),
    };
    let extra = if entry.config.is_empty() { String::new() } else { serde_json::Value::Object(entry.config.clone().into_iter().collect()).to_string() };
    LoadModelParams { extra_json: extra.into(), ..LoadModelParams::new(path) }
}

/// The plugin for `entry` with family `has`.
fn plugin_for(plugins: &PluginManager, entry: &ModelEntry, family: &'static str) -> Result<Arc<LoadedPlugin>> {
    let found = match &entry.provider {
        Some(id) => plugins.get(id).ok_or_else(|| Error::UnknownPlugin(id.clone()))?,
        None => plugins
            .plugins()
            .into_iter()
            .find(|p| p.reads_format(entry.format.as_str()) && p.families().contains(&family))
            .ok_or_else(|| Error::NoPluginFor(format!("with the {family} family reads {} models", entry.format.as_str())))?,
    };
    Ok(found)
}

fn cached<M>(
    map: &Cache<M>,
    entry: &ModelEntry,
    plugin: &LoadedPlugin,
    load: impl FnOnce() -> Result<M>,
) -> Result<Arc<M>> {
    let key = (entry.id.clone(), plugin.id().to_owned(), plugin.generation());
    let mut map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Models of replaced plugin instances go, so the old instance can retire.
    map.retain(|(id, p, g), _| !(id == &key.0 && (p != &key.1 || *g != key.2)));
    if let Some(m) = map.get(&key) {
        return Ok(Arc::clone(m));
    }
    let model = Arc::new(load()?);
    map.insert(key, Arc::clone(&model));
    Ok(model)
}

impl Engine {
    /// The embedding model `model` (id, prefix or `name:tag`), loaded on first use.
    pub fn embedding_model(&self, model: &str) -> Result<(ModelEntry, Arc<EmbeddingModel>)> {
        let entry = self.resolve(model, Task::Embedding)?;
        let plugin = plugin_for(self.plugins(), &entry, "embedding")?;
        let family = crate::families::Embedder::new(Arc::clone(&plugin))?;
        let m = cached(&self.aux().embedding, &entry, &plugin, || family.load(&params(&entry)))?;
        Ok((entry, m))
    }

    /// The speech-to-text model `model`, loaded on first use.
    pub fn stt_model(&self, model: &str) -> Result<(ModelEntry, Arc<SttModel>)> {
        let entry = self.resolve(model, Task::Stt)?;
        let plugin = plugin_for(self.plugins(), &entry, "stt")?;
        let family = crate::families::Transcriber::new(Arc::clone(&plugin))?;
        let m = cached(&self.aux().stt, &entry, &plugin, || family.load(&params(&entry)))?;
        Ok((entry, m))
    }

    /// The text-to-speech model `model`, loaded on first use.
    pub fn tts_model(&self, model: &str) -> Result<(ModelEntry, Arc<TtsModel>)> {
        let entry = self.resolve(model, Task::Tts)?;
        let plugin = plugin_for(self.plugins(), &entry, "tts")?;
        let family = crate::families::Synthesizer::new(Arc::clone(&plugin))?;
        let m = cached(&self.aux().tts, &entry, &plugin, || family.load(&params(&entry)))?;
        Ok((entry, m))
    }

    /// The first installed model for `task` that a loaded plugin can serve (for requests that
    /// name none, e.g. a voice-only `/v1/audio/speech`).
    pub fn default_model(&self, task: Task) -> Option<ModelEntry> {
        let family = task.family()?;
        self.registry().entries().into_iter().find(|e| e.task == task && plugin_for(self.plugins(), e, family).is_ok())
    }
}
