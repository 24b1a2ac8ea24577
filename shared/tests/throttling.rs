//! Throttle-aware delivery against a fake Management API: a token bucket
//! (as API Gateway's account quota) answering 429 beyond its rate, with a
//! post latency, driven through the real deliver and notify-connection
//! handlers by a small SQS model (receive counts, maxReceiveCount, DLQ).
//!
//! A fan-out far beyond the quota must converge (everyone gets the frame
//! once), put nothing in a dead-letter queue only because the quota was busy,
//! and not storm: retried posts stay a small share of posts. A poison message
//! still reaches the DLQ after maxReceiveCount. Bounded: about a second each.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use switchboard::adapters::memory::{MemoryMemberships, MemoryQueue, MemoryStore};
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::deliver::deliveries_batch;
use switchboard::handlers::notify_connection::notify_connection_batch;
use switchboard::ports::{ConnectionStore, Gateway, GatewayError};
use switchboard::protocol::DeliveryBatch;
use switchboard::services::Services;
use switchboard::services::Settings;

const MAX_RECEIVE_COUNT: u32 = 3;

/// The account quota: `rate` posts a second, `burst` at once; beyond it, 429.
struct TokenBucketGateway {
    rate: f64,
    burst: f64,
    latency: Duration,
    bucket: Mutex<(f64, Instant)>,
    attempts: AtomicU64,
    throttled: AtomicU64,
    delivered: Mutex<HashMap<String, u32>>,
}

impl TokenBucketGateway {
    fn new(rate: f64, burst: f64, latency: Duration) -> Self {
        TokenBucketGateway {
            rate,
            burst,
            latency,
            bucket: Mutex::new((burst, Instant::now())),
            attempts: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            delivered: Mutex::default(),
        }
    }

    fn take(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap();
        let now = Instant::now();
        let (tokens, at) = *bucket;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

#[async_trait]
impl Gateway for TokenBucketGateway {
    async fn post_to_connection(&self, id: &str, _data: &[u8]) -> Result<(), GatewayError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.latency).await;
        if !self.take() {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(GatewayError::Throttled("Rate exceeded".into()));
        }
        *self
            .delivered
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default() += 1;
        Ok(())
    }

    async fn delete_connection(&self, _id: &str) -> Result<(), GatewayError> {
        Ok(())
    }
}

/// SQS as far as these tests need it: every body is received, a failed one
/// comes back with its receive count up, and dies after [`MAX_RECEIVE_COUNT`].
/// Handed-back bodies (the queue port) join the next round.
async fn drain<F, Fut>(queue: &MemoryQueue, initial: Vec<String>, handle: F) -> Vec<String>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = switchboard::batch::BatchReport>,
{
    let mut pending: Vec<(String, u32)> = initial.into_iter().map(|b| (b, 0)).collect();
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "did not converge: {pending:?}");
        let round: Vec<(String, u32)> = pending.drain(..).map(|(b, n)| (b, n + 1)).collect();
        // Ten records a batch, every batch at once: one instance each.
        let batches = round.chunks(10).map(|chunk| {
            let bodies: Vec<&str> = chunk.iter().map(|(b, _)| b.as_str()).collect();
            let mut event = sqs_event(&bodies);
            for (record, (_, receives)) in event.records.iter_mut().zip(chunk) {
                record
                    .attributes
                    .insert("ApproximateReceiveCount".into(), receives.to_string());
            }
            handle(event)
        });
        let reports = futures::future::join_all(batches).await;
        for (chunk, report) in round.chunks(10).zip(reports) {
            for failure in report.failures {
                let index: usize = failure.message_id[1..].parse().unwrap();
                let (body, receives) = chunk[index].clone();
                if receives >= MAX_RECEIVE_COUNT {
                    dead.push(body);
                } else {
                    pending.push((body, receives));
                }
            }
        }
        pending.extend(queue.drain().into_iter().map(|b| (b, 0)));
    }
    dead
}

fn retried_share(gateway: &TokenBucketGateway, posts: usize) -> f64 {
    let attempts = gateway.attempts.load(Ordering::Relaxed) as f64;
    (attempts - posts as f64) / posts as f64
}

