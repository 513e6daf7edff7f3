//! Rate limiting per client: a token bucket per API key (when keys are in
//! use) or per IP address, refilled at `rate_limit_per_minute`. A request
//! over the limit gets 429 with `Retry-After` (whole seconds, rounded up).
//! `/health` and `/metrics` are not limited. The middleware takes only its own
//! sub-state, [`RateLimit`].

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    sync::{atomic::Ordering, Arc},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{api_key::presented, counters::Counters, error::ApiError};

/// The keyed limiter.
type Limiter = DefaultKeyedRateLimiter<String>;

/// A limiter allowing `per_minute` requests per client (bursts up to the same number).
fn limiter(per_minute: u32) -> Option<Limiter> {
    let n = NonZeroU32::new(per_minute)?;
    Some(RateLimiter::keyed(Quota::per_minute(n)))
}

/// What the rate limit needs (its sub-state of the server's state): the limiter (none
/// when unlimited), whether API keys are in use, and the counters.
#[derive(Clone)]
pub(crate) struct RateLimit {
    limiter: Option<Arc<Limiter>>,
    keys_in_use: bool,
    counters: Arc<Counters>,
}

impl RateLimit {
    /// `per_minute` requests per client; 0 = unlimited.
    pub(crate) fn new(per_minute: u32, keys_in_use: bool, counters: Arc<Counters>) -> Self {
        Self { limiter: limiter(per_minute).map(Arc::new), keys_in_use, counters }
    }
}

/// The client: its API key when keys are in use (this layer runs after authentication, so the
/// key is a valid one, not an arbitrary header), else its IP address.
fn client_key(req: &Request, keys_in_use: bool) -> String {
    let key = keys_in_use.then(|| presented(req)).flatten().map(|k| {
        // Keyed by a digest so the limiter's memory never holds a key.
        use sha2::Digest;
        format!("key:{:x}", sha2::Sha256::digest(k.as_bytes()))
    });
    key.unwrap_or_else(|| match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
        None => "ip:unknown".into(),
    })
}

pub(crate) async fn rate_limit(State(state): State<RateLimit>, req: Request, next: Next) -> Response {
    let Some(limiter) = state.limiter.as_ref() else { return next.run(req).await };
    // Supervisors and scrapers are not clients to limit.
    if matches!(req.uri().path(), "/health" | "/metrics") {
        return next.run(req).await;
    }
    // Forget idle clients now and then, so the limiter's memory stays bounded.
    if state.counters.rate_checks.fetch_add(1, Ordering::Relaxed) % 1024 == 0 {
        limiter.retain_recent();
    }
    match limiter.check_key(&client_key(&req, state.keys_in_use)) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            state.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let openai = req.uri().path().starts_with("/v1/");
            let e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("rate limit exceeded; retry in {secs} s"));
            let mut r = if openai { e.openai() } else { e }.into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}
