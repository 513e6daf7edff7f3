//! Models: what is on disk or configured, what each one is, and which one to use.
//!
//! - [`Registry`] (in `registry`): zero-config discovery under the model folders,
//!   `models.toml` entries (local or remote), name lookup (`id`, prefix,
//!   Ollama-style `name:tag`), live updates from the file system.
//! - `detect`: format and metadata by content (GGUF, safetensors folders, ONNX,
//!   Piper voices, whisper.cpp ggml).
//! - `config`: the `models.toml` format.
//! - `select`: scored, explained choice of a model for a task ([`SelectionCriteria`]).

mod config;
mod detect;
mod registry;
mod select;
mod watcher;

use std::{collections::BTreeMap, path::PathBuf, time::SystemTime};

use serde::Serialize;

pub use config::{ConfigFile, Constraints, ModelConfigEntry, RegistrySection};
pub use registry::{Registry, RegistryEvent, RegistryOptions, Unrecognised};
pub use select::{Candidate, Excluded, SelectContext, Selection, SelectionCriteria};
pub use watcher::RegistryWatcher;

use crate::{error::Result, plugins::FamilyKind};

/// How a model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ModelFormat {
    /// GGUF (llama.cpp and compatible).
    Gguf,
    /// A folder with `config.json`, `*.safetensors` and `tokenizer.json`.
    Safetensors,
    /// An ONNX graph of unknown purpose.
    Onnx,
    /// A Piper voice: ONNX + `.onnx.json`.
    Piper,
    /// A whisper.cpp ggml file.
    WhisperGgml,
    /// A model served by another server (`models.toml` entry with a URL).
    Remote,
}

impl ModelFormat {
    /// Lower-case name, as plugins list it in their capabilities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::Safetensors => "safetensors",
            Self::Onnx => "onnx",
            Self::Piper => "piper",
            Self::WhisperGgml => "whisper-ggml",
            Self::Remote => "remote",
        }
    }
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Task {
    /// Chat (has a chat template).
    Chat,
    /// Plain text completion.
    Completion,
    /// Sentence embeddings.
    Embedding,
    /// Speech to text.
    Stt,
    /// Text to speech.
    Tts,
    /// Not known from the file; can be set in `models.toml`.
    Unknown,
}

impl Task {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completion => "completion",
            Self::Embedding => "embedding",
            Self::Stt => "stt",
            Self::Tts => "tts",
            Self::Unknown => "unknown",
        }
    }

    /// Whether a model of this task can serve a request for `wanted` (a chat model also completes).
    pub fn serves(self, wanted: Task) -> bool {
        self == wanted || (self == Task::Chat && wanted == Task::Completion)
    }

    /// The plugin family that serves this task.
    pub fn family(self) -> Option<FamilyKind> {
        match self {
            Self::Chat | Self::Completion => Some(FamilyKind::Llm),
            Self::Embedding => Some(FamilyKind::Embedding),
            Self::Stt => Some(FamilyKind::Stt),
            Self::Tts => Some(FamilyKind::Tts),
            Self::Unknown => None,
        }
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "chat" => Self::Chat,
            "completion" | "generate" | "text" => Self::Completion,
            "embedding" | "embeddings" | "embed" => Self::Embedding,
            "stt" | "transcription" | "speech-to-text" => Self::Stt,
            "tts" | "speech" | "text-to-speech" => Self::Tts,
            other => return Err(format!("unknown task `{other}` (chat, completion, embedding, stt, tts)")),
        })
    }
}

/// Metadata read from a model's files, without loading it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelMeta {
    /// Architecture, e.g. `llama`, `bert`, `whisper-tiny`, `piper-vits`.
    pub architecture: Option<String>,
    /// Number of parameters.
    pub parameters: Option<u64>,
    /// Training context length in tokens.
    pub context_length: Option<u64>,
    /// Quantization or element type (`Q4_1`, `f16`, `f32`; for Piper the voice quality).
    pub quantization: Option<String>,
    /// Whether the model carries a chat template.
    pub chat_template: bool,
    /// Embedding / hidden size.
    pub embedding_dim: Option<u64>,
    /// Audio sample rate (speech models).
    pub sample_rate: Option<u32>,
    /// Language (speech models).
    pub language: Option<String>,
    /// Number of speakers (TTS).
    pub speakers: Option<u32>,
    /// Anything else worth showing.
    pub details: BTreeMap<String, String>,
}