/// 1,000 connections at 5× the quota through deliver: everyone gets the frame
/// exactly once, no dead letters, retried posts within 5 %, and a poison
/// message still dies after maxReceiveCount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_beyond_the_quota_converges_without_dead_letters_or_a_storm() {
    let gateway = Arc::new(TokenBucketGateway::new(
        2_000.0,
        100.0,
        Duration::from_millis(2),
    ));
    let (services, deliveries) = services_with_budget(gateway.clone(), 0);
    let ids: Vec<String> = (0..1_000).map(|i| format!("c{i:04}")).collect();
    let mut bodies =
        DeliveryBatch::bodies(r#"{"type":"message","data":1}"#, &ids, None, None).unwrap();
    bodies.push(r#"{"connectionIds": oops}"#.into());
    let started = Instant::now();
    let dead = drain(&deliveries, bodies, |event| {
        deliveries_batch(&services, event)
    })
    .await;
    let took = started.elapsed();
    let delivered = gateway.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), ids.len(), "everyone got it");
    assert!(delivered.values().all(|n| *n == 1), "exactly once");
    assert_eq!(
        dead,
        [r#"{"connectionIds": oops}"#],
        "only the poison is dead"
    );
    let share = retried_share(&gateway, ids.len());
    println!(
        "deliver: 1,000 posts at 2,000/s in {:.2} s (bound 0.45 s), {} attempts, {} throttled, retried share {:.1} %",
        took.as_secs_f64(),
        gateway.attempts.load(Ordering::Relaxed),
        gateway.throttled.load(Ordering::Relaxed),
        share * 100.0
    );
    assert!(share <= 0.05, "retried posts {:.1} % > 5 %", share * 100.0);
}

/// `n` NotifyConnection records through notify-connection against `gateway`,
/// with the stack's budget at `budget` a second (0: unpaced): everyone gets
/// theirs exactly once and nothing is dead. Returns the retried share.
async fn notify_connection_run(gateway: Arc<TokenBucketGateway>, n: usize, budget: u32) -> f64 {
    let store = Arc::new(MemoryStore::new());
    let ids: Vec<String> = (0..n).map(|i| format!("c{i:04}")).collect();
    for id in &ids {
        store.put_connection(&record(id, "u")).await.unwrap();
    }
    let queue = Arc::new(MemoryQueue::new());
    let mut settings = Settings::default();
    settings.posting.rate_limit = budget;
    let services = queue_services(store, gateway.clone(), queue.clone(), settings);
    // One instance: its limit on posts in flight is shared by all its batches.
    let limit = instance_limit();
    let bodies: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"connectionId":"{id}","data":1}}"#))
        .collect();
    let started = Instant::now();
    let dead = drain(&queue, bodies, |event| {
        notify_connection_batch(&services, &limit, event)
    })
    .await;
    let delivered = gateway.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), ids.len());
    assert!(delivered.values().all(|n| *n == 1));
    assert!(dead.is_empty(), "{dead:?}");
    let share = retried_share(&gateway, ids.len());
    println!(
        "notify-connection: {n} posts at {}/s, budget {budget}/s: {:.2} s, {} attempts, \
         {} throttled, retried share {:.2} %",
        gateway.rate,
        started.elapsed().as_secs_f64(),
        gateway.attempts.load(Ordering::Relaxed),
        gateway.throttled.load(Ordering::Relaxed),
        share * 100.0
    );
    share
}

/// 300 NotifyConnection records at 5× the quota: all delivered once, none dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_connection_beyond_the_quota_converges_without_dead_letters() {
    let gateway = Arc::new(TokenBucketGateway::new(
        500.0,
        20.0,
        Duration::from_millis(2),
    ));
    let share = notify_connection_run(gateway, 300, 0).await;
    // A tenth of deliver's fan-out, so one probe's 429s weigh more here.
    assert!(share <= 0.10, "retried posts {:.1} % > 10 %", share * 100.0);
}

/// Services for deliver with the stack's budget of posts at `budget` a second
/// (0: unpaced).
fn services_with_budget(
    gateway: Arc<TokenBucketGateway>,
    budget: u32,
) -> (Services, Arc<MemoryQueue>) {
    let deliveries = Arc::new(MemoryQueue::new());
    let mut settings = Settings::default();
    settings.posting.rate_limit = budget;
    let services = Services {
        store: Arc::new(MemoryStore::new()),
        memberships: Arc::new(MemoryMemberships::new()),
        gateway,
        deliveries: deliveries.clone(),
        sent_log: None,
        history: None,
        settings: Arc::new(settings),
        upstream: Default::default(),
    };
    (services, deliveries)
}

