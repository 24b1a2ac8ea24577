//! Presence: opt-in groups announce a user's first join and last leave, with
//! the online count, whatever caused the change; the presence query.

mod common;

use common::*;
use switchboard::command_runner::run_command;
use switchboard::config::presence_groups;
use switchboard::handlers::actions::client_action;
use switchboard::handlers::connect::handle_connect;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::ports::{Counter, Gateway, MembershipStore};
use switchboard::services::Settings;

fn join_frame(user: &str, group: &str, online: i64) -> String {
    format!(
        r#"{{"type":"presence","event":"join","userId":"{user}","group":"{group}","online":{online}}}"#
    )
}

fn leave_frame(user: &str, group: &str, online: i64) -> String {
    format!(
        r#"{{"type":"presence","event":"leave","userId":"{user}","group":"{group}","online":{online}}}"#
    )
}

/// A harness where `presence:*` groups announce (the default), and tokens may
/// subscribe to anything.
async fn harness() -> Harness {
    Harness::new()
}

async fn connect(h: &Harness, id: &str, user: &str, groups: &[&str]) {
    let mut claims = switchboard::auth::claims_for(
        user,
        std::time::Duration::from_secs(60),
        groups.iter().map(|g| g.to_string()).collect(),
    );
    claims.subscribe = vec!["*".into()];
    let response = handle_connect(
        &h.services,
        &verifier(),
        &connect_event(id, Some(&token_with(&claims))),
    )
    .await;
    assert_eq!(response.status_code, 200);
    // The socket exists once $connect returned 200.
    h.gateway.open(id);
}

async fn close_socket(h: &Harness, id: &str) {
    h.gateway.delete_connection(id).await.unwrap();
}

#[tokio::test]
async fn a_user_joins_once_and_leaves_once_across_connections() {
    let h = harness().await;
    let room = "presence:room";
    // The opening connection is not announced to itself: API Gateway refuses
    // posts to a connection until $connect returns.
    connect(&h, "a1", "alice", &[room]).await;
    h.pump().await;
    assert!(h.received("a1").is_empty());
    assert_eq!(h.deliveries.calls(), 0, "nobody else to tell");

    // Alice's second connection: no second join.
    connect(&h, "a2", "alice", &[room]).await;
    h.pump().await;
    assert!(h.received("a1").is_empty());

    // Bob joins: everyone else in the room hears it, count 2.
    connect(&h, "b1", "bob", &[room]).await;
    h.pump().await;
    for id in ["a1", "a2"] {
        assert_eq!(h.received(id), [join_frame("bob", room, 2)], "{id}");
    }
    assert!(h.received("b1").is_empty());

    // Alice's first connection leaves: she still has one, nothing is announced.
    assert_eq!(
        handle_disconnect(&h.services, &disconnect_event("a1"))
            .await
            .status_code,
        200
    );
    close_socket(&h, "a1").await;
    h.pump().await;
    assert!(h.received("b1").is_empty());

    // Her last connection leaves: one leave, count back to 1.
    handle_disconnect(&h.services, &disconnect_event("a2")).await;
    close_socket(&h, "a2").await;
    h.pump().await;
    assert_eq!(h.received("b1"), [leave_frame("alice", room, 1)]);
    let memberships = &h.memberships;
    let online = memberships.counter(room, &Counter::OnlineUsers).await;
    assert_eq!(online, Ok(1));
    let alice = Counter::UserConnections("alice".into());
    assert_eq!(memberships.counter(room, &alice).await, Ok(0));
    let bob = Counter::UserConnections("bob".into());
    assert_eq!(memberships.counter(room, &bob).await, Ok(1));
}

