//! Plugin configuration: what each plugin receives in `Plugin::init`.
//!
//! Read from a TOML file (`~/.rustai/plugins.toml` by default, or the file the
//! server / CLI is given), one table per plugin id:
//!
//! ```toml
//! [gguf]
//! llama_log = true   # keep llama.cpp's own log on stderr
//! ```
//!
//! A plugin with no table gets `{}`. The configuration is read when a plugin is
//! loaded, so a hot-reloaded build gets the configuration in force at that time.

use std::{collections::BTreeMap, path::Path};

use crate::error::{Error, Result};

/// Configuration per plugin id, as JSON objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConfigs {
    by_id: BTreeMap<String, serde_json::Value>,
}

impl PluginConfigs {
    /// No configuration: every plugin gets `{}`.
    pub fn none() -> Self {
        Self::default()
    }

    /// From TOML text: one table per plugin id.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let bad = |why: String| Error::Config { path: origin.to_path_buf(), message: why };
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut by_id = BTreeMap::new();
        for (id, value) in table {
            if !value.is_table() {
                return Err(bad(format!("`{id}` must be a table (`[{id}]`) of that plugin's settings")));
            }
            let json = serde_json::to_value(&value).map_err(|e| bad(format!("`[{id}]`: {e}")))?;
            by_id.insert(id, json);
        }
        Ok(Self { by_id })
    }

    /// From the TOML file at `path`; a missing file is no configuration.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::none()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Set plugin `id`'s configuration (a JSON object).
    pub fn set(&mut self, id: &str, config: serde_json::Value) {
        self.by_id.insert(id.to_owned(), config);
    }

    /// The JSON object plugin `id` receives in `init` (`{}` when it has none).
    pub fn for_plugin(&self, id: &str) -> String {
        self.by_id.get(id).map_or_else(|| "{}".to_owned(), serde_json::Value::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_become_json_objects() {
        let c = PluginConfigs::from_toml("[openai]\ntimeout_secs = 30\n[gguf]\nllama_log = true\n", Path::new("p.toml")).unwrap();
        assert_eq!(c.for_plugin("openai"), r#"{"timeout_secs":30}"#);
        assert_eq!(c.for_plugin("gguf"), r#"{"llama_log":true}"#);
        assert_eq!(c.for_plugin("piper"), "{}");
        let err = PluginConfigs::from_toml("gguf = 3\n", Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("must be a table"), "{err}");
        assert!(PluginConfigs::from_toml("[x\n", Path::new("p.toml")).is_err());
    }
}
