//! A connection's groups, as a hostile or hurried client tests them on the
//! local stack with real sockets: the cap on groups per connection, and
//! subscribe/unsubscribe frames handled concurrently converging to the last
//! frame sent (with `seq`), presence counters and announcements included.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use support::*;
use switchboard::auth::{Claims, claims_for, mint};
use switchboard::ports::Counter;
use switchboard::rate::Rate;
use switchboard::services::Limits;
use switchboard::services::Settings;
use switchboard_local::{Config, RunningStack};
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

async fn ask(client: &mut Client, frame: String) -> String {
    client.send(Message::text(frame)).await.unwrap();
    next_text(client).await
}

/// The next ack, skipping the presence frames a member of a presence group gets.
async fn next_ack(client: &mut Client) -> String {
    loop {
        let text = next_text(client).await;
        if parse(&text)["type"] == "ack" {
            return text;
        }
    }
}

/// These tests are about ordering and the group cap, not rate limits
/// (`local/tests/limits.rs` has those): limits that never refuse them.
fn generous_limits() -> Limits {
    let plenty = Rate::new(100_000, Duration::from_secs(1));
    Limits {
        connection_actions: plenty,
        user_actions: plenty,
        presence_changes: plenty,
        max_connections_per_user: 1_000,
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn subscribing_past_the_group_cap_answers_limit_exceeded_and_writes_nothing() {
    let stack = stack_with(Config {
        settings: Settings {
            max_groups_per_connection: 3,
            limits: generous_limits(),
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    let mut client = connect_with(&stack, "hoarder", |c| c.subscribe = vec!["chat:*".into()]).await;
    let id = connections_of(&stack, "hoarder").await.remove(0);
    for i in 0..3 {
        let frame = format!(r#"{{"action":"subscribe","group":"chat:{i}","id":{i}}}"#);
        assert_eq!(
            ask(&mut client, frame).await,
            format!(r#"{{"type":"ack","id":{i},"ok":true}}"#)
        );
    }
    // Twenty more, as fast as the socket takes them: every one refused.
    for i in 3..23 {
        let frame = format!(r#"{{"action":"subscribe","group":"chat:{i}","id":{i}}}"#);
        client.send(Message::text(frame)).await.unwrap();
    }
    let mut refused = Vec::new();
    for _ in 3..23 {
        refused.push(parse(&next_text(&mut client).await));
    }
    refused.sort_by_key(|ack| ack["id"].as_i64());
    for (ack, i) in refused.iter().zip(3..) {
        assert_eq!(
            ack.to_string(),
            format!(
                r#"{{"error":{{"code":"limit_exceeded","message":"a connection may be in at most 3 groups; leave one before joining \"chat:{i}\""}},"id":{i},"ok":false,"type":"ack"}}"#
            )
        );
    }
    let mut groups = stack.memberships().connection_groups(&id).await.unwrap();
    groups.sort();
    assert_eq!(groups, ["chat:0", "chat:1", "chat:2"], "nothing written");
    // A group it is in still acks; leaving one makes room for another.
    let again = r#"{"action":"subscribe","group":"chat:1","id":"again"}"#;
    assert_eq!(
        ask(&mut client, again.into()).await,
        r#"{"type":"ack","id":"again","ok":true}"#
    );
    let leave = r#"{"action":"unsubscribe","group":"chat:0","id":"l"}"#;
    assert_eq!(
        ask(&mut client, leave.into()).await,
        r#"{"type":"ack","id":"l","ok":true}"#
    );
    let join = r#"{"action":"subscribe","group":"chat:9","id":"j"}"#;
    assert_eq!(
        ask(&mut client, join.into()).await,
        r#"{"type":"ack","id":"j","ok":true}"#
    );
    let mut groups = stack.memberships().connection_groups(&id).await.unwrap();
    groups.sort();
    assert_eq!(groups, ["chat:1", "chat:2", "chat:9"]);
}

#[tokio::test]
async fn a_token_naming_more_groups_than_the_cap_is_refused_at_connect() {
    let stack = stack_with(Config {
        settings: Settings {
            max_groups_per_connection: 2,
            limits: generous_limits(),
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    let token = token_with(&stack, "wide", |c| {
        c.groups = vec!["a".into(), "b".into(), "c".into()]
    });
    let error = try_connect(&stack, Some(&token)).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}");
    };
    assert_eq!(response.status(), 403);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert_eq!(
        body,
        r#"{"message":"the token names 3 groups; a connection may be in at most 2"}"#
    );
    assert!(connections_of(&stack, "wide").await.is_empty());
    for group in ["a", "b", "c"] {
        let members = stack
            .memberships()
            .group_members(group, None)
            .await
            .unwrap();
        assert!(members.members.is_empty(), "{group}: nothing written");
    }
    // At the cap exactly, it connects.
    let token = token_with(&stack, "wide", |c| c.groups = vec!["a".into(), "b".into()]);
    try_connect(&stack, Some(&token)).await.unwrap();
}

/// Reads presence frames about `user` until 500 ms pass without one:
/// (joins, leaves).
async fn presence_tally(observer: &mut Client, user: &str) -> (i64, i64) {
    let (mut joins, mut leaves) = (0, 0);
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(500), observer.next()).await
    {
        let frame = parse(&text);
        if frame["type"] == "presence" && frame["userId"] == user {
            match frame["event"].as_str() {
                Some("join") => joins += 1,
                Some("leave") => leaves += 1,
                other => panic!("unexpected presence event {other:?}"),
            }
        }
    }
    (joins, leaves)
}

#[tokio::test]
async fn thirty_interleaved_subscribe_unsubscribe_pairs_converge_to_the_last_frame() {
    let stack = stack_with(Config {
        settings: Settings {
            limits: generous_limits(),
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    for trial in 0..5 {
        let group = format!("presence:race{trial}");
        let mut observer =
            connect_with(&stack, "observer", |c| c.groups = vec![group.clone()]).await;
        let mut toggler = connect_with(&stack, "toggler", |c| {
            c.subscribe = vec!["presence:*".into()]
        })
        .await;
        let id = connections_of(&stack, "toggler").await.remove(0);
        // Even trials end on unsubscribe, odd ones on subscribe.
        let ends_subscribed = trial % 2 == 1;
        let actions = if ends_subscribed {
            ["unsubscribe", "subscribe"]
        } else {
            ["subscribe", "unsubscribe"]
        };
        // 60 frames without waiting: the stack handles them concurrently.
        let mut seq = 0;
        for _ in 0..30 {
            for action in actions {
                seq += 1;
                let frame =
                    format!(r#"{{"action":"{action}","group":"{group}","id":{seq},"seq":{seq}}}"#);
                toggler.send(Message::text(frame)).await.unwrap();
            }
        }
        for _ in 0..60 {
            let ack = parse(&next_ack(&mut toggler).await);
            assert_eq!(ack["ok"], true, "trial {trial}: {ack}");
        }
        let memberships = stack.memberships();
        assert_eq!(
            memberships.is_member(&group, &id).await.unwrap(),
            ends_subscribed,
            "trial {trial}: the last frame decides"
        );
        let expected = i64::from(ends_subscribed);
        let user = Counter::UserConnections("toggler".into());
        assert_eq!(
            memberships.counter(&group, &user).await.unwrap(),
            expected,
            "trial {trial}"
        );
        assert_eq!(
            memberships
                .counter(&group, &Counter::OnlineUsers)
                .await
                .unwrap(),
            1 + expected,
            "trial {trial}: the observer and maybe the toggler"
        );
        let (joins, leaves) = presence_tally(&mut observer, "toggler").await;
        assert_eq!(
            joins - leaves,
            expected,
            "trial {trial}: announcements end as the membership ({joins} joins, {leaves} leaves)"
        );
        // A late frame with an older seq changes nothing.
        let stale = if ends_subscribed {
            "unsubscribe"
        } else {
            "subscribe"
        };
        let frame = format!(r#"{{"action":"{stale}","group":"{group}","id":"late","seq":3}}"#);
        toggler.send(Message::text(frame)).await.unwrap();
        assert_eq!(
            next_ack(&mut toggler).await,
            r#"{"type":"ack","id":"late","ok":true}"#
        );
        assert_eq!(
            memberships.is_member(&group, &id).await.unwrap(),
            ends_subscribed,
            "trial {trial}: a stale frame is acked and ignored"
        );
        let _ = toggler.close(None).await;
        let _ = observer.close(None).await;
    }
}

#[tokio::test]
async fn a_sequence_that_is_not_a_non_negative_integer_is_a_bad_request() {
    let stack = stack().await;
    let mut client = connect_with(&stack, "u", |c| c.subscribe = vec!["g".into()]).await;
    for seq in ["-1", "1.5", "\"7\"", "9007199254740992"] {
        let frame = format!(r#"{{"action":"subscribe","group":"g","id":1,"seq":{seq}}}"#);
        assert_eq!(
            ask(&mut client, frame).await,
            r#"{"type":"ack","id":1,"ok":false,"error":{"code":"bad_request","message":"the \"seq\" field must be a non-negative integer below 2^53"}}"#,
            "seq {seq}"
        );
    }
    assert!(
        stack
            .memberships()
            .group_members("g", None)
            .await
            .unwrap()
            .members
            .is_empty()
    );
}
