//! `GET /metrics`: known traffic on loopback sockets, then the Prometheus text
//! parsed back; behind the API key when the stack has one.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures::SinkExt;
use support::*;
use switchboard::auth::{claims_for, mint};
use switchboard_local::{Config, UNAUTHORIZED};
use tokio_tungstenite::tungstenite::Message;

/// `name{labels} value` lines, keyed by `name{labels}` as written.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(stack: &switchboard_local::RunningStack) -> HashMap<String, f64> {
    let answer = http(stack, "GET", "/metrics", "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        answer.headers
    );
    assert!(answer.body.ends_with("# EOF\n"), "{}", answer.body);
    samples(&answer.body)
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let stack = stack_with_fast_retries().await;
    let mut claims = claims_for("alice", Duration::from_secs(300), vec![]);
    claims.subscribe = vec!["chat:*".into()];
    claims.publish = vec!["chat:*".into()];
    let token = mint(stack.secret(), &claims).unwrap();
    let mut alice = try_connect(&stack, Some(&token)).await.unwrap();
    let mut bob = try_connect(
        &stack,
        Some(
            &mint(
                stack.secret(),
                &claims_for("bob", Duration::from_secs(300), vec![]),
            )
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(try_connect(&stack, Some("not-a-token")).await.is_err());
    assert!(try_connect(&stack, None).await.is_err());

    for frame in [
        r#"{"action":"subscribe","group":"chat:1","id":1}"#,
        r#"{"action":"subscribe","group":"news","id":2}"#,
        r#"{"action":"publish","group":"chat:1","data":"hi","id":3}"#,
    ] {
        alice.send(Message::Text(frame.into())).await.unwrap();
        next_text(&mut alice).await;
    }
    // Two posts: bob by user, alice through the group.
    let sent = http(
        &stack,
        "POST",
        "/send",
        r#"{"userId":"bob","data":"hello"}"#,
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    assert!(next_text(&mut bob).await.contains("hello"));
    let sent = http(
        &stack,
        "POST",
        "/send",
        r#"{"group":"chat:1","data":"to the group"}"#,
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    assert!(next_text(&mut alice).await.contains("to the group"));
    // A message that fails every receive becomes a dead letter.
    let bad = http(
        &stack,
        "POST",
        "/queues/notify-connection",
        r#"{"connectionId":"gone-conn","data":1}"#,
    )
    .await;
    assert!((200..300).contains(&bad.status), "{}", bad.body);
    bob.send(Message::Close(None)).await.unwrap();
    let bob_gone = || async { connections_of(&stack, "bob").await.is_empty() };
    eventually("bob's $disconnect", bob_gone).await;

    let m = scrape(&stack).await;
    let text = http(&stack, "GET", "/metrics", "").await.body;
    assert!(text.contains("# TYPE switchboard_fanout_latency_milliseconds histogram"));
    assert!(text.contains("# UNIT switchboard_fanout_latency_milliseconds milliseconds"));
    let get = |key: &str| {
        m.get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in {m:#?}"))
    };
    assert_eq!(
        get(r#"switchboard_connects_accepted_total{function="connect"}"#),
        2.0
    );
    assert_eq!(
        get(r#"switchboard_connects_rejected_total{function="connect",reason="unauthorized"}"#),
        2.0
    );
    assert_eq!(
        get(
            r#"switchboard_client_actions_total{function="actions",action="subscribe",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"switchboard_client_actions_total{function="actions",action="subscribe",outcome="forbidden"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"switchboard_client_actions_total{function="actions",action="publish",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"switchboard_posts_delivered_total{function="deliver"}"#),
        2.0
    );
    assert_eq!(
        get(r#"switchboard_fanout_latency_milliseconds_count{function="deliver"}"#),
        2.0
    );
    // Bob closed without a code (1005): one disconnect, in the abnormal class.
    assert_eq!(
        get(r#"switchboard_disconnects_total{function="disconnect",close_code="abnormal"}"#),
        1.0
    );
    // No user or connection id in any label.
    assert!(!text.contains("alice") && !text.contains("bob"), "{text}");

    // notify-connection to an unknown connection: 410, counted as gone, not a dead letter.
    let gone = || async {
        let m = scrape(&stack).await;
        m.get(r#"switchboard_posts_gone_total{function="notify-connection"}"#) == Some(&1.0)
    };
    eventually("the gone post", gone).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn dead_letters_are_counted_per_queue() {
    let stack = stack_with_fast_retries().await;
    let bad = http(
        &stack,
        "POST",
        "/queues/commands",
        r#"{"version":1,"type":"sendToGroup","group":"news"}"#,
    )
    .await;
    assert!((200..300).contains(&bad.status), "{}", bad.body);
    let dead = || async {
        let m = scrape(&stack).await;
        m.get(r#"switchboard_dead_lettered_total{function="local-queue",queue="commands"}"#)
            == Some(&1.0)
    };
    eventually("the dead letter", dead).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn metrics_need_the_api_key_when_the_stack_has_one() {
    const KEY: &str = "metrics-test-key-metrics-test-key-metrics!";
    let stack = stack_with(Config {
        api_key: Some(KEY.into()),
        ..Config::default()
    })
    .await;
    let refused = http(&stack, "GET", "/metrics", "").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let refusal: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(refusal["error"]["code"], "unauthorized");
    assert_eq!(refusal["error"]["message"], UNAUTHORIZED);
    assert!(!refused.body.contains("switchboard_"));
    let auth = format!("Bearer {KEY}");
    let admitted = http_to(
        stack.addr(),
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(admitted.status, 200, "{}", admitted.body);
    assert!(
        admitted.body.ends_with(
            "# EOF
"
        ),
        "{}",
        admitted.body
    );
    stack.shutdown().await;
}
