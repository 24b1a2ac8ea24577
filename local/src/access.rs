//! Who may call a stack's HTTP API, Management API and queue endpoints.
//!
//! On loopback nobody is asked (only this machine can connect), unless an API
//! key was given. On any other address the stack starts only with `--expose`,
//! and then every endpoint but the WebSocket one (which keeps its token, as
//! on AWS) requires the API key: `Authorization: Bearer <key>`, or the key as
//! the session token of SigV4 credentials (`x-amz-security-token`), which is
//! how an AWS SDK client, this stack's own Management API client included,
//! carries it. Keys are compared in constant time.
//!
//! Browsers are guarded on every address, the key or not ([`host_allowed`],
//! [`origin_allowed`], [`needs_json`]): a page on another site cannot reach the
//! stack through a rebound DNS name, cannot call it cross-site, and cannot send
//! it a "simple" form post, because a `Host` that could be rebound, a foreign
//! `Origin` and a JSON route's body without `Content-Type: application/json`
//! are each refused (403, 403, 415) before anything runs.

use std::net::SocketAddr;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method};
use subtle::ConstantTimeEq;

use crate::config::StartError;
use crate::config::{Config, MIN_API_KEY_BYTES};

/// The key an exposed stack requires.
#[derive(Clone)]
pub(crate) struct ApiKey {
    key: String,
    /// Generated at start (the banner prints it) rather than given.
    pub(crate) generated: bool,
}

impl ApiKey {
    pub(crate) fn as_str(&self) -> &str {
        &self.key
    }

    pub(crate) fn admits(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.key.as_bytes()).into()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// The key this configuration requires, if any; refuses a non-loopback
/// address without `expose`, and a short key.
pub(crate) fn api_key(config: &Config) -> Result<Option<ApiKey>, StartError> {
    let loopback = config.addr.ip().is_loopback();
    if !loopback && !config.expose {
        return Err(StartError::Exposed { addr: config.addr });
    }
    match &config.api_key {
        Some(key) if key.len() < MIN_API_KEY_BYTES => Err(StartError::ShortApiKey(key.len())),
        Some(key) => Ok(Some(ApiKey {
            key: key.clone(),
            generated: false,
        })),
        None if loopback => Ok(None),
        None => {
            let mut bytes = [0u8; 32];
            // A key that could be guessed is worse than none: fail closed.
            getrandom::fill(&mut bytes).map_err(|_| StartError::NoRandomness)?;
            let key = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Ok(Some(ApiKey {
                key,
                generated: true,
            }))
        }
    }
}

/// The address this process reaches itself at: loopback for an unspecified one.
pub(crate) fn self_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// The WebSocket endpoint (`GET /` or `GET /{stage}`) keeps its own token
/// check; `GET /metrics` is not it (an operator endpoint: the key).
pub(crate) fn is_websocket_endpoint(method: &Method, path: &str) -> bool {
    let path = path.trim_matches('/');
    method == Method::GET
        && path.split('/').count() <= 1
        && path != crate::metrics::PATH.trim_matches('/')
}

/// The key a request presents: a bearer token, else a SigV4 session token.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match value(AUTHORIZATION.as_str()).and_then(|a| a.strip_prefix("Bearer ")) {
        Some(bearer) => Some(bearer.trim()),
        None => value("x-amz-security-token"),
    }
}

/// Whether `host` (a `Host` header: `name[:port]`, `[v6]:port`) may name this
/// stack. A DNS-rebinding page reaches the stack under the attacker's own name,
/// so only names that cannot be rebound pass: IP literals, `localhost`, and the
/// names the operator lists (`--allowed-host`).
pub(crate) fn host_allowed(host: &str, allowed_hosts: &[String]) -> bool {
    let name = host_name(host);
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// The name part of a `Host` header or an origin's authority.
fn host_name(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => authority,
    }
}

/// Whether a browser page of `origin` may call this stack, reached as `host`:
/// the stack's own origin, a page served from this machine (a loopback or
/// `localhost` origin, any port), or one the operator lists (`--allowed-origin`,
/// `*` for any). A request without `Origin` is no browser's cross-site request.
pub(crate) fn origin_allowed(origin: &str, host: &str, allowed_origins: &[String]) -> bool {
    if allowed_origins.iter().any(|a| a == "*" || a == origin) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" (a file or a sandboxed frame) and anything malformed
    };
    if !matches!(scheme, "http" | "https") || authority.contains('/') {
        return false;
    }
    let name = host_name(authority);
    authority.eq_ignore_ascii_case(host)
        || name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request with this method, path and body must say its body is JSON:
