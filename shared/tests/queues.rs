//! notify-user and notify-connection over in-memory adapters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use switchboard::adapters::memory::{MemoryGateway, MemoryQueue, MemoryStore};
use switchboard::aws_lambda_events::sqs::SqsBatchResponse;
use switchboard::enqueue::EnqueueError;
use switchboard::enqueue::EnqueuePolicy;
use switchboard::fanout::FanoutError;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::handlers::notify_user::{notify_user, notify_user_batch};
use switchboard::ports::{ConnectionStore, GatewayError, QueueError, StoreError};
use switchboard::protocol::{MAX_MESSAGE_BYTES, MessageError, NotifyConnection};
use switchboard::services::Services;
use switchboard::services::Settings;

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

fn user_options() -> EnqueuePolicy {
    EnqueuePolicy {
        retry_base_delay: Duration::from_millis(1),
        ..EnqueuePolicy::default()
    }
}

/// notify-user's services: `store`, and `queue` for its fan-out.
fn user_services(store: &Arc<MemoryStore>, queue: &Arc<MemoryQueue>) -> Services {
    let settings = Settings {
        enqueue: user_options(),
        ..Settings::default()
    };
    let gateway = Arc::new(MemoryGateway::new());
    queue_services(store.clone(), gateway, queue.clone(), settings)
}

async fn store_with(page_size: usize, users: &[(&str, usize)]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::with_page_size(page_size));
    for (user, count) in users {
        for i in 0..*count {
            store
                .put_connection(&record(&format!("{user}-c{i:03}"), user))
                .await
                .unwrap();
        }
    }
    store
}

