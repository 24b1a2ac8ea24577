//! DynamoDB and SQS adapters against moto server on loopback.
//!
//! `make test` starts moto on a free 127.0.0.1 port and sets `MOTO_ENDPOINT`;
//! under plain `cargo test` these tests are ignored.

mod common;
mod oidc_provider;

use common::RequestCounter;
use std::sync::Arc;
use std::time::Duration;
use switchboard::adapters::dynamodb::{DynamoMemberships, DynamoStore};
use switchboard::adapters::memory::MemoryGateway;
use switchboard::adapters::sqs::SqsQueue;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::services::Settings;

use aws_sdk_dynamodb::types::AttributeValue;
use switchboard::ports::{Allowance, ConnectionStore, Gateway, MessageQueue, QueueError, Rate};
use switchboard::protocol::NotifyConnection;
use switchboard::services::Services;

const NEEDS_MOTO: &str = "set MOTO_ENDPOINT (make test starts moto server)";

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect(NEEDS_MOTO)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand_suffix())
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// A fresh connections table, shaped as template.yaml declares it.
async fn table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("connections");
    switchboard::adapters::dynamodb::create_table(client, &name)
        .await
        .unwrap();
    name
}

/// A fresh memberships table, shaped as template.yaml declares it.
async fn memberships_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("memberships");
    switchboard::adapters::dynamodb::create_memberships_table(client, &name)
        .await
        .unwrap();
    name
}

async fn clients() -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let sdk = common::test_sdk_config(Some(&endpoint())).await;
    (
        switchboard::aws::dynamodb(&sdk),
        switchboard::aws::sqs(&sdk),
    )
}

/// The set-up of the tests that count requests: DynamoDB and SQS clients
/// whose every request `counter` counts (by operation), and plain clients,
/// counted by nothing, that make the tables and queues and check the results.
struct Counted {
    counter: RequestCounter,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    plain_dynamo: aws_sdk_dynamodb::Client,
    plain_sqs: aws_sdk_sqs::Client,
}

impl Counted {
    async fn new() -> Self {
        let sdk = common::test_sdk_config(Some(&endpoint())).await;
        let counter = RequestCounter::default();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let (plain_dynamo, plain_sqs) = clients().await;
        Counted {
            counter,
            dynamo,
            sqs,
            plain_dynamo,
            plain_sqs,
        }
    }

    /// Services on fresh connections and memberships tables, read and
    /// written through the counted client (memberships queried `page_limit`
    /// items a page, if given); no sent log, no history, no upstream.
    async fn services(
        &self,
        page_limit: Option<i32>,
        gateway: Arc<dyn Gateway>,
        deliveries: Arc<dyn MessageQueue>,
        settings: Settings,
    ) -> Services {
        let connections = table(&self.plain_dynamo).await;
        let memberships = DynamoMemberships::new(
            self.dynamo.clone(),
            memberships_table(&self.plain_dynamo).await,
        );
        let memberships = match page_limit {
            Some(limit) => memberships.with_page_limit(limit),
            None => memberships,
        };
        Services::new(
            Arc::new(DynamoStore::new(self.dynamo.clone(), connections)),
            Arc::new(memberships),
            gateway,
            deliveries,
            settings,
        )
    }
}

