//! Client group actions (`subscribe`, `unsubscribe`, `publish`, `presence`) and
//! group memberships at connect and disconnect, over in-memory adapters: every
//! permission rule and every bad input.

mod common;

use std::time::Duration;

use common::*;
use switchboard::auth::claims_for;
use switchboard::handlers::actions::client_action;
use switchboard::handlers::connect::handle_connect;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::ports::{ConnectionRecord, MembershipStore, StoreError};

async fn connection(subscribe: &[&str]) -> Harness {
    let h = Harness::new();
    h.connection(ConnectionRecord {
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        ..record("c1", "alice")
    })
    .await;
    h
}

async fn send(h: &Harness, frame: &str) -> String {
    client_action(&h.services, "c1", Some(frame)).await
}

#[tokio::test]
async fn subscribe_and_unsubscribe_are_acked_and_idempotent() {
    let h = connection(&["notification:test"]).await;
    let subscribe = r#"{"action":"subscribe","group":"notification:test","id":7}"#;
    for _ in 0..2 {
        assert_eq!(
            send(&h, subscribe).await,
            r#"{"type":"ack","id":7,"ok":true}"#
        );
    }
    let members = h
        .memberships
        .group_members("notification:test", None)
        .await
        .unwrap();
    assert_eq!(members.members, [("c1".to_string(), "alice".to_string())]);
    let unsubscribe = r#"{"action":"unsubscribe","group":"notification:test","id":"x-1"}"#;
    for _ in 0..2 {
        assert_eq!(
            send(&h, unsubscribe).await,
            r#"{"type":"ack","id":"x-1","ok":true}"#
        );
    }
    assert!(h.memberships.all().is_empty());
}