/// The same fan-out with the budget of posts at 95 % of the quota (as the
/// template sets it): the instances book their turns instead of finding the
/// quota by 429s, so next to no post is retried and the time stays near the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_fan_out_finds_no_429s_to_retry() {
    // API Gateway's proportions: a burst of half a second.
    let gateway = Arc::new(TokenBucketGateway::new(
        2_000.0,
        1_000.0,
        Duration::from_millis(2),
    ));
    let (services, deliveries) = services_with_budget(gateway.clone(), 1_900);
    let ids: Vec<String> = (0..3_000).map(|i| format!("c{i:04}")).collect();
    let bodies = DeliveryBatch::bodies(r#"{"type":"message","data":1}"#, &ids, None, None).unwrap();
    let started = Instant::now();
    let dead = drain(&deliveries, bodies, |event| {
        deliveries_batch(&services, event)
    })
    .await;
    let took = started.elapsed();
    let delivered = gateway.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), ids.len(), "everyone got it");
    assert!(delivered.values().all(|n| *n == 1), "exactly once");
    assert!(dead.is_empty(), "{dead:?}");
    let share = retried_share(&gateway, ids.len());
    println!(
        "paced deliver: 3,000 posts, quota 2,000/s burst 1,000, budget 1,900/s: {:.2} s \
         (quota bound 1.00 s, budget bound 1.08 s), {} attempts, {} throttled, retried share {:.2} %",
        took.as_secs_f64(),
        gateway.attempts.load(Ordering::Relaxed),
        gateway.throttled.load(Ordering::Relaxed),
        share * 100.0
    );
    assert!(share <= 0.01, "retried posts {:.2} % > 1 %", share * 100.0);
    // The budget's pace: 3,000 posts at 1,900/s less its first half second's 950.
    assert!(
        took >= Duration::from_millis(1_000),
        "{took:?}: faster than the budget"
    );
}

/// A budget booked further ahead than an instance may wait: deliver posts
/// nothing and hands every connection back as throttled (its attempt kept).
#[tokio::test]
async fn deliver_hands_everything_back_when_the_budget_is_booked_ahead() {
    use switchboard::ports::{Allowance, Booking};
    let gateway = Arc::new(TokenBucketGateway::new(1_000.0, 1_000.0, Duration::ZERO));
    let (services, deliveries) = services_with_budget(gateway.clone(), 100);
    // Someone booked 60 s of posts.
    let booked = services
        .store
        .reserve_allowance(
            &Allowance::Posts,
            6_000,
            switchboard::clock::now_millis(),
            switchboard::pacing::budget(100).unwrap(),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert!(matches!(booked, Booking::After(_)));
    let ids: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let bodies = DeliveryBatch::bodies(r#"{"type":"message","data":1}"#, &ids, None, None).unwrap();
    let report = deliveries_batch(&services, sqs_event(&[bodies[0].as_str()])).await;
    assert!(report.failures.is_empty(), "handed back, not failed");
    assert_eq!(
        gateway.attempts.load(Ordering::Relaxed),
        0,
        "nothing posted"
    );
    let back = deliveries.drain();
    assert_eq!(back.len(), 1);
    let batch = DeliveryBatch::parse(Some(&back[0])).unwrap();
    assert_eq!(batch.connection_ids, ids);
    assert_eq!((batch.attempt, batch.throttled), (1, 1));
}

/// The same for notify-connection: every record is sent again with its
/// `Throttled` count, none posted, none failed.
#[tokio::test]
async fn notify_connection_hands_its_batch_back_when_the_budget_is_booked_ahead() {
    use switchboard::handlers::notify_connection::THROTTLED_ATTRIBUTE;
    use switchboard::ports::Allowance;
    let gateway = Arc::new(TokenBucketGateway::new(1_000.0, 1_000.0, Duration::ZERO));
    let store = Arc::new(MemoryStore::new());
    store
        .reserve_allowance(
            &Allowance::Posts,
            6_000,
            switchboard::clock::now_millis(),
            switchboard::pacing::budget(100).unwrap(),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    let queue = Arc::new(MemoryQueue::new());
    let mut settings = Settings::default();
    settings.posting.rate_limit = 100;
    let services = queue_services(store, gateway.clone(), queue.clone(), settings);
    let bodies = [
        r#"{"connectionId":"c1","data":1}"#,
        r#"{"connectionId":"c2","data":2}"#,
    ];
    let report = notify_connection_batch(&services, &instance_limit(), sqs_event(&bodies)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        gateway.attempts.load(Ordering::Relaxed),
        0,
        "nothing posted"
    );
    let sent = queue.sent_later();
    assert_eq!(sent.len(), 2);
    for later in &sent {
        assert!(bodies.contains(&later.body.as_str()), "{}", later.body);
        assert_eq!(
            later.attributes,
            [(THROTTLED_ATTRIBUTE.to_owned(), "1".to_owned())]
        );
        assert!(later.delay >= Duration::from_secs(1), "{:?}", later.delay);
    }
}

/// notify-connection with the budget at 95 % of the quota: each batch books
/// its ten posts, so the 600 records find no 429 to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_notify_connection_finds_no_429s_to_retry() {
    // API Gateway's proportions: a burst of half a second.
    let gateway = Arc::new(TokenBucketGateway::new(
        500.0,
        250.0,
        Duration::from_millis(2),
    ));
    let share = notify_connection_run(gateway, 600, 475).await;
    assert!(share <= 0.01, "retried posts {:.2} % > 1 %", share * 100.0);
}
