//! The post budget's fair share: one booker (a user, or a group the
//! application sends to) books at most `POST_BOOKER_SHARE` percent of the
//! stack's budget, so another user's notification is not held up behind a
//! flood of theirs (`shared/src/pacing.rs`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use switchboard::adapters::memory::{MemoryGateway, MemoryQueue, MemoryStore};
use switchboard::handlers::deliver::deliver;
use switchboard::handlers::notify_connection::notify_connection_batch;
use switchboard::services::Settings;

/// Mallory's flood: `messages` Deliveries messages of 100 connections each,
/// booked for `user:mallory` (as her presence announcements are).
fn flood(gateway: &MemoryGateway, messages: usize) -> Vec<String> {
    (0..messages)
        .map(|m| {
            let ids: Vec<String> = (0..100).map(|c| format!("m{m}-{c}")).collect();
            for id in &ids {
                gateway.open(id);
            }
            serde_json::json!({
                "connectionIds": ids,
                "frame": {"type": "presence", "event": "join", "userId": "mallory"},
                "booker": "user:mallory",
            })
            .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_s_flood_cannot_hold_up_another_user_s_notification() {
    // A budget of 1,000 posts a second (500 at once); mallory's 4,000 posts
    // would book it 3.5 s ahead. With the default share (50 %) she books at
    // most 500 a second of it, the rest of her flood waits for her own share
    // or goes back to the queue, and the victim's notification, booked after
    // hers, goes at once.
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(MemoryGateway::new());
    let queue = Arc::new(MemoryQueue::new());
    let mut settings = Settings::default();
    settings.posting.rate_limit = 1_000;
    let services = queue_services(store, gateway.clone(), queue.clone(), settings);
    let bodies = flood(&gateway, 40);
    let floods: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let services = services.clone();
            tokio::spawn(async move { deliver(&services, Some(&body)).await })
        })
        .collect();
    // Let every flood message book first.
    tokio::time::sleep(Duration::from_millis(100)).await;

    gateway.open("v1");
    let notification = r#"{"connectionId":"v1","data":"hi","booker":"user:victim"}"#;
    let started = Instant::now();
    let report =
        notify_connection_batch(&services, &instance_limit(), sqs_event(&[notification])).await;
    let waited = started.elapsed();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(gateway.delivered("v1"), ["hi"], "posted, not handed back");
    let handed_back = queue.sent_later();
    assert!(
        handed_back
            .iter()
            .all(|later| !later.body.contains("victim")),
        "the victim's notification was handed back"
    );
    eprintln!("the victim's notification waited {waited:?} behind mallory's 4,000 posts");
    assert!(waited < Duration::from_millis(1_000), "{waited:?}");

    // Mallory's flood is delayed, never lost: what did not post went back.
    let mut delivered = 0;
    for flood in floods {
        delivered += flood.await.expect("no panic").expect("delivered").delivered;
    }
    let retried: usize = queue
        .sent_later()
        .iter()
        .map(|later| {
            let batch: serde_json::Value = serde_json::from_str(&later.body).unwrap();
            assert_eq!(batch["booker"], "user:mallory", "{}", later.body);
            batch["connectionIds"].as_array().unwrap().len()
        })
        .sum();
    eprintln!("mallory: {delivered} posted, {retried} handed back");
    assert_eq!(delivered + retried, 4_000);
    assert!(retried > 0, "her share held some of it back");
}

#[tokio::test]
async fn without_a_booker_or_with_the_share_off_only_the_budget_counts() {
    // Two bookings of 600 for one booker: with the share at 100 % both are
    // booked from the budget alone (1,000 a second, 500 at once), the second
    // waiting its turn; nothing is handed back.
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(MemoryGateway::new());
    let queue = Arc::new(MemoryQueue::new());
    let mut settings = Settings::default();
    settings.posting.rate_limit = 1_000;
    settings.posting.booker_share = 100;
    let services = queue_services(store, gateway.clone(), queue.clone(), settings);
    for body in flood(&gateway, 6) {
        let outcome = deliver(&services, Some(&body)).await.unwrap();
        assert_eq!(outcome.delivered, 100);
    }
    assert!(queue.sent_later().is_empty());
}
