//! `models.toml`: optional settings that add or refine registry entries.
//!
//! ```toml
//! [registry]
//! auto_discover = true                  # scan the model folders (default true)
//! scan_paths = ["./models", "~/.rustai/models"]   # relative to this file
//!
//! [[models]]
//! id = "smollm2-fast"
//! provider = "gguf"                     # plugin id that serves it
//! location = "./SmolLM2-135M-Instruct.Q4_1.gguf"  # a path (relative to this file) or a URL
//! priority = 100
//! tags = ["general", "fast"]
//! task = "chat"                         # optional: chat, completion, embedding, stt, tts
//! [models.config]
//! context_length = 4096
//! [models.constraints]
//! min_memory_mb = 400
//! ```
//!
//! An entry whose `location` is a discovered file refines that model (and may
//! rename it); one with a URL declares a remote model.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::Task;
use crate::error::{Error, Result};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[registry]`.
    #[serde(default)]
    pub registry: RegistrySection,
    /// `[[models]]`.
    #[serde(default)]
    pub models: Vec<ModelConfigEntry>,
}

/// `[registry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Scan the folders (default true).
    #[serde(default = "yes")]
    pub auto_discover: bool,
    /// More folders to scan (relative to the file; `~` is the home folder).
    #[serde(default)]
    pub scan_paths: Vec<String>,
    /// Watch the folders for changes (default true).
    #[serde(default = "yes")]
    pub hot_reload: bool,
    /// Accepted for compatibility with the design document; watching is event-driven.
    #[serde(default)]
    pub scan_interval_secs: Option<u64>,
}

fn yes() -> bool {
    true
}

impl Default for RegistrySection {
    fn default() -> Self {
        Self { auto_discover: true, scan_paths: Vec::new(), hot_reload: true, scan_interval_secs: None }
    }
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfigEntry {
    /// The id to list it under.
    pub id: String,
    /// The plugin id that serves it.
    #[serde(default)]
    pub provider: Option<String>,
    /// A path (relative to the file) or an `http(s)://` URL.
    pub location: String,
    /// Selection priority (default 0; higher is preferred).
    #[serde(default)]
    pub priority: i32,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The task, when the file does not tell (or for remote models; default chat).
    #[serde(default)]
    pub task: Option<Task>,
    /// Plugin settings, passed on as they are.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Limits.
    #[serde(default)]
    pub constraints: Constraints,
}

/// `[models.constraints]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Do not select the model when less memory than this is available (MiB).
    #[serde(default)]
    pub min_memory_mb: Option<u64>,
    /// Expected power draw while generating (mW); used when battery-sensitive.
    #[serde(default)]
    pub max_battery_draw_mw: Option<u64>,
    /// Expected time to first token (ms); compared with a request's latency limit.
    #[serde(default)]
    pub typical_latency_ms: Option<u64>,
    /// Expected generation speed (tokens/s); used when speed is preferred.
    #[serde(default)]
    pub tokens_per_sec: Option<f64>,
    /// Quality from 0 to 1; used when quality is preferred.
    #[serde(default)]
    pub quality_score: Option<f64>,
}

impl ConfigFile {
    /// Parse `path`; a syntax error names the line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|message| Error::Config { path: path.to_path_buf(), message })
    }

    /// Parse the text of a file.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let file: Self = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        let mut seen = std::collections::BTreeSet::new();
        for m in &file.models {
            if m.id.trim().is_empty() || m.id.contains(char::is_whitespace) {
                return Err(format!("model id `{}` must be non-empty and without spaces", m.id));
            }
            if !seen.insert(m.id.as_str()) {
                return Err(format!("model id `{}` appears twice", m.id));
            }
        }
        Ok(file)
    }
}

impl ModelConfigEntry {
    /// Whether `location` is a URL.
    pub fn is_remote(&self) -> bool {
        self.location.starts_with("http://") || self.location.starts_with("https://")
    }

    /// The local path, resolved against the folder of the config file.
    pub fn local_path(&self, base: &Path) -> PathBuf {
        expand(&self.location, base)
    }
}

/// Resolve `~/` and relative paths against `base`.
pub(crate) fn expand(path: &str, base: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// A TOML value as JSON (for plugin settings).
pub(crate) fn to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => a.iter().map(to_json).collect(),
        toml::Value::Table(t) => t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_document_example() {
        let text = r#"
[registry]
auto_discover = true
scan_paths = ["./models", "~/.rustai/models"]
hot_reload = true
scan_interval_secs = 30

[[models]]
id = "llama-3-8b-fast"
provider = "gguf"
location = "./models/llama-3-8b-q4.gguf"
priority = 100
tags = ["general", "fast", "mobile"]
[models.config]
context_length = 4096
gpu_layers = 0
[models.constraints]
min_memory_mb = 4000
max_battery_draw_mw = 500

[[models]]
id = "gpt-4o"
provider = "openai"
location = "https://api.openai.com/v1"
priority = 50
tags = ["general", "cloud"]
[models.config]
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o"
"#;
        let f = ConfigFile::parse(text).unwrap();
        assert_eq!(f.registry.scan_paths.len(), 2);
        assert_eq!(f.models.len(), 2);
        assert_eq!(f.models[0].constraints.min_memory_mb, Some(4000));
        assert!(!f.models[0].is_remote() && f.models[1].is_remote());
        assert_eq!(to_json(&f.models[1].config["model"]), serde_json::json!("gpt-4o"));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(ConfigFile::parse("[[models]]\nid = 'a'\n").unwrap_err().contains("location"));
        assert!(ConfigFile::parse("[[models]]\nid='a'\nlocation='x'\n[[models]]\nid='a'\nlocation='y'\n").unwrap_err().contains("twice"));
        assert!(ConfigFile::parse("[registry]\nauto_discovr = true\n").unwrap_err().contains("auto_discovr"));
        assert!(ConfigFile::parse("[[models]]\nid='a'\nlocation='x'\ntask='dance'\n").is_err());
    }
}
