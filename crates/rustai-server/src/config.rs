//! Server settings: [`ServerConfig`], what `rustai serve`'s flags become.

use std::{net::SocketAddr, time::Duration};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (default 127.0.0.1:11434, Ollama's port).
    pub addr: SocketAddr,
    /// Accepted API keys; empty = no authentication.
    pub api_keys: Vec<String>,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Requests generating at once per model.
    pub parallel: usize,
    /// Requests that may wait per model beyond those running; more get 503.
    pub max_queue: usize,
    /// Requests per minute per client (API key, else IP address); 0 = unlimited.
    pub rate_limit_per_minute: u32,
    /// An Ollama/OpenAI-compatible server to forward requests for models not found here.
    pub upstream: Option<String>,
    /// A streaming client that reads nothing for this long is cut off and its generation cancelled.
    pub stall_timeout: Duration,
    /// A client that sends no request header bytes, or no body bytes, for this long is disconnected.
    pub read_timeout: Duration,
    /// Kernel send buffer per connection, bytes (fixed, so a client that stops reading pins little memory).
    pub send_buffer: usize,
    /// Longest audio `/v1/audio/transcriptions` accepts, in seconds.
    pub max_audio_secs: f64,
    /// Let `/download/start` fetch from loopback and private addresses (off: such URLs are refused).
    pub allow_private_downloads: bool,
    /// Largest file `/download/start` accepts, bytes.
    pub max_download_bytes: u64,
    /// Browser origins allowed to call the API (`*` = any); others get 403.
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback and the listen address (`*` = any).
    pub allowed_hosts: Vec<String>,
    /// How long `POST /v1/tools/{name}` waits for a tool's answer (then 504; the call finishes
    /// in the background).
    pub tool_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 11434)),
            api_keys: Vec::new(),
            body_limit: 8 << 20,
            shutdown_grace: Duration::from_secs(10),
            parallel: 4,
            max_queue: 64,
            rate_limit_per_minute: 0,
            upstream: None,
            stall_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            send_buffer: 128 << 10,
            max_audio_secs: 600.0,
            allow_private_downloads: false,
            max_download_bytes: 64 << 30,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            tool_timeout: Duration::from_secs(30),
        }
    }
}
