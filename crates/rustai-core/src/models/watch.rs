//! Keeping the registry current: the model folders and `models.toml` are
//! watched (notify, debounced) and every batch of changes triggers a rescan,
//! which only re-reads files whose size or modification time changed.

use std::{path::PathBuf, time::Duration};

use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode, DebounceEventResult, Debouncer};

use super::registry::Registry;
use crate::error::{Error, Result};

/// Keeps the watch running; dropping it stops watching.
pub struct RegistryWatcher {
    _debouncer: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
    dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for RegistryWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryWatcher").field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

impl RegistryWatcher {
    /// The folders being watched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Registry {
    /// Watch the model folders (recursively) and the folder of `models.toml`; rescan after
    /// `debounce` of quiet. Folders that do not exist are skipped.
    pub fn watch(&self, debounce: Duration) -> Result<RegistryWatcher> {
        let (tx, rx) = std::sync::mpsc::channel::<DebounceEventResult>();
        let mut debouncer = new_debouncer(debounce, tx).map_err(|e| Error::io("model watcher", std::io::Error::other(e)))?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        let config_dir = self.options().config_file.as_ref().and_then(|f| f.parent().map(std::path::Path::to_path_buf));
        for (dir, mode) in self
            .options()
            .dirs
            .iter()
            .map(|d| (d.clone(), RecursiveMode::Recursive))
            .chain(config_dir.map(|d| (d, RecursiveMode::NonRecursive)))
        {
            let Ok(canonical) = dir.canonicalize() else { continue };
            if dirs.contains(&canonical) {
                continue;
            }
            debouncer.watcher().watch(&canonical, mode).map_err(|e| Error::io(&dir, std::io::Error::other(e)))?;
            dirs.push(canonical);
        }
        let registry = self.clone();
        std::thread::Builder::new()
            .name("rustai-model-watch".into())
            .spawn(move || {
                for batch in rx {
                    match batch {
                        Ok(_) => {
                            registry.refresh();
                        }
                        Err(e) => tracing::warn!("model watcher: {e}"),
                    }
                }
            })
            .map_err(|e| Error::io("model watcher thread", e))?;
        Ok(RegistryWatcher { _debouncer: debouncer, dirs })
    }
}
