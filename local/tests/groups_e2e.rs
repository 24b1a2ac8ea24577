//! Groups, client events, presence and the server HTTP API end to end: real
//! WebSocket clients against the local stack on loopback.

mod support;

use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use support::*;
use switchboard::auth::{Claims, claims_for, mint};
use switchboard::services::Settings;
use switchboard_local::{Config, RunningStack};
use tokio_tungstenite::tungstenite::Message;

fn token_with(stack: &RunningStack, user: &str, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = claims_for(user, Duration::from_secs(300), vec![]);
    edit(&mut claims);
    mint(stack.secret(), &claims).unwrap()
}

async fn connect_with(stack: &RunningStack, user: &str, edit: impl FnOnce(&mut Claims)) -> Client {
    let token = token_with(stack, user, edit);
    try_connect(stack, Some(&token)).await.unwrap()
}

async fn send_text(client: &mut Client, text: &str) {
    client.send(Message::text(text.to_owned())).await.unwrap();
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn client_events_reach_the_other_members_and_are_rate_limited() {
    let stack = stack_with(Config {
        settings: Settings {
            publish_limit: 2,
            publish_window: Duration::from_secs(60),
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    let member = |claims: &mut Claims| {
        claims.groups = vec!["conversation:42".into()];
        claims.publish = vec!["conversation:*".into()];
    };
    let mut alice = connect_with(&stack, "alice", member).await;
    let mut bob = connect_with(&stack, "bob", member).await;
    let mut eve = connect_with(&stack, "eve", |c| c.publish = vec!["*".into()]).await;

    send_text(
        &mut alice,
        r#"{"action":"publish","group":"conversation:42","data":{"typing":true},"id":8}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"ack","id":8,"ok":true}"#
    );
    assert_eq!(
        next_text(&mut bob).await,
        r#"{"type":"message","from":"client","group":"conversation:42","userId":"alice","data":{"typing":true}}"#
    );
    silent(&mut alice, Duration::from_millis(200)).await;

    // Eve may publish anywhere but is not a member.
    send_text(
        &mut eve,
        r#"{"action":"publish","group":"conversation:42","data":1,"id":1}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut eve).await,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"forbidden","message":"join \"conversation:42\" before publishing to it"}}"#
    );

    // Two per window: the third is refused and never sent.
    send_text(
        &mut alice,
        r#"{"action":"publish","group":"conversation:42","data":2}"#,
    )
    .await;
    assert_eq!(next_text(&mut alice).await, r#"{"type":"ack","ok":true}"#);
    send_text(
        &mut alice,
        r#"{"action":"publish","group":"conversation:42","data":3}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"ack","ok":false,"error":{"code":"rate_limited","message":"at most 2 events per user per 60000 ms; slow down"}}"#
    );
    assert_eq!(parse(&next_text(&mut bob).await)["data"], json!(2));
    silent(&mut bob, Duration::from_millis(300)).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn presence_announces_first_joins_and_last_leaves_with_the_online_count() {
    let stack = stack().await;
    let room = |claims: &mut Claims| claims.groups = vec!["presence:room".into()];
    let join = |user: &str, online: u32| {
        format!(
            r#"{{"type":"presence","event":"join","userId":"{user}","group":"presence:room","online":{online}}}"#
        )
    };
    // A connection is not announced to itself: it cannot receive until $connect returned.
    let mut alice = connect_with(&stack, "alice", room).await;
    let mut bob = connect_with(&stack, "bob", room).await;
    assert_eq!(next_text(&mut alice).await, join("bob", 2));
    let mut alice2 = connect_with(&stack, "alice", room).await;
    silent(&mut bob, Duration::from_millis(300)).await;

    send_text(
        &mut alice2,
        r#"{"action":"presence","group":"presence:room","id":"q"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut alice2).await,
        r#"{"type":"presence","id":"q","group":"presence:room","userIds":["alice","bob"],"users":2,"connections":3,"truncated":false}"#
    );

    alice.close(None).await.unwrap();
    silent(&mut bob, Duration::from_millis(300)).await;
    alice2.close(None).await.unwrap();
    assert_eq!(
        next_text(&mut bob).await,
        r#"{"type":"presence","event":"leave","userId":"alice","group":"presence:room","online":1}"#
    );
    silent(&mut bob, Duration::from_millis(200)).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn negotiate_hands_out_a_url_that_connects_with_the_granted_claims() {
    let stack = stack().await;
    let answer = http(
        &stack,
        "POST",
        "/negotiate",
        r#"{"userId":"nina","subscribe":["chat:*"],"ttlSeconds":120}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = parse(&answer.body);
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}?token=", stack.websocket_url())),
        "{url}"
    );
    let (mut nina, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send_text(
        &mut nina,
        r#"{"action":"subscribe","group":"chat:7","id":1}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut nina).await,
        r#"{"type":"ack","id":1,"ok":true}"#
    );
    send_text(&mut nina, r#"{"action":"subscribe","group":"news","id":2}"#).await;
    assert_eq!(
        parse(&next_text(&mut nina).await)["error"]["code"],
        json!("forbidden")
    );

    let refused = http(
        &stack,
        "POST",
        "/negotiate",
        r#"{"userId":"nina","ttlSeconds":86400}"#,
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        parse(&refused.body),
        json!({"error":{"code":"bad_request","field":"ttlSeconds","message":"\"ttlSeconds\" must be an integer from 1 to 3600"}})
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn the_http_api_sends_to_every_target_and_manages_groups() {
    let stack = stack().await;
    let mut alice = connect(&stack, "alice").await;
    let mut bob = connect(&stack, "bob").await;
    let alice_id = connections_of(&stack, "alice").await.remove(0);

    // User-level membership: alice's open connection joins now, her next one at $connect.
    let answer = http(&stack, "PUT", "/groups/vip/users/alice", "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(parse(&answer.body)["connections"], json!(1));
    let mut alice2 = connect(&stack, "alice").await;
    let group = parse(&http(&stack, "GET", "/groups/vip", "").await.body);
    assert_eq!(
        group,
        json!({"group":"vip","exists":true,"connections":2,"users":1})
    );
    let user = parse(&http(&stack, "GET", "/users/alice", "").await.body);
    assert_eq!(
        user,
        json!({"userId":"alice","exists":true,"connections":2,"groups":["vip"]})
    );

    let send = |body: &'static str| {
        let stack = &stack;
        async move {
            let answer = http(stack, "POST", "/send", body).await;
            assert_eq!(answer.status, 202, "{}", answer.body);
            parse(&answer.body)["addressed"].as_u64().unwrap()
        }
    };
    assert_eq!(send(r#"{"group":"vip","data":"vip only"}"#).await, 2);
    let vip = r#"{"type":"message","from":"server","group":"vip","data":"vip only"}"#;
    assert_eq!(next_text(&mut alice).await, vip);
    assert_eq!(next_text(&mut alice2).await, vip);
    silent(&mut bob, Duration::from_millis(200)).await;

    assert_eq!(send(r#"{"all":true,"data":{"n":1}}"#).await, 3);
    for client in [&mut alice, &mut alice2, &mut bob] {
        assert_eq!(
            next_text(client).await,
            r#"{"type":"message","from":"server","data":{"n":1}}"#
        );
    }

    let body = format!(r#"{{"connectionId":"{alice_id}","data":"just you"}}"#);
    let answer = http(&stack, "POST", "/send", &body).await;
    assert_eq!(answer.status, 202);
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"message","from":"server","data":"just you"}"#
    );
    silent(&mut alice2, Duration::from_millis(200)).await;

    // Seed 004's notify: the user's connections in the group.
    let answer = http(
        &stack,
        "POST",
        "/notify",
        r#"{"user_id":"alice","event_name":"vip","message":{"text":"ready"}}"#,
    )
    .await;
    assert_eq!(parse(&answer.body)["addressed"], json!(2));
    for client in [&mut alice, &mut alice2] {
        assert_eq!(
            next_text(client).await,
            r#"{"type":"message","from":"server","group":"vip","data":{"text":"ready"}}"#
        );
    }

    let bad = http(&stack, "POST", "/send", r#"{"data":1}"#).await;
    assert_eq!(bad.status, 400);
    assert_eq!(parse(&bad.body)["error"]["field"], json!("target"));

    // Close all of alice's connections: the close frame, then the close.
    let answer = http(&stack, "DELETE", "/users/alice/connections?reason=bye", "").await;
    assert_eq!(parse(&answer.body), json!({"userId":"alice","closed":2}));
    for client in [&mut alice, &mut alice2] {
        assert_eq!(
            next_text(client).await,
            r#"{"type":"close","reason":"bye"}"#
        );
        assert_eq!(close_code(client).await, 1000);
    }
    eventually("alice's $disconnects", || async {
        connections_of(&stack, "alice").await.is_empty()
    })
    .await;
    let gone = http(
        &stack,
        "GET",
        &format!("/connections/{}", urlencode(&alice_id)),
        "",
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        parse(&http(&stack, "GET", "/groups/vip", "").await.body)["connections"],
        json!(0),
        "disconnect left the group"
    );
    silent(&mut bob, Duration::from_millis(100)).await;
    stack.shutdown().await;
}
