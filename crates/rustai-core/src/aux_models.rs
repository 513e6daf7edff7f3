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
    families::{Embedder, EmbeddingModel, Synthesizer, SttModel, Transcriber, TtsModel},
    manager::{LoadedPlugin, PluginManager},
    models::{ModelEntry, Registry, Task},
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

/// The plugin that serves `entry` (its `provider`, or one reading its format with the task's family).
fn plugin_for(plugins: &PluginManager, entry: &ModelEntry) -> Result<Arc<LoadedPlugin>> {
    Registry::plugin_for(entry, plugins).ok_or_else(|| match &entry.provider {
        Some(id) => Error::UnknownPlugin(id.clone()),
        None => Error::NoPluginFor(format!("with the {} family reads {} models", entry.task.family().unwrap_or("right"), entry.format.as_str())),
    })
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
    /// Resolve `model` for `task`, find its plugin, and load it through `family` (or reuse it).
    fn aux<F, M>(&self, model: &str, task: Task, cache: &Cache<M>, family: impl FnOnce(Arc<LoadedPlugin>) -> Result<F>, load: impl FnOnce(&F, &LoadModelParams) -> Result<M>) -> Result<(ModelEntry, Arc<M>)> {
        let entry = self.resolve(model, task)?;
        let plugin = plugin_for(self.plugins(), &entry)?;
        let family = family(Arc::clone(&plugin))?;
        let m = cached(cache, &entry, &plugin, || load(&family, &entry.load_params()))?;
        Ok((entry, m))
    }

    /// The embedding model `model` (id, prefix or `name:tag`), loaded on first use.
    pub fn embedding_model(&self, model: &str) -> Result<(ModelEntry, Arc<EmbeddingModel>)> {
        self.aux(model, Task::Embedding, &self.aux_models().embedding, Embedder::new, Embedder::load)
    }

    /// The speech-to-text model `model`, loaded on first use.
    pub fn stt_model(&self, model: &str) -> Result<(ModelEntry, Arc<SttModel>)> {
        self.aux(model, Task::Stt, &self.aux_models().stt, Transcriber::new, Transcriber::load)
    }

    /// The text-to-speech model `model`, loaded on first use.
    pub fn tts_model(&self, model: &str) -> Result<(ModelEntry, Arc<TtsModel>)> {
        self.aux(model, Task::Tts, &self.aux_models().tts, Synthesizer::new, Synthesizer::load)
    }

    /// The first installed model for `task` that a loaded plugin can serve (for requests that
    /// name none, e.g. a voice-only `/v1/audio/speech`).
    pub fn default_model(&self, task: Task) -> Option<ModelEntry> {
        task.family()?;
        self.registry().entries().into_iter().find(|e| e.task == task && Registry::plugin_for(e, self.plugins()).is_some())
    }
}
