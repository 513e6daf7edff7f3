//! Hosting plugins: finding plugin files in folders, checking them (trust, ABI,
//! handshake), loading them, configuring them, swapping in new builds, and
//! reporting every step as an event.
//!
//! - [`manager`]: [`PluginManager`]: folders, the serving plugins, rejections, the one rule
//!   for which plugin serves a model ([`PluginManager::serving`]), and
//!   [`PluginManager::sync_path`], which loads, reloads (load new, retire old) or retires.
//! - [`loaded`]: [`LoadedPlugin`], one serving instance, and [`FamilyKind`].
//! - [`loader`]: one file: sniff, private copy, dlopen, layout/API/id checks, instantiate, `init`.
//! - [`config`]: [`PluginConfigs`], what each plugin receives in `init` (`plugins.toml`).
//! - [`trust`]: folder permission checks and the sha256 allowlist (`plugins.lock`).
//! - [`events`]: [`PluginEvent`] lifecycle events, logged and broadcast.
//! - [`watcher`]: [`PluginWatcher`]: notify-based, debounced hot reload of plugin folders.
//!
//! **Invariant:** nothing here knows a family's calls or a model; it hands out
//! [`LoadedPlugin`]s and the families wrap them (`crate::families`).

pub mod config;
pub mod events;
pub mod loaded;
pub mod loader;
pub mod manager;
pub mod trust;
pub mod watcher;

pub use config::PluginConfigs;
pub use events::{EventKind, PluginEvent};
pub use loaded::{FamilyKind, LoadedPlugin};
pub use loader::RejectReason;
pub use manager::{PluginManager, Rejected, SyncOutcome};
pub use trust::TrustPolicy;
pub use watcher::PluginWatcher;
