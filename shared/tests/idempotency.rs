//! Idempotency ids: a redelivered message with an `id` is not posted twice to
//! the same connection within the window; without an id, or with idempotency
//! off, it is (at least once); a store that fails never costs a message.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use switchboard::adapters::memory::{MemoryGateway, MemoryQueue, MemorySentLog, MemoryStore};
use switchboard::config::NegotiateSettings;
use switchboard::handlers::commands::commands_batch;
use switchboard::handlers::http_api::route;
use switchboard::handlers::notify_connection::{Delivery, notify_connection};
use switchboard::ports::MembershipStore;
use switchboard::ports::{ConnectionStore, GatewayError, SentLog, StoreError};
use switchboard::posting::PostingPolicy;
use switchboard::protocol::{MessageError, NotifyConnection, validate_message_id};
use switchboard::services::{Services, Settings};

/// notify-connection's services over `store` and `gateway`, posted ids kept
/// in `log` for `window`.
fn options_with(
    store: &Arc<MemoryStore>,
    gateway: &Arc<MemoryGateway>,
    log: Arc<dyn SentLog>,
    window: Duration,
) -> Services {
    let settings = Settings {
        posting: PostingPolicy {
            idempotency_window: window,
            ..PostingPolicy::default()
        },
        ..Settings::default()
    };
    let queue = Arc::new(MemoryQueue::new());
    let mut services = queue_services(store.clone(), gateway.clone(), queue, settings);
    services.sent_log = Some(log);
    services
}

async fn open(store: &MemoryStore, gateway: &MemoryGateway, id: &str) {
    gateway.open(id);
    store.put_connection(&record(id, "alice")).await.unwrap();
}

