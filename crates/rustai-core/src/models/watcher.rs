//! Keeping the registry current: the model folders and `models.toml` are
//! watched (notify, debounced) and every batch of changes triggers a rescan,
//! which only re-reads files whose size or modification time changed.

use std::{path::PathBuf, time::Duration};

use notify_debouncer_mini::notify::RecursiveMode;

use super::registry::Registry;
use crate::{
    error::Result,
    fswatch::{self, FsWatch},
};

/// Keeps the watch running; dropping it stops watching.
pub struct RegistryWatcher {
    _watch: FsWatch,
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
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut targets = Vec::new();
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
            targets.push((canonical.clone(), mode));
            dirs.push(canonical);
        }
        let registry = self.clone();
        let watch = fswatch::watch("model-watch", &targets, debounce, move |_| {
            registry.refresh();
        })?;
        Ok(RegistryWatcher { _watch: watch, dirs })
    }
}