fn targets(queue: &MemoryQueue) -> Vec<String> {
    let mut ids: Vec<String> = queue
        .sent()
        .iter()
        .map(|body| NotifyConnection::parse(Some(body)).unwrap().connection_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn notify_user_reaches_every_connection_of_the_user_and_no_other() {
    let store = store_with(1000, &[("alice", 25), ("bob", 3)]).await;
    let queue = Arc::new(MemoryQueue::new());
    let response = notify_user_batch(
        &user_services(&store, &queue),
        sqs_event(&[r#"{"userId":"alice","data":{"b": 1, "a": [1, 2]}}"#]),
    )
    .await
    .into_response();
    assert!(failed_ids(&response).is_empty());
    let expected: Vec<String> = (0..25).map(|i| format!("alice-c{i:03}")).collect();
    assert_eq!(targets(&queue), expected);
    // ceil(25 / 10) SendMessageBatch calls, nothing repeated.
    assert_eq!(queue.calls(), 3);
    // data travels unchanged, byte for byte, booked for alice's share of the post budget.
    assert!(
        queue.sent()[0].ends_with(r#","data":{"b": 1, "a": [1, 2]},"booker":"user:alice"}"#),
        "{}",
        queue.sent()[0]
    );
}

#[tokio::test]
async fn notify_user_follows_pagination() {
    let store = store_with(4, &[("alice", 11), ("bob", 5)]).await;
    let queue = Arc::new(MemoryQueue::new());
    let sent = notify_user(
        &user_services(&store, &queue),
        None,
        Some(r#"{"userId":"alice","data":"x"}"#),
    )
    .await
    .unwrap();
    assert_eq!(sent, 11);
    assert_eq!(targets(&queue).len(), 11);
    assert!(targets(&queue).iter().all(|id| id.starts_with("alice-")));
}

#[tokio::test]
async fn notify_user_retries_only_the_failed_entries() {
    let store = store_with(1000, &[("alice", 10)]).await;
    let queue = Arc::new(MemoryQueue::new());
    queue.fail_entries_next(&[1, 3], false);
    let sent = notify_user(
        &user_services(&store, &queue),
        None,
        Some(r#"{"userId":"alice","data":1}"#),
    )
    .await
    .unwrap();
    assert_eq!(sent, 10);
    assert_eq!(queue.calls(), 2);
    let expected: Vec<String> = (0..10).map(|i| format!("alice-c{i:03}")).collect();
    assert_eq!(targets(&queue), expected, "each connection exactly once");
}

#[tokio::test]
async fn notify_user_retries_a_failed_call() {
    let store = store_with(1000, &[("alice", 3)]).await;
    let queue = Arc::new(MemoryQueue::new());
    queue.fail_call_next(QueueError::Unavailable("connection reset".into()));
    let sent = notify_user(
        &user_services(&store, &queue),
        None,
        Some(r#"{"userId":"alice","data":1}"#),
    )
    .await
    .unwrap();
    assert_eq!(sent, 3);
    assert_eq!(targets(&queue).len(), 3);
}

#[tokio::test]
async fn notify_user_fails_the_record_when_retries_run_out() {
    let store = store_with(1000, &[("alice", 2)]).await;
    let queue = Arc::new(MemoryQueue::new());
    for _ in 0..3 {
        queue.fail_entries_next(&[0], false);
    }
    let err = notify_user(
        &user_services(&store, &queue),
        None,
        Some(r#"{"userId":"alice","data":1}"#),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        FanoutError::Enqueue(EnqueueError {
            failed: 1,
            reason: "InternalError: scripted failure".into()
        })
    );
    assert_eq!(queue.calls(), 3);
}

#[tokio::test]
async fn notify_user_does_not_retry_sender_faults() {
    let store = store_with(1000, &[("alice", 2)]).await;
    let queue = Arc::new(MemoryQueue::new());
    queue.fail_entries_next(&[1], true);
    let err = notify_user(
        &user_services(&store, &queue),
        None,
        Some(r#"{"userId":"alice","data":1}"#),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        FanoutError::Enqueue(EnqueueError { failed: 1, .. })
    ));
    assert_eq!(queue.calls(), 1);
}

#[tokio::test]
async fn notify_user_with_no_connections_succeeds_without_sending() {
    let store = store_with(1000, &[("bob", 2)]).await;
    let queue = Arc::new(MemoryQueue::new());
    let response = notify_user_batch(
        &user_services(&store, &queue),
        sqs_event(&[r#"{"userId":"alice","data":1}"#]),
    )
    .await
    .into_response();
    assert!(failed_ids(&response).is_empty());
    assert_eq!(queue.calls(), 0);
}

#[tokio::test]
async fn notify_user_fails_only_the_bad_records_of_a_batch() {
    let store = store_with(1000, &[("alice", 2)]).await;
    let queue = Arc::new(MemoryQueue::new());
    let too_big = format!(
        r#"{{"userId":"alice","data":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES + 1)
    );
    let response = notify_user_batch(
        &user_services(&store, &queue),
        sqs_event(&[
            r#"{"userId":"alice","data":"ok"}"#,
            "not json",
            r#"{"userId":42,"data":1}"#,
            r#"{"userId":"alice"}"#,
            r#"{"userId":"","data":1}"#,
            &too_big,
        ]),
    )
    .await
    .into_response();
    assert_eq!(failed_ids(&response), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(targets(&queue), ["alice-c000", "alice-c001"]);
}

#[tokio::test]
async fn notify_user_reports_exact_message_errors() {
    let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let services = user_services(&store, &queue);
    assert_eq!(
        notify_user(&services, None, None).await,
        Err(FanoutError::Message(MessageError::NoBody))
    );
    assert_eq!(
        notify_user(&services, None, Some(r#"{"userId":"","data":1}"#)).await,
        Err(FanoutError::Message(MessageError::EmptyField("userId")))
    );
    let big = format!(
        r#"{{"userId":"a","data":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES + 1)
    );
    assert_eq!(
        notify_user(&services, None, Some(&big)).await,
        Err(FanoutError::Message(MessageError::TooLarge {
            size: MAX_MESSAGE_BYTES + 1
        }))
    );
    assert_eq!(queue.calls(), 0);
}

#[tokio::test]
async fn notify_user_fails_the_record_when_the_store_is_down() {
    let store = store_with(1000, &[("alice", 2)]).await;
    store.fail_next(StoreError::Unavailable("down".into()));
    let queue = Arc::new(MemoryQueue::new());
    let response = notify_user_batch(
        &user_services(&store, &queue),
        sqs_event(&[r#"{"userId":"alice","data":1}"#]),
    )
    .await
    .into_response();
    assert_eq!(failed_ids(&response), ["m0"]);
    assert_eq!(queue.calls(), 0);
}

// ---- notify-connection ----

/// notify-connection's services: `store`, `gateway`, default settings.
fn connection_services(store: &Arc<MemoryStore>, gateway: &Arc<MemoryGateway>) -> Services {
    let queue = Arc::new(MemoryQueue::new());
    queue_services(store.clone(), gateway.clone(), queue, Settings::default())
}

async fn open_connections(ids: &[&str]) -> (Arc<MemoryStore>, Arc<MemoryGateway>) {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(MemoryGateway::new());
    for id in ids {
        store.put_connection(&record(id, "u")).await.unwrap();
        gateway.open(id);
    }
    (store, gateway)
}

#[tokio::test]
async fn notify_connection_delivers_strings_as_text_and_values_as_compact_json() {
    let (store, gateway) = open_connections(&["c1"]).await;
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[
            r#"{"connectionId":"c1","data":"cokoliv"}"#,
            r#"{"connectionId":"c1","data": { "z": 1, "a": [true, null] } }"#,
        ]),
    )
    .await;
    assert!(failed_ids(&response).is_empty());
    let mut delivered = gateway.delivered("c1");
    delivered.sort();
    assert_eq!(delivered, ["cokoliv", r#"{"z":1,"a":[true,null]}"#]);
}

#[tokio::test]
async fn notify_connection_deletes_gone_connections_without_retry() {
    let (store, gateway) = open_connections(&["c1"]).await;
    store.put_connection(&record("stale", "u")).await.unwrap();
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[
            r#"{"connectionId":"stale","data":1}"#,
            r#"{"connectionId":"c1","data":2}"#,
        ]),
    )
    .await;
    assert!(
        failed_ids(&response).is_empty(),
        "410 is final, not a retry"
    );
    assert_eq!(store.get_connection("stale").await.unwrap(), None);
    assert!(store.get_connection("c1").await.unwrap().is_some());
}

#[tokio::test]
async fn notify_connection_still_finishes_gone_messages_when_the_delete_fails() {
    let (store, gateway) = open_connections(&[]).await;
    store.put_connection(&record("stale", "u")).await.unwrap();
    store.fail_next(StoreError::Unavailable("down".into()));
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[r#"{"connectionId":"stale","data":1}"#]),
    )
    .await;
    assert!(failed_ids(&response).is_empty());
}

#[tokio::test]
async fn notify_connection_retries_throttling_server_errors_and_timeouts() {
    let ids = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let (store, gateway) = open_connections(&ids).await;
    gateway.fail_next("c0", GatewayError::Throttled("Rate exceeded".into()));
    gateway.fail_next(
        "c1",
        GatewayError::Server {
            status: 500,
            message: "Internal".into(),
        },
    );
    gateway.fail_next("c2", GatewayError::Timeout);
    gateway.fail_next("c3", GatewayError::Unreachable("connection refused".into()));
    gateway.fail_next("c4", GatewayError::Forbidden("Forbidden".into()));
    gateway.fail_next(
        "c5",
        GatewayError::PayloadTooLarge("Message too long".into()),
    );
    let bodies: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"connectionId":"{id}","data":"x"}}"#))
        .collect();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    // Transient failures are posted again inside the invocation; 403 and 413 are not.
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&bodies),
    )
    .await;
    assert_eq!(failed_ids(&response), ["m4", "m5"]);
    assert_eq!(store.len(), ids.len(), "failures never delete records");
    for id in &ids[..4] {
        assert_eq!(gateway.delivered(id), ["x"], "{id}");
    }

    // Redelivered, the others go through.
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&bodies[4..]),
    )
    .await;
    assert!(failed_ids(&response).is_empty());
    for id in ids {
        assert_eq!(gateway.delivered(id), ["x"]);
    }
}

/// Past the in-invocation retries, a failed record comes back in seconds:
/// its visibility is cut to 1-2 s (the receive count is kept, so poison still
/// dies after maxReceiveCount); a throttled one is sent again with a delay and
/// a `Throttled` count and is done, so throttling spends no receives.
#[tokio::test]
async fn notify_connection_hands_failed_records_back_in_seconds() {
    let ids = ["c0", "c1", "c2"];
    let (store, gateway) = open_connections(&ids).await;
    gateway.fail_next("c0", GatewayError::Throttled("Rate exceeded".into()));
    gateway.fail_next("c1", GatewayError::Timeout);
    gateway.fail_next("c2", GatewayError::Forbidden("Forbidden".into()));
    let queue = Arc::new(MemoryQueue::new());
    let mut settings = Settings::default();
    settings.posting.retry_budget = Duration::ZERO;
    let services = queue_services(store.clone(), gateway.clone(), queue.clone(), settings);
    let limit = instance_limit();
    let bodies: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"connectionId":"{id}","data":"x"}}"#))
        .collect();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let mut event = sqs_event(&bodies);
    for (i, record) in event.records.iter_mut().enumerate() {
        record.receipt_handle = Some(format!("r{i}"));
    }
    let response = handle_notify_connection(&services, &limit, event).await;
    assert_eq!(failed_ids(&response), ["m1", "m2"]);
    let retries = queue.retries();
    assert_eq!(retries.len(), 1, "only the transient failure: {retries:?}");
    assert_eq!(retries[0].0, "r1");
    assert!((1..=2).contains(&retries[0].1.as_secs()), "{retries:?}");
    let later = queue.sent_later();
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].body, bodies[0], "sent again verbatim");
    assert!((1..=2).contains(&later[0].delay.as_secs()), "{later:?}");
    assert_eq!(
        later[0].attributes,
        [("Throttled".to_owned(), "1".to_owned())]
    );

    // Throttled again and again: every hand-back counts up and the record is
    // done, until the cap, past which it is a failure like any other.
    let mut again = sqs_event(&bodies[..1]);
    let attribute = |n: u32| {
        let mut a = switchboard::aws_lambda_events::sqs::SqsMessageAttribute::default();
        a.string_value = Some(n.to_string());
        a.data_type = Some("String".into());
        a
    };
    again.records[0]
        .message_attributes
        .insert("Throttled".into(), attribute(7));
    gateway.fail_next("c0", GatewayError::Throttled("Rate exceeded".into()));
    let response = handle_notify_connection(&services, &limit, again.clone()).await;
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        queue.sent_later()[1].attributes,
        [("Throttled".to_owned(), "8".to_owned())]
    );
    let cap = switchboard::retry::MAX_THROTTLED_REQUEUES;
    again.records[0]
        .message_attributes
        .insert("Throttled".into(), attribute(cap));
    gateway.fail_next("c0", GatewayError::Throttled("Rate exceeded".into()));
    let response = handle_notify_connection(&services, &limit, again).await;
    assert_eq!(failed_ids(&response), ["m0"]);
    assert_eq!(
        queue.sent_later().len(),
        2,
        "no third hand-back past the cap"
    );
    assert!(gateway.delivered("c0").is_empty());
}

#[tokio::test]
async fn notify_connection_rejects_bad_messages_before_posting() {
    let (store, gateway) = open_connections(&["c1"]).await;
    let too_big = format!(
        r#"{{"connectionId":"c1","data":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_BYTES + 1)
    );
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[
            "{",
            r#"{"connectionId":"c1"}"#,
            r#"{"connectionId":"","data":1}"#,
            r#"{"connectionId":5,"data":1}"#,
            r#"[1,2]"#,
            &too_big,
        ]),
    )
    .await;
    assert_eq!(failed_ids(&response), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(gateway.posts(), 0, "nothing reaches API Gateway");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_batch_without_failures_answers_an_empty_failure_list() {
    let (store, gateway) = open_connections(&["c1"]).await;
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[]),
    )
    .await;
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"batchItemFailures":[]}"#
    );
}

