//! Folder watching shared by the plugin and model watchers: notify events,
//! debounced, with *access* events dropped.
//!
//! notify's inotify backend reports every `open()` of a watched file as an
//! access event. Both watchers react to a change by reading the files (hashing a
//! plugin, sniffing a model's header), so counting those opens as changes made
//! each reaction trigger the next: an idle server rescanned its folders several
//! times a second. Only creations, modifications, renames and removals count.
//!
//! **Invariant:** a batch is delivered only after a real change, once the folder
//! has been quiet for the debounce period; an idle folder costs no work.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::mpsc::{self, RecvTimeoutError},
    time::Duration,
};

use notify_debouncer_mini::notify::{
    self,
    event::{AccessKind, AccessMode, EventKind},
    RecommendedWatcher, RecursiveMode, Watcher,
};

use crate::error::{Error, Result};

/// Keeps a watch running; dropping it stops the watch and its thread.
pub(crate) struct FsWatch {
    _watcher: RecommendedWatcher,
}

/// Whether an event is a change (not an open or a read).
fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Any
            | EventKind::Other
    )
}

/// Watch `targets`; call `on_batch` with the changed paths once no change has come for `debounce`.
/// `what` names the watcher in errors and the thread's name.
pub(crate) fn watch(
    what: &'static str,
    targets: &[(PathBuf, RecursiveMode)],
    debounce: Duration,
    mut on_batch: impl FnMut(Vec<PathBuf>) + Send + 'static,
) -> Result<FsWatch> {
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(tx).map_err(|e| Error::io(what, std::io::Error::other(e)))?;
    for (path, mode) in targets {
        watcher.watch(path, *mode).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    }
    std::thread::Builder::new()
        .name(format!("rustai-{what}"))
        .spawn(move || {
            let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
            loop {
                // Block while idle; once something changed, wait for the quiet period.
                let next = if pending.is_empty() { rx.recv().map_err(|_| RecvTimeoutError::Disconnected) } else { rx.recv_timeout(debounce) };
                match next {
                    Ok(Ok(event)) if is_change(&event.kind) => pending.extend(event.paths),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("{what}: {e}"),
                    Err(RecvTimeoutError::Timeout) => on_batch(std::mem::take(&mut pending).into_iter().collect()),
                    // The watcher (the sender) was dropped with the FsWatch.
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .map_err(|e| Error::io(what, e))?;
    Ok(FsWatch { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn reading_files_is_not_a_change_and_writing_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, b"one").unwrap();
        let batches = Arc::new(Mutex::new(Vec::<Vec<PathBuf>>::new()));
        let seen = Arc::clone(&batches);
        let _w = watch("test-watch", &[(dir.path().to_path_buf(), RecursiveMode::NonRecursive)], Duration::from_millis(50), move |b| {
            seen.lock().unwrap().push(b);
        })
        .unwrap();
        for _ in 0..20 {
            let _ = std::fs::read(&file).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(batches.lock().unwrap().is_empty(), "reads were reported as changes: {:?}", batches.lock().unwrap());
        std::fs::write(&file, b"two").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while batches.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = batches.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "one debounced batch: {got:?}");
        assert!(got[0].iter().any(|p| p.ends_with("a.bin")));
    }
}
