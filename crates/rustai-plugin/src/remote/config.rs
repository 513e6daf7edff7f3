//! How a remote model is addressed: parsed from [`LoadModelParams`].
//!
//! `path` is the server's base URL and `extra_json` a JSON object (a
//! `models.toml` entry's `[models.config]`):
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `model` | the remote model name (required) | |
//! | `api_key_env` | name of the environment variable holding the API key | none |
//! | `timeout_s` | seconds to wait for an answer, and for each piece of a stream | 120 |
//! | `max_retries` | retries on 429 and 5xx before the first token | 3 |
//! | `stream` | stream the answer (`false`: one request, one answer) | `true` |
//!
//! Other keys are kept in [`RemoteConfig::extra`] for the plugin. The API key
//! is read once, here; it never appears in `Debug` output or in errors.

use std::{fmt, time::Duration};

use rustai_abi::{ErrorKind, LoadModelParams, PluginError};
use serde_json::{Map, Value};

/// Seconds to wait for an answer (and between two pieces of a stream).
pub const DEFAULT_TIMEOUT_S: f64 = 120.0;
/// Retries on 429 / 5xx.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Upper bound for `max_retries`.
const MAX_RETRIES_LIMIT: u64 = 10;
/// Connecting never waits longer than this.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed remote-model configuration.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The base URL as given, without a trailing `/`.
    pub base_url: String,
    /// The base URL without credentials, for messages.
    pub display_url: String,
    /// The remote model name.
    pub model: String,
    /// The environment variable the key came from.
    pub api_key_env: Option<String>,
    api_key: Option<String>,
    /// Wait for an answer / for each piece of a stream.
    pub timeout: Duration,
    /// Wait for a connection.
    pub connect_timeout: Duration,
    /// Retries on 429 / 5xx before the first token.
    pub max_retries: u32,
    /// Stream answers.
    pub stream: bool,
    /// Context length asked by the host (0 = unknown).
    pub context_length: u32,
    /// The whole `extra_json` object.
    pub extra: Map<String, Value>,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.display_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("stream", &self.stream)
            .finish()
    }
}

fn invalid(message: String) -> PluginError {
    PluginError::invalid_input(message)
}

impl RemoteConfig {
    /// Parse `params`, reading the API key from the environment.
    pub fn from_params(params: &LoadModelParams) -> Result<Self, PluginError> {
        Self::parse(params, |name| std::env::var(name).ok())
    }

