//! # rustai-formats: model file headers, read without loading a model
//!
//! Pure Rust, no native code, no I/O beyond reading the file. Both the host
//! (model discovery) and plugins (validating a file before handing it to a
//! native library that may not cope with a corrupt one) use it.
//!
//! ## Layout
//! - [`gguf`]: GGUF v2/v3 header, metadata and tensor table, with a size check
//!   that catches truncated files.
//! - [`safetensors`]: the JSON header of a `.safetensors` file, checked against the file size.
//! - [`onnx`]: the top-level fields of an ONNX `ModelProto` (recognition without a magic number).
//! - [`ct2`]: the variable table of a CTranslate2 `model.bin`.
//! - [`whisper`]: whisper.cpp ggml model files (header check).
//!
//! Converters that write model files (CTranslate2 Whisper to whisper.cpp ggml)
//! are in the `rustai-convert` crate, built on these readers.

pub mod ct2;
pub mod gguf;
pub mod onnx;
pub mod safetensors;
pub mod whisper;

pub use ct2::{Ct2Dtype, Ct2Model, Ct2Variable};
pub use gguf::{GgufHeader, MetaValue};
pub use onnx::OnnxHeader;
pub use safetensors::SafetensorsHeader;
pub use whisper::{is_whisper_ggml, WhisperHeader, WhisperHparams};

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
    /// A CTranslate2 `model.bin` of a format version this reader does not know.
    #[error("unsupported CTranslate2 model.bin version {0} (supported: 1 to 6); convert the model with a CTranslate2 release that writes one of these")]
    UnsupportedCt2Version(u32),
    /// The model lacks a variable asked for ([`Ct2Model::require`]).
    #[error("missing variable `{0}`")]
    Missing(String),
    /// A variable has a shape other than the one expected of it.
    #[error("variable `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The variable.
        name: String,
        /// The shape expected (empty for a scalar).
        expected: Vec<u64>,
        /// The shape in the file.
        found: Vec<u64>,
    },
    /// The file is not a whisper.cpp ggml file.
    #[error("not a whisper.cpp ggml file (starts with {found:02x?}, expected 6c 6d 67 67 = \"lmgg\")")]
    NotWhisperGgml {
        /// The first bytes found.
        found: Vec<u8>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
