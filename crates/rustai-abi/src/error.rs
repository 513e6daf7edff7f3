//! The one error type that crosses the ABI.
//!
//! It is deliberately plain: a `#[repr(u8)]` kind the host can match on and a
//! human-readable message. Host crates convert it into their own `thiserror` enums.

use abi_stable::{std_types::RString, StableAbi};
use std::fmt;

/// What went wrong, coarsely, so the host can pick a reaction (HTTP status, retry, ...).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request was malformed or had an out-of-range parameter.
    InvalidInput = 0,
    /// A model, voice or tool that does not exist (or an unknown handle).
    NotFound = 1,
    /// A model file is corrupt, truncated or in a format this plugin cannot read.
    InvalidModel = 2,
    /// This plugin does not implement the requested operation or option.
    Unsupported = 3,
    /// Out of memory or another resource limit.
    ResourceExhausted = 4,
    /// The host asked to stop.
    Cancelled = 5,
    /// The plugin panicked; the panic was caught at the ABI boundary.
    Panicked = 6,
    /// A remote backend could not be reached or answered with an error.
    Backend = 7,
    /// The plugin has not been initialised or has been shut down.
    NotReady = 8,
    /// Anything else.
    Internal = 9,
}

impl ErrorKind {
    /// A short lower-case name, stable enough for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::InvalidModel => "invalid_model",
            Self::Unsupported => "unsupported",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Cancelled => "cancelled",
            Self::Panicked => "panicked",
            Self::Backend => "backend",
            Self::NotReady => "not_ready",
            Self::Internal => "internal",
        }
    }
}

/// An error returned by a plugin call.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The coarse category.
    pub kind: ErrorKind,
    /// A message a person can act on.
    pub message: RString,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: RString::from(message.into()) }
    }
    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// Shorthand for [`ErrorKind::InvalidModel`].
    pub fn invalid_model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidModel, message)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// The message prefix of [`PluginError::context_length_exceeded`] (OpenAI's error code).
pub const CONTEXT_LENGTH_EXCEEDED: &str = "context_length_exceeded";

impl PluginError {
    /// A prompt of `tokens` tokens does not fit a context of `context` tokens. An
    /// [`ErrorKind::InvalidInput`] whose message starts with [`CONTEXT_LENGTH_EXCEEDED`], so a
    /// host can tell it apart without a new error kind (which would change the ABI).
    pub fn context_length_exceeded(tokens: usize, context: u32) -> Self {
        Self::invalid_input(format!(
            "{CONTEXT_LENGTH_EXCEEDED}: the prompt has {tokens} tokens but the model's context holds {context}; \
             shorten the prompt or load the model with a longer context"
        ))
    }

    /// Whether this is a [`Self::context_length_exceeded`] error.
    pub fn is_context_length_exceeded(&self) -> bool {
        self.kind == ErrorKind::InvalidInput && self.message.as_str().starts_with(CONTEXT_LENGTH_EXCEEDED)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for PluginError {}
