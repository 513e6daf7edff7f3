//! Request metrics: every request's model, plugin, tokens and timings, summed
//! per model and in total, for the CLI and the server's `/metrics`.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use rustai_abi::Completion;

/// One finished request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Model id.
    pub model: String,
    /// Plugin id.
    pub plugin: String,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Generated tokens.
    pub tokens_out: u64,
    /// Wall time of the whole request.
    pub latency: Duration,
    /// Generation time (for tokens/s).
    pub generation: Duration,
    /// Whether it failed.
    pub failed: bool,
}

impl RequestRecord {
    /// A record for a finished generation.
    pub fn from_completion(model: &str, plugin: &str, done: &Completion, latency: Duration) -> Self {
        Self {
            model: model.to_owned(),
            plugin: plugin.to_owned(),
            tokens_in: u64::from(done.tokens_in),
            tokens_out: u64::from(done.tokens_out),
            latency,
            generation: Duration::from_secs_f64(done.timings.generation_ms.max(0.0) / 1e3),
            failed: false,
        }
    }
}

/// Upper bounds (seconds) of the latency histogram's buckets; a last, unbounded bucket follows.
pub const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Sums over a set of requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Requests per latency bucket ([`LATENCY_BUCKETS`], then one for anything longer);
    /// not cumulative.
    pub latency_histogram: [u64; LATENCY_BUCKETS.len() + 1],
    /// Requests (failed ones included).
    pub requests: u64,
    /// Failed requests.
    pub failures: u64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Generated tokens.
    pub tokens_out: u64,
    /// Sum of latencies.
    pub total_latency: Duration,
    /// Longest latency.
    pub max_latency: Duration,
    /// Sum of generation times.
    pub total_generation: Duration,
}

impl Summary {
    fn add(&mut self, r: &RequestRecord) {
        self.requests += 1;
        self.failures += u64::from(r.failed);
        // Saturating: a hostile remote backend can report any count.
        self.tokens_in = self.tokens_in.saturating_add(r.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(r.tokens_out);
        self.total_latency += r.latency;
        self.max_latency = self.max_latency.max(r.latency);
        self.total_generation += r.generation;
        let secs = r.latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.latency_histogram[bucket] += 1;
    }

    /// Mean latency.
    pub fn mean_latency(&self) -> Duration {
        if self.requests == 0 { Duration::ZERO } else { self.total_latency / self.requests as u32 }
    }

    /// Generated tokens per second of generation time.
    pub fn tokens_per_s(&self) -> f64 {
        let secs = self.total_generation.as_secs_f64();
        if secs > 0.0 { self.tokens_out as f64 / secs } else { 0.0 }
    }
}

/// Collects [`RequestRecord`]s.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<(Summary, BTreeMap<String, Summary>)>,
}

impl Metrics {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a finished request.
    pub fn record(&self, r: &RequestRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.add(r);
        inner.1.entry(r.model.clone()).or_default().add(r);
    }

    /// Totals over every request.
    pub fn total(&self) -> Summary {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Totals per model id.
    pub fn per_model(&self) -> BTreeMap<String, Summary> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(model: &str, out: u64, ms: u64, failed: bool) -> RequestRecord {
        RequestRecord {
            model: model.into(),
            plugin: "gguf".into(),
            tokens_in: 10,
            tokens_out: out,
            latency: Duration::from_millis(ms),
            generation: Duration::from_millis(ms / 2),
            failed,
        }
    }

    #[test]
    fn sums_per_model_and_total() {
        let m = Metrics::new();
        m.record(&rec("a", 20, 200, false));
        m.record(&rec("a", 40, 400, false));
        m.record(&rec("b", 0, 10, true));
        let total = m.total();
        assert_eq!((total.requests, total.failures, total.tokens_in, total.tokens_out), (3, 1, 30, 60));
        assert_eq!(total.max_latency, Duration::from_millis(400));
        let a = &m.per_model()["a"];
        assert_eq!(a.mean_latency(), Duration::from_millis(300));
        assert!((a.tokens_per_s() - 200.0).abs() < 1e-9, "60 tokens in 0.3 s");
        assert_eq!(Summary::default().tokens_per_s(), 0.0);
        // 10 ms -> first bucket (<= 50 ms); 200 and 400 ms -> the <= 0.25 s and <= 0.5 s buckets.
        assert_eq!(&total.latency_histogram[..4], &[1, 0, 1, 1]);
    }
}
