//! The HTTP client of one remote model: requests with retries and clear errors.
//!
//! Retries: on 429, 500, 502, 503 and 504, up to `max_retries` times, waiting the server's
//! `Retry-After` (seconds) or an exponential backoff (0.5 s, 1 s, 2 s, ... up to
//! 8 s). A retry only ever happens before the response body is read, so never
//! after a token was streamed. Waits are cancellable.
//!
//! Errors: a refused connection is [`ErrorKind::NotReady`] ("cannot reach ...:
//! is the server running?"), 401/403 name the key's environment variable (never
//! the key), 404 says the model was not found, others carry the status and the
//! server's own message, truncated and with the key redacted.

use std::{
    io::Read,
    thread,
    time::{Duration, Instant},
};

use reqwest::{
    blocking::{Client, Response},
    header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
    Method, StatusCode,
};
use rustai_abi::{ErrorKind, PluginError};
use serde_json::Value;

use super::config::RemoteConfig;

/// Longest `Retry-After` honoured; a longer one fails at once.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(8000);
/// Most bytes read from an error body or a non-streamed answer.
const MAX_ERROR_BODY: u64 = 64 * 1024;
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Longest server message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// A cancellation check, polled while waiting between retries.
pub type Cancel<'a> = &'a dyn Fn() -> bool;

/// A connection to one remote model.
#[derive(Debug)]
pub struct Remote {
    client: Client,
    config: RemoteConfig,
}

/// `s` cut to at most `max` characters (with an ellipsis when cut).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// The human part of an error body: `{"error": "..."}`, `{"error": {"message": ...}}`,
/// `{"message": ...}`, or the text itself.
pub fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let e = v.get("error").unwrap_or(&v);
        e.as_str().or_else(|| e.get("message").and_then(Value::as_str)).or_else(|| v.get("message").and_then(Value::as_str)).map(str::to_owned)
    });
    let text = from_json.unwrap_or_else(|| body.split_whitespace().collect::<Vec<_>>().join(" "));
    truncate(text.trim(), MAX_MESSAGE_CHARS)
}

