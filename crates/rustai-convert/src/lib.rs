//! # rustai-convert: model file converters, the writers beside `rustai-formats`' readers
//!
//! Pure Rust, no native code. Reads a model through [`rustai_formats`] and writes
//! the converted file only to the output path it is given (through a `.partial`
//! file beside it, renamed when complete).
//!
//! ## Layout
//! - [`convert_ct2`]: a CTranslate2 Whisper model (`model.bin` + `tokenizer.json`)
//!   to a whisper.cpp ggml file, which [`rustai_formats::WhisperHeader`] reads back.
//!   The tensor mapping and the header derived from the model are planned in the
//!   private `plan` module; the file is written by the private `convert` module.
//! - [`mel`]: the Slaney mel filterbank whisper.cpp expects in the file.
//! - [`vocab`]: the token list, GPT-2 byte-level text decoded to raw bytes.

mod convert;
pub mod mel;
mod plan;
pub mod vocab;

#[cfg(test)]
mod tests;

pub use convert::{convert_ct2, sinusoids, ConvertReport};
pub use mel::mel_filters;

/// Errors from converting a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source model could not be read (truncated, corrupt, unsupported version, ...).
    #[error(transparent)]
    Read(#[from] rustai_formats::Error),
    /// A file could not be read or written.
    #[error("cannot read or write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model lacks a variable (or file) the conversion needs.
    #[error("missing `{0}`: is this a Whisper model converted by CTranslate2 (`WhisperSpec`), with its tokenizer.json beside model.bin?")]
    Missing(String),
    /// A variable has a shape other than the model's dimensions imply.
    #[error("variable `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The variable.
        name: String,
        /// The shape the hyper-parameters imply.
        expected: Vec<u64>,
        /// The shape in the file.
        found: Vec<u64>,
    },
    /// The model's dimensions do not fit the target format or each other.
    #[error("corrupt model: {0}")]
    Corrupt(String),
    /// A CTranslate2 variable of a data type the converter cannot turn into ggml.
    #[error("variable `{name}` is stored as {dtype}; only float16, bfloat16 and float32 can be converted (re-run ct2-transformers-converter with `--quantization float16`)")]
    UnsupportedDtype {
        /// The variable.
        name: String,
        /// Its data type.
        dtype: String,
    },
    /// The CTranslate2 model is not a Whisper model.
    #[error("model.bin holds a `{0}`, not a `WhisperSpec`; only Whisper models can be converted to whisper.cpp's format")]
    NotWhisper(String),
    /// tokenizer.json could not be used.
    #[error("bad tokenizer.json: {0}")]
    Tokenizer(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
