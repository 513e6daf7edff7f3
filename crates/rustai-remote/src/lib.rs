//! # rustai-remote: shared plumbing of the remote-provider plugins
//!
//! The `openai` and `ollama` plugins talk to a model served by another
//! process over HTTP. This library holds what they share; it depends on
//! `rustai-abi` only (never on the host).
//!
//! ## Layout
//! - [`config`]: the base URL (`LoadModelParams.path`) and the `extra_json`
//!   keys (`model`, `api_key_env`, `timeout_s`, `max_retries`, `stream`).
//! - [`client`]: a blocking `reqwest` client (rustls) with connect/read
//!   timeouts, retries on 429/5xx honouring `Retry-After`, and clear errors.
//! - [`stream`]: line-by-line reading of SSE / NDJSON answers and the
//!   [`stream::Collector`] that feeds the host's token sink.
//! - `ModelStore` (re-exported from `rustai-abi`): handles of loaded models.
//!
//! **Invariant:** the API key is read once from the environment variable the
//! config names and sent only in the `Authorization` header; it is never
//! logged, and any message that could contain it is redacted.

pub mod client;
pub mod config;
pub mod stream;

pub use client::Remote;
pub use config::RemoteConfig;
pub use rustai_abi::ModelStore;
pub use stream::{Collector, Lines, Usage};

use rustai_abi::{
    feature, Capabilities, Category, GpuUse, Level, PluginError, PluginInfo, RResult, RString, RVec, ResourceRequirements,
    API_VERSION,
};

/// A `Result` as an FFI `RResult`.
pub fn rr<T>(r: Result<T, PluginError>) -> RResult<T, PluginError> {
    r.into()
}

/// The [`PluginInfo`] of a remote-provider plugin reading models of `format`.
pub fn plugin_info(id: &str, name: &str, version: &str, description: &str, format: &str) -> PluginInfo {
    let strings = |v: &[&str]| v.iter().map(|s| RString::from(*s)).collect::<RVec<_>>();
    PluginInfo {
        id: id.into(),
        name: name.into(),
        version: version.into(),
        api_version: API_VERSION.into(),
        description: description.into(),
        category: Category::Llm,
        capabilities: Capabilities {
            formats: strings(&[format]),
            features: strings(&[feature::STREAMING, feature::CHAT, feature::JSON_SCHEMA, feature::SEED, feature::CANCEL, "embeddings"]),
        },
        resources: ResourceRequirements {
            min_memory_mb: 16,
            recommended_memory_mb: 32,
            cores: 1,
            gpu: GpuUse::None,
            battery_draw: Level::Low,
            thermal_impact: Level::Low,
            background_capable: true,
        },
    }
}
