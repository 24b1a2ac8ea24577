//! Hostile clients against the local stack, with real sockets: echo
//! amplification, a client that stops reading, oversized and malformed
//! requests. Each asserts the exact answer and that nothing was damaged.

#[path = "support/captured.rs"]
mod captured;
mod support;

use std::time::Duration;

use captured::Captured;
use futures::SinkExt;
use serde_json::{Value, json};
use support::*;
use switchboard_local::{
    Config, MAX_QUEUE_MESSAGE_BYTES, MAX_REQUEST_BODY_BYTES, OUTBOUND_LIMIT_BYTES,
};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_100_kb_action_gets_a_short_error_frame_and_stays_out_of_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    // The runtime is single-threaded: the stack's tasks log to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let stack = stack().await;
    let mut client = connect(&stack, "alice").await;
    let action = "A".repeat(100 * 1024);
    send_text_in_frames(
        &mut client,
        &format!(r#"{{"action":"{action}"}}"#),
        32 * 1024,
    )
    .await;
    let quoted = format!("{}…", "A".repeat(64));
    let frame = next_text(&mut client).await;
    assert_eq!(
        frame,
        format!(
            r#"{{"type":"error","code":"unknown_action","message":"unknown action \"{quoted}\"","action":"{quoted}"}}"#
        )
    );
    assert_eq!(frame.len(), 218, "was 200,084 bytes");
    // A long id is refused, not echoed.
    let id = "I".repeat(129);
    client
        .send(Message::text(format!(
            r#"{{"action":"subscribe","group":"g","id":"{id}"}}"#
        )))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"ack","ok":false,"error":{"code":"bad_request","message":"the \"id\" field must be at most 128 bytes"}}"#
    );
    stack.shutdown().await;
    let logs = String::from_utf8(logs.bytes()).unwrap();
    assert!(logs.contains("unroutable frame"), "{logs}");
    assert!(
        !logs.contains(&"A".repeat(65)),
        "a log line carries the payload"
    );
    assert!(!logs.contains(&"I".repeat(65)), "a log line carries the id");
    assert!(logs.len() < 16 * 1024, "{} bytes of logs", logs.len());
}

fn post_path(id: &str) -> String {
    format!(
        "/local/@connections/{}",
        id.replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
    )
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_429s_and_memory_stays_bounded() {
    let stack = stack().await;
    let mut reader = connect(&stack, "slow").await;
    let id = connections_of(&stack, "slow").await.remove(0);
    let filler = "x".repeat(100 * 1024);
    let mut accepted = 0usize;
    let mut refused = None;
    // Bounded: 600 × 100 KB is what grew RSS by 42 MB before.
    for n in 0..600 {
        let answer = http(&stack, "POST", &post_path(&id), &format!("{n:05}{filler}")).await;
        let queued = stack.outbound_bytes(&id).unwrap();
        assert!(
            queued <= OUTBOUND_LIMIT_BYTES,
            "{queued} bytes queued after post {n}"
        );
        match answer.status {
            200 => accepted += 1,
            429 => {
                refused = Some(answer);
                break;
            }
            other => panic!("post {n}: {other} {}", answer.body),
        }
    }
    let refused = refused.expect("600 posts to a client that does not read were all accepted");
    assert_eq!(
        refused.header("x-amzn-ErrorType"),
        Some("LimitExceededException")
    );
    assert_eq!(
        refused.body,
        r#"{"message":"the connection is not reading: its outbound queue is full; retry later"}"#
    );
    assert!(stack.outbound_bytes(&id).unwrap() > OUTBOUND_LIMIT_BYTES - 103 * 1024);
    // Nothing accepted was lost: the client reads again and gets every one, in order.
    for n in 0..accepted {
        let text = next_text(&mut reader).await;
        assert_eq!(&text[..5], format!("{n:05}"), "message {n} of {accepted}");
    }
    eventually("the queue to drain", || async {
        stack.outbound_bytes(&id) == Some(0)
    })
    .await;
    assert_eq!(
        http(&stack, "POST", &post_path(&id), "again").await.status,
        200
    );
    assert_eq!(next_text(&mut reader).await, "again");
    stack.shutdown().await;
}

fn json_of(answer: &HttpResponse) -> Value {
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{}",
        answer.body
    );
    serde_json::from_str(&answer.body).unwrap()
}

