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

use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode, DebounceEventResult, Debouncer};

use crate::{
    error::{Error, Result},
    manager::{is_candidate, plugin_files, PluginManager},
    trust::LOCK_FILE,
};

/// Default quiet period before a changed file is loaded.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the watch running; dropping it stops watching.
pub struct PluginWatcher {
    _debouncer: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
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
        let (tx, rx) = std::sync::mpsc::channel::<DebounceEventResult>();
        let mut debouncer = new_debouncer(debounce, tx).map_err(|e| Error::io("plugin watcher", std::io::Error::other(e)))?;
        let mut dirs = Vec::new();
        for dir in self.dirs() {
            if !dir.is_dir() {
                tracing::warn!(dir = %dir.display(), "plugin folder does not exist; not watching it");
                continue;
            }
            debouncer
                .watcher()
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|e| Error::io(&dir, std::io::Error::other(e)))?;
            dirs.push(dir);
        }
        let manager = self.clone();
        // Ends when the debouncer (the sender) is dropped with the PluginWatcher.
        std::thread::Builder::new()
            .name("rustai-plugin-watch".into())
            .spawn(move || {
                for batch in rx {
                    match batch {
                        Ok(events) => manager.apply(events.into_iter().map(|e| e.path)),
                        Err(e) => tracing::warn!("plugin watcher: {e}"),
                    }
                }
            })
            .map_err(|e| Error::io("plugin watcher thread", e))?;
        Ok(PluginWatcher { _debouncer: debouncer, dirs })
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
        let (gone, present): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| !f.exists());
        for file in gone.iter().chain(&present) {
            self.sync_path(file);
        }
    }
}
