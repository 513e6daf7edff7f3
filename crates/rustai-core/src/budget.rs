//! Memory budgeting for loaded models: estimates, limits and keep-alive rules.
//!
//! A model's memory is estimated before it is loaded from its file header:
//! the weights (the file size) plus the KV cache for the context asked for,
//! plus a working margin. The [`crate::ModelPool`] admits a load only if it fits
//! the budget after evicting idle models, least recently used first.

use std::{path::Path, time::Duration};

use rustai_formats::GgufHeader;

/// Limits for a [`crate::ModelPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes all loaded models may use together.
    pub max_bytes: u64,
    /// Most models loaded at once.
    pub max_loaded: usize,
    /// How long an idle model stays loaded when a request does not say.
    pub default_keep_alive: KeepAlive,
}

impl Budget {
    /// No memory limit (u64::MAX), at most 8 models, 5 minutes keep-alive (as Ollama).
    pub fn unlimited() -> Self {
        Self { max_bytes: u64::MAX, max_loaded: 8, default_keep_alive: KeepAlive::For(Duration::from_secs(300)) }
    }

    /// `percent` of `total_memory` bytes (e.g. 75 leaves a quarter for the OS and apps).
    pub fn percent_of(total_memory: u64, percent: u8) -> Self {
        Self { max_bytes: total_memory / 100 * u64::from(percent.min(100)), ..Self::unlimited() }
    }
}

/// How long a model stays loaded after a request (Ollama's `keep_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload right after the request (`keep_alive: 0`).
    Unload,
    /// Never unload for idleness (a negative `keep_alive`).
    Forever,
    /// Unload after this long idle.
    For(Duration),
}

impl KeepAlive {
    /// Longest finite keep-alive; anything longer (or infinite) keeps the model forever.
    pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

    /// From Ollama's seconds convention: 0 unloads, negative keeps forever; longer than
    /// [`Self::MAX`] (or +∞) keeps forever too. NaN counts as 0.
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs < 0.0 || secs >= Self::MAX.as_secs_f64() {
            Self::Forever
        } else if secs > 0.0 {
            Self::For(Duration::from_secs_f64(secs))
        } else {
            Self::Unload
        }
    }
}

/// Fixed working memory added to every estimate (compute buffers, scratch).
const MARGIN_BYTES: u64 = 32 << 20;

/// Estimated bytes to load the model in `path` with a context of `context_length`
/// tokens (0 = the model's trained context, capped at 4096 as the gguf plugin does).
/// Non-GGUF files are estimated by their size plus the margin.
pub fn estimate_bytes(path: &Path, context_length: u32) -> std::io::Result<u64> {
    let size = std::fs::metadata(path)?.len();
    let Ok(header) = GgufHeader::read(path) else {
        return Ok(size + MARGIN_BYTES);
    };
    let arch = header.architecture().unwrap_or_default().to_owned();
    let get = |key: &str| header.get_u64(&format!("{arch}.{key}"));
    let ctx = match context_length {
        0 => header.context_length().unwrap_or(2048).min(4096),
        n => u64::from(n),
    };
    let layers = get("block_count").unwrap_or(0);
    let embd = get("embedding_length").unwrap_or(0);
    let heads = get("attention.head_count").unwrap_or(1).max(1);
    let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
    // K and V, f16, per layer and position: kv_heads × head_dim each.
    let kv_cache = layers.saturating_mul(ctx).saturating_mul(embd / heads * kv_heads).saturating_mul(2 * 2);
    Ok(size.saturating_add(kv_cache).saturating_add(MARGIN_BYTES))
}

/// Bytes as MiB with one decimal, for messages.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_follows_ollama() {
        assert_eq!(KeepAlive::from_secs_f64(0.0), KeepAlive::Unload);
        assert_eq!(KeepAlive::from_secs_f64(-1.0), KeepAlive::Forever);
        assert_eq!(KeepAlive::from_secs_f64(1.5), KeepAlive::For(Duration::from_millis(1500)));
        assert_eq!(Budget::percent_of(1000, 75).max_bytes, 750);
    }
}