#[tokio::test]
async fn oversized_bodies_get_json_413s_and_enqueue_nothing() {
    let stack = stack().await;
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let too_big = format!("the request body is over {MAX_REQUEST_BODY_BYTES} bytes");
    let answer = http(&stack, "POST", "/send", &ten_mb).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        json_of(&answer),
        json!({"error":{"code":"payload_too_large","message":too_big}})
    );
    let answer = http(&stack, "POST", "/queues/notify-user", &ten_mb).await;
    assert_eq!(answer.status, 413);
    assert_eq!(json_of(&answer), json!({ "error": too_big }));
    let answer = http(&stack, "POST", "/local/@connections/x", &ten_mb).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.header("x-amzn-ErrorType"),
        Some("PayloadTooLargeException")
    );
    assert_eq!(json_of(&answer), json!({ "message": too_big }));

    // SQS's limit, on every queue: 1 MiB passes, one byte more does not.
    let mut client = connect(&stack, "alice").await;
    let message = |bytes: usize| {
        let head = r#"{"userId":"alice","data":""#;
        let pad = bytes - head.len() - 2;
        format!("{head}{}\"}}", "p".repeat(pad))
    };
    for queue in ["notify-user", "notify-connection", "commands"] {
        let over = message(MAX_QUEUE_MESSAGE_BYTES + 1);
        let answer = http(&stack, "POST", &format!("/queues/{queue}"), &over).await;
        assert_eq!(answer.status, 413, "{queue}");
        assert_eq!(
            json_of(&answer),
            json!({ "error": format!("the message is {} bytes; SQS takes at most {MAX_QUEUE_MESSAGE_BYTES}; nothing was enqueued", MAX_QUEUE_MESSAGE_BYTES + 1) })
        );
    }
    let nineteen = message(1_900_000);
    assert_eq!(
        http(&stack, "POST", "/queues/notify-user", &nineteen)
            .await
            .status,
        413
    );
    silent(&mut client, Duration::from_millis(300)).await;
    let exact = message(MAX_QUEUE_MESSAGE_BYTES);
    assert_eq!(exact.len(), MAX_QUEUE_MESSAGE_BYTES);
    assert_eq!(
        http(&stack, "POST", "/queues/notify-user", &exact)
            .await
            .status,
        202
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn every_error_is_json_and_every_verb_agrees_on_a_missing_connection() {
    let stack = stack().await;
    let answer = http(&stack, "GET", "/no/such/endpoint", "").await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        json_of(&answer),
        json!({"error":{"code":"not_found","message":"no such endpoint"}})
    );
    let answer = http(&stack, "PATCH", "/send", "{}").await;
    assert_eq!(answer.status, 405);
    assert_eq!(
        json_of(&answer)["error"]["code"],
        json!("method_not_allowed")
    );
    assert!(answer.header("allow").is_some());
    let missing =
        json!({"error":{"code":"not_found","message":"connection \"ghost\" does not exist"}});
    let answer = http(&stack, "DELETE", "/connections/ghost", "").await;
    assert_eq!((answer.status, json_of(&answer)), (404, missing.clone()));
    let answer = http(&stack, "DELETE", "/groups/g/connections/ghost", "").await;
    assert_eq!((answer.status, json_of(&answer)), (404, missing));
    let answer = http(&stack, "GET", "/connections/ghost", "").await;
    assert_eq!(answer.status, 404);
    let long = "u".repeat(300);
    for (method, path) in [
        ("GET", format!("/users/{long}")),
        ("DELETE", format!("/users/{long}/connections")),
        ("PUT", format!("/groups/g/users/{long}")),
    ] {
        let answer = http(&stack, method, &path, "").await;
        assert_eq!(answer.status, 400, "{method}");
        assert_eq!(
            json_of(&answer),
            json!({"error":{"code":"bad_request","field":"userId","message":"\"userId\" is longer than 256 bytes"}}),
            "{method}"
        );
    }
    let answer = http(
        &stack,
        "POST",
        &format!("/queues/{}", "q".repeat(10_000)),
        "{}",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        json_of(&answer),
        json!({"error": format!("unknown queue \"{}…\"; the queues are notify-user, notify-connection and commands", "q".repeat(64))})
    );
    stack.shutdown().await;
}

