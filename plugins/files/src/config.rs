//! The plugin's settings, from its `[files]` table in `plugins.toml` (as JSON in `init`):
//!
//! ```toml
//! [files]
//! roots = ["/home/me/notes", "/srv/docs"]   # the only folders the tools may read
//! max_bytes = 1048576                       # read_file returns at most this much (then a note)
//! max_entries = 1000                        # list_dir shows at most this many entries
//! ```
//!
//! Roots must be absolute paths of existing folders; they are canonicalised once, here, so
//! every check compares against the real location. Unknown keys are refused.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default for `max_bytes`: 1 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;
/// Largest `max_bytes` accepted: 64 MiB (a tool result goes into a model's context).
pub const MAX_MAX_BYTES: u64 = 64 << 20;
/// Default for `max_entries`.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000;
/// Largest `max_entries` accepted.
pub const MAX_MAX_ENTRIES: usize = 100_000;

/// A folder the tools may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// As written in `plugins.toml`.
    pub configured: PathBuf,
    /// Its canonical form (links resolved): what paths are checked against.
    pub canonical: PathBuf,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The folders the tools may read; none = every call is refused with how to set them.
    pub roots: Vec<Root>,
    /// The most bytes `read_file` returns.
    pub max_bytes: u64,
    /// The most entries `list_dir` shows.
    pub max_entries: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self { roots: Vec::new(), max_bytes: DEFAULT_MAX_BYTES, max_entries: DEFAULT_MAX_ENTRIES }
    }
}

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    roots: Vec<String>,
    max_bytes: Option<u64>,
    max_entries: Option<usize>,
}

impl Settings {
    /// Parse and check the plugin's configuration (a JSON object; `{}` = no roots).
    pub fn from_json(config_json: &str) -> Result<Self, String> {
        let raw: Raw = rustai_plugin::serde_json::from_str(config_json).map_err(|e| format!("files configuration: {e}"))?;
        let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 || max_bytes > MAX_MAX_BYTES {
            return Err(format!("files configuration: `max_bytes` must be between 1 and {MAX_MAX_BYTES}, not {max_bytes}"));
        }
        let max_entries = raw.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        if max_entries == 0 || max_entries > MAX_MAX_ENTRIES {
            return Err(format!("files configuration: `max_entries` must be between 1 and {MAX_MAX_ENTRIES}, not {max_entries}"));
        }
        let roots = raw.roots.iter().map(|r| root(r)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { roots, max_bytes, max_entries })
    }

    /// The roots as configured, for messages.
    pub fn root_list(&self) -> String {
        self.roots.iter().map(|r| r.configured.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

fn root(configured: &str) -> Result<Root, String> {
    let path = Path::new(configured);
    if !path.is_absolute() {
        return Err(format!("files configuration: root `{configured}` must be an absolute path"));
    }
    let canonical = path.canonicalize().map_err(|e| format!("files configuration: root `{configured}`: {e}"))?;
    if !canonical.is_dir() {
        return Err(format!("files configuration: root `{configured}` is not a folder"));
    }
    Ok(Root { configured: path.to_path_buf(), canonical })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_limits_and_refusals() {
        assert_eq!(Settings::from_json("{}").unwrap(), Settings::default());
        let dir = tempfile::tempdir().unwrap();
        let json = format!(r#"{{"roots": [{:?}], "max_bytes": 10, "max_entries": 2}}"#, dir.path().display().to_string());
        let s = Settings::from_json(&json).unwrap();
        assert_eq!((s.max_bytes, s.max_entries), (10, 2));
        assert_eq!(s.roots[0].canonical, dir.path().canonicalize().unwrap());

        let refused = |json: &str| Settings::from_json(json).unwrap_err();
        assert!(refused(r#"{"root": ["/tmp"]}"#).contains("unknown field `root`"));
        assert!(refused(r#"{"roots": ["relative/dir"]}"#).contains("absolute"));
        assert!(refused(r#"{"roots": ["/no/such/folder/anywhere"]}"#).contains("/no/such/folder/anywhere"));
        assert!(refused(r#"{"max_bytes": 0}"#).contains("max_bytes"));
        assert!(refused(r#"{"max_entries": 1000000}"#).contains("max_entries"));
        assert!(refused(r#"{"roots": "/tmp"}"#).contains("invalid type"));
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(refused(&format!(r#"{{"roots": [{:?}]}}"#, file.display().to_string())).contains("not a folder"));
    }
}
