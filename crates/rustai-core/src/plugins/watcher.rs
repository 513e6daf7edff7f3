//! Watching plugin folders: a changed plugin file is reloaded, a new one
//! loaded, a removed one retired, without restarting the process.
//!
//! Events are debounced (a file is acted on once it has been quiet for the
//! debounce period), and every event is answered by looking at the file system
//! as it is then, so create, overwrite, replace-by-rename (`cp`, `install`,
//! cargo) and remove all come down to [`PluginManager::sync_path`]. A file that
//! is still half-written when checked fails validation and is retried on its
//! next change; the previous version keeps serving meanwhile.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use notify_debouncer_mini::notify::RecursiveMode;

use super::{
    manager::{is_candidate, plugin_files, PluginManager},
    trust::LOCK_FILE,
};
use crate::{
    error::Result,
    fswatch::{self, FsWatch},
};

/// Default quiet period before a changed file is loaded.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watch running; dropping it stops watching.
pub struct PluginWatcher {
    _watch: FsWatch,
    dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginWatcher").field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

impl PluginWatcher {
    /// The folders being watched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl PluginManager {
    /// Watch every managed folder that exists, with [`DEFAULT_DEBOUNCE`].
    pub fn watch(&self) -> Result<PluginWatcher> {
        self.watch_with(DEFAULT_DEBOUNCE)
    }

    /// Watch every managed folder that exists; act on a file once it has been
    /// quiet for `debounce`.
    pub fn watch_with(&self, debounce: Duration) -> Result<PluginWatcher> {
        let mut dirs = Vec::new();
        for dir in self.dirs() {
            if !dir.is_dir() {
                tracing::warn!(dir = %dir.display(), "plugin folder does not exist; not watching it");
                continue;
            }
            dirs.push(dir);
        }
        let targets: Vec<_> = dirs.iter().map(|d| (d.clone(), RecursiveMode::NonRecursive)).collect();
        let manager = self.clone();
        let watch = fswatch::watch("plugin-watch", &targets, debounce, move |paths| manager.apply(paths.into_iter()))?;
        Ok(PluginWatcher { _watch: watch, dirs })
    }

    /// React to changed paths.
    fn apply(&self, paths: impl Iterator<Item = PathBuf>) {
        let mut files = BTreeSet::new();
        for path in paths {
            if path.file_name().is_some_and(|n| n == LOCK_FILE) {
                // The allowlist changed: re-check every plugin in that folder.
                if let Some(dir) = path.parent() {
                    files.extend(plugin_files(dir).unwrap_or_default());
                    files.extend(self.plugins().iter().filter(|p| p.path().parent() == Some(dir)).map(|p| p.path().to_path_buf()));
                }
            } else if is_candidate(&path) {
                files.insert(path);
            }
        }
        // Removals first: after `mv a.so b.so`, b's plugin id is free again only once a is retired.
        let (gone, present): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.symlink_metadata().is_err());
        for file in gone.iter().chain(&present) {
            self.sync_path(file);
        }
    }
}