/// A page of another site against a stack on loopback without a key: through a DNS name
/// rebound to 127.0.0.1 (the page's own origin, so the browser sends it), cross-site, or as
/// a "simple" form post. Each is refused before anything runs, and nothing is sent.
#[tokio::test]
async fn pages_of_other_sites_cannot_use_a_stack_on_loopback() {
    let stack = stack().await;
    let mut alice = connect(&stack, "alice").await;
    let addr = stack.addr();
    let rebound = [
        ("Host", "rebind.attacker.example:3001"),
        ("Origin", "http://rebind.attacker.example:3001"),
        ("Content-Type", "text/plain"),
    ];
    // Negotiate through a rebound name: was 200 with a token.
    let answer = http_to(
        addr,
        "POST",
        "/negotiate",
        &rebound,
        r#"{"userId":"mallory"}"#,
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(!answer.body.contains("token"), "{}", answer.body);
    let error: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(error["error"]["code"], "forbidden");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("this stack answers only to an IP address, localhost"),
        "{error}"
    );
    // The metrics through the same name: was 200.
    let answer = http_to(addr, "GET", "/metrics", &rebound[..1], "").await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    // A cross-site simple POST /send from another site's page: was 202.
    let send = r#"{"userId":"alice","data":"from another site"}"#;
    let cross_site = [
        ("Origin", "https://evil.example"),
        ("Content-Type", "text/plain"),
    ];
    let answer = http_to(addr, "POST", "/send", &cross_site, send).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let error: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        error["error"]["message"],
        "pages of other sites may not call this stack: list the page's origin with \
         --allowed-origin (pages served from this machine may)"
    );
    // The queue endpoints too, in their own error shape.
    let answer = http_to(addr, "POST", "/queues/notify-user", &cross_site, send).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.starts_with(r#"{"error":"pages of other sites"#),
        "{}",
        answer.body
    );
    // Without an Origin (no browser) the body must still say it is JSON: a form post is refused.
    let answer = http_to(
        addr,
        "POST",
        "/send",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        send,
    )
    .await;
    assert_eq!(answer.status, 415, "{}", answer.body);
    let error: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(error["error"]["code"], "unsupported_media_type");
    // Nothing of it reached alice.
    silent(&mut alice, Duration::from_millis(300)).await;
    // The same requests from this machine's pages, and from tools, work as before.
    let local_page = [("Origin", "http://localhost:5173")];
    assert_eq!(
        http_to(addr, "POST", "/send", &local_page, send)
            .await
            .status,
        202
    );
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"message","from":"server","data":"from another site"}"#
    );
    assert_eq!(http(&stack, "GET", "/metrics", "").await.status, 200);
    let answer = http_to(
        addr,
        "POST",
        "/negotiate",
        &[("Host", "localhost:3001")],
        r#"{"userId":"bob"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// The WebSocket handshake checks the page's origin too: a foreign page is refused, a page
/// of this machine or one listed with --allowed-origin connects (the token still decides who).
#[tokio::test]
async fn the_websocket_handshake_refuses_pages_of_other_sites() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stack = stack_with(Config {
        allowed_origins: vec!["https://app.example".into()],
        ..Config::default()
    })
    .await;
    let url = format!("{}?token={}", stack.websocket_url(), token(&stack, "alice"));
    let with_origin = |origin: &str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("a foreign page connected: {other:?}"),
    }
    for origin in ["https://app.example", "http://127.0.0.1:8080"] {
        let (mut client, _) = tokio_tungstenite::connect_async(with_origin(origin))
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        client
            .send(Message::text(r#"{"action":"ping"}"#))
            .await
            .unwrap();
        assert!(next_text(&mut client).await.contains("pong"), "{origin}");
    }
}
