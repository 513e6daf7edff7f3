//! Optional API keys: `Authorization: Bearer KEY` or `x-api-key: KEY` (read by
//! `api_key`), compared in constant time. Keys are never logged. `/health` stays
//! open so supervisors can probe the service. The middleware takes only its own
//! sub-state, [`ApiKeys`].

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use crate::{
    api_key::presented,
    counters::Counters,
    error::{ApiError, Flavor},
};

/// What authentication needs (its sub-state of the server's state): the accepted keys
/// and the counters, for refusals.
#[derive(Clone)]
pub(crate) struct ApiKeys {
    keys: Arc<[String]>,
    counters: Arc<Counters>,
}

impl ApiKeys {
    pub(crate) fn new(keys: &[String], counters: Arc<Counters>) -> Self {
        Self { keys: keys.into(), counters }
    }
}

/// Whether `key` equals one of `keys`; every key is compared, in constant time.
/// The comparison is of SHA-256 digests, which all have one length: comparing the
/// keys themselves would return early on a length mismatch and leak the length.
fn matches(keys: &[String], key: &str) -> bool {
    use sha2::Digest;
    let presented = sha2::Sha256::digest(key.as_bytes());
    keys.iter().fold(false, |ok, k| ok | bool::from(sha2::Sha256::digest(k.as_bytes()).as_slice().ct_eq(presented.as_slice())))
}

pub(crate) async fn require_key(State(state): State<ApiKeys>, req: Request, next: Next) -> Response {
    let keys = &state.keys;
    if keys.is_empty() || req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let flavor = Flavor::of_path(req.uri().path());
    let refuse = |msg: &str| {
        state.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        let mut r = ApiError { flavor, ..ApiError::new(StatusCode::UNAUTHORIZED, msg) }.into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        r
    };
    match presented(&req) {
        None => refuse("missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"),
        Some(k) if !matches(keys, k) => refuse("invalid API key"),
        Some(_) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = vec!["alpha".to_owned(), "beta-key".to_owned()];
        assert!(matches(&keys, "alpha") && matches(&keys, "beta-key"));
        assert!(!matches(&keys, "alph") && !matches(&keys, "alphaa") && !matches(&keys, ""));
    }
}