/// Where a model is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// A file or folder on this machine.
    Local(PathBuf),
    /// A base URL of another server.
    Remote(String),
}

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Found in a model folder.
    Discovered,
    /// Declared in `models.toml` only.
    Configured,
    /// Found, and refined by a `models.toml` entry.
    Both,
}

/// One model the registry knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    /// Stable id: the file name without extension, the folder name, or the `models.toml` id.
    pub id: String,
    /// Ollama-style name (lower case, no tag).
    pub name: String,
    /// Ollama-style tag: the quantization for GGUF files, else `latest`.
    pub tag: String,
    /// Storage format.
    pub format: ModelFormat,
    /// What it is for.
    pub task: Task,
    /// Where it is.
    pub location: Location,
    /// Bytes on disk (0 for remote models).
    pub size: u64,
    /// Last modification of the file.
    #[serde(skip)]
    pub modified: Option<SystemTime>,
    /// Metadata read from the files.
    pub meta: ModelMeta,
    /// The plugin that must serve it (`models.toml` `provider`); `None` = any plugin for the format.
    pub provider: Option<String>,
    /// Higher is preferred by selection.
    pub priority: i32,
    /// Free-form tags (`fast`, `cloud`, ...).
    pub tags: Vec<String>,
    /// Plugin settings from `models.toml` (`context_length`, `threads`, `model`, `api_key_env`, ...).
    pub config: BTreeMap<String, serde_json::Value>,
    /// Limits from `models.toml`.
    pub constraints: Constraints,
    /// Where the entry came from.
    pub origin: Origin,
}

impl ModelEntry {
    /// `name:tag`, as the Ollama API shows it.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// Whether the model runs on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self.location, Location::Local(_))
    }

    /// The file or folder, for local models.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.location {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    /// Load parameters for its plugin: the path (or URL), and the `models.toml` config as
    /// `extra_json`; the caller sets context, threads and GPU use.
    pub fn load_params(&self) -> rustai_abi::LoadModelParams {
        let path = match &self.location {
            Location::Local(p) => p.to_string_lossy().into_owned(),
            Location::Remote(url) => url.clone(),
        };
        let extra = if self.config.is_empty() { String::new() } else { serde_json::Value::Object(self.config.clone().into_iter().collect()).to_string() };
        rustai_abi::LoadModelParams { extra_json: extra.into(), ..rustai_abi::LoadModelParams::new(path) }
    }

    /// The file to hand to a plugin, for local models.
    pub fn file(&self) -> Option<ModelFile> {
        self.is_local().then(|| self.pool_file())
    }

    /// What the model pool loads for this model: its file or folder, or for a remote model
    /// its URL (format [`ModelFormat::Remote`], no size).
    pub fn pool_file(&self) -> ModelFile {
        match &self.location {
            Location::Local(path) => ModelFile { id: self.id.clone(), path: path.clone(), format: self.format, size: self.size },
            Location::Remote(url) => ModelFile { id: self.id.clone(), path: url.into(), format: ModelFormat::Remote, size: 0 },
        }
    }
}

/// A local model file or folder, as the pool and plugins take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// Stable id.
    pub id: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its format.
    pub format: ModelFormat,
    /// Size in bytes.
    pub size: u64,
}

/// Resolve `name` (an existing path, an id, an unambiguous prefix or `name:tag`) to a local model.
pub fn resolve<P: AsRef<std::path::Path>>(name: &str, dirs: impl IntoIterator<Item = P>) -> Result<ModelFile> {
    let as_path = std::path::Path::new(name);
    if as_path.exists() {
        return Registry::entry_for_path(as_path).map(|e| e.file().expect("a path is local"));
    }
    let entry = Registry::scan_only(dirs).lookup(name)?;
    entry.file().ok_or_else(|| crate::Error::UnknownModel { name: format!("{name} (a remote model; no local file)"), known: Vec::new() })
}
