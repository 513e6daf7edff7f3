//! Typed calls to a running RustAI server, so callers (the `rustai` CLI) know
//! no wire JSON: [`running_models`] (`GET /api/ps`, for `rustai ps`).

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::fetch::error_chain;

/// A model a running server has loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningModel {
    /// Its full name (`name:tag`), if the server gave one.
    pub name: Option<String>,
    /// Estimated memory, bytes.
    pub size: u64,
    /// The plugin serving it, if the server said.
    pub plugin: Option<String>,
    /// Its family (`llm`, `embedding`, `stt`, `tts`), if the server said.
    pub family: Option<String>,
    /// Whether a request is using it now.
    pub in_use: bool,
    /// When a request last used it (`None`: missing or unreadable).
    pub last_used: Option<SystemTime>,
    /// When it is unloaded if unused until then (`None`: missing or unreadable).
    pub expires_at: Option<SystemTime>,
}

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No answer: nothing listening, connection refused or cut off.
    #[error("{url}: {reason}")]
    Unreachable {
        /// What was asked for.
        url: String,
        /// Why (with its causes).
        reason: String,
    },
    /// The server answered with an error status (401: a missing or wrong API key).
    #[error("{url}: status code {status}")]
    Status {
        /// What was asked for.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer is not what a RustAI server sends.
    #[error("{url}: unexpected answer: {reason}")]
    Answer {
        /// What was asked for.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// `/api/ps` as the server sends it (`ollama::ps`); only what [`RunningModel`] keeps.
#[derive(Deserialize)]
struct PsWire {
    models: Option<Vec<PsModelWire>>,
}

#[derive(Deserialize)]
struct PsModelWire {
    name: Option<String>,
    size: Option<u64>,
    plugin: Option<String>,
    family: Option<String>,
    in_use: Option<bool>,
    last_used: Option<String>,
    expires_at: Option<String>,
}

impl From<PsModelWire> for RunningModel {
    fn from(m: PsModelWire) -> Self {
        let time = |t: Option<String>| t.and_then(|t| humantime::parse_rfc3339(&t).ok());
        Self {
            name: m.name,
            size: m.size.unwrap_or(0),
            plugin: m.plugin,
            family: m.family,
            in_use: m.in_use == Some(true),
            last_used: time(m.last_used),
            expires_at: time(m.expires_at),
        }
    }
}

/// The URL of `path` on `server` (`HOST:PORT`, with or without `http://`).
fn url(server: &str, path: &str) -> String {
    format!("http://{}{path}", server.trim_start_matches("http://"))
}

/// The models the server at `server` (`HOST:PORT`, with or without `http://`) has loaded,
/// asking with `api_key` when given.
pub async fn running_models(server: &str, api_key: Option<&str>) -> Result<Vec<RunningModel>, ClientError> {
    let url = url(server, "/api/ps");
    let answer = |reason: String| ClientError::Answer { url: url.clone(), reason };
    // Straight to the server, never through a proxy named in the environment (it is usually this machine).
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(30)).no_proxy().build().map_err(|e| answer(e.to_string()))?;
    let mut request = client.get(&url);
    if let Some(key) = api_key {
        request = request.header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = request.send().await.map_err(|e| ClientError::Unreachable { url: url.clone(), reason: error_chain(&e) })?;
    let status = response.status();
    if !status.is_success() {
        return Err(ClientError::Status { url, status: status.as_u16() });
    }
    let body = response.bytes().await.map_err(|e| ClientError::Unreachable { url: url.clone(), reason: error_chain(&e) })?;
    let wire: PsWire = serde_json::from_slice(&body).map_err(|e| answer(e.to_string()))?;
    Ok(wire.models.unwrap_or_default().into_iter().map(RunningModel::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(url("127.0.0.1:11434", "/api/ps"), "http://127.0.0.1:11434/api/ps");
        assert_eq!(url("http://localhost:8080", "/api/ps"), "http://localhost:8080/api/ps");
    }

    #[test]
    fn ps_answers_become_running_models() {
        let body = r#"{"models":[{"name":"smollm2:q4","model":"smollm2:q4","size":104857600,"digest":"ab","details":{},
            "expires_at":"2100-01-01T00:00:00Z","size_vram":0,"plugin":"gguf","in_use":false,"pinned":false,
            "last_used":"2024-05-01T12:00:00Z"},{}]}"#;
        let wire: PsWire = serde_json::from_str(body).unwrap();
        let models: Vec<RunningModel> = wire.models.unwrap().into_iter().map(RunningModel::from).collect();
        let m = &models[0];
        assert_eq!((m.name.as_deref(), m.size, m.plugin.as_deref(), m.in_use), (Some("smollm2:q4"), 104_857_600, Some("gguf"), false));
        assert_eq!(m.last_used, Some(humantime::parse_rfc3339("2024-05-01T12:00:00Z").unwrap()));
        assert!(m.expires_at.is_some_and(|t| t > SystemTime::now()));
        let empty = &models[1];
        assert_eq!((empty.name.as_deref(), empty.size, empty.in_use, empty.last_used), (None, 0, false, None));
        let none: PsWire = serde_json::from_str("{}").unwrap();
        assert!(none.models.is_none());
    }
}
