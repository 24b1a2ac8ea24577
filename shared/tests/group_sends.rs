//! Server sends and commands: the Commands queue and the deliver worker, over
//! in-memory adapters.

mod common;

use std::time::Duration;

use common::*;
use switchboard::adapters::memory::{MemoryGateway, MemoryMemberships, MemoryQueue, MemoryStore};
use switchboard::command_runner::{CommandError, run_command};
use switchboard::enqueue::EnqueuePolicy;
use switchboard::handlers::commands::handle_commands;
use switchboard::handlers::deliver::{
    DeliverError, DeliverOutcome, MAX_DELIVERY_ATTEMPTS, deliver,
};
use switchboard::ports::{ConnectionStore, Gateway, GatewayError, Membership, MembershipStore};
use switchboard::protocol::{DeliveryBatch, MAX_MESSAGE_BYTES, MessageError};
use switchboard::services::Settings;

fn settings() -> Settings {
    Settings {
        enqueue: EnqueuePolicy {
            retry_base_delay: Duration::from_millis(1),
            ..EnqueuePolicy::default()
        },
        ..Settings::default()
    }
}

/// `n` connections `c0000…` of users `u0…`, all in `group`, with small pages.
async fn group_of(n: usize, group: &str) -> Harness {
    let store = MemoryStore::with_page_size(64);
    let memberships = MemoryMemberships::with_page_size(64);
    let gateway = MemoryGateway::new();
    for i in 0..n {
        let id = format!("c{i:04}");
        store
            .put_connection(&record(&id, &format!("u{i}")))
            .await
            .unwrap();
        memberships
            .join(&Membership {
                group: group.into(),
                connection_id: id.clone(),
                user_id: format!("u{i}"),
                expires_at: 0,
            })
            .await
            .unwrap();
        gateway.open(&id);
    }
    Harness::with_parts(store, memberships, gateway, settings())
}

fn batches(queue: &MemoryQueue) -> Vec<DeliveryBatch> {
    queue
        .sent()
        .iter()
        .map(|body| DeliveryBatch::parse(Some(body)).unwrap())
        .collect()
}

