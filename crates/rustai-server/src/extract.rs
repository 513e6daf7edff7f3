//! Request bodies: JSON that fails to parse, has the wrong shape or is too
//! large becomes a clear JSON error (400 / 413) instead of axum's plain text.
//! Like Ollama, the `Content-Type` header is not required (`curl -d` works).

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body with [`ApiError`] rejections.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let openai = req.uri().path().starts_with("/v1/");
        let flavour = |e: ApiError| if openai { e.openai() } else { e };
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            flavour(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is larger than the server's limit")
            } else {
                ApiError::new(e.status(), e.body_text())
            })
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            flavour(if inner.is_syntax() || inner.is_eof() {
                ApiError::bad_request(format!("malformed JSON: {inner}"))
            } else {
                ApiError::bad_request(format!("invalid request: {}: {inner}", e.path()))
            })
        })?;
        Ok(Self(value))
    }
}