/// every route that reads one, except the Management API's (its body is the
/// data to post, and its SigV4 callers are no browsers).
pub(crate) fn needs_json(method: &Method, path: &str, has_body: bool) -> bool {
    has_body && matches!(*method, Method::POST | Method::PUT) && !path.contains("/@connections/")
}

/// Whether a `Content-Type` says JSON (`application/json`, any parameters).
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// The message a request without the key gets.
pub const UNAUTHORIZED: &str = "this stack listens beyond loopback: send the API key as \
    \"Authorization: Bearer <key>\" (the key the stack printed at startup, or SWITCHBOARD_API_KEY)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_page_is_public_for_reading_only() {
        assert!(crate::demo::is_demo_page(&Method::GET, "/demo/"));
        assert!(crate::demo::is_demo_page(&Method::GET, "/demo/app.js"));
        assert!(!crate::demo::is_demo_page(&Method::POST, "/demo/"));
        assert!(!crate::demo::is_demo_page(&Method::GET, "/demonstrate"));
    }

    #[test]
    fn only_the_websocket_endpoint_is_exempt() {
        assert!(is_websocket_endpoint(&Method::GET, "/"));
        assert!(is_websocket_endpoint(&Method::GET, "/local"));
        assert!(!is_websocket_endpoint(&Method::POST, "/negotiate"));
        assert!(!is_websocket_endpoint(&Method::GET, "/users/alice"));
        assert!(!is_websocket_endpoint(
            &Method::GET,
            "/local/@connections/x"
        ));
        assert!(!is_websocket_endpoint(
            &Method::GET,
            "/queues/notify-user/dead-letters"
        ));
    }

    #[test]
    fn only_names_that_cannot_be_rebound_may_be_the_host() {
        let listed = vec!["switchboard.test".to_owned()];
        for host in [
            "127.0.0.1:3001",
            "127.0.0.1",
            "localhost:3001",
            "LOCALHOST",
            "[::1]:3001",
            "192.168.1.5:3001",
            "switchboard.test:3001",
        ] {
            assert!(host_allowed(host, &listed), "{host}");
        }
        for host in [
            "rebind.attacker.example",
            "rebind.attacker.example:3001",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:3001",
            "",
        ] {
            assert!(!host_allowed(host, &listed), "{host}");
        }
    }

    #[test]
    fn pages_of_this_machine_and_listed_origins_may_call_foreign_ones_may_not() {
        let host = "127.0.0.1:3001";
        for origin in [
            "http://127.0.0.1:3001",
            "http://localhost:5173",
            "https://localhost",
            "http://[::1]:8080",
            "http://127.0.0.2:80",
        ] {
            assert!(origin_allowed(origin, host, &[]), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://rebind.attacker.example:3001",
            "null",
            "file://",
            "ws://localhost:3001",
            "http://192.168.1.5:3001",
            "",
        ] {
            assert!(!origin_allowed(origin, host, &[]), "{origin}");
        }
        // The stack's own origin when reached by another address (an exposed stack's demo page).
        assert!(origin_allowed(
            "http://192.168.1.5:3001",
            "192.168.1.5:3001",
            &[]
        ));
        let listed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed("https://app.example", host, &listed));
        assert!(!origin_allowed("https://app.example.evil", host, &listed));
        assert!(origin_allowed(
            "https://evil.example",
            host,
            &["*".to_owned()]
        ));
    }

    #[test]
    fn json_routes_need_a_json_content_type() {
        assert!(needs_json(&Method::POST, "/negotiate", true));
        assert!(needs_json(&Method::PUT, "/groups/vip/users/alice", true));
        assert!(needs_json(&Method::POST, "/queues/notify-user", true));
        assert!(!needs_json(&Method::PUT, "/groups/vip/users/alice", false));
        assert!(!needs_json(&Method::POST, "/local/@connections/abc", true));
        assert!(!needs_json(&Method::GET, "/metrics", false));
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        for other in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonp"),
        ] {
            assert!(!is_json(other), "{other:?}");
        }
    }

    #[test]
    fn the_key_is_read_from_a_bearer_or_a_session_token() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented(&headers), None);
        headers.insert("x-amz-security-token", HeaderValue::from_static("k2"));
        assert_eq!(presented(&headers), Some("k2"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer k1"));
        assert_eq!(presented(&headers), Some("k1"));
        let key = ApiKey {
            key: "k1".into(),
            generated: false,
        };
        assert!(key.admits("k1"));
        assert!(!key.admits("k2"));
        assert!(!key.admits("k1 "));
        assert!(!key.admits(""));
    }
}