async fn queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(unique("notify-connection"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    // Bounded: at most 100 receives of up to 10 messages.
    for _ in 0..100 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages();
        if messages.is_empty() {
            break;
        }
        bodies.extend(messages.iter().filter_map(|m| m.body().map(str::to_owned)));
    }
    bodies
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_store_puts_gets_and_deletes_idempotently() {
    let (dynamo, _) = clients().await;
    let store = DynamoStore::new(dynamo.clone(), table(&dynamo).await);
    let mut record = common::record("c1", "alice");
    record.source_ip = Some("203.0.113.7".into());
    record.user_agent = Some("websocat".into());
    record.groups = vec!["room:1".into()];
    store.put_connection(&record).await.unwrap();
    assert_eq!(store.get_connection("c1").await.unwrap(), Some(record));
    store.delete_connection("c1").await.unwrap();
    store.delete_connection("c1").await.unwrap();
    store.delete_connection("never-existed").await.unwrap();
    assert_eq!(store.get_connection("c1").await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_store_pages_a_users_connections_through_the_index() {
    let (dynamo, _) = clients().await;
    let store = DynamoStore::new(dynamo.clone(), table(&dynamo).await).with_page_limit(3);
    for i in 0..7 {
        store
            .put_connection(&common::record(&format!("a{i}"), "alice"))
            .await
            .unwrap();
    }
    store
        .put_connection(&common::record("b0", "bob"))
        .await
        .unwrap();
    let mut all = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .user_connections("alice", after.as_deref())
            .await
            .unwrap();
        pages += 1;
        all.extend(page.connection_ids);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    all.sort();
    assert_eq!(all, ["a0", "a1", "a2", "a3", "a4", "a5", "a6"]);
    assert!(
        pages >= 3,
        "7 ids at 3 a page take at least 3 queries, took {pages}"
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_store_reports_a_missing_table() {
    let (dynamo, _) = clients().await;
    let store = DynamoStore::new(dynamo, "no-such-table");
    let err = store
        .put_connection(&common::record("c1", "u"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn sqs_queue_sends_batches_of_ten() {
    let (_, sqs) = clients().await;
    let url = queue(&sqs).await;
    let queue = SqsQueue::new(sqs.clone(), &url);
    let bodies: Vec<String> = (0..10).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    assert_eq!(queue.send_batch(&bodies).await.unwrap(), []);
    let mut received = receive_all(&sqs, &url).await;
    received.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(received, expected);

    let eleven = vec!["x".to_string(); 11];
    assert_eq!(
        queue.send_batch(&eleven).await,
        Err(QueueError::BatchTooLarge(11))
    );
    assert_eq!(queue.send_batch(&[]).await.unwrap(), []);
}

/// The retry-later calls: a delayed send with a message attribute appears
/// after its delay; a received message whose visibility is cut comes back
/// in seconds with its receive count up.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn sqs_queue_sends_later_and_cuts_a_messages_visibility() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use std::time::Duration;
    let (_, sqs) = clients().await;
    let url = queue(&sqs).await;
    let queue = SqsQueue::new(sqs.clone(), &url);
    let later = vec![r#"{"n":1}"#.to_owned()];
    let sent = queue
        .send_later(&later, Duration::from_secs(1), &[("Throttled", "3".into())])
        .await;
    assert_eq!(sent.unwrap(), []);
    assert!(receive_all(&sqs, &url).await.is_empty(), "delayed");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let out = sqs
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    let message = &out.messages()[0];
    assert_eq!(message.body(), Some(r#"{"n":1}"#));
    let throttled = message.message_attributes().unwrap()["Throttled"].string_value();
    assert_eq!(throttled, Some("3"));

    // Hidden for 60 s; cut to 1 s, it comes back with its receive count kept.
    let handle = message.receipt_handle().unwrap();
    queue
        .retry_after(handle, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let out = sqs
        .receive_message()
        .queue_url(&url)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let again = &out.messages()[0];
    let receives =
        again.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount].as_str();
    assert_eq!(receives, "2");
    let refused = queue
        .retry_after("not-a-handle", Duration::from_secs(1))
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn sqs_queue_reports_a_missing_queue() {
    let (_, sqs) = clients().await;
    let queue = SqsQueue::new(sqs, format!("{}/123456789012/no-such-queue", endpoint()));
    let err = queue.send_batch(&["x".into()]).await.unwrap_err();
    assert!(matches!(err, QueueError::Unavailable(_)), "{err}");
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn notify_user_fans_out_through_dynamodb_and_sqs() {
    let (dynamo, sqs) = clients().await;
    let store = DynamoStore::new(dynamo.clone(), table(&dynamo).await).with_page_limit(10);
    for i in 0..23 {
        store
            .put_connection(&common::record(&format!("alice-{i:02}"), "alice"))
            .await
            .unwrap();
    }
    for i in 0..4 {
        store
            .put_connection(&common::record(&format!("bob-{i}"), "bob"))
            .await
            .unwrap();
    }
    let url = queue(&sqs).await;
    let queue = std::sync::Arc::new(SqsQueue::new(sqs.clone(), &url));
    let gateway = std::sync::Arc::new(MemoryGateway::new());
    let settings = switchboard::services::Settings::default();
    let services = common::queue_services(std::sync::Arc::new(store), gateway, queue, settings);
    let response = notify_user_batch(
        &services,
        common::sqs_event(&[
            r#"{"userId":"alice","data":{"download":"ready"}}"#,
            "garbage",
        ]),
    )
    .await
    .into_response();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, ["m1"]);
    let mut targets: Vec<String> = receive_all(&sqs, &url)
        .await
        .iter()
        .map(|body| {
            let message = NotifyConnection::parse(Some(body)).unwrap();
            assert_eq!(message.data.get(), r#"{"download":"ready"}"#);
            message.connection_id
        })
        .collect();
    targets.sort();
    let expected: Vec<String> = (0..23).map(|i| format!("alice-{i:02}")).collect();
    assert_eq!(targets, expected);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn notify_connection_deletes_gone_records_from_dynamodb() {
    let (dynamo, _) = clients().await;
    let store = DynamoStore::new(dynamo.clone(), table(&dynamo).await);
    store
        .put_connection(&common::record("live", "u"))
        .await
        .unwrap();
    store
        .put_connection(&common::record("stale", "u"))
        .await
        .unwrap();
    let store = std::sync::Arc::new(store);
    let gateway = std::sync::Arc::new(MemoryGateway::new());
    gateway.open("live");
    let queue = std::sync::Arc::new(switchboard::adapters::memory::MemoryQueue::new());
    let settings = switchboard::services::Settings::default();
    let services = common::queue_services(store.clone(), gateway.clone(), queue, settings);
    let response = handle_notify_connection(
        &services,
        &common::instance_limit(),
        common::sqs_event(&[
            r#"{"connectionId":"live","data":"hi"}"#,
            r#"{"connectionId":"stale","data":"hi"}"#,
        ]),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(gateway.delivered("live"), ["hi"]);
    assert!(store.get_connection("stale").await.unwrap().is_none());
    assert!(store.get_connection("live").await.unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_memberships_join_leave_and_page_both_ways() {
    use switchboard::ports::{Membership, MembershipStore};
    let (dynamo, _) = clients().await;
    let table = memberships_table(&dynamo).await;
    let store = DynamoMemberships::new(dynamo, table).with_page_limit(2);
    let membership = |group: &str, connection: &str, user: &str| Membership {
        group: group.into(),
        connection_id: connection.into(),
        user_id: user.into(),
        expires_at: 1_795_389_300,
    };
    assert!(
        store
            .join(&membership("chat:1", "c1", "alice"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .join(&membership("chat:1", "c1", "alice"))
            .await
            .unwrap(),
        "idempotent"
    );
    for (g, c, u) in [
        ("chat:1", "c2", "bob"),
        ("chat:1", "c3", "alice"),
        ("news", "c1", "alice"),
    ] {
        store.join(&membership(g, c, u)).await.unwrap();
    }
    let mut members = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = store
            .group_members("chat:1", after.as_deref())
            .await
            .unwrap();
        members.extend(page.members);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    members.sort();
    assert_eq!(
        members,
        [
            ("c1".to_string(), "alice".to_string()),
            ("c2".to_string(), "bob".to_string()),
            ("c3".to_string(), "alice".to_string())
        ]
    );
    let mut groups = store.connection_groups("c1").await.unwrap();
    groups.sort();
    assert_eq!(groups, ["chat:1", "news"]);
    assert!(store.is_member("news", "c1").await.unwrap());
    assert_eq!(
        store.leave("news", "c1").await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(
        store.leave("news", "c1").await.unwrap(),
        None,
        "leaving twice"
    );
    assert!(!store.is_member("news", "c1").await.unwrap());
    assert_eq!(store.connection_groups("c1").await.unwrap(), ["chat:1"]);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_store_reads_every_connection_once_through_the_shards() {
    use switchboard::ports::{SHARDS, shard_of};
    let (dynamo, _) = clients().await;
    let name = table(&dynamo).await;
    let store = DynamoStore::new(dynamo, name).with_page_limit(3);
    let ids: Vec<String> = (0..40).map(|i| format!("conn-{i:02}")).collect();
    for id in &ids {
        store
            .put_connection(&common::record(id, "u"))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for shard in 0..SHARDS {
        let mut after: Option<String> = None;
        for _ in 0..100 {
            let page = store
                .shard_connections(shard, after.as_deref())
                .await
                .unwrap();
            assert!(page.connection_ids.len() <= 3);
            for id in &page.connection_ids {
                assert_eq!(shard_of(id), shard, "{id} is in its own shard");
            }
            seen.extend(page.connection_ids);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ids, "every connection exactly once");
    store.delete_connection("conn-07").await.unwrap();
    let shard = shard_of("conn-07");
    let page = store.shard_connections(shard, None).await.unwrap();
    assert!(!page.connection_ids.contains(&"conn-07".to_string()));
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_store_rate_limits_with_a_token_bucket() {
    let (dynamo, _) = clients().await;
    let name = table(&dynamo).await;
    let store = DynamoStore::new(dynamo.clone(), name.clone());
    store
        .put_connection(&common::record("c1", "u"))
        .await
        .unwrap();
    let on_c1 = Allowance::ConnectionActions("c1".into());
    let rate = Rate::new(3, Duration::from_secs(1));
    // A window boundary of the old fixed window at t0: 20 takes in 80 ms around it.
    let t0 = 1_795_381_200_000;
    let mut passed = Vec::new();
    for i in 0..20 {
        let at = t0 - 40 + i * 4;
        if store.take_allowance(&on_c1, at, rate).await.unwrap() {
            passed.push(at);
        }
    }
    assert_eq!(
        passed,
        [t0 - 40, t0 - 36, t0 - 32],
        "the bucket, no second burst"
    );
    // Refill: one token per 333.333 ms, the first 333.333 ms after the first take.
    let next = t0 - 40 + 334;
    assert!(!store.take_allowance(&on_c1, next - 1, rate).await.unwrap());
    assert!(store.take_allowance(&on_c1, next, rate).await.unwrap());
    assert!(!store.take_allowance(&on_c1, next, rate).await.unwrap());
    // An hour idle refills the bucket, not more.
    let later = t0 + 3_600_000;
    let mut taken = 0;
    for _ in 0..6 {
        taken += usize::from(store.take_allowance(&on_c1, later, rate).await.unwrap());
    }
    assert_eq!(taken, 3);
    // A limit of 0 refuses everything; an unknown connection gets nothing.
    let none = Rate::new(0, Duration::from_secs(1));
    assert!(
        !store
            .take_allowance(&on_c1, later + 10_000, none)
            .await
            .unwrap()
    );
    let ghost = Allowance::ConnectionActions("ghost".into());
    assert!(!store.take_allowance(&ghost, t0, rate).await.unwrap());
    assert!(
        store.get_connection("ghost").await.unwrap().is_none(),
        "no item was created"
    );
    // The record is still readable with the bucket on it.
    assert_eq!(
        store.get_connection("c1").await.unwrap().unwrap().user_id,
        "u"
    );
    // A user's bucket is its own item, with an expiry, outside the indexes.
    let user = Allowance::UserPublishes("u".into());
    assert!(store.take_allowance(&user, t0, rate).await.unwrap());
    let item = dynamo
        .get_item()
        .table_name(&name)
        .key("connectionId", AttributeValue::S("limit#publish#u".into()))
        .send()
        .await
        .unwrap();
    let expires: i64 = item.item().unwrap()["expiresAt"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires, (t0 + 1_000) / 1000 + 60);
    let page = store.user_connections("u", None).await.unwrap();
    assert_eq!(page.connection_ids, ["c1"]);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_token_buckets_hold_under_concurrent_takers() {
    let (dynamo, _) = clients().await;
    let name = table(&dynamo).await;
    let store = std::sync::Arc::new(DynamoStore::new(dynamo, name));
    store
        .put_connection(&common::record("c1", "u"))
        .await
        .unwrap();
    let rate = Rate::new(5, Duration::from_secs(60));
    let now = 1_795_381_200_000;
    for allowance in [
        Allowance::ConnectionActions("c1".into()),
        Allowance::UserActions("u".into()),
    ] {
        // 24 takers at once, the first ones on an absent bucket (the idle
        // form races), the rest on a busy one.
        let takers: Vec<_> = (0..24)
            .map(|i| {
                let (store, allowance) = (store.clone(), allowance.clone());
                tokio::spawn(
                    async move { store.take_allowance(&allowance, now + i % 3, rate).await },
                )
            })
            .collect();
        let mut passed = 0;
        for taker in takers {
            passed += usize::from(taker.await.unwrap().unwrap());
        }
        assert_eq!(passed, 5, "{allowance:?}: exactly the bucket");
    }
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_post_budget_books_concurrent_instances_in_turn_and_refuses_past_the_horizon() {
    use switchboard::ports::Booking;
    let (dynamo, _) = clients().await;
    let name = table(&dynamo).await;
    let store = std::sync::Arc::new(DynamoStore::new(dynamo.clone(), name.clone()));
    // 1,000 posts a second, 500 at once (pacing's bucket for 1,000).
    let rate = switchboard::pacing::budget(1_000).unwrap();
    let now = 1_795_381_200_000;
    let horizon = Duration::from_secs(2);
    // 30 instances book 100 posts each at once: the idle form races first.
    let bookers: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .reserve_allowance(&Allowance::Posts, 100, now, rate, horizon)
                    .await
            })
        })
        .collect();
    let mut waits = Vec::new();
    let mut refused = 0;
    for booker in bookers {
        match booker.await.unwrap().unwrap() {
            Booking::After(wait) => waits.push(wait.as_millis()),
            Booking::Full { retry_after } => {
                assert!(retry_after > Duration::ZERO);
                refused += 1;
            }
        }
    }
    waits.sort();
    // Five at once (the bucket's 500), then turns every 100 ms, none twice,
    // up to the 2 s horizon; the rest refused, and each refusal booked nothing.
    let expected: Vec<u128> = (0..waits.len() as u128)
        .map(|i| ((i + 1) * 100).saturating_sub(500))
        .collect();
    assert_eq!(waits, expected);
    assert_eq!(waits.len(), 25, "0 ms five times, then 100 ms … 2,000 ms");
    assert_eq!(refused, 5);
    let item = dynamo
        .get_item()
        .table_name(&name)
        .key(
            "connectionId",
            aws_sdk_dynamodb::types::AttributeValue::S("limit#posts".into()),
        )
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    let tat: i64 = item["tat"].as_n().unwrap().parse().unwrap();
    assert_eq!(tat, now * 1000 + 25 * 100_000, "25 bookings of 100 ms");
    let expires: i64 = item["expiresAt"].as_n().unwrap().parse().unwrap();
    assert!(
        expires > now / 1000 && expires < now / 1000 + 120,
        "{expires}"
    );
    // Much later the bucket is idle again: a booking goes at once.
    let later = store
        .reserve_allowance(&Allowance::Posts, 100, now + 60_000, rate, horizon)
        .await
        .unwrap();
    assert_eq!(later, Booking::After(Duration::ZERO));
    // A connection's own bucket cannot be booked ahead.
    assert!(
        store
            .reserve_allowance(
                &Allowance::ConnectionActions("c1".into()),
                1,
                now,
                rate,
                horizon
            )
            .await
            .is_err()
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_memberships_keep_user_groups_and_counters_apart_from_members() {
    use switchboard::ports::{Counter, Membership, MembershipStore};
    let (dynamo, _) = clients().await;
    let table = memberships_table(&dynamo).await;
    let store = DynamoMemberships::new(dynamo, table);
    assert!(store.add_user_group("alice", "vip", 2_000).await.unwrap());
    assert!(
        !store.add_user_group("alice", "vip", 2_000).await.unwrap(),
        "idempotent"
    );
    store.add_user_group("alice", "old", 1_000).await.unwrap();
    store.add_user_group("bob", "vip", 2_000).await.unwrap();
    assert_eq!(
        store.user_groups("alice", 1_500).await.unwrap(),
        ["vip"],
        "expired ones are gone"
    );
    assert!(store.remove_user_group("alice", "vip").await.unwrap());
    assert!(!store.remove_user_group("alice", "vip").await.unwrap());
    assert!(
        store
            .user_groups("alice", 0)
            .await
            .unwrap()
            .contains(&"old".to_string())
    );

    let alice = Counter::UserConnections("alice".into());
    assert_eq!(
        store.add_to_counter("vip", &alice, 1, 9_999).await.unwrap(),
        1
    );
    assert_eq!(
        store.add_to_counter("vip", &alice, 1, 9_999).await.unwrap(),
        2
    );
    assert_eq!(
        store
            .add_to_counter("vip", &alice, -1, 9_999)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .add_to_counter("vip", &Counter::OnlineUsers, 1, 9_999)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.counter("vip", &alice).await.unwrap(), 1);
    // A swap applies only from the value it names; a missing counter holds 0.
    let mark = Counter::Unannounced("alice".into());
    assert!(!store.swap_counter("vip", &mark, 1, 0, 9_999).await.unwrap());
    assert!(store.swap_counter("vip", &mark, 0, 1, 9_999).await.unwrap());
    assert!(!store.swap_counter("vip", &mark, 0, 1, 9_999).await.unwrap());
    assert_eq!(store.counter("vip", &mark).await.unwrap(), 1);
    assert!(store.swap_counter("vip", &mark, 1, 0, 9_999).await.unwrap());
    assert_eq!(store.counter("vip", &mark).await.unwrap(), 0);
    assert_eq!(
        store.counter("vip", &alice).await.unwrap(),
        1,
        "its own item"
    );
    assert_eq!(
        store
            .counter("vip", &Counter::UserConnections("zed".into()))
            .await
            .unwrap(),
        0
    );

    // None of that shows up as a member or a connection's group.
    store
        .join(&Membership {
            group: "vip".into(),
            connection_id: "c1".into(),
            user_id: "bob".into(),
            expires_at: 9_999,
        })
        .await
        .unwrap();
    assert_eq!(
        store.group_members("vip", None).await.unwrap().members,
        [("c1".to_string(), "bob".to_string())]
    );
    assert_eq!(store.connection_groups("c1").await.unwrap(), ["vip"]);
    assert_eq!(
        store.leave("vip", "c1").await.unwrap().as_deref(),
        Some("bob")
    );
}

/// What one send costs on AWS, measured at the adapter layer: DynamoDB and SQS
/// requests through a counting interceptor on moto, posts at the gateway.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn request_counts_per_delivered_message_by_target() {
    use switchboard::command_runner::run_command;
    use switchboard::handlers::deliver::deliver;
    use switchboard::ports::Membership;

    const N: usize = 250;
    let counted = Counted::new().await;
    let (counter, plain_sqs) = (&counted.counter, &counted.plain_sqs);
    let deliveries_url = queue(plain_sqs).await;
    let gateway = Arc::new(MemoryGateway::new());
    let services = counted
        .services(
            // Pages of 100 members: a group read costs ceil(N / 100) Queries.
            Some(100),
            gateway.clone(),
            Arc::new(SqsQueue::new(counted.sqs.clone(), deliveries_url.clone())),
            Settings::default(),
        )
        .await;
    // N connections: user "big" has all of them, all in "room"; "alice" has 3, one in "room".
    for i in 0..N {
        let id = format!("c{i:04}");
        let user = if i < 3 { "alice" } else { "big" };
        services
            .store
            .put_connection(&common::record(&id, user))
            .await
            .unwrap();
        services
            .memberships
            .join(&Membership {
                group: "room".into(),
                connection_id: id.clone(),
                user_id: user.into(),
                expires_at: 9_999_999_999,
            })
            .await
            .unwrap();
        gateway.open(&id);
    }
    // (target, command, connections reached, DynamoDB reads: (Query, GetItem))
    let targets = [
        (
            "connection",
            r#"{"version":1,"type":"sendToConnection","connectionId":"c0000","data":1}"#,
            1,
            (0, 0),
        ),
        (
            "user, 3 connections",
            r#"{"version":1,"type":"sendToUser","userId":"alice","data":1}"#,
            3,
            (1, 0),
        ),
        (
            "user in a group",
            r#"{"version":1,"type":"sendToUser","userId":"alice","group":"room","data":1}"#,
            3,
            (1, 3),
        ),
        (
            "group of 250, pages of 100",
            r#"{"version":1,"type":"sendToGroup","group":"room","data":1}"#,
            N,
            (3, 0),
        ),
        (
            "broadcast to 250",
            r#"{"version":1,"type":"broadcast","data":1}"#,
            N,
            (16, 0),
        ),
    ];
    println!(
        "| target | delivered | Query | GetItem | SendMessageBatch | Deliveries messages | posts | AWS requests per delivered message |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, body, expected, (queries, gets)) in targets {
        counter.reset();
        let posts_before = gateway.posts();
        let addressed = run_command(&services, Some(body)).await.unwrap();
        assert_eq!(addressed, expected, "{name}");
        let messages = receive_all(plain_sqs, &deliveries_url).await;
        for message in &messages {
            deliver(&services, Some(message)).await.unwrap();
        }
        let counts = counter.snapshot();
        let posts = gateway.posts() - posts_before;
        assert_eq!(
            posts, expected,
            "{name}: one post per connection, nothing repeated"
        );
        let batches = counts.get("SendMessageBatch").copied().unwrap_or(0);
        assert_eq!(messages.len(), expected.div_ceil(100), "{name}");
        assert_eq!(
            batches,
            messages.len().div_ceil(10),
            "{name}: ceil(messages / 10) batch calls"
        );
        let count = |op: &str| counts.get(op).copied().unwrap_or(0);
        assert_eq!(
            (count("Query"), count("GetItem")),
            (queries, gets),
            "{name}"
        );
        let dynamo = queries + gets;
        let other: Vec<_> = counts
            .keys()
            .filter(|op| !["Query", "GetItem", "SendMessageBatch"].contains(&op.as_str()))
            .collect();
        assert!(other.is_empty(), "{name}: unexpected requests {other:?}");
        let total = dynamo + batches + posts;
        println!(
            "| {name} | {expected} | {queries} | {gets} | {batches} | {} | {posts} | {:.3} |",
            messages.len(),
            total as f64 / expected as f64
        );
    }
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_idempotency_records_batch_expire_and_stay_out_of_the_indexes() {
    use switchboard::ports::{SHARDS, SentLog};
    let (dynamo, _) = clients().await;
    let name = table(&dynamo).await;
    let store = DynamoStore::new(dynamo, &name);
    // 130 keys: six BatchWriteItem calls of 25 and two BatchGetItem calls of 100.
    let keys: Vec<String> = (0..130).map(|i| format!("m-{i}#conn{i:03}")).collect();
    let (now, until) = (1_000_000, 1_000_600);
    store.record_posted(&keys[..120], until).await.unwrap();
    let posted = store.posted(&keys, now).await.unwrap();
    assert_eq!(posted.len(), 120);
    assert!(keys[..120].iter().all(|k| posted.contains(k)));
    assert!(!posted.contains(&keys[125]));
    // Past the window a record no longer counts, even before TTL deletes it.
    assert!(store.posted(&keys, until).await.unwrap().is_empty());
    // They are neither connections nor in the broadcast shards.
    assert!(store.get_connection("conn001").await.unwrap().is_none());
    for shard in 0..SHARDS {
        let page = store.shard_connections(shard, None).await.unwrap();
        assert!(page.connection_ids.is_empty(), "shard {shard}: {page:?}");
    }
}

/// `$disconnect` of a connection in N groups (and tombstones) on DynamoDB:
/// one keys-only Query, ceil(N/25) BatchWriteItem calls, the UpdateItems of
/// each presence group (its leave announced), and nothing left behind.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn disconnect_deletes_memberships_in_batches_of_25() {
    use switchboard::adapters::memory::MemoryQueue;
    use switchboard::membership::{forget, join_group, leave_group_in_order};
    use switchboard::ports::{Counter, Membership};

    let counted = Counted::new().await;
    let counter = &counted.counter;
    let deliveries = Arc::new(MemoryQueue::new());
    let services = counted
        .services(
            None,
            Arc::new(MemoryGateway::new()),
            deliveries.clone(),
            Settings {
                max_groups_per_connection: 200,
                ..Settings::default()
            },
        )
        .await;
    // 60 groups (2 with presence), a tombstone, and a neighbour that stays.
    const N: usize = 60;
    let join = |group: String, connection_id: &str| Membership {
        group,
        connection_id: connection_id.into(),
        user_id: "alice".into(),
        expires_at: 9_999_999_999,
    };
    for i in 0..N - 2 {
        join_group(&services, &join(format!("chat:{i}"), "c1"), false)
            .await
            .unwrap();
    }
    for group in ["presence:a", "presence:b"] {
        join_group(&services, &join(group.into(), "c1"), false)
            .await
            .unwrap();
    }
    leave_group_in_order(&services, "chat:gone", "c1", Some(5))
        .await
        .unwrap();
    join_group(&services, &join("chat:0".into(), "c2"), false)
        .await
        .unwrap();
    let store = &services.memberships;
    assert_eq!(store.connection_items("c1").await.unwrap().len(), N + 1);
    assert_eq!(store.connection_groups("c1").await.unwrap().len(), N);
    deliveries.drain();
    counter.reset();

    assert_eq!(forget(&services, "c1", true).await.unwrap(), N + 1);

    let counts = counter.snapshot();
    let count = |op: &str| counts.get(op).copied().unwrap_or(0);
    assert_eq!(count("BatchWriteItem"), (N + 1).div_ceil(25), "{counts:?}");
    // byConnection once, and each presence group's members for its leave.
    assert_eq!(count("Query"), 1 + 2, "{counts:?}");
    assert_eq!(
        count("DeleteItem"),
        2,
        "the record and the slot counter: {counts:?}"
    );
    // Per presence group: the leave, the slot, the user's and the online
    // counter, the check of the stay's `unannounced` mark, and the leave's
    // token booked from the user's presence-change bucket (a new bucket: the
    // busy form, then the idle one).
    assert_eq!(count("UpdateItem"), 2 * 7, "{counts:?}");
    assert!(store.connection_items("c1").await.unwrap().is_empty());
    assert_eq!(store.connection_groups("c2").await.unwrap(), ["chat:0"]);
    for group in ["presence:a", "presence:b"] {
        let alice = Counter::UserConnections("alice".into());
        assert_eq!(store.counter(group, &alice).await.unwrap(), 0);
        assert_eq!(
            store.counter(group, &Counter::OnlineUsers).await.unwrap(),
            0
        );
    }
}

/// The ordered membership writes on DynamoDB: a newer `seq` wins, an older
/// one is stale, a tombstone is invisible to reads, and the group slots cap a
/// connection's groups.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_memberships_apply_only_newer_sequences_and_cap_slots() {
    use switchboard::ports::{MembershipStore, MembershipWrite};

    let (dynamo, _) = clients().await;
    let name = memberships_table(&dynamo).await;
    let store = DynamoMemberships::new(dynamo, name);
    let m = switchboard::ports::Membership {
        group: "g".into(),
        connection_id: "c1".into(),
        user_id: "alice".into(),
        expires_at: 9_999,
    };
    assert_eq!(
        store
            .leave_in_order("g", "c1", Some(10), 9_999)
            .await
            .unwrap(),
        MembershipWrite::Unchanged,
        "a tombstone where there was nothing"
    );
    assert_eq!(
        store.join_in_order(&m, Some(9)).await.unwrap(),
        MembershipWrite::Stale
    );
    assert!(!store.is_member("g", "c1").await.unwrap());
    assert!(
        store
            .group_members("g", None)
            .await
            .unwrap()
            .members
            .is_empty()
    );
    assert!(store.connection_groups("c1").await.unwrap().is_empty());
    assert_eq!(store.connection_items("c1").await.unwrap(), ["g"]);
    assert_eq!(
        store.join_in_order(&m, Some(11)).await.unwrap(),
        MembershipWrite::Changed(())
    );
    assert_eq!(
        store.join_in_order(&m, None).await.unwrap(),
        MembershipWrite::Unchanged
    );
    assert_eq!(
        store
            .leave_in_order("g", "c1", Some(11), 9_999)
            .await
            .unwrap(),
        MembershipWrite::Stale
    );
    assert!(store.is_member("g", "c1").await.unwrap());
    assert_eq!(
        store
            .leave_in_order("g", "c1", Some(12), 9_999)
            .await
            .unwrap(),
        MembershipWrite::Changed("alice".into())
    );
    assert!(!store.is_member("g", "c1").await.unwrap());
    for _ in 0..2 {
        assert!(store.take_group_slot("c1", 2, 9_999).await.unwrap());
    }
    assert!(!store.take_group_slot("c1", 2, 9_999).await.unwrap());
    store.release_group_slot("c1").await.unwrap();
    assert!(store.take_group_slot("c1", 2, 9_999).await.unwrap());
    store.forget_group_slots("c1").await.unwrap();
    store.release_group_slot("c1").await.unwrap();
    assert!(
        store.take_group_slot("c1", 1, 9_999).await.unwrap(),
        "never below zero"
    );
}

// ------------------------------------------------------------ token keys (Secrets Manager)

async fn secrets_manager() -> switchboard::adapters::secrets_manager::SecretsManager {
    use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpConnector};
    let sdk = common::test_sdk_config(Some(&endpoint())).await;
    switchboard::adapters::secrets_manager::SecretsManager::new(
        SharedHttpConnector::new(switchboard::aws::https_connector(
            HttpConnectorSettings::default(),
            sdk.sleep_impl(),
        )),
        sdk.credentials_provider(),
        "us-east-1",
        Some(&endpoint()),
    )
}

/// A secret holding `text`; its ARN.
async fn secret(
    store: &switchboard::adapters::secrets_manager::SecretsManager,
    text: &str,
) -> String {
    let answer = store
        .call(
            "CreateSecret",
            serde_json::json!({ "Name": unique("token-keys"), "SecretString": text }).to_string(),
        )
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    answer["ARN"].as_str().unwrap().to_owned()
}

const ROTATING: &str = r#"{"current":{"kid":"2","secret":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},"previous":{"kid":"1","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#;

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn token_keys_are_read_from_secrets_manager_and_rotate_by_kid() {
    use std::time::Duration;
    use switchboard::auth::{AuthError, TokenPolicy, TokenSecret, TokenVerifier, claims_for, mint};
    let store = secrets_manager().await;
    let arn = secret(&store, ROTATING).await;
    let keys = store.token_keys(&arn).await.unwrap();
    assert_eq!(keys.current.kid(), Some("2"));
    let verifier = TokenVerifier::with_keys(&keys, &TokenPolicy::default());
    let claims = claims_for("u", Duration::from_secs(60), vec![]);
    let key = |kid, fill| TokenSecret::with_kid(kid, vec![fill; 32]).unwrap();
    // Minting uses the current key; the current and the previous key verify.
    let minted = mint(&keys.current, &claims).unwrap();
    assert_eq!(verifier.verify(&minted), Ok(claims.clone()));
    assert_eq!(
        verifier.verify(&mint(&key("1", b'a'), &claims).unwrap()),
        Ok(claims.clone())
    );
    assert_eq!(
        verifier.verify(&mint(&key("0", b'a'), &claims).unwrap()),
        Err(AuthError::UnknownKey)
    );
    // By name too, and the single-key form the template generates.
    let name = store
        .call(
            "DescribeSecret",
            serde_json::json!({ "SecretId": arn }).to_string(),
        )
        .await
        .unwrap();
    let name: serde_json::Value = serde_json::from_slice(&name).unwrap();
    let name = name["Name"].as_str().unwrap();
    assert_eq!(
        store.token_keys(name).await.unwrap().current.kid(),
        Some("2")
    );
    let single = secret(
        &store,
        r#"{"kid":"1","secret":"cccccccccccccccccccccccccccccccccccccccccccccccc"}"#,
    )
    .await;
    let keys = store.token_keys(&single).await.unwrap();
    assert_eq!(
        (keys.current.kid(), keys.previous.is_none()),
        (Some("1"), true)
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn token_keys_fail_closed_with_exact_errors() {
    use switchboard::auth::SecretError;
    let store = secrets_manager().await;
    let missing = store.token_keys("no-such-secret").await.unwrap_err();
    assert!(
        matches!(&missing, SecretError::Unavailable(m)
            // AWS answers 400, moto 404.
            if m.starts_with("GetSecretValue answered 4")
                && m.ends_with(" ResourceNotFoundException: Secrets Manager can't find the specified secret.")),
        "{missing}"
    );
    let plain = secret(&store, "dddddddddddddddddddddddddddddddddddd").await;
    let invalid = store.token_keys(&plain).await.unwrap_err();
    assert_eq!(
        invalid.to_string(),
        "the token secret is invalid: expected {\"current\":{\"kid\":…,\"secret\":…},\"previous\":{…}} or {\"kid\":…,\"secret\":…}"
    );
    // A store that does not answer: refused within the request timeout.
    let sdk = common::test_sdk_config(Some(&endpoint())).await;
    let closed = switchboard::adapters::secrets_manager::SecretsManager::new(
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(
            switchboard::aws::https_connector(Default::default(), sdk.sleep_impl()),
        ),
        sdk.credentials_provider(),
        "us-east-1",
        Some("http://127.0.0.1:9"),
    );
    assert!(matches!(
        closed.token_keys("x").await,
        Err(SecretError::Unavailable(m)) if m.starts_with("GetSecretValue failed: ")
    ));
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn the_lazy_key_source_reads_once_per_container() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use switchboard::auth::TokenKeySource;
    let store = secrets_manager().await;
    let arn = secret(&store, ROTATING).await;
    let reads = Arc::new(AtomicUsize::new(0));
    let source = {
        let (store, arn, reads) = (store.clone(), arn.clone(), reads.clone());
        TokenKeySource::lazy(move || {
            let (store, arn, reads) = (store.clone(), arn.clone(), reads.clone());
            async move {
                reads.fetch_add(1, Ordering::SeqCst);
                store.token_keys(&arn).await
            }
        })
    };
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "nothing is read before first use"
    );
    for _ in 0..3 {
        assert_eq!(source.keys().await.unwrap().current.kid(), Some("2"));
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

/// A fresh history table, shaped as template.yaml declares it.
async fn history_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("history");
    switchboard::adapters::dynamodb::create_history_table(client, &name)
        .await
        .unwrap();
    name
}

const FAR: i64 = 9_999_999_999;

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_history_offsets_are_unique_and_increasing_under_eight_appenders() {
    use switchboard::adapters::dynamodb::DynamoHistory;
    use switchboard::ports::History;
    let (dynamo, _) = clients().await;
    let history = std::sync::Arc::new(DynamoHistory::new(
        dynamo.clone(),
        history_table(&dynamo).await,
    ));
    let appenders: Vec<_> = (0..8)
        .map(|a| {
            let history = history.clone();
            tokio::spawn(async move {
                let mut positions = Vec::new();
                for n in 0..25 {
                    let frame = format!(r#"{{"a":{a},"n":{n}}}"#);
                    positions.push(
                        history
                            .append("group:chat", None, &frame, FAR, FAR)
                            .await
                            .unwrap(),
                    );
                }
                positions
            })
        })
        .collect();
    let mut offsets = Vec::new();
    let mut epochs = std::collections::BTreeSet::new();
    for appender in appenders {
        let positions = appender.await.unwrap();
        // Each appender sees its own offsets strictly increase.
        assert!(positions.windows(2).all(|w| w[0].offset < w[1].offset));
        offsets.extend(positions.iter().map(|p| p.offset));
        epochs.extend(positions.into_iter().map(|p| p.epoch));
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (1..=200).collect::<Vec<u64>>(), "unique, no gaps");
    assert_eq!(epochs.len(), 1);
    let epoch = epochs.into_iter().next().unwrap();
    let kept = history.read("group:chat", &epoch, 1, 200, 0).await.unwrap();
    assert_eq!(kept.len(), 200);
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, k)| k.offset == i as u64 + 1)
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_history_reads_ranges_and_sets_the_ttl_attribute() {
    use switchboard::adapters::dynamodb::DynamoHistory;
    use switchboard::ports::{History, Kept};
    let (dynamo, _) = clients().await;
    let table = history_table(&dynamo).await;
    let history = DynamoHistory::new(dynamo.clone(), table.clone());
    // A stream with no counter gets one, at offset 0.
    let start = history.position("user:alice", FAR).await.unwrap();
    assert_eq!(start.offset, 0);
    for n in 1..=10i64 {
        let position = history
            .append(
                "user:alice",
                None,
                &format!("{{\"n\":{n}}}"),
                1_000 + n,
                FAR,
            )
            .await
            .unwrap();
        assert_eq!(position.offset, n as u64);
        assert_eq!(position.epoch, start.epoch);
    }
    let epoch = &start.epoch;
    let kept = history.read("user:alice", epoch, 3, 7, 0).await.unwrap();
    assert_eq!(
        kept,
        (3..=7u64)
            .map(|n| Kept {
                offset: n,
                frame: format!("{{\"n\":{n}}}"),
            })
            .collect::<Vec<_>>()
    );
    // Another epoch's reader gets nothing; expired messages are not read.
    assert!(
        history
            .read("user:alice", "0000", 1, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let live = history
        .read("user:alice", epoch, 1, 10, 1_006)
        .await
        .unwrap();
    assert_eq!(
        live.iter().map(|k| k.offset).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    // The TTL attribute is on every message and on the counter.
    let item = |offset: u64| {
        let dynamo = dynamo.clone();
        let table = table.clone();
        async move {
            dynamo
                .get_item()
                .table_name(table)
                .key("stream", AttributeValue::S("user:alice".into()))
                .key("offset", AttributeValue::N(offset.to_string()))
                .send()
                .await
                .unwrap()
                .item()
                .cloned()
                .unwrap()
        }
    };
    assert_eq!(item(4).await["expiresAt"], AttributeValue::N("1004".into()));
    assert_eq!(
        item(0).await["expiresAt"],
        AttributeValue::N(FAR.to_string())
    );
    assert_eq!(item(0).await["top"], AttributeValue::N("10".into()));
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_history_keyed_appends_reuse_the_first_offset_even_when_racing() {
    use switchboard::adapters::dynamodb::DynamoHistory;
    use switchboard::ports::History;
    let (dynamo, _) = clients().await;
    let history = std::sync::Arc::new(DynamoHistory::new(
        dynamo.clone(),
        history_table(&dynamo).await,
    ));
    let first = history
        .append("user:bob", Some("sqs-1"), r#"{"n":1}"#, FAR, FAR)
        .await
        .unwrap();
    let again = history
        .append("user:bob", Some("sqs-1"), r#"{"n":1}"#, FAR, FAR)
        .await
        .unwrap();
    assert_eq!(again, first);
    // Four twins of one message at once: one offset for all of them.
    let twins: Vec<_> = (0..4)
        .map(|_| {
            let history = history.clone();
            tokio::spawn(async move {
                history
                    .append("user:bob", Some("sqs-2"), r#"{"n":2}"#, FAR, FAR)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut positions = Vec::new();
    for twin in twins {
        positions.push(twin.await.unwrap());
    }
    assert!(
        positions.iter().all(|p| p == &positions[0]),
        "{positions:?}"
    );
    let top = history.position("user:bob", FAR).await.unwrap();
    let kept = history
        .read("user:bob", &top.epoch, 1, top.offset, 0)
        .await
        .unwrap();
    // Contiguous offsets (losers leave empty placeholders); the message once.
    assert_eq!(kept.len() as u64, top.offset);
    let real: Vec<&str> = kept
        .iter()
        .map(|k| k.frame.as_str())
        .filter(|f| !f.is_empty())
        .collect();
    assert_eq!(real, vec![r#"{"n":1}"#, r#"{"n":2}"#]);
    assert_eq!(kept[positions[0].offset as usize - 1].frame, r#"{"n":2}"#);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dynamo_store_lists_only_the_connections_that_asked_for_envelopes() {
    let (dynamo, _) = clients().await;
    let store = DynamoStore::new(dynamo.clone(), table(&dynamo).await);
    let mut enveloped = common::record("c1", "alice");
    enveloped.envelope = true;
    store.put_connection(&enveloped).await.unwrap();
    store
        .put_connection(&common::record("c2", "alice"))
        .await
        .unwrap();
    assert_eq!(store.get_connection("c1").await.unwrap(), Some(enveloped));
    let page = store
        .user_envelope_connections("alice", None)
        .await
        .unwrap();
    assert_eq!(page.connection_ids, vec!["c1".to_owned()]);
    assert_eq!(
        store
            .user_connections("alice", None)
            .await
            .unwrap()
            .connection_ids
            .len(),
        2
    );
}

/// What history adds per message and per recovery, counted at the SDK
/// (the cost table in docs/server-api.md).
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn history_request_counts_per_message_and_per_recovery() {
    use switchboard::adapters::dynamodb::DynamoHistory;
    use switchboard::history::HistorySettings;
    use switchboard::history::Stream;
    use switchboard::recorder::Recorder;
    use switchboard::recovery::recover;
    let Counted {
        counter,
        dynamo,
        plain_dynamo,
        ..
    } = Counted::new().await;
    let history = DynamoHistory::new(dynamo, history_table(&plain_dynamo).await);
    let settings = HistorySettings::default();
    let recorder = Recorder {
        history: &history,
        settings: &settings,
    };
    let stream = Stream::User("alice".into());
    let counts = |pairs: &[(&str, usize)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let frame = r#"{"type":"message","from":"server","data":1}"#;
    recorder.append(&stream, None, frame).await.unwrap();
    assert_eq!(
        counter.snapshot(),
        counts(&[("PutItem", 1), ("UpdateItem", 1)])
    );
    counter.reset();
    recorder.append(&stream, Some("m-1"), frame).await.unwrap();
    assert_eq!(
        counter.snapshot(),
        counts(&[("GetItem", 1), ("PutItem", 2), ("UpdateItem", 1)])
    );
    counter.reset();
    // The same queue message again: its first offset, one read and a rewrite.
    recorder.append(&stream, Some("m-1"), frame).await.unwrap();
    assert_eq!(
        counter.snapshot(),
        counts(&[("GetItem", 1), ("PutItem", 1)])
    );
    for _ in 0..98 {
        recorder.append(&stream, None, frame).await.unwrap();
    }
    let epoch = history_epoch(&recorder, &stream).await;
    counter.reset();
    let mut budget = switchboard::recovery::Budget {
        messages: 200,
        bytes: usize::MAX,
    };
    let recovery = recover(&recorder, &stream, 0, &epoch, &mut budget)
        .await
        .unwrap();
    assert_eq!((recovery.messages.len(), recovery.lost), (100, None));
    // One counter read (UpdateItem: it creates a missing counter) and one ranged Query.
    assert_eq!(
        counter.snapshot(),
        counts(&[("Query", 1), ("UpdateItem", 1)])
    );
}

async fn history_epoch(
    recorder: &switchboard::recorder::Recorder<'_>,
    stream: &switchboard::history::Stream,
) -> String {
    recorder
        .history
        .position(&stream.key(), FAR)
        .await
        .unwrap()
        .epoch
}

/// The EventBridge sink: a rule on the bus (source `switchboard`) targeting an
/// SQS queue receives every event, as docs/upstream-events.md's example rule describes,
/// with detail-type the short type and the CloudEvent (its stable id) as detail.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn eventbridge_events_reach_a_queue_through_a_rule_on_the_bus() {
    use switchboard::adapters::eventbridge::EventBridge;
    use switchboard::upstream::{EventBus, Upstream, events};

    let sdk = common::test_sdk_config(Some(&endpoint())).await;
    let sqs = switchboard::aws::sqs(&sdk);
    let queue_url = queue(&sqs).await;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap();
    let bus_name = unique("upstream");
    let bus = switchboard::wiring::Wiring::new(sdk.clone())
        .event_bridge(&bus_name, Some(&endpoint()))
        .unwrap();
    // Set-up calls through the same signed JSON client the adapter uses.
    let settings = aws_smithy_runtime_api::client::http::HttpConnectorSettings::builder().build();
    let admin = EventBridge::client(
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(
            switchboard::aws::https_connector(settings, None),
        ),
        sdk.credentials_provider(),
        "us-east-1",
        Some(&endpoint()),
    );
    for (operation, body) in [
        ("CreateEventBus", serde_json::json!({ "Name": bus_name })),
        (
            "PutRule",
            serde_json::json!({
                "Name": "to-queue",
                "EventBusName": bus_name,
                "EventPattern": r#"{"source":["switchboard"]}"#,
            }),
        ),
        (
            "PutTargets",
            serde_json::json!({
                "Rule": "to-queue",
                "EventBusName": bus_name,
                "Targets": [{ "Id": "queue", "Arn": queue_arn }],
            }),
        ),
    ] {
        admin.call(operation, body.to_string()).await.unwrap();
    }

    let connected = events::connected(&events::Connected {
        connection_id: "c1",
        user_id: "alice",
        groups: &["room:1".to_owned()],
        source_ip: None,
        user_agent: None,
        connected_at_ms: 1_700_000_000_000,
    });
    let message = events::message("c1", "alice", "chat", &serde_json::json!({"x":1}), None);
    bus.put_events(std::slice::from_ref(&connected))
        .await
        .unwrap();
    // Through the producers' path too: Upstream::emit with only the bus on.
    let mut upstream = Upstream::default();
    upstream.bus = Some(std::sync::Arc::new(bus));
    upstream.emit(&message).await;
    assert_eq!(upstream.lost(), 0);

    let mut received: Vec<serde_json::Value> = Vec::new();
    for _ in 0..50 {
        received.extend(
            receive_all(&sqs, &queue_url)
                .await
                .iter()
                .map(|b| serde_json::from_str(b).unwrap()),
        );
        if received.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(received.len(), 2, "{received:?}");
    received.sort_by_key(|e| e["detail-type"].as_str().unwrap_or_default().to_owned());
    assert_eq!(received[0]["source"], "switchboard");
    assert_eq!(received[0]["detail-type"], "connected");
    assert_eq!(received[0]["detail"]["id"], "connected:c1");
    assert_eq!(
        received[0]["detail"]["data"]["groups"],
        serde_json::json!(["room:1"])
    );
    assert_eq!(received[1]["detail-type"], "message");
    assert_eq!(received[1]["detail"]["id"], message.id.as_str());
    assert_eq!(received[1]["detail"]["data"]["event"], "chat");

    // A bus that does not exist: the producer's route goes on, the loss is counted.
    let missing = switchboard::wiring::Wiring::new(sdk)
        .event_bridge("no-such-bus", Some(&endpoint()))
        .unwrap();
    let mut upstream = Upstream::default();
    upstream.bus = Some(std::sync::Arc::new(missing));
    upstream.emit(&message).await;
    assert_eq!(upstream.lost(), 1);
}

/// A Cognito-shaped token (the claims a user pool issues for id and access
/// tokens, signed RS256 by the test provider on 127.0.0.1) through the connect
/// handler on DynamoDB: accepted with its `cognito:groups` joined; a refresh
/// `token_use` and another app client's token refused with nothing written.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn a_cognito_token_connects_through_the_connect_handler_on_dynamodb() {
    use oidc_provider::{Provider, SigningKey};
    use serde_json::json;
    use switchboard::adapters::memory::MemoryQueue;
    use switchboard::auth::{TokenIssuers, TokenSecret, TokenVerifier};
    use switchboard::handlers::connect::handle_connect;
    use switchboard::oidc::{IssuerSettings, Oidc, OidcSettings};

    let key = SigningKey::rsa("pool-key", 0);
    let provider = Provider::start(&[&key]).await;
    let mut issuer = IssuerSettings::new(&provider.issuer, vec!["app-client".into()]).unwrap();
    issuer.groups_claim = Some("cognito:groups".into());
    issuer.token_use = vec!["id".into(), "access".into()];
    let settings = OidcSettings::new(vec![issuer]).unwrap();
    let fetcher = switchboard::aws::fetcher(settings.fetch_timeout, None);
    let oidc: Arc<dyn TokenIssuers> = Arc::new(Oidc::new(&settings, Arc::new(fetcher)));
    let verifier =
        Ok(TokenVerifier::new(&TokenSecret::new(common::SECRET).unwrap()).with_issuers(Some(oidc)));
    let counted = Counted::new().await;
    let services = counted
        .services(
            None,
            Arc::new(MemoryGateway::new()),
            Arc::new(MemoryQueue::new()),
            Settings::default(),
        )
        .await;
    let now = switchboard::clock::now_seconds() as u64;
    let claims = |token_use: &str, client: &str| {
        let mut claims = json!({
            "sub": "7d2e4f6a-8b0c-4d1e-a3f5-b7c9d1e3f5a7", "cognito:groups": ["team:green"],
            "iss": provider.issuer, "token_use": token_use, "auth_time": now, "iat": now,
            "exp": now + 3600, "jti": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "origin_jti": "1f2e3d4c-5b6a-7988-9786-b5a4c3d2e1f0",
            "event_id": "2f3e4d5c-6b7a-8998-a796-c5b4a3d2e1f0",
        });
        if token_use == "access" {
            claims["client_id"] = json!(client);
            claims["scope"] = json!("aws.cognito.signin.user.admin");
            claims["username"] = json!("dana");
        } else {
            claims["aud"] = json!(client);
            claims["cognito:username"] = json!("dana");
        }
        claims
    };
    for (id, token_use) in [("c-id", "id"), ("c-access", "access")] {
        let token = key.sign(&claims(token_use, "app-client"));
        let response = handle_connect(
            &services,
            &verifier,
            &common::connect_event(id, Some(&token)),
        )
        .await;
        assert_eq!(
            response.status_code,
            200,
            "{:?}",
            common::body_text(&response)
        );
        let record = services.store.get_connection(id).await.unwrap().unwrap();
        assert_eq!(record.user_id, "7d2e4f6a-8b0c-4d1e-a3f5-b7c9d1e3f5a7");
        assert_eq!(
            services.memberships.connection_groups(id).await.unwrap(),
            ["team:green"]
        );
    }
    for (token, message) in [
        (
            key.sign(&claims("refresh", "app-client")),
            "unauthorized: the token's claims are invalid: \"token_use\" is not id or access",
        ),
        (
            key.sign(&claims("access", "other-client")),
            "unauthorized: the token's audience (aud) is not accepted",
        ),
    ] {
        let response = handle_connect(
            &services,
            &verifier,
            &common::connect_event("c-bad", Some(&token)),
        )
        .await;
        assert_eq!(
            (response.status_code, common::body_text(&response)),
            (
                401,
                Some(json!({ "message": message }).to_string().as_str())
            )
        );
        assert_eq!(services.store.get_connection("c-bad").await.unwrap(), None);
        assert!(
            services
                .memberships
                .connection_groups("c-bad")
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(provider.jwks_requests(), 1);
}
