//! # rustai-formats: model file headers, read without loading a model
//!
//! Pure Rust, no native code, no I/O beyond reading the file. Both the host
//! (model discovery) and plugins (validating a file before handing it to a
//! native library that may not cope with a corrupt one) use it.
//!
//! ## Layout
//! - [`gguf`]: GGUF v2/v3 header, metadata and tensor table, with a size check
//!   that catches truncated files.

pub mod gguf;

pub use gguf::{GgufHeader, MetaValue};

/// Errors from reading a model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file does not start with the format's magic bytes.
    #[error("not a GGUF file (starts with {found:02x?}, expected \"GGUF\")")]
    NotGguf {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A format version this reader does not know.
    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    UnsupportedVersion(u32),
    /// The file ends before its own header or tensor data does.
    #[error("file is truncated: its header says it needs at least {needed} bytes, but it has {actual}")]
    Truncated {
        /// Bytes the file's own header requires.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The header is internally inconsistent.
    #[error("corrupt header: {0}")]
    Corrupt(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