#[tokio::test]
async fn send_to_group_hands_members_to_the_workers_in_batches_minus_the_excluded() {
    let h = group_of(250, "chat:1").await;
    h.memberships
        .join(&Membership {
            group: "other".into(),
            connection_id: "outsider".into(),
            user_id: "x".into(),
            expires_at: 0,
        })
        .await
        .unwrap();
    let addressed = run_command(&h.services, Some(r#"{"version":1,"type":"sendToGroup","group":"chat:1","data":{"a": 1},"excludeConnectionIds":["c0000","c0100","nobody"]}"#),
    )
    .await
    .unwrap();
    assert_eq!(addressed, 248);
    let batches = batches(&h.deliveries);
    assert!(batches.iter().all(|b| b.connection_ids.len() <= 100
        && b.attempt == 1
        && b.frame.get()
            == r#"{"type":"message","from":"server","group":"chat:1","data":{"a":1}}"#));
    let mut ids: Vec<String> = batches.into_iter().flat_map(|b| b.connection_ids).collect();
    ids.sort();
    let expected: Vec<String> = (0..250)
        .map(|i| format!("c{i:04}"))
        .filter(|id| id != "c0000" && id != "c0100")
        .collect();
    assert_eq!(
        ids, expected,
        "every member once, no excluded id, no outsider"
    );
}

#[tokio::test]
async fn the_worker_posts_the_group_frame_and_forgets_gone_connections() {
    let h = group_of(3, "chat:1").await;
    // c0002's socket is gone but its record and membership remain.
    h.gateway.delete_connection("c0002").await.unwrap();
    let body = r#"{"connectionIds":["c0000","c0001","c0002"],"frame":{"type":"message","from":"server","group":"chat:1","data":{"a":[1,2]}}}"#;
    let outcome = deliver(&h.services, Some(body)).await.unwrap();
    assert_eq!(
        outcome,
        DeliverOutcome {
            delivered: 2,
            gone: 1,
            retried: 0,
            throttled: 0,
            already_posted: 0
        }
    );
    for id in ["c0000", "c0001"] {
        assert_eq!(
            h.gateway.delivered(id),
            [r#"{"type":"message","from":"server","group":"chat:1","data":{"a":[1,2]}}"#]
        );
    }
    assert!(h.store.get_connection("c0002").await.unwrap().is_none());
    assert!(
        h.memberships
            .connection_groups("c0002")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.deliveries.sent().is_empty());
}

#[tokio::test]
async fn failed_posts_are_retried_alone_after_a_short_delay_and_then_dead_lettered() {
    let h = group_of(4, "g").await;
    // No retries inside the invocation: what goes back on the queue is the subject.
    let mut services = h.services.clone();
    std::sync::Arc::make_mut(&mut services.settings)
        .posting
        .retry_budget = std::time::Duration::ZERO;
    h.gateway
        .fail_next("c0001", GatewayError::Throttled("Rate exceeded".into()));
    h.gateway.fail_next("c0003", GatewayError::Timeout);
    let body = r#"{"connectionIds":["c0000","c0001","c0002","c0003"],"frame":{"type":"message","from":"server","group":"g","data":1}}"#;
    let outcome = deliver(&services, Some(body)).await.unwrap();
    assert_eq!(
        outcome,
        DeliverOutcome {
            delivered: 2,
            gone: 0,
            retried: 2,
            throttled: 1,
            already_posted: 0
        }
    );
    let retries = batches(&h.deliveries);
    let summary: Vec<(Vec<String>, u32, u32)> = retries
        .iter()
        .map(|b| (b.connection_ids.clone(), b.attempt, b.throttled))
        .collect();
    assert_eq!(
        summary,
        [
            (vec!["c0001".to_owned()], 1, 1),
            (vec!["c0003".to_owned()], 2, 0)
        ],
        "only the failed connections come back; the throttled one keeps its attempt"
    );
    for later in h.deliveries.sent_later() {
        let delay = later.delay.as_secs();
        assert!((1..=2).contains(&delay), "a jittered 1-2 s delay: {delay}");
    }
    assert_eq!(h.deliveries.sent_later().len(), 2);

    // The retry delivers to exactly those; nobody gets the frame twice.
    for again in h.deliveries.drain() {
        deliver(&h.services, Some(&again)).await.unwrap();
    }
    for id in ["c0000", "c0001", "c0002", "c0003"] {
        assert_eq!(h.gateway.delivered(id).len(), 1, "{id}");
    }

    // Past the last attempt the message is refused without a post, for the DLQ.
    let posts = h.gateway.posts();
    let exhausted = format!(
        r#"{{"connectionIds":["c0001"],"frame":{{"type":"message"}},"attempt":{}}}"#,
        MAX_DELIVERY_ATTEMPTS + 1
    );
    assert_eq!(
        deliver(&h.services, Some(&exhausted)).await,
        Err(DeliverError::Exhausted {
            attempts: MAX_DELIVERY_ATTEMPTS,
            connections: 1
        })
    );
    assert_eq!(h.gateway.posts(), posts);
}

#[tokio::test]
async fn bad_commands_are_refused_with_exact_errors_and_enqueue_nothing() {
    let h = group_of(2, "g").await;
    let big = format!(
        r#"{{"version":1,"type":"sendToGroup","group":"g","data":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    let cases: Vec<(String, &str)> = vec![
        (
            r#"{"version":2,"type":"sendToGroup","group":"g","data":1}"#.into(),
            "malformed message: unsupported command version 2; this deployment understands version 1",
        ),
        (
            r#"{"version":1,"type":"explode"}"#.into(),
            "malformed message: unknown command type \"explode\"; known: sendToGroup, sendToUser, sendToConnection, broadcast, addConnectionToGroup, removeConnectionFromGroup, addUserToGroup, removeUserFromGroup, closeConnection, closeUserConnections",
        ),
        (
            r#"{"type":"sendToGroup","group":"g","data":1}"#.into(),
            "malformed message: missing field `version` at line 1 column 43",
        ),
        (
            r#"{"version":1,"type":"sendToGroup","data":1}"#.into(),
            "malformed message: sendToGroup needs \"group\"",
        ),
        (
            r#"{"version":1,"type":"sendToGroup","group":"a b","data":1}"#.into(),
            "malformed message: \"group\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /",
        ),
        (
            r#"{"version":1,"type":"sendToGroup","group":"g"}"#.into(),
            "malformed message: sendToGroup needs \"data\"",
        ),
        (
            "nonsense".into(),
            "malformed message: expected ident at line 1 column 2",
        ),
    ];
    for (body, expected) in cases {
        let err = run_command(&h.services, Some(&body)).await.unwrap_err();
        assert_eq!(err.to_string(), expected, "{body}");
    }
    assert!(matches!(
        run_command(&h.services, Some(&big)).await,
        Err(CommandError::Message(MessageError::TooLarge { .. }))
    ));
    assert_eq!(h.deliveries.calls(), 0);
}

#[tokio::test]
async fn a_command_batch_fails_only_its_bad_records() {
    let h = group_of(3, "g").await;
    let response = handle_commands(
        &h.services,
        sqs_event(&[
            r#"{"version":1,"type":"sendToGroup","group":"g","data":"hi"}"#,
            r#"{"version":1,"type":"nope"}"#,
        ]),
    )
    .await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, ["m1"]);
    assert_eq!(batches(&h.deliveries)[0].connection_ids.len(), 3);
}

#[tokio::test]
async fn membership_commands_add_and_remove_one_connection() {
    let h = group_of(2, "g").await;
    let add = r#"{"version":1,"type":"addConnectionToGroup","connectionId":"c0001","group":"vip"}"#;
    assert_eq!(run_command(&h.services, Some(add)).await, Ok(1));
    assert_eq!(
        run_command(&h.services, Some(add)).await,
        Ok(1),
        "idempotent"
    );
    let members = h
        .memberships
        .group_members("vip", None)
        .await
        .unwrap()
        .members;
    assert_eq!(members, [("c0001".to_string(), "u1".to_string())]);
    // A connection that is gone is not added.
    let gone =
        r#"{"version":1,"type":"addConnectionToGroup","connectionId":"nobody","group":"vip"}"#;
    assert_eq!(run_command(&h.services, Some(gone)).await, Ok(0));
    let remove =
        r#"{"version":1,"type":"removeConnectionFromGroup","connectionId":"c0001","group":"vip"}"#;
    assert_eq!(run_command(&h.services, Some(remove)).await, Ok(1));
    assert_eq!(run_command(&h.services, Some(remove)).await, Ok(0));
    assert!(
        h.memberships
            .group_members("vip", None)
            .await
            .unwrap()
            .members
            .is_empty()
    );
    for (body, expected) in [
        (
            r#"{"version":1,"type":"addConnectionToGroup","connectionId":"","group":"vip"}"#,
            "\"connectionId\" must not be empty",
        ),
        (
            r#"{"version":1,"type":"addConnectionToGroup","connectionId":"c0001","group":"a b"}"#,
            "malformed message: \"group\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /",
        ),
        (
            r#"{"version":1,"type":"removeConnectionFromGroup","group":"vip"}"#,
            "malformed message: removeConnectionFromGroup needs \"connectionId\"",
        ),
    ] {
        assert_eq!(
            run_command(&h.services, Some(body))
                .await
                .unwrap_err()
                .to_string(),
            expected,
            "{body}"
        );
    }
}

#[tokio::test]
async fn close_connection_sends_the_close_frame_then_closes() {
    let h = group_of(1, "g").await;
    let close =
        r#"{"version":1,"type":"closeConnection","connectionId":"c0000","reason":"banned"}"#;
    assert_eq!(run_command(&h.services, Some(close)).await, Ok(1));
    assert_eq!(
        h.gateway.delivered("c0000"),
        [r#"{"type":"close","reason":"banned"}"#]
    );
    assert!(!h.gateway.is_open("c0000"));
    // Closing again is harmless: the connection is already gone.
    assert_eq!(run_command(&h.services, Some(close)).await, Ok(1));
    // A transient failure is retried by SQS.
    h.gateway.open("c0009");
    h.gateway.fail_next("c0009", GatewayError::Timeout);
    let flaky = r#"{"version":1,"type":"closeConnection","connectionId":"c0009"}"#;
    assert_eq!(
        run_command(&h.services, Some(flaky)).await,
        Err(CommandError::Gateway(GatewayError::Timeout))
    );
    assert!(h.gateway.is_open("c0009"));
}

/// Connections `{user}-{i}` for each (user, count), with sockets, in no group.
async fn users(spec: &[(&str, usize)]) -> Harness {
    let h = Harness::with_parts(
        MemoryStore::with_page_size(2),
        MemoryMemberships::with_page_size(2),
        MemoryGateway::new(),
        settings(),
    );
    for (user, count) in spec {
        for i in 0..*count {
            h.connection(record(&format!("{user}-{i}"), user)).await;
        }
    }
    h
}

async fn join(h: &Harness, group: &str, connection_id: &str, user_id: &str) {
    h.memberships
        .join(&Membership {
            group: group.into(),
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            expires_at: 0,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn send_to_user_reaches_every_connection_of_the_user_across_pages() {
    let h = users(&[("alice", 5), ("bob", 1)]).await;
    let body = r#"{"version":1,"type":"sendToUser","userId":"alice","data":{"n":1}}"#;
    assert_eq!(run_command(&h.services, Some(body)).await, Ok(5));
    h.pump().await;
    for i in 0..5 {
        assert_eq!(
            h.received(&format!("alice-{i}")),
            [r#"{"type":"message","from":"server","data":{"n":1}}"#]
        );
    }
    assert!(h.received("bob-0").is_empty());
    // A user with no connections is addressed zero times, and that is success.
    let nobody = r#"{"version":1,"type":"sendToUser","userId":"carol","data":1}"#;
    assert_eq!(run_command(&h.services, Some(nobody)).await, Ok(0));
    assert_eq!(h.deliveries.sent().len(), 1, "nothing enqueued for nobody");
}

#[tokio::test]
async fn send_to_user_in_a_group_reaches_only_their_connections_in_it() {
    let h = users(&[("alice", 3), ("bob", 1)]).await;
    join(&h, "notification:test", "alice-1", "alice").await;
    join(&h, "notification:test", "bob-0", "bob").await;
    let body = r#"{"version":1,"type":"sendToUser","userId":"alice","group":"notification:test","data":"ready"}"#;
    assert_eq!(run_command(&h.services, Some(body)).await, Ok(1));
    h.pump().await;
    assert_eq!(
        h.received("alice-1"),
        [r#"{"type":"message","from":"server","group":"notification:test","data":"ready"}"#]
    );
    for other in ["alice-0", "alice-2", "bob-0"] {
        assert!(h.received(other).is_empty(), "{other}");
    }
}

#[tokio::test]
async fn send_to_connection_wraps_the_data_in_a_server_message() {
    let h = users(&[("alice", 2)]).await;
    let body = r#"{"version":1,"type":"sendToConnection","connectionId":"alice-1","data":[1, 2]}"#;
    assert_eq!(run_command(&h.services, Some(body)).await, Ok(1));
    h.pump().await;
    assert_eq!(
        h.received("alice-1"),
        [r#"{"type":"message","from":"server","data":[1,2]}"#]
    );
    assert!(h.received("alice-0").is_empty());
    // A connection that is gone is forgotten by the worker, not retried.
    let gone = r#"{"version":1,"type":"sendToConnection","connectionId":"ghost","data":1}"#;
    assert_eq!(run_command(&h.services, Some(gone)).await, Ok(1));
    h.pump().await;
    assert_eq!(h.deliveries.sent().len(), 2, "no retry for a 410");
}

#[tokio::test]
async fn broadcast_reaches_every_connection_once_through_the_shards_minus_the_excluded() {
    // Page size 2 over 16 shards: many pages per shard, all read.
    let h = users(&[("u", 150)]).await;
    let body = r#"{"version":1,"type":"broadcast","data":{"all":true},"excludeConnectionIds":["u-7","u-99"]}"#;
    assert_eq!(run_command(&h.services, Some(body)).await, Ok(148));
    h.pump().await;
    for i in 0..150 {
        let id = format!("u-{i}");
        let expected: &[&str] = if i == 7 || i == 99 {
            &[]
        } else {
            &[r#"{"type":"message","from":"server","data":{"all":true}}"#]
        };
        assert_eq!(h.received(&id), expected, "{id}");
    }
    // Every connection landed in some shard, and the shards cover every connection.
    let mut per_shard = [0usize; 16];
    for i in 0..150 {
        per_shard[switchboard::ports::shard_of(&format!("u-{i}")) as usize] += 1;
    }
    assert!(
        per_shard.iter().filter(|n| **n > 0).count() >= 12,
        "ids spread over the shards: {per_shard:?}"
    );
}

#[tokio::test]
async fn user_level_memberships_apply_to_current_and_future_connections() {
    use switchboard::handlers::connect::handle_connect;
    let h = users(&[("alice", 2), ("bob", 1)]).await;
    let add = r#"{"version":1,"type":"addUserToGroup","userId":"alice","group":"vip"}"#;
    assert_eq!(run_command(&h.services, Some(add)).await, Ok(2));
    assert_eq!(
        run_command(&h.services, Some(add)).await,
        Ok(2),
        "idempotent"
    );
    // A new connection of alice joins at $connect; bob's does not.
    for (id, user) in [("alice-new", "alice"), ("bob-new", "bob")] {
        let response = handle_connect(
            &h.services,
            &verifier(),
            &connect_event(id, Some(&token(user))),
        )
        .await;
        assert_eq!(response.status_code, 200);
    }
    let mut members: Vec<String> = h
        .memberships
        .all()
        .into_iter()
        .filter(|m| m.group == "vip")
        .map(|m| m.connection_id)
        .collect();
    members.sort();
    assert_eq!(members, ["alice-0", "alice-1", "alice-new"]);
    assert_eq!(
        h.memberships.user_groups("alice", 0).await.unwrap(),
        ["vip"]
    );

    // Removing the user takes every current connection out and stops future joins.
    let remove = r#"{"version":1,"type":"removeUserFromGroup","userId":"alice","group":"vip"}"#;
    assert_eq!(run_command(&h.services, Some(remove)).await, Ok(3));
    assert!(h.memberships.all().iter().all(|m| m.group != "vip"));
    assert!(
        h.memberships
            .user_groups("alice", 0)
            .await
            .unwrap()
            .is_empty()
    );
    let response = handle_connect(
        &h.services,
        &verifier(),
        &connect_event("alice-later", Some(&token("alice"))),
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert!(h.memberships.all().is_empty(), "no join after removal");
}

#[tokio::test]
async fn user_level_memberships_expire() {
    let h = users(&[("alice", 1)]).await;
    let add =
        r#"{"version":1,"type":"addUserToGroup","userId":"alice","group":"trial","ttlSeconds":60}"#;
    assert_eq!(run_command(&h.services, Some(add)).await, Ok(1));
    let now = switchboard::clock::now_seconds();
    assert_eq!(
        h.memberships.user_groups("alice", now).await.unwrap(),
        ["trial"]
    );
    assert!(
        h.memberships
            .user_groups("alice", now + 61)
            .await
            .unwrap()
            .is_empty(),
        "an expired user-level membership no longer applies"
    );
}

#[tokio::test]
async fn close_user_connections_closes_each_with_the_final_frame() {
    let h = users(&[("alice", 3), ("bob", 1)]).await;
    let close =
        r#"{"version":1,"type":"closeUserConnections","userId":"alice","reason":"logged out"}"#;
    assert_eq!(run_command(&h.services, Some(close)).await, Ok(3));
    for i in 0..3 {
        let id = format!("alice-{i}");
        assert_eq!(
            h.received(&id),
            [r#"{"type":"close","reason":"logged out"}"#]
        );
        assert!(!h.gateway.is_open(&id));
    }
    assert!(h.gateway.is_open("bob-0"));
}

#[tokio::test]
async fn new_command_types_refuse_bad_input_with_exact_errors() {
    let h = users(&[("alice", 1)]).await;
    let long_reason = "r".repeat(124);
    let long_user = "u".repeat(257);
    let cases: Vec<(String, String)> = vec![
        (
            r#"{"version":1,"type":"sendToUser","data":1}"#.into(),
            "malformed message: sendToUser needs \"userId\"".into(),
        ),
        (
            r#"{"version":1,"type":"sendToUser","userId":"","data":1}"#.into(),
            "\"userId\" must not be empty".into(),
        ),
        (
            format!(r#"{{"version":1,"type":"sendToUser","userId":"{long_user}","data":1}}"#),
            "malformed message: \"userId\" is longer than 256 bytes".into(),
        ),
        (
            r#"{"version":1,"type":"sendToUser","userId":"alice","group":"a b","data":1}"#.into(),
            "malformed message: \"group\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /".into(),
        ),
        (
            r#"{"version":1,"type":"sendToUser","userId":7,"data":1}"#.into(),
            "malformed message: invalid type: integer `7`, expected a string at line 1 column 43".into(),
        ),
        (
            r#"{"version":1,"type":"sendToConnection","data":1}"#.into(),
            "malformed message: sendToConnection needs \"connectionId\"".into(),
        ),
        (
            r#"{"version":1,"type":"broadcast"}"#.into(),
            "malformed message: broadcast needs \"data\"".into(),
        ),
        (
            r#"{"version":1,"type":"broadcast","data":1,"excludeConnectionIds":"c1"}"#.into(),
            "malformed message: invalid type: string \"c1\", expected a sequence at line 1 column 68".into(),
        ),
        (
            r#"{"version":1,"type":"addUserToGroup","userId":"alice","group":"g","ttlSeconds":0}"#.into(),
            "malformed message: \"ttlSeconds\" must be between 1 and 31536000".into(),
        ),
        (
            r#"{"version":1,"type":"addUserToGroup","userId":"alice","group":"g","ttlSeconds":31536001}"#.into(),
            "malformed message: \"ttlSeconds\" must be between 1 and 31536000".into(),
        ),
        (
            r#"{"version":1,"type":"removeUserFromGroup","userId":"alice"}"#.into(),
            "malformed message: removeUserFromGroup needs \"group\"".into(),
        ),
        (
            format!(r#"{{"version":1,"type":"closeUserConnections","userId":"alice","reason":"{long_reason}"}}"#),
            "malformed message: \"reason\" is longer than 123 bytes".into(),
        ),
    ];
    for (body, expected) in cases {
        let err = run_command(&h.services, Some(&body)).await.unwrap_err();
        assert_eq!(err.to_string(), expected, "{body}");
    }
    assert_eq!(h.deliveries.calls(), 0);
    assert!(h.memberships.all().is_empty());
    assert!(h.gateway.is_open("alice-0"));
    // `"data": null` is data, not a missing field.
    let null = r#"{"version":1,"type":"sendToConnection","connectionId":"alice-0","data":null}"#;
    assert_eq!(run_command(&h.services, Some(null)).await, Ok(1));
}

#[tokio::test]
async fn a_410_for_a_connection_still_opening_does_not_forget_it() {
    use switchboard::clock::now_seconds;
    use switchboard::connection::CONNECT_GRACE_MS;
    use switchboard::ports::ConnectionRecord;
    let h = users(&[]).await;
    // Neither has a socket yet, so both posts answer 410.
    let now_ms = now_seconds() * 1000;
    h.store
        .put_connection(&ConnectionRecord {
            connected_at_ms: now_ms - 1_000,
            ..record("young", "u")
        })
        .await
        .unwrap();
    h.store
        .put_connection(&ConnectionRecord {
            connected_at_ms: now_ms - CONNECT_GRACE_MS - 1_000,
            ..record("old", "u")
        })
        .await
        .unwrap();
    join(&h, "g", "young", "u").await;
    join(&h, "g", "old", "u").await;
    let body = r#"{"version":1,"type":"sendToGroup","group":"g","data":1}"#;
    assert_eq!(run_command(&h.services, Some(body)).await, Ok(2));
    h.pump().await;
    // The young one raced its $connect: kept, with its membership.
    assert!(h.store.get_connection("young").await.unwrap().is_some());
    assert!(h.memberships.is_member("g", "young").await.unwrap());
    // The old one is gone for real: forgotten.
    assert!(h.store.get_connection("old").await.unwrap().is_none());
    assert!(!h.memberships.is_member("g", "old").await.unwrap());
    assert_eq!(h.deliveries.sent().len(), 1, "no retries for either");
}