#[tokio::test]
async fn batch_reports_name_each_failure() {
    use switchboard::batch::RecordFailure;
    use switchboard::handlers::notify_connection::notify_connection_batch;
    let (store, gateway) = open_connections(&["c1"]).await;
    gateway.fail_next("c1", GatewayError::Forbidden("Forbidden".into()));
    let report = notify_connection_batch(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[r#"{"connectionId":"c1","data":1}"#]),
    )
    .await;
    assert_eq!(
        report.failures,
        [RecordFailure {
            message_id: "m0".into(),
            error: "forbidden (403): Forbidden".into()
        }]
    );
}

#[tokio::test]
async fn notify_connection_keeps_the_record_of_a_connection_still_opening() {
    use switchboard::clock::now_seconds;
    let store = Arc::new(MemoryStore::new());
    store
        .put_connection(&switchboard::ports::ConnectionRecord {
            connected_at_ms: now_seconds() * 1000,
            ..record("young", "u")
        })
        .await
        .unwrap();
    store.put_connection(&record("old", "u")).await.unwrap();
    // No sockets: both posts answer 410.
    let gateway = Arc::new(MemoryGateway::new());
    let response = handle_notify_connection(
        &connection_services(&store, &gateway),
        &instance_limit(),
        sqs_event(&[
            r#"{"connectionId":"young","data":"hi"}"#,
            r#"{"connectionId":"old","data":"hi"}"#,
        ]),
    )
    .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "410s are done, never retried"
    );
    assert!(store.get_connection("young").await.unwrap().is_some());
    assert!(store.get_connection("old").await.unwrap().is_none());
}
