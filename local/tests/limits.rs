//! Hostile clients against the local stack's limits, on real sockets: floods
//! of subscribe/unsubscribe and presence frames, many connections on one
//! token, a user over the connection cap. Every loop is bounded in count and
//! every wait in time. The default limits apply (see `services::Limits`).

mod support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use switchboard::auth::{Claims, claims_for, mint};
use switchboard::services::Settings;
use switchboard_local::RunningStack;
use tokio_tungstenite::tungstenite::Message;

fn token_with(stack: &RunningStack, user: &str, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = claims_for(user, Duration::from_secs(300), vec![]);
    edit(&mut claims);
    mint(stack.secret(), &claims).unwrap()
}

async fn connect_with(stack: &RunningStack, user: &str, edit: impl FnOnce(&mut Claims)) -> Client {
    try_connect(stack, Some(&token_with(stack, user, edit)))
        .await
        .unwrap()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Every text frame until `quiet` passes without one (at most `max` frames, 30 s).
async fn drain(client: &mut Client, quiet: Duration, max: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut frames = Vec::new();
    while frames.len() < max && Instant::now() < deadline {
        match tokio::time::timeout(quiet, client.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => frames.push(parse(&text)),
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
    frames
}

/// Sends every frame of `frames`, then reads one answer per frame: (accepted,
/// refused acks' error messages, seconds from the first send to the last ack).
/// Presence announcements the sender gets as a member of the group (frames with
/// an `event`) are not answers and are skipped.
async fn flood(client: &mut Client, frames: &[String]) -> (usize, Vec<String>, f64) {
    let started = Instant::now();
    for frame in frames {
        client.send(Message::text(frame.clone())).await.unwrap();
    }
    let (mut accepted, mut refused) = (0, Vec::new());
    let mut answers = 0;
    while answers < frames.len() {
        let ack = parse(&next_text(client).await);
        if ack["type"] == json!("presence") && ack.get("event").is_some() {
            continue;
        }
        answers += 1;
        if ack["ok"] == json!(true) || ack["type"] == json!("presence") {
            accepted += 1;
        } else {
            assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
            refused.push(ack["error"]["message"].as_str().unwrap().to_owned());
        }
    }
    (accepted, refused, started.elapsed().as_secs_f64())
}

const CONNECTION_ACTIONS: &str = "at most 20 actions per connection per 1000 ms; slow down";

#[tokio::test]
async fn subscribe_toggles_cannot_flood_a_presence_group() {
    let stack = stack().await;
    let mut observer = connect_with(&stack, "olivia", |c| {
        c.groups = vec!["presence:lobby".into()]
    })
    .await;
    let mut mallory = connect_with(&stack, "mallory", |c| {
        c.subscribe = vec!["presence:*".into()]
    })
    .await;
    let frames: Vec<String> = (0..400)
        .map(|i| {
            let action = ["subscribe", "unsubscribe"][i % 2];
            json!({"action": action, "group": "presence:lobby", "id": i}).to_string()
        })
        .collect();
    let (accepted, refused, seconds) = flood(&mut mallory, &frames).await;
    let frames = drain(&mut observer, Duration::from_millis(1500), 1000).await;
    let announcements = frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["userId"] == "mallory")
        .count();
    eprintln!(
        "400 toggles in {seconds:.2} s: {accepted} accepted, {} refused, {announcements} announcements to the observer",
        refused.len()
    );
    // Each toggle is refused by the connection's action bucket or by the
    // user's presence-change bucket for the group, with an exact message.
    let presence = "at most 10 subscribes and unsubscribes per user in a presence group per 60000 ms; slow down";
    assert!(
        refused
            .iter()
            .all(|m| m == CONNECTION_ACTIONS || m == presence),
        "{refused:?}"
    );
    assert!(accepted <= 10, "{accepted} toggles accepted");
    assert!(announcements <= 10, "{announcements} announcements");
    // Nothing else reached the observer, and the group still works for it.
    assert_eq!(frames.len(), announcements, "{frames:?}");
    observer
        .send(Message::text(
            r#"{"action":"presence","group":"presence:lobby","id":1}"#,
        ))
        .await
        .unwrap();
    assert_eq!(parse(&next_text(&mut observer).await)["type"], "presence");
}

#[tokio::test]
async fn reconnects_cannot_flood_a_presence_group() {
    // A token whose `groups` names a presence group, reconnected in a loop:
    // each join at $connect and leave at $disconnect is under the same
    // presence-change limit as subscribe/unsubscribe (10 per 60 s).
    let stack = stack().await;
    let lobby = |c: &mut Claims| c.groups = vec!["presence:lobby".into()];
    let mut observer = connect_with(&stack, "olivia", lobby).await;
    let token = token_with(&stack, "mallory", lobby);
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, Vec::new());
    for _ in 0..40 {
        match try_connect(&stack, Some(&token)).await {
            Ok(mut socket) => {
                accepted += 1;
                socket.close(None).await.unwrap();
                // Until the stack has closed it too ($disconnect has run).
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                refused.push(response.status().as_u16())
            }
            Err(e) => panic!("{e}"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eventually("mallory's last connection to be forgotten", || async {
        connections_of(&stack, "mallory").await.is_empty()
    })
    .await;
    let frames = drain(&mut observer, Duration::from_millis(1500), 1000).await;
    let announcements = frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["userId"] == "mallory")
        .count();
    eprintln!(
        "40 reconnects in {seconds:.2} s: {accepted} handshakes accepted, {} refused, \
         {announcements} announcements to the observer",
        refused.len()
    );
    // Only the handshake limits refuse (429); the presence limit never does.
    assert!(refused.iter().all(|&status| status == 429), "{refused:?}");
    assert!(accepted >= 20, "{accepted} handshakes accepted");
    // The bucket of 10, refilled at one per 6 s, and the leave that may end
    // an announced stay.
    let bound = 10 + (seconds / 6.0).ceil() as usize + 1;
    assert!(
        announcements <= bound,
        "{announcements} announcements, at most {bound}"
    );
    assert!(
        announcements >= 10,
        "{announcements}: the first ones are announced"
    );
    // Joins and leaves come in pairs: no leave for an unannounced join, and
    // every announced join's leave.
    let joins = frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["userId"] == "mallory" && f["event"] == "join")
        .count();
    assert_eq!(joins * 2, announcements, "{frames:?}");
    // The census is right: mallory is gone, the observer alone.
    observer
        .send(Message::text(
            r#"{"action":"presence","group":"presence:lobby","id":1}"#,
        ))
        .await
        .unwrap();
    let answer = parse(&next_text(&mut observer).await);
    assert_eq!(answer["userIds"], json!(["olivia"]), "{answer}");
}

#[tokio::test]
async fn a_full_presence_group_refuses_new_users_and_keeps_its_members() {
    let stack = stack_with(switchboard_local::Config {
        settings: Settings {
            max_presence_members: 3,
            ..Settings::default()
        },
        ..switchboard_local::Config::default()
    })
    .await;
    let lobby = |c: &mut Claims| {
        c.groups = vec!["presence:lobby".into()];
        c.subscribe = vec!["presence:*".into()];
    };
    let mut members = Vec::new();
    for user in ["ann", "ben", "cat"] {
        members.push(connect_with(&stack, user, lobby).await);
    }
    // Users are counted, not connections: ann's second connection joins.
    let mut ann_again = connect_with(&stack, "ann", lobby).await;
    let ask = r#"{"action":"presence","group":"presence:lobby","id":"q"}"#;
    ann_again.send(Message::text(ask)).await.unwrap();
    let census = parse(&next_text(&mut ann_again).await);
    assert_eq!(census["users"], 3, "{census}");
    assert_eq!(census["connections"], 4, "{census}");

    // A fourth user's token names the group: connected, without it.
    let mut dan = connect_with(&stack, "dan", lobby).await;
    dan.send(Message::text(ask)).await.unwrap();
    assert_eq!(
        parse(&next_text(&mut dan).await)["error"],
        json!({"code": "forbidden", "message": "only members of \"presence:lobby\" may ask for its presence"})
    );
    // Their subscribe is refused, with the cap in the message.
    dan.send(Message::text(
        r#"{"action":"subscribe","group":"presence:lobby","id":1}"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        parse(&next_text(&mut dan).await),
        json!({"type": "ack", "id": 1, "ok": false, "error": {"code": "limit_exceeded",
            "message": "the presence group \"presence:lobby\" is full: at most 3 users may be in it"}})
    );
    // The members heard no join of dan's, and still count 3 users.
    let heard = drain(&mut members[0], Duration::from_millis(500), 100).await;
    assert!(heard.iter().all(|f| f["userId"] != "dan"), "{heard:?}");
    members[0].send(Message::text(ask)).await.unwrap();
    let census = parse(&next_text(&mut members[0]).await);
    assert_eq!(census["userIds"], json!(["ann", "ben", "cat"]), "{census}");
}

#[tokio::test]
async fn presence_queries_are_rate_limited() {
    let stack = stack().await;
    let mut member = connect_with(&stack, "paula", |c| {
        c.groups = vec!["presence:lobby".into()]
    })
    .await;
    let frames: Vec<String> = (0..500)
        .map(|i| json!({"action": "presence", "group": "presence:lobby", "id": i}).to_string())
        .collect();
    let (accepted, refused, seconds) = flood(&mut member, &frames).await;
    eprintln!(
        "500 presence queries in {seconds:.2} s: {accepted} answered, {} refused",
        refused.len()
    );
    assert!(
        refused.iter().all(|m| m == CONNECTION_ACTIONS),
        "{refused:?}"
    );
    // A bucket of 20, refilled at 20 per second.
    let bound = 20 + (20.0 * seconds).ceil() as usize;
    assert!(accepted <= bound, "{accepted} answered, at most {bound}");
    assert_eq!(accepted + refused.len(), 500);
}

#[tokio::test]
async fn one_token_cannot_multiply_its_publishes_over_many_connections() {
    let stack = stack().await;
    let member = |c: &mut Claims| {
        c.groups = vec!["conversation:1".into()];
        c.publish = vec!["conversation:*".into()];
    };
    let mut bob = connect_with(&stack, "bob", member).await;
    let token = token_with(&stack, "mallory", member);
    let mut sockets = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..20 {
        match try_connect(&stack, Some(&token)).await {
            Ok(socket) => sockets.push(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                refused.push(response.status().as_u16())
            }
            Err(e) => panic!("{e}"),
        }
    }
    let started = Instant::now();
    for socket in &mut sockets {
        for i in 0..10 {
            let frame = json!({"action":"publish","group":"conversation:1","data":i});
            socket.send(Message::text(frame.to_string())).await.unwrap();
        }
    }
    let mut accepted = 0;
    for socket in &mut sockets {
        for _ in 0..10 {
            let ack = parse(&next_text(socket).await);
            if ack["ok"] == json!(true) {
                accepted += 1;
            } else {
                assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let delivered = drain(&mut bob, Duration::from_millis(1500), 1000)
        .await
        .iter()
        .filter(|f| f["type"] == "message" && f["userId"] == "mallory")
        .count();
    eprintln!(
        "20 connections on one token: {} open, {} refused; {accepted} publishes accepted in {seconds:.2} s, {delivered} delivered",
        sockets.len(),
        refused.len()
    );
    assert_eq!(sockets.len(), 10, "the connection cap");
    assert_eq!(refused, [429; 10]);
    // The user's publish bucket: 10 at once, refilled at 10 per second.
    let bound = 10 + (10.0 * seconds).ceil() as usize;
    assert!(accepted <= bound, "{accepted} accepted, at most {bound}");
    assert_eq!(delivered, accepted, "every accepted event, no other");
}

#[tokio::test]
async fn a_user_over_the_connection_cap_is_refused_and_nothing_is_written() {
    let stack = stack().await;
    let token = token(&stack, "carol");
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(try_connect(&stack, Some(&token)).await.unwrap());
    }
    let before = connections_of(&stack, "carol").await;
    assert_eq!(before.len(), 10);
    let err = try_connect(&stack, Some(&token)).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    assert_eq!(response.status(), 429);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert_eq!(
        body,
        json!({"message": "too many connections: this user already has 10 open, the most allowed"})
            .to_string()
    );
    assert_eq!(
        connections_of(&stack, "carol").await,
        before,
        "nothing written"
    );
    // Other users are not affected.
    let _dave = connect(&stack, "dave").await;
    // A closed connection frees its place.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    eventually("the closed connection to be forgotten", || async {
        connections_of(&stack, "carol").await.len() == 9
    })
    .await;
    open.push(try_connect(&stack, Some(&token)).await.unwrap());
    assert_eq!(connections_of(&stack, "carol").await.len(), 10);
}