/// Seconds in a `Retry-After` header (the HTTP-date form is not honoured).
pub fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let secs = value?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The backoff before retry number `attempt` (0-based).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(16))).min(MAX_BACKOFF)
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl Remote {
    /// Build the client for `config` (no network traffic yet).
    pub fn new(config: RemoteConfig, user_agent: &str) -> Result<Self, PluginError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = config.api_key() {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                PluginError::invalid_input(format!(
                    "the API key in ${} contains characters that cannot be sent in a header",
                    config.api_key_env.as_deref().unwrap_or("?")
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = Client::builder()
            .user_agent(user_agent)
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| PluginError::internal(format!("cannot create the HTTP client: {}", root_cause(&e))))?;
        Ok(Self { client, config })
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The display URL of `path` (credentials removed).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.display_url)
    }

    /// GET `path`, retrying; `None` when cancelled.
    pub fn get(&self, path: &str, cancel: Cancel<'_>) -> Result<Option<Response>, PluginError> {
        self.send(Method::GET, path, None, cancel)
    }

    /// POST `body` as JSON to `path`, retrying; `None` when cancelled.
    pub fn post(&self, path: &str, body: &Value, cancel: Cancel<'_>) -> Result<Option<Response>, PluginError> {
        let bytes = serde_json::to_vec(body).map_err(|e| PluginError::internal(format!("cannot encode the request: {e}")))?;
        self.send(Method::POST, path, Some(bytes), cancel)
    }

    /// GET `path` and parse the JSON answer.
    pub fn get_json(&self, path: &str) -> Result<Value, PluginError> {
        match self.get(path, &|| false)? {
            Some(resp) => self.read_json(path, resp),
            None => Err(cancelled()),
        }
    }

    /// POST `body` to `path` and parse the JSON answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, PluginError> {
        match self.post(path, body, &|| false)? {
            Some(resp) => self.read_json(path, resp),
            None => Err(cancelled()),
        }
    }

    /// Read a whole (successful) answer as JSON.
    pub fn read_json(&self, path: &str, resp: Response) -> Result<Value, PluginError> {
        let mut bytes = Vec::new();
        resp.take(MAX_BODY).read_to_end(&mut bytes).map_err(|e| self.read_error(path, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let text = self.config.redact(&String::from_utf8_lossy(&bytes));
            PluginError::new(
                ErrorKind::Backend,
                format!("{} answered something that is not JSON ({e}): {}", self.url(path), truncate(text.trim(), 200)),
            )
        })
    }

    /// The error for a failed read of a response body (mid-stream included).
    pub fn read_error(&self, path: &str, e: &std::io::Error) -> PluginError {
        let url = self.url(path);
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut || root_cause(e).contains("timed out");
        let message = if timed_out {
            format!("{url} sent nothing for {:.0} s (config `timeout_s`)", self.config.timeout.as_secs_f64())
        } else {
            format!("the connection to {url} broke: {}", root_cause(e))
        };
        PluginError::new(ErrorKind::Backend, self.config.redact(&message))
    }

    fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>, cancel: Cancel<'_>) -> Result<Option<Response>, PluginError> {
        let url = format!("{}{path}", self.config.base_url);
        let mut attempt = 0u32;
        loop {
            if cancel() {
                return Ok(None);
            }
            let mut req = self.client.request(method.clone(), &url);
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, "application/json").body(b.clone());
            }
            let resp = match req.send() {
                Ok(resp) => resp,
                Err(e) => return Err(self.transport_error(path, &e)),
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(Some(resp));
            }
            let retryable = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
            let wait = retry_after(resp.headers().get(RETRY_AFTER)).unwrap_or_else(|| backoff(attempt));
            if retryable && attempt < self.config.max_retries && wait <= MAX_RETRY_AFTER {
                drop(resp);
                if !sleep(wait, cancel) {
                    return Ok(None);
                }
                attempt += 1;
                continue;
            }
            let note = match (retryable, wait > MAX_RETRY_AFTER) {
                (true, true) => format!(" (the server asks to retry after {:.0} s)", wait.as_secs_f64()),
                (true, false) if attempt > 0 => format!(" (after {attempt} retries)"),
                _ => String::new(),
            };
            return Err(self.status_error(path, status, resp, &note));
        }
    }

    /// The error for a request that got no answer.
    fn transport_error(&self, path: &str, e: &reqwest::Error) -> PluginError {
        let base = &self.config.display_url;
        let cause = root_cause(e);
        let (kind, message) = if e.is_connect() && !e.is_timeout() {
            (ErrorKind::NotReady, format!("cannot reach {base}: is the server running? ({cause})"))
        } else if e.is_timeout() {
            let secs = if e.is_connect() { self.config.connect_timeout } else { self.config.timeout }.as_secs_f64();
            (ErrorKind::Backend, format!("{} did not answer within {secs:.0} s (config `timeout_s`)", self.url(path)))
        } else {
            (ErrorKind::Backend, format!("the request to {} failed: {cause}", self.url(path)))
        };
        PluginError::new(kind, self.config.redact(&message))
    }

    /// The error for a non-success status.
    fn status_error(&self, path: &str, status: StatusCode, resp: Response, note: &str) -> PluginError {
        let mut body = Vec::new();
        // A body that cannot be read only loses the server's message.
        let _ = resp.take(MAX_ERROR_BODY).read_to_end(&mut body);
        let server = error_message(&String::from_utf8_lossy(&body));
        let server = if server.is_empty() { status.canonical_reason().unwrap_or("no message").to_owned() } else { server };
        let code = status.as_u16();
        let url = self.url(path);
        let model = &self.config.model;
        let (kind, message) = match code {
            401 | 403 => {
                let hint = match &self.config.api_key_env {
                    Some(var) => format!("check the key in ${var}"),
                    None => "the server wants an API key: set config `api_key_env` to the name of the environment variable that holds it".into(),
                };
                // The server's message is left out: some echo the key back.
                (ErrorKind::NotReady, format!("authentication failed (HTTP {code} from {url}): {hint}"))
            }
            404 => (ErrorKind::NotFound, format!("model `{model}` not found at {url} (HTTP 404: {server}); check the model name and the base URL")),
            429 => (ErrorKind::ResourceExhausted, format!("{url} is rate limiting (HTTP 429){note}: {server}")),
            400 | 413 | 422 => (ErrorKind::InvalidInput, format!("{url} rejected the request (HTTP {code}): {server}")),
            _ => (ErrorKind::Backend, format!("{url} answered HTTP {code}{note}: {server}")),
        };
        PluginError::new(kind, self.config.redact(&message))
    }
}

/// The error for a call cancelled before it started.
pub fn cancelled() -> PluginError {
    PluginError::new(ErrorKind::Cancelled, "cancelled")
}

/// Sleep `total`, waking every 50 ms to check `cancel`; `false` when cancelled.
fn sleep(total: Duration, cancel: Cancel<'_>) -> bool {
    let end = Instant::now() + total;
    loop {
        let now = Instant::now();
        if now >= end {
            return true;
        }
        if cancel() {
            return false;
        }
        thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_backoff() {
        assert_eq!(error_message(r#"{"error":"model 'x' not found"}"#), "model 'x' not found");
        assert_eq!(error_message(r#"{"error":{"message":"bad","type":"x"}}"#), "bad");
        assert_eq!(error_message("  plain\n text "), "plain text");
        assert_eq!(truncate("héllo", 2), "hé...");
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(30), MAX_BACKOFF);
        assert_eq!(retry_after(Some(&HeaderValue::from_static("2"))), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"))), None);
    }
}
