//! Memory budgeting for loaded models: estimates, limits and keep-alive rules.
//!
//! A model's memory is estimated before it is loaded. The plugin that reads the
//! format knows best (a language model's KV cache depends on its layers, heads
//! and the context asked for), so the pool asks it first
//! (`Plugin::estimate_memory`); a plugin that cannot say gets the fallback here:
//! the size on disk plus a working margin. The [`crate::ModelPool`] admits a load
//! only if it fits the budget after evicting idle models, least recently used first.

use std::{path::Path, time::Duration};

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

/// Weights in another format than the safetensors a folder also holds (Hugging Face
/// clones carry several copies); not loaded, so not counted.
fn alternative_weights(name: &str) -> bool {
    [".bin", ".h5", ".msgpack", ".ot", ".onnx", ".pt", ".pth", ".gguf"].iter().any(|ext| name.ends_with(ext))
}

/// The fallback estimate for a model at `path` (a file, or a folder of files such as a
/// safetensors model): its size on disk plus a fixed working margin. In a folder with
/// safetensors weights, other weight formats are left out; links are followed (a
/// Hugging Face cache links its weights).
pub fn estimate_from_disk(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    let size = if meta.is_dir() {
        let files: Vec<(String, u64)> = walkdir::WalkDir::new(path)
            .max_depth(3)
            .follow_links(true)
            .into_iter()
            .filter_map(std::result::Result::ok)
            .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok().filter(std::fs::Metadata::is_file)?.len())))
            .collect();
        let safetensors = files.iter().any(|(name, _)| name.ends_with(".safetensors"));
        files.iter().filter(|(name, _)| !(safetensors && alternative_weights(name))).map(|(_, len)| *len).fold(0u64, u64::saturating_add)
    } else {
        meta.len()
    };
    Ok(size.saturating_add(MARGIN_BYTES))
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

    #[test]
    fn a_folder_counts_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.bin"), vec![0u8; 24]).unwrap();
        assert_eq!(estimate_from_disk(dir.path()).unwrap(), 1024 + MARGIN_BYTES);
        assert_eq!(estimate_from_disk(&dir.path().join("a.bin")).unwrap(), 1000 + MARGIN_BYTES);
        // Beside safetensors weights, the other formats' copies are not what gets loaded.
        std::fs::write(dir.path().join("model.safetensors"), vec![0u8; 500]).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), vec![0u8; 10]).unwrap();
        assert_eq!(estimate_from_disk(dir.path()).unwrap(), 500 + 10 + MARGIN_BYTES);
    }
}
