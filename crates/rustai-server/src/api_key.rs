//! The API key a request presents: `Authorization: Bearer KEY` (or `bearer`)
//! or `x-api-key: KEY`. Read by authentication (`auth`) and by the rate limit
//! (`limit`), which keys clients by it.

use axum::{extract::Request, http::header};

/// The presented key, trimmed; `None` when the request carries none.
pub(crate) fn presented(req: &Request) -> Option<&str> {
    let h = req.headers();
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}
