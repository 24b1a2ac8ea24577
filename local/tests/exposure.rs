//! A stack listening beyond loopback: it refuses to start without `--expose`,
//! and with it every endpoint but the WebSocket one requires the API key.
//! The tests bind 0.0.0.0 but only ever connect through 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use switchboard_local::{Config, RunningStack, StartError, UNAUTHORIZED};
use tokio::io::{AsyncBufReadExt, BufReader};

const KEY: &str = "exposure-test-key-exposure-test-key!";

fn loopback(stack: &RunningStack) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], stack.addr().port()))
}

async fn exposed(api_key: Option<&str>) -> RunningStack {
    switchboard_local::start(Config {
        addr: "0.0.0.0:0".parse().unwrap(),
        expose: true,
        api_key: api_key.map(str::to_owned),
        token_secret: Some(SECRET.into()),
        ..Config::default()
    })
    .await
    .unwrap()
}

const REFUSAL: &str = "refusing to listen on 0.0.0.0:0: it is not a loopback address, and the HTTP API, \
    the Management API and the queue endpoints would be open to the network. Listen on 127.0.0.1, \
    or pass --expose (SWITCHBOARD_EXPOSE=true) to require an API key on them";

#[test]
fn the_binary_refuses_a_non_loopback_address_without_expose() {
    for (args, env) in [
        (vec!["--addr", "0.0.0.0:0"], None),
        (vec![], Some("0.0.0.0:0")),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard-local"));
        command
            .args(&args)
            .env_remove("SWITCHBOARD_EXPOSE")
            .env_remove("SWITCHBOARD_API_KEY")
            .env_remove("SWITCHBOARD_ADDR")
            .env("RUST_LOG", "off");
        if let Some(addr) = env {
            command.env("SWITCHBOARD_ADDR", addr);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), REFUSAL);
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn the_library_refuses_too_and_binds_nothing() {
    let refused = switchboard_local::start(Config {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..Config::default()
    })
    .await;
    assert!(matches!(refused, Err(StartError::Exposed { .. })));
    let short = switchboard_local::start(Config {
        addr: "0.0.0.0:0".parse().unwrap(),
        expose: true,
        api_key: Some("short".into()),
        ..Config::default()
    })
    .await;
    assert!(matches!(short, Err(StartError::ShortApiKey(5))));
}

/// Every endpoint but the WebSocket one, with what it answers given the key.
fn endpoints(connection_id: &str) -> Vec<(&'static str, String, String, u16)> {
    let connection_id = &urlencode(connection_id);
    vec![
        (
            "POST",
            "/negotiate".into(),
            r#"{"userId":"carol"}"#.into(),
            200,
        ),
        (
            "POST",
            "/send".into(),
            r#"{"userId":"nobody","data":1}"#.into(),
            202,
        ),
        (
            "POST",
            "/notify".into(),
            r#"{"user_id":"nobody","event_name":"g","message":1}"#.into(),
            202,
        ),
        ("GET", "/users/alice".into(), String::new(), 200),
        ("GET", "/groups/chat:1".into(), String::new(), 404),
        (
            "GET",
            format!("/connections/{connection_id}"),
            String::new(),
            200,
        ),
        (
            "PUT",
            format!("/groups/chat:1/connections/{connection_id}"),
            String::new(),
            200,
        ),
        (
            "POST",
            "/queues/notify-user".into(),
            r#"{"userId":"nobody","data":1}"#.into(),
            202,
        ),
        (
            "GET",
            "/queues/notify-user/dead-letters".into(),
            String::new(),
            200,
        ),
        (
            "POST",
            "/queues/notify-user/dead-letters/redrive".into(),
            String::new(),
            200,
        ),
        (
            "GET",
            format!("/local/@connections/{connection_id}"),
            String::new(),
            200,
        ),
        (
            "POST",
            format!("/local/@connections/{connection_id}"),
            "direct".into(),
            200,
        ),
        ("POST", "/@connections/gone".into(), "x".into(), 410),
    ]
}

async fn call(
    stack: &RunningStack,
    method: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> HttpResponse {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    http_to(loopback(stack), method, path, &headers, body).await
}

#[tokio::test]
async fn an_exposed_stack_requires_the_key_on_every_endpoint_but_the_websocket() {
    let stack = exposed(Some(KEY)).await;
    assert_eq!(stack.api_key(), Some(KEY));
    // The WebSocket endpoint takes its token and no key, as on AWS.
    let url = format!(
        "ws://{}/local?token={}",
        loopback(&stack),
        token(&stack, "alice")
    );
    let (mut alice, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let id = connections_of(&stack, "alice").await.remove(0);

    for (method, path, body, _) in endpoints(&id) {
        for key in [None, Some("wrong-key-wrong-key-wrong-key-wrong-key")] {
            let answer = call(&stack, method, &path, &body, key).await;
            assert_eq!(answer.status, 401, "{method} {path} with {key:?}");
            assert_eq!(answer.header("content-type"), Some("application/json"));
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            let message = if path.contains("@connections") {
                assert_eq!(
                    answer.header("x-amzn-ErrorType"),
                    Some("UnauthorizedException")
                );
                body["message"].clone()
            } else if path.starts_with("/queues") {
                body["error"].clone()
            } else {
                assert_eq!(body["error"]["code"], json!("unauthorized"));
                body["error"]["message"].clone()
            };
            assert_eq!(message, json!(UNAUTHORIZED), "{method} {path}");
        }
    }
    // Nothing got through: no post reached alice, nothing was enqueued.
    silent(&mut alice, Duration::from_millis(300)).await;
    assert_eq!(stack.posts_to(&id), 0);

    for (method, path, body, status) in endpoints(&id) {
        let answer = call(&stack, method, &path, &body, Some(KEY)).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
    }
    assert_eq!(next_text(&mut alice).await, "direct");
    // The handlers' own Management API client carries the key too: a queued
    // notification reaches alice through the SDK path.
    let answer = call(
        &stack,
        "POST",
        "/queues/notify-user",
        r#"{"userId":"alice","data":"queued"}"#,
        Some(KEY),
    )
    .await;
    assert_eq!(answer.status, 202);
    assert_eq!(next_text(&mut alice).await, "queued");
    stack.shutdown().await;
}

#[tokio::test]
async fn an_exposed_stack_without_a_given_key_generates_one() {
    let stack = exposed(None).await;
    assert!(stack.api_key_generated());
    let key = stack.api_key().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        call(&stack, "GET", "/users/alice", "", None).await.status,
        401
    );
    assert_eq!(
        call(&stack, "GET", "/users/alice", "", Some(&key))
            .await
            .status,
        404
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn the_banner_of_an_exposed_stack_says_what_is_required() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-local"))
        .args(["--addr", "0.0.0.0:0", "--expose"])
        .env_remove("SWITCHBOARD_API_KEY")
        .env_remove("SWITCHBOARD_ADDR")
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C stops the stack.") {
                break;
            }
        }
    })
    .await;
    child.kill().await.unwrap();
    assert!(read.is_ok(), "no banner within 20 s: {banner}");
    assert!(
        banner.contains(
            "the HTTP API, the Management API and the queues require \"Authorization: Bearer <key>\" (401 without it);\n\
             the WebSocket endpoint requires its token, as on AWS.\n\
             API key (generated for this run): "
        ),
        "{banner}"
    );
    assert!(
        banner.contains("curl -H \"Authorization: Bearer $SWITCHBOARD_API_KEY\" --json"),
        "{banner}"
    );
}