#[tokio::test]
async fn the_id_is_optional() {
    let h = connection(&["g"]).await;
    assert_eq!(
        send(&h, r#"{"action":"subscribe","group":"g"}"#).await,
        r#"{"type":"ack","ok":true}"#
    );
}

#[tokio::test]
async fn permissions_come_from_the_token_patterns() {
    let h = connection(&["chat:*", "news"]).await;
    for group in ["chat:42", "chat:42:typing", "news"] {
        let frame = format!(r#"{{"action":"subscribe","group":"{group}","id":1}}"#);
        assert_eq!(
            send(&h, &frame).await,
            r#"{"type":"ack","id":1,"ok":true}"#,
            "{group}"
        );
    }
    for group in ["chat:", "chat", "chatroom:1", "news:1", "newsx", "other"] {
        let frame = format!(r#"{{"action":"subscribe","group":"{group}","id":1}}"#);
        assert_eq!(
            send(&h, &frame).await,
            format!(
                r#"{{"type":"ack","id":1,"ok":false,"error":{{"code":"forbidden","message":"the token does not allow you to subscribe to \"{group}\""}}}}"#
            ),
            "{group}"
        );
    }
    let mut groups = h.memberships.connection_groups("c1").await.unwrap();
    groups.sort();
    assert_eq!(groups, ["chat:42", "chat:42:typing", "news"]);
}

#[tokio::test]
async fn no_subscribe_claim_allows_nothing_and_unsubscribe_is_checked_too() {
    let h = connection(&[]).await;
    assert_eq!(
        send(&h, r#"{"action":"unsubscribe","group":"g","id":2}"#).await,
        r#"{"type":"ack","id":2,"ok":false,"error":{"code":"forbidden","message":"the token does not allow you to unsubscribe from \"g\""}}"#
    );
    assert!(h.memberships.all().is_empty());
}

#[tokio::test]
async fn a_wildcard_grant_still_refuses_invalid_names() {
    let h = connection(&["*"]).await;
    assert_eq!(
        send(&h, r#"{"action":"subscribe","group":"a b","id":3}"#).await,
        r#"{"type":"ack","id":3,"ok":false,"error":{"code":"bad_request","message":"the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /"}}"#
    );
    assert!(h.memberships.all().is_empty());
}

#[tokio::test]
async fn bad_frames_get_bad_request_acks_and_change_nothing() {
    let h = connection(&["*"]).await;
    let long = "g".repeat(129);
    let cases = [
        (r#"{"action":"subscribe","id":4}"#.to_string(), r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the \"group\" field is required"}}"#.to_string()),
        (r#"{"action":"subscribe","group":5,"id":4}"#.into(), r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the \"group\" field must be a string"}}"#.into()),
        (r#"{"action":"subscribe","group":"","id":4}"#.into(), r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the group name is empty"}}"#.into()),
        (format!(r#"{{"action":"subscribe","group":"{long}","id":4}}"#), r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the group name is longer than 128 bytes"}}"#.into()),
        (r#"{"action":"subscribe","group":"g","id":{"a":1}}"#.into(), r#"{"type":"ack","ok":false,"error":{"code":"bad_request","message":"the \"id\" field must be a string or a number"}}"#.into()),
    ];
    for (frame, expected) in cases {
        assert_eq!(send(&h, &frame).await, expected, "{frame}");
    }
    assert!(h.memberships.all().is_empty());
}

#[tokio::test]
async fn an_unregistered_connection_or_a_store_failure_is_reported() {
    let h = Harness::new();
    assert_eq!(
        send(&h, r#"{"action":"subscribe","group":"g","id":5}"#).await,
        r#"{"type":"ack","id":5,"ok":false,"error":{"code":"forbidden","message":"the connection is not registered"}}"#
    );
    h.store.fail_next(StoreError::Unavailable("down".into()));
    assert_eq!(
        send(&h, r#"{"action":"subscribe","group":"g","id":5}"#).await,
        r#"{"type":"ack","id":5,"ok":false,"error":{"code":"unavailable","message":"try again later"}}"#
    );
    assert!(h.memberships.all().is_empty());
}

#[tokio::test]
async fn connect_joins_the_token_groups_and_disconnect_leaves_them() {
    let h = Harness::new();
    let claims = claims_for(
        "alice",
        Duration::from_secs(60),
        vec!["chat:1".into(), "news".into()],
    );
    let response = handle_connect(
        &h.services,
        &verifier(),
        &connect_event("c1", Some(&token_with(&claims))),
    )
    .await;
    assert_eq!(response.status_code, 200);
    let all = h.memberships.all();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|m| m.connection_id == "c1" && m.user_id == "alice")
    );
    assert!(
        all.iter()
            .all(|m| m.expires_at == h.store.records()[0].expires_at),
        "memberships expire with the record"
    );

    let response = handle_disconnect(&h.services, &disconnect_event("c1")).await;
    assert_eq!(response.status_code, 200);
    assert!(h.memberships.all().is_empty());
    assert!(h.store.is_empty());
}

/// `c1` (alice, publish grants `publish`) and `c2` (bob), both in `chat:1`.
async fn publishers(publish: &[&str], limit: u32) -> Harness {
    let h = Harness::with_settings(switchboard::services::Settings {
        publish_limit: limit,
        publish_window: Duration::from_secs(60),
        ..switchboard::services::Settings::default()
    });
    h.connection(ConnectionRecord {
        publish: publish.iter().map(|s| s.to_string()).collect(),
        ..record("c1", "alice")
    })
    .await;
    h.connection(record("c2", "bob")).await;
    for (id, user) in [("c1", "alice"), ("c2", "bob")] {
        h.memberships
            .join(&switchboard::ports::Membership {
                group: "chat:1".into(),
                connection_id: id.into(),
                user_id: user.into(),
                expires_at: 0,
            })
            .await
            .unwrap();
    }
    h
}

#[tokio::test]
async fn publish_reaches_the_other_members_but_not_the_sender() {
    let h = publishers(&["chat:*"], 10).await;
    assert_eq!(
        send(
            &h,
            r#"{"action":"publish","group":"chat:1","data":{"typing":true},"id":8}"#
        )
        .await,
        r#"{"type":"ack","id":8,"ok":true}"#
    );
    h.pump().await;
    assert_eq!(
        h.received("c2"),
        [
            r#"{"type":"message","from":"client","group":"chat:1","userId":"alice","data":{"typing":true}}"#
        ]
    );
    assert!(h.received("c1").is_empty());
}

#[tokio::test]
async fn publish_needs_the_grant_and_a_membership() {
    let forbidden = |message: &str| {
        format!(
            r#"{{"type":"ack","id":1,"ok":false,"error":{{"code":"forbidden","message":"{message}"}}}}"#
        )
    };
    // No publish claim at all, an exact grant for another group, a prefix that
    // does not cover the group: all refused.
    for grants in [
        &[][..],
        &["chat:2"][..],
        &["chat:1:*"][..],
        &["chatroom:*"][..],
    ] {
        let h = publishers(grants, 10).await;
        assert_eq!(
            send(
                &h,
                r#"{"action":"publish","group":"chat:1","data":1,"id":1}"#
            )
            .await,
            forbidden(r#"the token does not allow you to publish to \"chat:1\""#),
            "{grants:?}"
        );
        h.pump().await;
        assert!(h.received("c2").is_empty());
    }
    // Granted but not a member.
    let h = publishers(&["*"], 10).await;
    assert_eq!(
        send(
            &h,
            r#"{"action":"publish","group":"chat:2","data":1,"id":1}"#
        )
        .await,
        forbidden(r#"join \"chat:2\" before publishing to it"#)
    );
    assert_eq!(h.deliveries.calls(), 0);
}

#[tokio::test]
async fn publish_is_rate_limited_per_user_across_connections() {
    let h = publishers(&["chat:1"], 2).await;
    // A second connection of alice's, in the same group.
    h.connection(ConnectionRecord {
        publish: vec!["chat:1".into()],
        ..record("c3", "alice")
    })
    .await;
    h.memberships
        .join(&switchboard::ports::Membership {
            group: "chat:1".into(),
            connection_id: "c3".into(),
            user_id: "alice".into(),
            expires_at: 0,
        })
        .await
        .unwrap();
    let frame = r#"{"action":"publish","group":"chat:1","data":"x","id":3}"#;
    assert_eq!(send(&h, frame).await, r#"{"type":"ack","id":3,"ok":true}"#);
    assert_eq!(
        client_action(&h.services, "c3", Some(frame)).await,
        r#"{"type":"ack","id":3,"ok":true}"#
    );
    let refused = r#"{"type":"ack","id":3,"ok":false,"error":{"code":"rate_limited","message":"at most 2 events per user per 60000 ms; slow down"}}"#;
    assert_eq!(client_action(&h.services, "c3", Some(frame)).await, refused);
    assert_eq!(send(&h, frame).await, refused);
    h.pump().await;
    assert_eq!(h.received("c2").len(), 2, "the refused events are not sent");
}

#[tokio::test]
async fn every_action_takes_from_the_connections_bucket() {
    let mut settings = switchboard::services::Settings::default();
    settings.limits.connection_actions = switchboard::ports::Rate::new(3, Duration::from_secs(60));
    let h = Harness::with_settings(settings);
    h.connection(ConnectionRecord {
        subscribe: vec!["chat:*".into()],
        ..record("c1", "alice")
    })
    .await;
    for frame in [
        r#"{"action":"subscribe","group":"chat:1","id":1}"#,
        r#"{"action":"presence","group":"chat:1","id":1}"#,
        r#"{"action":"unsubscribe","group":"chat:1","id":1}"#,
    ] {
        assert!(!send(&h, frame).await.contains("rate_limited"), "{frame}");
    }
    let refused = r#"{"type":"ack","id":1,"ok":false,"error":{"code":"rate_limited","message":"at most 3 actions per connection per 60000 ms; slow down"}}"#;
    for action in ["subscribe", "unsubscribe", "publish", "presence"] {
        let frame = format!(r#"{{"action":"{action}","group":"chat:1","data":1,"id":1}}"#);
        assert_eq!(send(&h, &frame).await, refused, "{action}");
    }
    assert!(
        h.memberships.all().is_empty(),
        "the refused subscribe changed nothing"
    );
}

#[tokio::test]
async fn bad_publish_frames_are_refused_and_send_nothing() {
    let h = publishers(&["*"], 10).await;
    let big = format!(
        r#"{{"action":"publish","group":"chat:1","data":"{}","id":4}}"#,
        "x".repeat(131_000)
    );
    let cases = [
        (
            r#"{"action":"publish","group":"chat:1","id":4}"#.to_string(),
            r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the \"data\" field is required"}}"#.to_string(),
        ),
        (
            r#"{"action":"publish","data":1,"id":4}"#.into(),
            r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the \"group\" field is required"}}"#.into(),
        ),
        (
            r#"{"action":"publish","group":"chat 1","data":1,"id":4}"#.into(),
            r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /"}}"#.into(),
        ),
        (
            big,
            r#"{"type":"ack","id":4,"ok":false,"error":{"code":"bad_request","message":"the message would be 131078 bytes, over API Gateway's 131072-byte limit"}}"#.into(),
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(send(&h, &frame).await, expected);
    }
    assert_eq!(h.deliveries.calls(), 0);
}

#[tokio::test]
async fn a_handshake_over_the_users_connection_cap_is_refused_with_nothing_written() {
    let mut settings = switchboard::services::Settings::default();
    settings.limits.max_connections_per_user = 2;
    let h = Harness::with_settings(settings);
    let mut claims = claims_for("alice", Duration::from_secs(60), vec![]);
    claims.groups = vec!["news".into()];
    for id in ["c1", "c2"] {
        let event = connect_event(id, Some(&token_with(&claims)));
        assert_eq!(
            handle_connect(&h.services, &verifier(), &event)
                .await
                .status_code,
            200
        );
    }
    let response = handle_connect(
        &h.services,
        &verifier(),
        &connect_event("c3", Some(&token_with(&claims))),
    )
    .await;
    assert_eq!(response.status_code, 429);
    assert_eq!(
        response.body.and_then(|b| match b {
            aws_lambda_events::encodings::Body::Text(text) => Some(text),
            _ => None,
        }),
        Some(
            r#"{"message":"too many connections: this user already has 2 open, the most allowed"}"#
                .into()
        )
    );
    assert_eq!(h.store.len(), 2, "no record for c3");
    assert!(h.memberships.all().iter().all(|m| m.connection_id != "c3"));
    // Another user is not affected.
    let bob = claims_for("bob", Duration::from_secs(60), vec![]);
    let event = connect_event("c4", Some(&token_with(&bob)));
    assert_eq!(
        handle_connect(&h.services, &verifier(), &event)
            .await
            .status_code,
        200
    );
}

/// A connection in 60 groups (two with presence, watched by bob) plus a
/// tombstone: `$disconnect` deletes all 61 items in ceil(61/25) batch calls,
/// announces both presence leaves and leaves every counter at zero.
#[tokio::test]
async fn disconnect_deletes_memberships_in_batches_and_keeps_presence_exact() {
    use switchboard::command_runner::{CommandError, execute};
    use switchboard::membership::{join_group, leave_group_in_order};
    use switchboard::ports::{Counter, Membership};
    use switchboard::protocol::Command;
    use switchboard::services::Settings;

    let h = Harness::with_settings(Settings {
        max_groups_per_connection: 60,
        ..Settings::default()
    });
    h.connection(record("c1", "alice")).await;
    h.connection(record("c2", "bob")).await;
    let join = |group: &str, connection_id: &str, user: &str| Membership {
        group: group.into(),
        connection_id: connection_id.into(),
        user_id: user.into(),
        expires_at: 9_999_999_999,
    };
    for i in 0..58 {
        join_group(
            &h.services,
            &join(&format!("chat:{i}"), "c1", "alice"),
            false,
        )
        .await
        .unwrap();
    }
    for group in ["presence:a", "presence:b"] {
        join_group(&h.services, &join(group, "c2", "bob"), false)
            .await
            .unwrap();
        join_group(&h.services, &join(group, "c1", "alice"), false)
            .await
            .unwrap();
    }
    // At the cap: a server-side add fails clearly and writes nothing.
    let add = Command::AddConnectionToGroup {
        connection_id: "c1".into(),
        group: "chat:extra".into(),
    };
    assert_eq!(
        execute(&h.services, add).await,
        Err(CommandError::LimitExceeded(
            "a connection may be in at most 60 groups; leave one first".into()
        ))
    );
    assert!(!h.memberships.is_member("chat:extra", "c1").await.unwrap());
    leave_group_in_order(&h.services, "chat:gone", "c1", Some(3))
        .await
        .unwrap();
    assert_eq!(h.memberships.group_slots("c1"), 60);
    h.pump().await;
    let seen = h.gateway.delivered("c2").len();
    let calls_before = h.memberships.delete_calls();

    let response = handle_disconnect(&h.services, &disconnect_event("c1")).await;
    assert_eq!(response.status_code, 200);
    h.pump().await;

    assert_eq!(
        h.memberships.delete_calls() - calls_before,
        61usize.div_ceil(25)
    );
    assert!(
        h.memberships
            .connection_items("c1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.memberships.group_slots("c1"), 0);
    assert_eq!(h.memberships.item_count(), 2, "bob's two memberships stay");
    let mut leaves = h.gateway.delivered("c2").split_off(seen);
    leaves.sort();
    assert_eq!(
        leaves,
        [
            r#"{"type":"presence","event":"leave","userId":"alice","group":"presence:a","online":1}"#,
            r#"{"type":"presence","event":"leave","userId":"alice","group":"presence:b","online":1}"#,
        ]
    );
    for group in ["presence:a", "presence:b"] {
        let alice = Counter::UserConnections("alice".into());
        assert_eq!(h.memberships.counter(group, &alice).await.unwrap(), 0);
        assert_eq!(
            h.memberships
                .counter(group, &Counter::OnlineUsers)
                .await
                .unwrap(),
            1
        );
    }
}

/// Frames that arrive out of order: the one with the newer `seq` decides,
/// whichever runs last.
#[tokio::test]
async fn an_older_sequence_arriving_late_changes_nothing() {
    let h = connection(&["g"]).await;
    let unsubscribe = r#"{"action":"unsubscribe","group":"g","id":2,"seq":2}"#;
    let subscribe = r#"{"action":"subscribe","group":"g","id":1,"seq":1}"#;
    assert_eq!(
        send(&h, unsubscribe).await,
        r#"{"type":"ack","id":2,"ok":true}"#
    );
    assert_eq!(
        send(&h, subscribe).await,
        r#"{"type":"ack","id":1,"ok":true}"#
    );
    assert!(!h.memberships.is_member("g", "c1").await.unwrap());
    let subscribe = r#"{"action":"subscribe","group":"g","id":3,"seq":3}"#;
    assert_eq!(
        send(&h, subscribe).await,
        r#"{"type":"ack","id":3,"ok":true}"#
    );
    assert!(h.memberships.is_member("g", "c1").await.unwrap());
    assert_eq!(h.memberships.group_slots("c1"), 1);
}
