//! Plugin lifecycle events: logged with `tracing` and broadcast to subscribers
//! (the CLI's `plugins --watch`, the server's metrics).

use std::{path::PathBuf, time::SystemTime};

use tokio::sync::broadcast;

/// A step in a plugin file's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A plugin file appeared (or was present at start-up).
    Discovered,
    /// It passed every check (layout, API version, id, trust).
    Validated,
    /// It was instantiated and initialised.
    Loaded,
    /// It now serves new requests.
    Active,
    /// A new build of a loaded plugin is being checked.
    Reloading,
    /// The new build replaced the old one; new requests go to it.
    Reloaded,
    /// The file was not loaded (see the reason); a previous version, if any, keeps serving.
    Rejected,
    /// An instance was shut down after its last request (replaced or removed).
    Retired,
}

impl EventKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discovered => "discovered",
            Self::Validated => "validated",
            Self::Loaded => "loaded",
            Self::Active => "active",
            Self::Reloading => "reloading",
            Self::Reloaded => "reloaded",
            Self::Rejected => "rejected",
            Self::Retired => "retired",
        }
    }
}

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEvent {
    /// What happened.
    pub kind: EventKind,
    /// The plugin file.
    pub path: PathBuf,
    /// The plugin id, once known.
    pub id: Option<String>,
    /// The plugin version, once known.
    pub version: Option<String>,
    /// Why (for rejections) or extra detail.
    pub detail: Option<String>,
    /// When.
    pub at: SystemTime,
}

impl std::fmt::Display for PluginEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<10}", self.kind.as_str())?;
        if let Some(id) = &self.id {
            write!(f, " {id}")?;
        }
        if let Some(v) = &self.version {
            write!(f, " {v}")?;
        }
        write!(f, " ({})", self.path.display())?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Sends events to subscribers and to the log.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    tx: broadcast::Sender<PluginEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self { tx: broadcast::channel(256).0 }
    }
}

impl Events {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<PluginEvent> {
        self.tx.subscribe()
    }

    pub(crate) fn emit(&self, kind: EventKind, path: &std::path::Path, id: Option<&str>, version: Option<&str>, detail: Option<String>) {
        let event = PluginEvent {
            kind,
            path: path.to_path_buf(),
            id: id.map(str::to_owned),
            version: version.map(str::to_owned),
            detail,
            at: SystemTime::now(),
        };
        match kind {
            EventKind::Rejected => tracing::warn!(target: "rustai::plugins", "{event}"),
            _ => tracing::info!(target: "rustai::plugins", "{event}"),
        }
        // No subscribers is fine.
        let _ = self.tx.send(event);
    }
}
