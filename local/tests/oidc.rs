//! OIDC issuers on the local stack: `--oidc-issuer URL --oidc-audience AUD`
//! on the binary users run, and a token from that provider (the test
//! provider on 127.0.0.1, Cognito-shaped claims) connecting with `?token=`
//! exactly as the stack's own tokens do.

#[path = "support/binary.rs"]
mod binary;
#[path = "../../shared/tests/oidc_provider/mod.rs"]
mod oidc_provider;
mod support;

use binary::spawn_listening;
use oidc_provider::{Provider, SigningKey};
use serde_json::{Value, json};
use support::{connections_of, stack_with};
use switchboard::oidc::OidcOptions;
use switchboard_local::Config;

const CLIENT: &str = "local-app-client";
const USER: &str = "3f8e2d1c-0b9a-4c7d-8e6f-5a4b3c2d1e0f";

fn now() -> u64 {
    switchboard::clock::now_seconds() as u64
}

/// The claims of a Cognito access token for `client`.
fn cognito_access(provider: &Provider, client: &str) -> Value {
    json!({
        "sub": USER, "cognito:groups": ["team:blue"], "iss": provider.issuer,
        "client_id": client, "origin_jti": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
        "event_id": "1a2b3c4d-5e6f-7a8b-9c0d-e1f2a3b4c5d6", "token_use": "access",
        "scope": "aws.cognito.signin.user.admin", "auth_time": now() - 5,
        "iat": now() - 5, "exp": now() + 3600, "jti": "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
        "username": "bob",
    })
}

/// The handshake's HTTP status for `url`, or 101 when it upgraded.
async fn handshake(url: &str) -> u16 {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

#[tokio::test]
async fn a_cognito_token_connects_to_the_in_process_stack_and_joins_its_groups() {
    let key = SigningKey::rsa("pool-key", 0);
    let provider = Provider::start(&[&key]).await;
    let stack = stack_with(Config {
        oidc: OidcOptions {
            issuers: vec![provider.issuer.clone()],
            audiences: vec![CLIENT.into()],
            groups_claim: Some("cognito:groups".into()),
            token_use: vec!["id".into(), "access".into()],
            ..OidcOptions::default()
        },
        ..Config::default()
    })
    .await;
    let token = key.sign(&cognito_access(&provider, CLIENT));
    let url = format!("{}?token={token}", stack.websocket_url());
    let (_client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let connections = connections_of(&stack, USER).await;
    assert_eq!(connections.len(), 1);
    let groups = stack
        .memberships()
        .connection_groups(&connections[0])
        .await
        .unwrap();
    assert_eq!(groups, ["team:blue"]);
    // Another app's token from the same pool: 401, nothing stored.
    let other = key.sign(&cognito_access(&provider, "other-client"));
    let url = format!("{}?token={other}", stack.websocket_url());
    assert_eq!(handshake(&url).await, 401);
    assert_eq!(connections_of(&stack, USER).await.len(), 1);
}

#[tokio::test]
async fn the_binary_takes_oidc_issuer_flags_and_a_provider_token_connects() {
    let key = SigningKey::ec("es-key");
    let provider = Provider::start(&[&key]).await;
    let (mut child, line) = spawn_listening(&[
        "--addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--oidc-issuer",
        &provider.issuer,
        "--oidc-audience",
        CLIENT,
    ])
    .await;
    let line: Value = serde_json::from_str(&line).unwrap();
    let addr = line["fields"]["addr"].as_str().unwrap().to_owned();
    let claims = json!({"iss": provider.issuer, "aud": CLIENT, "sub": "carol",
                        "iat": now(), "exp": now() + 300});
    let url = |token: &str| format!("ws://{addr}/local?token={token}");
    assert_eq!(handshake(&url(&key.sign(&claims))).await, 101);
    let mut wrong = claims.clone();
    wrong["aud"] = json!("someone-else");
    assert_eq!(handshake(&url(&key.sign(&wrong))).await, 401);
    assert_eq!(
        (provider.discovery_requests(), provider.jwks_requests()),
        (1, 1)
    );
    child.kill().await.unwrap();
}

#[test]
fn a_plain_http_issuer_off_loopback_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard-local"))
        .args(["--addr", "127.0.0.1:0"])
        .args([
            "--oidc-issuer",
            "http://idp.example.com",
            "--oidc-audience",
            CLIENT,
        ])
        .env_remove("OIDC_ISSUERS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "--oidc-issuer: issuer \"http://idp.example.com\" must be an https:// URL (http:// only on a loopback address), without credentials, query or fragment"
        ),
        "{stderr}"
    );
}
