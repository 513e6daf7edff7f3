//! HTTP errors: a status and a JSON body in the shape each API's clients expect
//! (Ollama: `{"error": "..."}`; OpenAI: `{"error": {"message", "type", "code"}}`;
//! Anthropic: `{"type": "error", "error": {"type", "message"}}`).
//! Internal details (paths, plugin internals) are logged, not sent.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use rustai_core::Error as CoreError;

/// Which API's error shape to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{"error": "message"}` (Ollama and RustAI's own endpoints).
    Ollama,
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

impl Flavor {
    /// The shape clients of the endpoint at `path` expect.
    pub(crate) fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/messages") {
            Self::Anthropic
        } else if path.starts_with("/v1/") {
            Self::OpenAi
        } else {
            Self::Ollama
        }
    }
}

/// An error answered over HTTP.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What the client is told.
    pub message: String,
    /// Error shape.
    pub flavor: Flavor,
    /// A machine-readable code (OpenAI's `code`, e.g. `context_length_exceeded`); the status
    /// number when `None`.
    pub code: Option<&'static str>,
}

/// `Result` with [`ApiError`].
pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), flavor: Flavor::Ollama, code: None }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 501: the endpoint needs a plugin family that is not loaded.
    pub fn missing_family(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("no loaded plugin provides {what}; add one to the plugin folder (see `rustai plugins`)"),
        )
    }
    /// Use the OpenAI shape.
    pub fn openai(mut self) -> Self {
        self.flavor = Flavor::OpenAi;
        self
    }
    /// Use the Anthropic shape.
    pub fn anthropic(mut self) -> Self {
        self.flavor = Flavor::Anthropic;
        self
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match &e {
            CoreError::UnknownModel { .. } => StatusCode::NOT_FOUND,
            CoreError::AmbiguousModel { .. } | CoreError::WrongTask { .. } | CoreError::Audio(_) | CoreError::InvalidParameter(_) => {
                StatusCode::BAD_REQUEST
            }
            CoreError::InvalidModel { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CoreError::NoSuitableModel { .. } => StatusCode::NOT_FOUND,
            CoreError::OverBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::UnknownTool { .. } => StatusCode::NOT_FOUND,
            CoreError::AmbiguousTool { .. } | CoreError::ToolArguments { .. } => StatusCode::BAD_REQUEST,
            CoreError::ToolTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            CoreError::ToolsBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::Template { .. } | CoreError::InvalidChat(_) => StatusCode::BAD_REQUEST,
            CoreError::BadToolCall(_) => StatusCode::BAD_GATEWAY,
            CoreError::NoPluginFor(_) | CoreError::MissingFamily { .. } | CoreError::UnknownPlugin(_) => StatusCode::NOT_IMPLEMENTED,
            CoreError::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            CoreError::Plugin { source, .. } => match source.kind {
                rustai_core::abi::ErrorKind::InvalidInput | rustai_core::abi::ErrorKind::Unsupported => StatusCode::BAD_REQUEST,
                rustai_core::abi::ErrorKind::InvalidModel | rustai_core::abi::ErrorKind::NotFound => StatusCode::UNPROCESSABLE_ENTITY,
                rustai_core::abi::ErrorKind::ResourceExhausted | rustai_core::abi::ErrorKind::NotReady => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("internal error: {e}");
            return Self::new(status, "internal error (details in the server log)");
        }
        let message = match &e {
            // Do not tell clients where files live.
            CoreError::UnknownModel { name, known } => {
                format!("model '{name}' not found{}", if known.is_empty() { String::new() } else { format!(" (available: {})", known.join(", ")) })
            }
            CoreError::Plugin { source, .. } if source.is_context_length_exceeded() => {
                let text = source.message.as_str();
                let text = text.strip_prefix(rustai_core::abi::CONTEXT_LENGTH_EXCEEDED).unwrap_or(text);
                let mut err = Self::new(status, text.trim_start_matches(':').trim());
                err.code = Some(rustai_core::abi::CONTEXT_LENGTH_EXCEEDED);
                return err;
            }
            CoreError::Plugin { source, .. } => source.message.to_string(),
            CoreError::InvalidModel { reason, .. } => format!("the model is not usable: {reason}"),
            other => other.to_string(),
        };
        Self::new(status, message)
    }
}

impl ApiError {
    /// The JSON body in the error's shape (also sent as the data of a stream's error event).
    pub fn body(&self) -> serde_json::Value {
        match self.flavor {
            Flavor::Ollama => serde_json::json!({ "error": self.message }),
            Flavor::OpenAi => {
                let kind = match self.status.as_u16() {
                    401 => "authentication_error",
                    404 => "not_found_error",
                    413 | 400 | 422 => "invalid_request_error",
                    429 => "rate_limit_error",
                    501 => "not_implemented",
                    _ => "server_error",
                };
                let code = self.code.map_or_else(|| serde_json::json!(self.status.as_u16()), |c| serde_json::json!(c));
                let param = if self.code == Some(rustai_core::abi::CONTEXT_LENGTH_EXCEEDED) { serde_json::json!("messages") } else { serde_json::Value::Null };
                serde_json::json!({ "error": { "message": self.message, "type": kind, "param": param, "code": code } })
            }
            Flavor::Anthropic => {
                let kind = match self.status.as_u16() {
                    400 | 422 | 501 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    503 | 529 => "overloaded_error",
                    _ => "api_error",
                };
                serde_json::json!({ "type": "error", "error": { "type": kind, "message": self.message } })
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
