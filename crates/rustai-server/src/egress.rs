//! Where the server's own downloads may connect: a request that names a URL
//! must not make the server reach into its own machine or network (loopback,
//! private, link-local and other special ranges) unless the operator allows it
//! (`--allow-private-downloads`). The check runs on every address a name
//! resolves to (so a name that rebinds to 127.0.0.1 is caught when connecting,
//! not only when first looked up), on IP literals, and on every redirect.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Most redirects a download follows.
const MAX_REDIRECTS: usize = 5;

/// Addresses a download may not reach by default.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Refuse a URL whose host is an internal IP literal.
fn check_url(url: &reqwest::Url) -> Result<(), String> {
    let Some(host) = url.host_str().and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()) else {
        return Ok(());
    };
    if is_internal(host) {
        return Err(format!("{host} is a loopback or private address; start the server with --allow-private-downloads to allow it"));
    }
    Ok(())
}

/// A resolver that drops internal addresses (and fails if nothing else is left).
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.iter().copied().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to loopback or private addresses; start the server with --allow-private-downloads to allow it"
                )
                .into();
                return Err(e);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client for downloads requested over the API.
pub(crate) fn download_client(allow_private: bool) -> reqwest::Client {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if !allow_private {
            if let Err(e) = check_url(attempt.url()) {
                return attempt.error(e);
            }
        }
        attempt.follow()
    });
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .redirect(redirects);
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().unwrap_or_default()
}

/// Check the URL a download starts from (IP literals never reach the resolver).
pub(crate) fn check_start(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    check_url(&parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_before_connecting() {
        assert!(check_start("http://127.0.0.1:8080/x.gguf", false).unwrap_err().contains("--allow-private-downloads"));
        assert!(check_start("http://[::1]/x.gguf", false).is_err());
        assert!(check_start("http://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check_start("https://example.invalid/x.gguf", false).is_ok(), "names are checked when resolved");
        assert!(check_start("http://127.0.0.1/x.gguf", true).is_ok());
    }
}