    /// [`Self::from_params`] with a custom environment lookup (tests).
    pub fn parse(params: &LoadModelParams, env: impl Fn(&str) -> Option<String>) -> Result<Self, PluginError> {
        let raw = params.path.as_str().trim();
        let url = reqwest::Url::parse(raw).map_err(|e| {
            invalid(format!("the model path must be the server's base URL (like http://127.0.0.1:11434), got `{raw}`: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("the base URL must start with http:// or https://, got `{}://...`", url.scheme())));
        }
        let mut shown = url.clone();
        // Both only fail for URLs that cannot have credentials, which have none to hide.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        let display_url = shown.as_str().trim_end_matches('/').to_owned();

        let extra = match params.extra_json.as_str().trim() {
            "" => Map::new(),
            text => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(other) => return Err(invalid(format!("the model config (extra_json) must be a JSON object, got {other}"))),
                Err(e) => return Err(invalid(format!("the model config (extra_json) is not valid JSON: {e}"))),
            },
        };
        let model = match extra.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_owned(),
            Some(other) => return Err(invalid(format!("config key `model` must be a non-empty string, got {other}"))),
            None => {
                return Err(invalid(
                    "the model config needs `model`, the model's name on the server (models.toml: [models.config] model = \"...\")".into(),
                ))
            }
        };
        let api_key_env = match extra.get("api_key_env") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(other) => return Err(invalid(format!("config key `api_key_env` must be the name of an environment variable, got {other}"))),
        };
        let api_key = match &api_key_env {
            None => None,
            Some(name) => match env(name) {
                Some(key) if !key.trim().is_empty() => Some(key.trim().to_owned()),
                _ => {
                    return Err(PluginError::new(
                        ErrorKind::NotReady,
                        format!("the API key variable ${name} (config `api_key_env`) is not set or empty"),
                    ))
                }
            },
        };
        let timeout_s = match extra.get("timeout_s") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT_S,
            Some(v) => match v.as_f64() {
                Some(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => t,
                _ => return Err(invalid(format!("config key `timeout_s` must be a number of seconds in (0, 86400], got {v}"))),
            },
        };
        let max_retries = match extra.get("max_retries") {
            None | Some(Value::Null) => DEFAULT_MAX_RETRIES,
            Some(v) => match v.as_u64() {
                Some(n) if n <= MAX_RETRIES_LIMIT => n as u32,
                _ => return Err(invalid(format!("config key `max_retries` must be an integer from 0 to {MAX_RETRIES_LIMIT}, got {v}"))),
            },
        };
        let stream = match extra.get("stream") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(invalid(format!("config key `stream` must be true or false, got {v}"))),
        };
        let timeout = Duration::from_secs_f64(timeout_s);
        Ok(Self {
            base_url: raw.trim_end_matches('/').to_owned(),
            display_url,
            model,
            api_key_env,
            api_key,
            timeout,
            connect_timeout: timeout.min(MAX_CONNECT_TIMEOUT),
            max_retries,
            stream,
            context_length: params.context_length,
            extra,
        })
    }

    /// The API key, when one is configured.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// A non-negative integer config value.
    pub fn u32_key(&self, key: &str) -> Option<u32> {
        self.extra.get(key).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok())
    }

    /// Replace the API key in `text` (a server may echo it back).
    pub fn redact(&self, text: &str) -> String {
        match self.api_key.as_deref() {
            Some(key) if key.len() >= 4 => text.replace(key, "<redacted>"),
            _ => text.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(path: &str, extra: &str) -> LoadModelParams {
        LoadModelParams { extra_json: extra.into(), ..LoadModelParams::new(path) }
    }

    #[test]
    fn parses_keys_and_hides_the_key() {
        let env = |n: &str| (n == "MY_KEY").then(|| "sk-secret-123".to_owned());
        let extra = r#"{"model":"m1","api_key_env":"MY_KEY","timeout_s":5,"max_retries":1,"stream":false,"threads":4}"#;
        let c = RemoteConfig::parse(&params("http://user:pw@localhost:8080/v1/", extra), env).unwrap();
        assert_eq!(c.base_url, "http://user:pw@localhost:8080/v1");
        assert_eq!(c.display_url, "http://localhost:8080/v1");
        assert_eq!((c.model.as_str(), c.max_retries, c.stream), ("m1", 1, false));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.api_key(), Some("sk-secret-123"));
        assert!(!format!("{c:?}").contains("sk-secret"));
        assert_eq!(c.redact("bad key sk-secret-123!"), "bad key <redacted>!");
        assert_eq!(c.u32_key("threads"), Some(4));
    }

    #[test]
    fn clear_errors() {
        let none = |_: &str| None;
        let err = |p: &str, e: &str| RemoteConfig::parse(&params(p, e), none).unwrap_err();
        assert!(err("/models/x.gguf", r#"{"model":"m"}"#).message.contains("base URL"));
        assert!(err("ftp://host", r#"{"model":"m"}"#).message.contains("http://"));
        assert!(err("http://h", "").message.contains("`model`"));
        assert!(err("http://h", "[1]").message.contains("JSON object"));
        assert!(err("http://h", r#"{"model":"m","timeout_s":-1}"#).message.contains("timeout_s"));
        let e = err("http://h", r#"{"model":"m","api_key_env":"NOPE"}"#);
        assert_eq!(e.kind, ErrorKind::NotReady);
        assert!(e.message.contains("$NOPE"));
    }
}
