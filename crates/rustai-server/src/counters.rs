//! Counters the engine's metrics do not cover (HTTP requests, cancellations,
//! refusals), shared by the handlers and middleware that bump them and read by
//! `/metrics`.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Mutex},
};

/// Counters the engine's metrics do not cover.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// HTTP requests by (route, status).
    pub(crate) http: Mutex<HashMap<(String, u16), u64>>,
    /// Generations running now.
    pub(crate) in_flight: AtomicU64,
    /// Generations cancelled (client disconnected).
    pub(crate) cancelled: AtomicU64,
    /// Streams cancelled because the client stopped reading.
    pub(crate) stalled: AtomicU64,
    /// Plugin hot reloads.
    pub(crate) reloads: AtomicU64,
    /// Plugin files refused.
    pub(crate) rejections: AtomicU64,
    /// Rate-limit checks (to prune the limiter now and then).
    pub(crate) rate_checks: AtomicU64,
    /// Requests refused by the rate limit.
    pub(crate) rate_limited: AtomicU64,
    /// Requests refused for a missing or wrong key.
    pub(crate) unauthorized: AtomicU64,
}
