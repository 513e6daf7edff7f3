//! One loaded plugin instance ([`LoadedPlugin`]) and the families it may implement
//! ([`FamilyKind`]).

use std::{path::{Path, PathBuf}, time::SystemTime};

use rustai_abi::{Handshake, Health, PluginInfo, PluginInstance};

use super::events::{EventKind, Events};

/// The plugin families of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FamilyKind {
    /// Text generation (`LlmPlugin`).
    Llm,
    /// Embeddings (`EmbeddingPlugin`).
    Embedding,
    /// Speech to text (`SttPlugin`).
    Stt,
    /// Text to speech (`TtsPlugin`).
    Tts,
    /// Tools for agents (`ToolPlugin`).
    Tool,
}

impl FamilyKind {
    /// Every family, in display order.
    pub const ALL: [Self; 5] = [Self::Llm, Self::Embedding, Self::Stt, Self::Tts, Self::Tool];

    /// Short name (`llm`, `embedding`, `stt`, `tts`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Embedding => "embedding",
            Self::Stt => "stt",
            Self::Tts => "tts",
            Self::Tool => "tool",
        }
    }

    /// The ABI trait's name, for messages.
    pub fn trait_name(self) -> &'static str {
        match self {
            Self::Llm => "LlmPlugin",
            Self::Embedding => "EmbeddingPlugin",
            Self::Stt => "SttPlugin",
            Self::Tts => "TtsPlugin",
            Self::Tool => "ToolPlugin",
        }
    }

    /// What a plugin of this family does, for messages ("generates text").
    pub fn verb(self) -> &'static str {
        match self {
            Self::Llm => "generates text",
            Self::Embedding => "computes embeddings",
            Self::Stt => "transcribes speech",
            Self::Tts => "synthesizes speech",
            Self::Tool => "offers tools",
        }
    }
}

/// A plugin instance that is loaded (and serving, unless it has been replaced).
pub struct LoadedPlugin {
    pub(super) info: PluginInfo,
    pub(super) handshake: Handshake,
    pub(super) path: PathBuf,
    pub(super) digest: String,
    pub(super) generation: u64,
    pub(super) loaded_at: SystemTime,
    pub(super) events: Events,
    pub(crate) instance: PluginInstance,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.id())
            .field("version", &self.version())
            .field("path", &self.path)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Drop for LoadedPlugin {
    fn drop(&mut self) {
        // The last request on this instance is done: free its models. The code stays mapped.
        let detail = self.instance.plugin.shutdown().into_result().err().map(|e| format!("shutdown failed: {e}"));
        self.events.emit(EventKind::Retired, &self.path, Some(self.id()), Some(self.version()), detail);
    }
}

impl LoadedPlugin {
    /// The plugin's id.
    pub fn id(&self) -> &str {
        self.info.id.as_str()
    }
    /// The plugin's own version.
    pub fn version(&self) -> &str {
        self.info.version.as_str()
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
    /// The sha256 of the loaded library.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// Increases with every load in this manager; tells instances of one plugin apart.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// When it was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
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
    /// Whether it implements `family`.
    pub fn offers(&self, family: FamilyKind) -> bool {
        let i = &self.instance;
        match family {
            FamilyKind::Llm => i.llm.is_some(),
            FamilyKind::Embedding => i.embedding.is_some(),
            FamilyKind::Stt => i.stt.is_some(),
            FamilyKind::Tts => i.tts.is_some(),
            FamilyKind::Tool => i.tool.is_some(),
        }
    }
    /// Its families, by name, for display.
    pub fn families(&self) -> Vec<&'static str> {
        FamilyKind::ALL.into_iter().filter(|f| self.offers(*f)).map(FamilyKind::as_str).collect()
    }
    /// The memory a model of its would need loaded with `params`, as the plugin estimates it
    /// (`None` when it cannot say: a plugin built before ABI 0.1.3, or an unknown format).
    pub fn estimate_memory(&self, params: &rustai_abi::LoadModelParams) -> Option<u64> {
        self.instance.plugin.estimate_memory(params).into_result().ok().filter(|b| *b > 0)
    }
}

