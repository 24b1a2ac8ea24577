//! History in memory: appends before fan-out, one offset per message however
//! often its queue message is redelivered, stamped frames only where they
//! belong.

mod common;

use std::sync::Arc;

use common::{Harness, record, sqs_event};
use serde_json::{Value, json};
use switchboard::adapters::memory::{MemoryHistory, MemoryQueue, MemoryStore};
use switchboard::groups::Grants;
use switchboard::handlers::commands::commands_batch;
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::history::HistorySettings;
use switchboard::ports::{ConnectionRecord, ConnectionStore, Membership, MembershipStore};
use switchboard::services::Settings;

fn settings() -> HistorySettings {
    HistorySettings {
        groups: Grants::parse(&["chat:*"]).unwrap(),
        ..HistorySettings::default()
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn a_redelivered_notify_user_message_is_appended_once_and_keeps_its_offset() {
    let store = Arc::new(MemoryStore::new());
    store
        .put_connection(&record("plain", "alice"))
        .await
        .unwrap();
    store
        .put_connection(&ConnectionRecord {
            envelope: true,
            ..record("enveloped", "alice")
        })
        .await
        .unwrap();
    let (queue, history) = (Arc::new(MemoryQueue::new()), Arc::new(MemoryHistory::new()));
    let settings = Settings {
        history: settings(),
        ..Settings::default()
    };
    let gateway = Arc::new(switchboard::adapters::memory::MemoryGateway::new());
    let mut services = common::queue_services(store.clone(), gateway, queue.clone(), settings);
    services.history = Some(history.clone());
    let body = r#"{"userId":"alice","data":"your download is ready"}"#;
    // The same SQS message (id m0) three times: the first try and two redeliveries.
    for _ in 0..3 {
        let report = notify_user_batch(&services, sqs_event(&[body])).await;
        assert!(report.failures.is_empty(), "{:?}", report.failures);
    }
    assert_eq!(history.len("user:alice"), 1);
    let sent: Vec<Value> = queue.sent().iter().map(|b| parse(b)).collect();
    assert_eq!(sent.len(), 6);
    let epoch = sent
        .iter()
        .find(|b| b["connectionId"] == "enveloped")
        .unwrap()["data"]["epoch"]
        .clone();
    for body in &sent {
        let expected = match body["connectionId"].as_str() {
            // Byte for byte as before for the connection that did not opt in.
            Some("plain") => json!({"connectionId":"plain","data":"your download is ready",
                "booker":"user:alice"}),
            _ => json!({"connectionId":"enveloped","data":{"type":"message","from":"server",
                "data":"your download is ready","stream":"user","offset":1,"epoch":epoch},
                "booker":"user:alice"}),
        };
        assert_eq!(body, &expected);
    }
    // Another message (another SQS id) is the next offset.
    let mut next = sqs_event(&[body]);
    next.records[0].message_id = Some("m1".into());
    notify_user_batch(&services, next).await;
    assert_eq!(history.len("user:alice"), 2);
    let last = parse(
        queue
            .sent()
            .iter()
            .rev()
            .find(|b| b.contains("enveloped"))
            .unwrap(),
    );
    assert_eq!(last["data"]["offset"], 2);
}

fn harness() -> (Harness, Arc<MemoryHistory>) {
    let mut h = Harness::with_settings(Settings {
        history: settings(),
        ..Settings::default()
    });
    let history = Arc::new(MemoryHistory::new());
    h.services.history = Some(history.clone());
    (h, history)
}

#[tokio::test]
async fn a_redelivered_group_send_reuses_its_offset() {
    let (h, history) = harness();
    h.connection(record("c1", "bob")).await;
    h.memberships
        .join(&Membership {
            group: "chat:1".into(),
            connection_id: "c1".into(),
            user_id: "bob".into(),
            expires_at: i64::MAX,
        })
        .await
        .unwrap();
    let body = r#"{"version":1,"type":"sendToGroup","group":"chat:1","data":{"a":1}}"#;
    for _ in 0..2 {
        let report = commands_batch(&h.services, sqs_event(&[body])).await;
        assert!(report.failures.is_empty(), "{:?}", report.failures);
    }
    h.pump().await;
    assert_eq!(history.len("group:chat:1"), 1);
    let frames: Vec<Value> = h.received("c1").iter().map(|f| parse(f)).collect();
    assert_eq!(frames.len(), 2, "delivery stays at least once");
    assert_eq!(frames[0], frames[1]);
    assert_eq!(frames[0]["offset"], 1);
    assert_eq!(frames[0]["stream"], "group:chat:1");
}

/// Issue 25, defect 8: a user send within a group reaches only the user's
/// connections in the group, so it is kept in no stream: the user stream is
/// read by all the user's connections, the group stream by all its members.
#[tokio::test]
async fn a_send_to_a_user_within_a_group_is_kept_in_no_stream() {
    let (h, history) = harness();
    h.connection(ConnectionRecord {
        envelope: true,
        ..record("c1", "carol")
    })
    .await;
    h.connection(record("c2", "carol")).await;
    h.connection(ConnectionRecord {
        envelope: true,
        ..record("outside", "carol")
    })
    .await;
    for id in ["c1", "c2"] {
        h.memberships
            .join(&Membership {
                group: "room".into(),
                connection_id: id.into(),
                user_id: "carol".into(),
                expires_at: i64::MAX,
            })
            .await
            .unwrap();
    }
    let body = r#"{"version":1,"type":"sendToUser","userId":"carol","group":"room","data":"hi"}"#;
    let report = commands_batch(&h.services, sqs_event(&[body])).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    h.pump().await;
    assert_eq!(history.len("user:carol"), 0);
    assert_eq!(history.len("group:room"), 0);
    // Unstamped, even for the connection that asked for envelopes.
    let frame = r#"{"type":"message","from":"server","group":"room","data":"hi"}"#.to_owned();
    assert_eq!(h.received("c1"), vec![frame.clone()]);
    assert_eq!(h.received("c2"), vec![frame]);
    assert!(h.received("outside").is_empty());

    // A send to the whole user is still kept, and stamped for c1 and outside.
    let body = r#"{"version":1,"type":"sendToUser","userId":"carol","data":"all"}"#;
    let report = commands_batch(&h.services, sqs_event(&[body])).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    h.pump().await;
    assert_eq!(history.len("user:carol"), 1);
    let stamped = parse(&h.received("outside")[0]);
    assert_eq!(
        stamped,
        json!({"type":"message","from":"server","data":"all",
            "stream":"user","offset":1,"epoch":stamped["epoch"]})
    );
}

#[tokio::test]
async fn an_unwired_history_changes_nothing() {
    let h = Harness::new();
    h.connection(ConnectionRecord {
        envelope: true,
        ..record("c1", "dave")
    })
    .await;
    let body = r#"{"version":1,"type":"sendToUser","userId":"dave","data":"hi"}"#;
    commands_batch(&h.services, sqs_event(&[body])).await;
    h.pump().await;
    assert_eq!(
        h.received("c1"),
        vec![r#"{"type":"message","from":"server","data":"hi"}"#.to_owned()]
    );
}
