//! # rustai-plugin: the SDK for RustAI plugins
//!
//! The one crate a plugin depends on. It re-exports the whole contract
//! (`rustai-abi`: the family traits, the data that crosses the boundary, errors,
//! limits) and adds what every plugin needs on its side of the boundary:
//!
//! - [`export`]: [`export_plugin!`] exports a type as the library's plugin. Every call
//!   from the host runs inside `catch_unwind`: a panic becomes a
//!   [`ErrorKind::Panicked`] error for that call and turns the plugin's health
//!   `Degraded`; it never unwinds across the ABI. The plugin's id, version and API
//!   version are declared once (the macro and `Cargo.toml`) and filled into
//!   [`PluginInfo`] and the handshake by the glue.
//! - [`store`]: [`ModelStore`], loaded models behind [`ModelHandle`]s, shared between threads.
//! - [`serde_json`], re-exported for configuration and tool arguments; with the `formats`
//!   feature, `formats` (model header readers); with `remote`, `remote` (HTTP client
//!   helpers for plugins that reach remote APIs).
//!
//! ```
//! use std::sync::Arc;
//! use rustai_plugin::{Category, Families, Plugin, PluginError, PluginExport, PluginInfo};
//!
//! #[derive(Default)]
//! pub struct Hello;
//!
//! impl Plugin for Hello {
//!     fn info(&self) -> PluginInfo {
//!         PluginInfo::new("Hello", Category::Tool).describe("says hello")
//!     }
//! }
//!
//! impl PluginExport for Hello {
//!     fn create() -> Result<Self, PluginError> {
//!         Ok(Hello)
//!     }
//! }
//!
//! rustai_plugin::export_plugin!(Hello, id = "hello");
//! ```
//!
//! **Invariant:** nothing here crosses the boundary except through `rustai-abi`'s
//! types; the SDK can change freely between plugin builds without breaking a host.

pub mod export;
mod guard;
#[cfg(feature = "remote")]
pub mod remote;
pub mod store;

pub use rustai_abi::*;
pub use serde_json;

#[cfg(feature = "formats")]
pub use rustai_formats as formats;

pub use export::{Families, PluginExport, PluginIdentity};
pub use store::ModelStore;

/// What the export macro needs, reachable from the plugin crate without naming
/// `abi_stable` in its `Cargo.toml`. Not part of the SDK's API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::LibHeader;

    /// The symbol every abi_stable library exports its root module under
    /// (`abi_stable::library::ROOT_MODULE_LOADER_NAME`; checked by a test).
    pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
}
