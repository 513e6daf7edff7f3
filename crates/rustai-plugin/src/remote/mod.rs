//! Shared plumbing of remote-provider plugins (feature `remote`).
//!
//! The `openai` and `ollama` plugins talk to a model served by another
//! process over HTTP. This module holds what they share; like the rest of the
//! SDK it never depends on the host.
//!
//! ## Layout
//! - [`config`]: the base URL (`LoadModelParams.path`) and the `extra_json`
//!   keys (`model`, `api_key_env`, `timeout_s`, `max_retries`, `stream`).
//! - [`client`]: a blocking `reqwest` client (rustls) with connect/read
//!   timeouts, retries on 429/5xx honouring `Retry-After`, and clear errors.
//! - [`stream`]: line-by-line reading of SSE / NDJSON answers and the
//!   [`stream::Collector`] that feeds the host's token sink.
//!
//! **Invariant:** the API key is read once from the environment variable the
//! config names and sent only in the `Authorization` header; it is never
//! logged, and any message that could contain it is redacted.

pub mod client;
pub mod config;
pub mod stream;

pub use client::Remote;
pub use config::RemoteConfig;
pub use stream::{Collector, Lines, Usage};

use rustai_abi::{
    feature, Capabilities, Category, EmbedRequest, Embeddings, GpuUse, Level, PluginError, PluginInfo, RString, RVec,
    ResourceRequirements,
};

/// Vectors and prompt tokens from one embedding call to the server.
pub type Embedded = (Vec<Vec<f32>>, u32);

/// The embedding family's answer to `request`: `embed` asks the server (not called for an
/// empty request), vectors are L2-normalised if asked; `known` is the model's size if known.
/// Truncation by the server is not reported (`truncated` stays empty).
pub fn embeddings(
    request: &EmbedRequest,
    known: Option<u32>,
    embed: impl FnOnce(&[&str]) -> Result<Embedded, PluginError>,
) -> Result<Embeddings, PluginError> {
    let inputs: Vec<&str> = request.inputs.iter().map(|s| s.as_str()).collect();
    let (mut vectors, tokens_in) = if inputs.is_empty() { (Vec::new(), 0) } else { embed(&inputs)? };
    if request.normalize {
        vectors.iter_mut().for_each(|v| stream::normalize(v));
    }
    Ok(Embeddings {
        dimensions: vectors.first().map_or_else(|| known.unwrap_or(0), |v| v.len() as u32),
        vectors: vectors.into_iter().map(RVec::from).collect(),
        tokens_in,
        truncated: RVec::new(),
    })
}

/// The model's vector size: `known`, else from one probe embedding.
pub fn dimensions(known: Option<u32>, embed: impl FnOnce(&[&str]) -> Result<Embedded, PluginError>) -> Result<u32, PluginError> {
    match known {
        Some(d) => Ok(d),
        None => embed(&["dimension probe"]).map(|(v, _)| v.first().map_or(0, |x| x.len() as u32)),
    }
}

/// The [`PluginInfo`] of a remote-provider plugin reading models of `format` (id and
/// versions are filled in by the export glue).
pub fn plugin_info(name: &str, description: &str, format: &str) -> PluginInfo {
    let strings = |v: &[&str]| v.iter().map(|s| RString::from(*s)).collect::<RVec<_>>();
    PluginInfo {
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
        ..PluginInfo::new(name, Category::Llm).describe(description)
    }
}