#[tokio::test]
async fn a_redelivered_message_with_an_id_is_posted_once() {
    let (store, gateway) = (Arc::new(MemoryStore::new()), Arc::new(MemoryGateway::new()));
    open(&store, &gateway, "c1").await;
    let log = Arc::new(MemorySentLog::new());
    let options = options_with(&store, &gateway, log.clone(), Duration::from_secs(60));
    let body = r#"{"connectionId":"c1","data":{"n":1},"id":"order-42:shipped"}"#;

    let first = notify_connection(&options, Some(body)).await;
    let second = notify_connection(&options, Some(body)).await;
    assert_eq!(first, Ok(Delivery::Delivered));
    assert_eq!(second, Ok(Delivery::AlreadyPosted));
    assert_eq!(gateway.delivered("c1"), vec![r#"{"n":1}"#]);
    assert_eq!(log.len(), 1);

    // The same id to another connection is another delivery.
    open(&store, &gateway, "c2").await;
    let other = r#"{"connectionId":"c2","data":{"n":1},"id":"order-42:shipped"}"#;
    assert_eq!(
        notify_connection(&options, Some(other)).await,
        Ok(Delivery::Delivered)
    );
    assert_eq!(gateway.delivered("c2"), vec![r#"{"n":1}"#]);
}

#[tokio::test]
async fn without_an_id_or_with_idempotency_off_a_redelivery_posts_again() {
    let (store, gateway) = (Arc::new(MemoryStore::new()), Arc::new(MemoryGateway::new()));
    open(&store, &gateway, "c1").await;
    let on = options_with(
        &store,
        &gateway,
        Arc::new(MemorySentLog::new()),
        Duration::from_secs(60),
    );
    let off = options_with(
        &store,
        &gateway,
        Arc::new(MemorySentLog::new()),
        Duration::ZERO,
    );
    let no_id = r#"{"connectionId":"c1","data":1}"#;
    let with_id = r#"{"connectionId":"c1","data":2,"id":"m-2"}"#;
    for (options, body) in [(&on, no_id), (&on, no_id), (&off, with_id), (&off, with_id)] {
        assert_eq!(
            notify_connection(options, Some(body)).await,
            Ok(Delivery::Delivered)
        );
    }
    assert_eq!(gateway.delivered("c1"), vec!["1", "1", "2", "2"]);
}

#[tokio::test]
async fn a_failed_post_is_not_remembered_so_the_retry_posts() {
    let (store, gateway) = (Arc::new(MemoryStore::new()), Arc::new(MemoryGateway::new()));
    open(&store, &gateway, "c1").await;
    let log = Arc::new(MemorySentLog::new());
    let mut options = options_with(&store, &gateway, log.clone(), Duration::from_secs(60));
    // No retry inside the invocation: the failure reaches the caller.
    Arc::make_mut(&mut options.settings).posting.retry_budget = Duration::ZERO;
    let body = r#"{"connectionId":"c1","data":"x","id":"m-1"}"#;
    gateway.fail_next("c1", GatewayError::Throttled("slow down".into()));
    assert!(notify_connection(&options, Some(body)).await.is_err());
    assert!(
        log.is_empty(),
        "nothing was posted, so nothing is remembered"
    );
    assert_eq!(
        notify_connection(&options, Some(body)).await,
        Ok(Delivery::Delivered)
    );
    assert_eq!(gateway.delivered("c1"), vec!["x"]);
}

#[tokio::test]
async fn an_expired_record_no_longer_suppresses_a_post() {
    let log = MemorySentLog::new();
    let keys = vec!["m-1#c1".to_owned()];
    log.record_posted(&keys, 1_000).await.unwrap();
    assert_eq!(log.posted(&keys, 999).await.unwrap().len(), 1);
    assert!(log.posted(&keys, 1_000).await.unwrap().is_empty());
}

/// A log whose every call fails, as a throttled or unreachable table would.
struct BrokenLog;

#[async_trait]
impl SentLog for BrokenLog {
    async fn posted(&self, _: &[String], _: i64) -> Result<HashSet<String>, StoreError> {
        Err(StoreError::Unavailable("throttled".into()))
    }
    async fn record_posted(&self, _: &[String], _: i64) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("throttled".into()))
    }
}

#[tokio::test]
async fn a_failing_log_never_costs_a_message() {
    let (store, gateway) = (Arc::new(MemoryStore::new()), Arc::new(MemoryGateway::new()));
    open(&store, &gateway, "c1").await;
    let options = options_with(
        &store,
        &gateway,
        Arc::new(BrokenLog),
        Duration::from_secs(60),
    );
    let body = r#"{"connectionId":"c1","data":true,"id":"m-1"}"#;
    for _ in 0..2 {
        assert_eq!(
            notify_connection(&options, Some(body)).await,
            Ok(Delivery::Delivered)
        );
    }
    assert_eq!(gateway.delivered("c1"), vec!["true", "true"]);
}

#[test]
fn message_ids_are_validated_with_exact_errors() {
    assert_eq!(validate_message_id("01J9Z3-order:42_v2.x"), Ok(()));
    assert_eq!(validate_message_id(""), Err(MessageError::EmptyField("id")));
    assert_eq!(
        validate_message_id(&"x".repeat(129))
            .unwrap_err()
            .to_string(),
        "malformed message: \"id\" is longer than 128 bytes"
    );
    for bad in ["a#b", "a b", "é", "a\nb"] {
        assert_eq!(
            validate_message_id(bad).unwrap_err().to_string(),
            "malformed message: \"id\" may hold only printable ASCII other than '#' and space",
            "{bad:?}"
        );
    }
    assert_eq!(
        NotifyConnection::parse(Some(r#"{"connectionId":"c","data":1,"id":7}"#))
            .unwrap_err()
            .to_string(),
        "malformed message: invalid type: integer `7`, expected a string at line 1 column 35"
    );
    assert_eq!(
        NotifyConnection::parse(Some(r#"{"connectionId":"c","data":1,"id":"a#b"}"#))
            .unwrap_err()
            .to_string(),
        "malformed message: \"id\" may hold only printable ASCII other than '#' and space"
    );
}

fn harness_with_ids() -> Harness {
    let settings = Settings {
        posting: PostingPolicy {
            idempotency_window: Duration::from_secs(60),
            ..PostingPolicy::default()
        },
        ..Settings::default()
    };
    let mut harness = Harness::with_settings(settings);
    harness.services.sent_log = Some(Arc::new(MemorySentLog::new()));
    harness
}

#[tokio::test]
async fn a_redelivered_group_send_with_an_id_reaches_each_member_once() {
    let h = harness_with_ids();
    for id in ["c1", "c2", "c3"] {
        h.connection(record(id, "alice")).await;
        h.memberships
            .join(&switchboard::ports::Membership {
                group: "news".into(),
                connection_id: id.into(),
                user_id: "alice".into(),
                expires_at: i64::MAX,
            })
            .await
            .unwrap();
    }
    let command = r#"{"version":1,"type":"sendToGroup","group":"news","data":"hi","id":"n-1"}"#;
    let other = r#"{"version":1,"type":"sendToGroup","group":"news","data":"yo"}"#;
    // SQS hands the command over twice, and the one without an id too.
    for body in [command, command, other, other] {
        let report = commands_batch(&h.services, sqs_event(&[body])).await;
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        h.pump().await;
    }
    let hi = r#"{"type":"message","from":"server","group":"news","data":"hi"}"#;
    let yo = r#"{"type":"message","from":"server","group":"news","data":"yo"}"#;
    for id in ["c1", "c2", "c3"] {
        assert_eq!(h.received(id), vec![hi, yo, yo], "{id}");
    }
}

#[tokio::test]
async fn commands_and_the_http_api_refuse_a_bad_id_and_send_nothing() {
    let h = harness_with_ids();
    h.connection(record("c1", "alice")).await;
    let bad = r#"{"version":1,"type":"sendToConnection","connectionId":"c1","data":1,"id":"a b"}"#;
    let report = commands_batch(&h.services, sqs_event(&[bad])).await;
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        report.failures[0].error,
        "malformed message: \"id\" may hold only printable ASCII other than '#' and space"
    );
    let config = NegotiateSettings {
        websocket_url: "wss://example.test/prod".into(),
        secret: Ok(secret()).into(),
        policy: Default::default(),
        default_ttl: Duration::from_secs(300),
        max_ttl: Duration::from_secs(3600),
    };
    for (id, message) in [
        (r#""""#, r#""id" must not be empty"#),
        (
            r#""a#b""#,
            r#"malformed message: "id" may hold only printable ASCII other than '#' and space"#,
        ),
        ("7", r#""id" must be a string"#),
    ] {
        let body = format!(r#"{{"connectionId":"c1","data":1,"id":{id}}}"#);
        let answer = route(
            &h.services,
            &config,
            "POST",
            "/send",
            &Default::default(),
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, 400, "{id}");
        assert_eq!(answer.body["error"]["field"], "id", "{id}");
        assert_eq!(answer.body["error"]["message"], message, "{id}");
    }
    h.pump().await;
    assert!(h.received("c1").is_empty());
    assert_eq!(h.gateway.posts(), 0);
}