#[tokio::test]
async fn subscribe_unsubscribe_and_commands_announce_too_and_repeats_are_silent() {
    let h = harness().await;
    let room = "presence:lobby";
    connect(&h, "b1", "bob", &[room]).await;
    connect(&h, "a1", "alice", &[]).await;
    h.pump().await;
    let subscribe = format!(r#"{{"action":"subscribe","group":"{room}"}}"#);
    for _ in 0..2 {
        assert_eq!(
            client_action(&h.services, "a1", Some(&subscribe)).await,
            r#"{"type":"ack","ok":true}"#
        );
    }
    h.pump().await;
    // A subscribe comes from an open connection: it hears its own join.
    assert_eq!(h.received("a1"), [join_frame("alice", room, 2)]);
    assert_eq!(
        h.received("b1"),
        [join_frame("alice", room, 2)],
        "subscribing twice announces once"
    );
    let unsubscribe = format!(r#"{{"action":"unsubscribe","group":"{room}"}}"#);
    for _ in 0..2 {
        client_action(&h.services, "a1", Some(&unsubscribe)).await;
    }
    h.pump().await;
    assert_eq!(
        h.received("b1").last().unwrap(),
        &leave_frame("alice", room, 1)
    );
    assert_eq!(
        h.received("b1").len(),
        2,
        "unsubscribing twice announces once"
    );

    // A server-side add and remove announce the same way.
    let add = format!(
        r#"{{"version":1,"type":"addConnectionToGroup","connectionId":"a1","group":"{room}"}}"#
    );
    run_command(&h.services, Some(&add)).await.unwrap();
    let remove = format!(
        r#"{{"version":1,"type":"removeUserFromGroup","userId":"alice","group":"{room}"}}"#
    );
    run_command(&h.services, Some(&remove)).await.unwrap();
    h.pump().await;
    assert_eq!(
        h.received("b1")[2..],
        [join_frame("alice", room, 2), leave_frame("alice", room, 1)]
    );
}

#[tokio::test]
async fn groups_without_presence_announce_nothing() {
    let h = harness().await;
    connect(&h, "a1", "alice", &["chat:1"]).await;
    connect(&h, "b1", "bob", &["chat:1"]).await;
    handle_disconnect(&h.services, &disconnect_event("a1")).await;
    h.pump().await;
    assert!(h.received("b1").is_empty());
    assert_eq!(h.deliveries.calls(), 0);
}

#[tokio::test]
async fn the_presence_groups_setting_decides_which_groups_announce() {
    let h = Harness::with_settings(Settings {
        presence: presence_groups("chat:*, lobby").unwrap(),
        ..Settings::default()
    });
    connect(&h, "w1", "watcher", &["chat:1", "lobby", "presence:x"]).await;
    connect(&h, "b1", "bob", &["chat:1", "lobby", "presence:x"]).await;
    h.pump().await;
    let mut heard = h.received("w1");
    heard.sort();
    assert_eq!(
        heard,
        [
            join_frame("bob", "chat:1", 2),
            join_frame("bob", "lobby", 2)
        ]
    );
    assert_eq!(
        presence_groups("none").unwrap(),
        switchboard::groups::Grants::default()
    );
    assert_eq!(
        presence_groups("chat*").unwrap_err().to_string(),
        "environment variable PRESENCE_GROUPS is invalid: \"*\" may only end a pattern, after a \":\" (\"prefix:*\") or stand alone (\"*\")"
    );
}

#[tokio::test]
async fn the_presence_query_answers_members_only() {
    let h = harness().await;
    connect(&h, "a1", "alice", &["chat:1"]).await;
    connect(&h, "a2", "alice", &["chat:1"]).await;
    connect(&h, "b1", "bob", &["chat:1"]).await;
    connect(&h, "c1", "carol", &[]).await;
    let ask = r#"{"action":"presence","group":"chat:1","id":"p"}"#;
    assert_eq!(
        client_action(&h.services, "a1", Some(ask)).await,
        r#"{"type":"presence","id":"p","group":"chat:1","userIds":["alice","bob"],"users":2,"connections":3,"truncated":false}"#
    );
    assert_eq!(
        client_action(&h.services, "c1", Some(ask)).await,
        r#"{"type":"ack","id":"p","ok":false,"error":{"code":"forbidden","message":"only members of \"chat:1\" may ask for its presence"}}"#
    );
    assert_eq!(
        client_action(&h.services, "a1", Some(r#"{"action":"presence","id":1}"#)).await,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"bad_request","message":"the \"group\" field is required"}}"#
    );
}

/// A harness whose users may make `limit` presence changes per group an hour
/// (no refill during a test).
fn limited(limit: u32) -> Harness {
    let mut settings = Settings::default();
    settings.limits.presence_changes =
        switchboard::ports::Rate::new(limit, std::time::Duration::from_secs(3600));
    Harness::with_settings(settings)
}

async fn disconnect(h: &Harness, id: &str) {
    let response = handle_disconnect(&h.services, &disconnect_event(id)).await;
    assert_eq!(response.status_code, 200);
    close_socket(h, id).await;
}

#[tokio::test]
async fn reconnects_are_under_the_presence_change_limit() {
    // Mallory's token names a presence group; she reconnects in a loop. Each
    // join at $connect and leave at $disconnect takes from the same bucket
    // as subscribe/unsubscribe: 10 announcements, then she still connects
    // and joins, unannounced, and the leaves of those stays are silent too.
    let h = harness().await;
    let room = "presence:room";
    connect(&h, "o1", "olivia", &[room]).await;
    for i in 0..30 {
        let id = format!("m{i}");
        connect(&h, &id, "mallory", &[room]).await;
        assert!(
            h.memberships.is_member(room, &id).await.unwrap(),
            "connection {i} joined"
        );
        disconnect(&h, &id).await;
    }
    h.pump().await;
    let heard = h.received("o1");
    let expected: Vec<String> = (0..5)
        .flat_map(|_| {
            [
                join_frame("mallory", room, 2),
                leave_frame("mallory", room, 1),
            ]
        })
        .collect();
    assert_eq!(heard, expected, "10 announcements, join and leave in pairs");

    // Over the limit: connected and joined (the census says so), not announced.
    connect(&h, "m-last", "mallory", &[room]).await;
    h.pump().await;
    assert_eq!(h.received("o1").len(), 10);
    let ask = format!(r#"{{"action":"presence","group":"{room}","id":"q"}}"#);
    assert_eq!(
        client_action(&h.services, "o1", Some(&ask)).await,
        format!(
            r#"{{"type":"presence","id":"q","group":"{room}","userIds":["mallory","olivia"],"users":2,"connections":2,"truncated":false}}"#
        )
    );
    disconnect(&h, "m-last").await;
    h.pump().await;
    assert_eq!(
        h.received("o1").len(),
        10,
        "no leave for an unannounced join"
    );
    let memberships = &h.memberships;
    let mark = Counter::Unannounced("mallory".into());
    assert_eq!(memberships.counter(room, &mark).await, Ok(0));
    assert_eq!(
        memberships.counter(room, &Counter::OnlineUsers).await,
        Ok(1)
    );
}

#[tokio::test]
async fn the_leave_of_an_announced_join_is_announced_even_over_the_limit() {
    // One change allowed: the join takes it; the leave is announced anyway
    // (no one is left believing alice is online) and booked ahead.
    let h = limited(1);
    let room = "presence:room";
    connect(&h, "b1", "bob", &[room]).await;
    connect(&h, "a1", "alice", &[room]).await;
    disconnect(&h, "a1").await;
    h.pump().await;
    assert_eq!(
        h.received("b1"),
        [join_frame("alice", room, 2), leave_frame("alice", room, 1)]
    );
    // Her bucket is empty: the next stay is silent from join to leave.
    connect(&h, "a2", "alice", &[room]).await;
    disconnect(&h, "a2").await;
    h.pump().await;
    assert_eq!(h.received("b1").len(), 2);
    // A subscribe is refused by the same bucket, with its exact message.
    connect(&h, "a3", "alice", &[]).await;
    let subscribe = format!(r#"{{"action":"subscribe","group":"{room}","id":1}}"#);
    assert_eq!(
        client_action(&h.services, "a3", Some(&subscribe)).await,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"rate_limited","message":"at most 1 subscribes and unsubscribes per user in a presence group per 3600000 ms; slow down"}}"#
    );
    assert!(!h.memberships.is_member(room, "a3").await.unwrap());
}

#[tokio::test]
async fn a_stay_unannounced_at_connect_stays_unannounced_through_unsubscribe() {
    // One change per 300 ms. Alice's join at $connect finds the bucket
    // empty; once it has refilled, her connection unsubscribes (a change
    // that takes its own token): her leave is not announced, since her join
    // never was.
    let mut settings = Settings::default();
    settings.limits.presence_changes =
        switchboard::ports::Rate::new(1, std::time::Duration::from_millis(300));
    let h = Harness::with_settings(settings);
    let room = "presence:room";
    connect(&h, "b1", "bob", &[room]).await;
    connect(&h, "a1", "alice", &[room]).await; // announced, the token taken
    disconnect(&h, "a1").await; // announced, a token booked ahead
    connect(&h, "a2", "alice", &[room]).await; // the bucket is empty: unannounced
    h.pump().await;
    assert_eq!(
        h.received("b1"),
        [join_frame("alice", room, 2), leave_frame("alice", room, 1)]
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let unsubscribe = format!(r#"{{"action":"unsubscribe","group":"{room}","id":2}}"#);
    assert_eq!(
        client_action(&h.services, "a2", Some(&unsubscribe)).await,
        r#"{"type":"ack","id":2,"ok":true}"#
    );
    h.pump().await;
    assert_eq!(h.received("b1").len(), 2, "{:?}", h.received("b1"));
    assert_eq!(
        h.memberships.counter(room, &Counter::OnlineUsers).await,
        Ok(1)
    );
    // Her next join, within the limit, is announced again.
    let subscribe = format!(r#"{{"action":"subscribe","group":"{room}","id":3}}"#);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        client_action(&h.services, "a2", Some(&subscribe)).await,
        r#"{"type":"ack","id":3,"ok":true}"#
    );
    h.pump().await;
    assert_eq!(h.received("b1")[2..], [join_frame("alice", room, 2)]);
}

#[tokio::test]
async fn a_presence_group_holds_at_most_max_presence_members_users() {
    let h = Harness::with_settings(Settings {
        max_presence_members: 2,
        ..Settings::default()
    });
    let room = "presence:room";
    connect(&h, "a1", "alice", &[room]).await;
    connect(&h, "b1", "bob", &[room]).await;
    // Users are counted, not connections: alice's second connection joins.
    connect(&h, "a2", "alice", &[room]).await;
    assert!(h.memberships.is_member(room, "a2").await.unwrap());
    h.pump().await;
    let heard_before = h.received("a1");

    // A third user's subscribe is refused, with nothing written.
    connect(&h, "c1", "carol", &[]).await;
    let subscribe = format!(r#"{{"action":"subscribe","group":"{room}","id":1}}"#);
    assert_eq!(
        client_action(&h.services, "c1", Some(&subscribe)).await,
        r#"{"type":"ack","id":1,"ok":false,"error":{"code":"limit_exceeded","message":"the presence group \"presence:room\" is full: at most 2 users may be in it"}}"#
    );
    assert!(!h.memberships.is_member(room, "c1").await.unwrap());
    let memberships = &h.memberships;
    assert_eq!(
        memberships.counter(room, &Counter::OnlineUsers).await,
        Ok(2)
    );
    let carol = Counter::UserConnections("carol".into());
    assert_eq!(memberships.counter(room, &carol).await, Ok(0));
    assert!(
        memberships
            .connection_groups("c1")
            .await
            .unwrap()
            .is_empty()
    );

    // Her token naming the group: she connects, without it.
    connect(&h, "c2", "carol", &[room, "chat:1"]).await;
    assert_eq!(
        memberships.connection_groups("c2").await.unwrap(),
        ["chat:1"]
    );
    assert_eq!(
        memberships.counter(room, &Counter::OnlineUsers).await,
        Ok(2)
    );

    // A command cannot add her either.
    let add = format!(
        r#"{{"version":1,"type":"addConnectionToGroup","connectionId":"c1","group":"{room}"}}"#
    );
    assert_eq!(
        run_command(&h.services, Some(&add))
            .await
            .unwrap_err()
            .to_string(),
        "the presence group \"presence:room\" is full: at most 2 users may be in it"
    );
    h.pump().await;
    assert_eq!(h.received("a1"), heard_before, "no announcement");

    // Once bob has left there is room.
    disconnect(&h, "b1").await;
    assert_eq!(
        client_action(&h.services, "c1", Some(&subscribe)).await,
        r#"{"type":"ack","id":1,"ok":true}"#
    );
    assert_eq!(
        memberships.counter(room, &Counter::OnlineUsers).await,
        Ok(2)
    );
}
