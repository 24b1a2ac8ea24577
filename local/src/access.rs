//! Who may call a stack's HTTP API, Management API and queue endpoints.
//!
//! On loopback nobody is asked (only this machine can connect), unless an API
//! key was given. On any other address the stack starts only with `--expose`,
//! and then every endpoint but the WebSocket one (which keeps its token, as
//! on AWS) requires the API key: `Authorization: Bearer <key>`, or the key as
//! the session token of SigV4 credentials (`x-amz-security-token`), which is
//! how an AWS SDK client, this stack's own Management API client included,
//! carries it. Keys are compared in constant time.

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
