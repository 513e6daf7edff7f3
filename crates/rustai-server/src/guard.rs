//! Cross-site and DNS-rebinding protection, the outermost layer.
//!
//! A web page can make a browser send requests to `127.0.0.1:11434`: simple
//! `POST`s with `text/plain` bodies need no CORS preflight, and a DNS name that
//! rebinds to 127.0.0.1 makes the page same-origin. So, before anything else:
//! - the `Host` header must be an IP address, `localhost` (or `*.localhost`), or
//!   a name in `--allowed-hosts` (a rebinding attack always uses its own name);
//! - a request with an `Origin` header must come from a loopback origin or one
//!   in `--allowed-origins` (browsers send `Origin` on every cross-site `POST`);
//! - JSON endpoints take JSON: `Content-Type` absent, `application/json` or
//!   `*+json`; `application/x-www-form-urlencoded` only without an `Origin`
//!   (that is what `curl -d` sends; a browser form always has one).
//!
//! Allowed origins get CORS headers, and their preflight `OPTIONS` an answer.

use std::net::IpAddr;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, state::AppState};

/// The host part of a `Host` header or an origin's authority (no port, no brackets).
fn host_only(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn is_loopback_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Is this `Host` acceptable?
pub(crate) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let h = host_only(host);
    h.parse::<IpAddr>().is_ok()
        || is_loopback_name(h)
        || allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(h) || a.eq_ignore_ascii_case(host))
}

/// Is this `Origin` acceptable?
pub(crate) fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
        return true;
    }
    match origin.split_once("://") {
        Some(("http" | "https", authority)) => is_loopback_name(host_only(authority)),
        _ => false,
    }
}

/// Is this a JSON body type, or absent?
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else { return true };
    let essence = ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json"
        || essence.ends_with("+json")
        || (essence == "application/x-www-form-urlencoded" && !headers.contains_key(header::ORIGIN))
}

/// Endpoints whose body is not JSON.
fn takes_other_bodies(path: &str) -> bool {
    path == "/v1/audio/transcriptions"
}

fn refuse(status: StatusCode, message: String, path: &str) -> Response {
    let e = ApiError::new(status, message);
    if path.starts_with("/v1/") { e.openai() } else { e }.into_response()
}

/// The middleware.
pub(crate) async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let headers = req.headers();
    let config = &state.config;
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !host_allowed(host, &config.allowed_hosts) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("host `{host}` is not allowed: use an IP address or localhost, or start the server with --allowed-hosts {}", host_only(host)),
                &path,
            );
        }
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned);
    if let Some(o) = &origin {
        if !origin_allowed(o, &config.allowed_origins) {
            return refuse(StatusCode::FORBIDDEN, format!("origin `{o}` is not allowed: start the server with --allowed-origins {o}"), &path);
        }
    }
    if req.method() == Method::OPTIONS && origin.is_some() {
        return cors(StatusCode::NO_CONTENT.into_response(), origin.as_deref(), true);
    }
    if req.method() == Method::POST && !takes_other_bodies(&path) && !json_content_type(headers) {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("content type `{ct}` is not accepted here: send application/json"), &path);
    }
    let response = next.run(req).await;
    cors(response, origin.as_deref(), false)
}

/// CORS headers for an allowed origin.
fn cors(mut response: Response, origin: Option<&str>, preflight: bool) -> Response {
    let Some(origin) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else { return response };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type, x-api-key"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let none: Vec<String> = Vec::new();
        for ok in ["127.0.0.1:11434", "localhost:11434", "LOCALHOST", "[::1]:11434", "192.168.1.20:11434", "app.localhost"] {
            assert!(host_allowed(ok, &none), "{ok}");
        }
        for bad in ["evil.example:11434", "rebind.attacker.test", "localhost.evil.example"] {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        assert!(host_allowed("ai.home.arpa:11434", &["ai.home.arpa".to_owned()]));
        assert!(host_allowed("anything", &["*".to_owned()]));
    }

    #[test]
    fn origins() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed("http://localhost:3000", &none));
        assert!(origin_allowed("http://127.0.0.1:11434", &none));
        assert!(!origin_allowed("https://evil.example", &none));
        assert!(!origin_allowed("null", &none));
        assert!(origin_allowed("https://app.example", &["https://app.example/".to_owned()]));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(json_content_type(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert!(json_content_type(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!json_content_type(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        assert!(json_content_type(&h), "curl -d");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://localhost:3000"));
        assert!(!json_content_type(&h), "a browser form");
    }
}
