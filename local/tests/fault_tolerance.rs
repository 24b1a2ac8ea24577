//! Fault tolerance on the local stack, with real WebSocket clients: 10,000
//! queued messages while the Management API fails one post in five (429, 500,
//! or a stall past the SDK's attempt timeout) and a handler that outlives its
//! timeout is cut off mid-batch. Nothing may be lost; duplicates are counted
//! and reported (SQS and the Management API give at-least-once delivery).
//!
//! Bounded: 10,000 messages, 20 clients, at most 150 s for delivery.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use support::*;
use switchboard::posting::PostingPolicy;
use switchboard::services::Settings;
use switchboard_local::{Config, GatewayMode};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 20;
/// Per client: messages through NotifyConnection and through NotifyUser.
const BY_CONNECTION: usize = 450;
const BY_USER: usize = 50;
const MESSAGES: usize = CLIENTS * (BY_CONNECTION + BY_USER);
const DELIVERY_BUDGET: Duration = Duration::from_secs(150);
const POISON: &str = "{\"connectionId\": oops}";
const GHOST: &str = "Z2hvc3QtY29ubmVjdGlvbg==";
const GHOST_MESSAGES: u64 = 5;

/// How many times each message number reached a client; hands the client
/// back so it stays connected (the stack counts posts to open connections).
async fn receive(
    mut client: Client,
    expected: usize,
    deadline: Instant,
) -> (HashMap<u64, u32>, Client) {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    while seen.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(left, client.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!("socket ended early: {other:?}"),
            Err(_) => break,
        };
        if let Message::Text(text) = frame {
            let value: serde_json::Value = serde_json::from_str(&text).expect("a JSON frame");
            let n = value["n"].as_u64().expect("a numbered message");
            *seen.entry(n).or_default() += 1;
        }
    }
    (seen, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_under_twenty_percent_faults_are_all_delivered() {
    under_faults(GatewayMode::Sdk).await;
}

/// The same with `--gateway in-process`: its own attempt timeout and retries
/// stand in for the SDK client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_gateway_delivers_them_all_too() {
    under_faults(GatewayMode::InProcess).await;
}

async fn under_faults(gateway: GatewayMode) {
    let label = format!("fault tolerance ({gateway:?})");
    let stack = switchboard_local::start(Config {
        gateway,
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        // Failed records come back 100 ms after failing.
        visibility_timeout: Duration::from_millis(100),
        max_receive_count: 10,
        source_concurrency: 32,
        fault_rate: 0.2,
        // A stall outlives the attempt timeout; two in a row (2 s) outlive
        // the handler's 1.8 s, so some batches are cut off mid-way.
        fault_stall: Duration::from_millis(1500),
        handler_timeout: Duration::from_millis(1800),
        settings: Settings {
            posting: PostingPolicy {
                concurrency: 10,
                // Far above a loopback post's latency, even in a debug build on a
                // busy machine, so only injected stalls time out.
                post_timeout: Duration::from_millis(1000),
                post_attempts: 2,
                post_backoff: Duration::from_millis(20),
                ..PostingPolicy::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    })
    .await
    .unwrap();

    // A connection that is gone (no socket) but still has a record from long ago.
    put_stale_record(&stack, GHOST, "ghost").await;

    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for k in 0..CLIENTS {
        let user = format!("user-{k}");
        clients.push(connect(&stack, &user).await);
        let connection_ids = connections_of(&stack, &user).await;
        assert_eq!(connection_ids.len(), 1);
        ids.push(connection_ids[0].clone());
    }

    let started = Instant::now();
    let deadline = started + DELIVERY_BUDGET;
    let receivers: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(receive(client, BY_CONNECTION + BY_USER, deadline)))
        .collect();

    // The poison goes first, the gone connection's messages next, then the
    // 10,000, interleaved across clients and queues.
    stack
        .enqueue("notify-connection", POISON.into())
        .await
        .unwrap();
    for n in 0..GHOST_MESSAGES {
        let body = format!(r#"{{"connectionId":"{GHOST}","data":{{"ghost":{n}}}}}"#);
        stack.enqueue("notify-connection", body).await.unwrap();
    }
    // Their batch holds no live connection, so no fault can cut it off and
    // redeliver it: the post count below is exact.
    let ghost_deadline = Instant::now() + Duration::from_secs(10);
    while stack.posts_to(GHOST) < GHOST_MESSAGES {
        assert!(
            Instant::now() < ghost_deadline,
            "the gone connection's messages were not posted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 0..MESSAGES {
        let k = n % CLIENTS;
        // Even-numbered messages carry an idempotency id, odd ones do not.
        let id = if n % 2 == 0 {
            format!(r#","id":"m-{n}""#)
        } else {
            String::new()
        };
        let body = if (n / CLIENTS) < BY_USER {
            format!(r#"{{"userId":"user-{k}","data":{{"n":{n}}}{id}}}"#)
        } else {
            format!(r#"{{"connectionId":"{}","data":{{"n":{n}}}{id}}}"#, ids[k])
        };
        let queue = if body.starts_with(r#"{"userId""#) {
            "notify-user"
        } else {
            "notify-connection"
        };
        stack.enqueue(queue, body).await.unwrap();
    }

    let mut received: HashMap<u64, u32> = HashMap::new();
    let mut open = Vec::new();
    for receiver in receivers {
        let (seen, client) = receiver.await.unwrap();
        received.extend(seen);
        open.push(client);
    }
    let elapsed = started.elapsed();

    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|n| !received.contains_key(&(*n as u64)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {MESSAGES} messages never arrived within {DELIVERY_BUDGET:?}; first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(received.len(), MESSAGES, "only numbered messages arrive");
    let frames: u64 = received.values().map(|c| u64::from(*c)).sum();
    let duplicates = frames - MESSAGES as u64;
    let duplicates_of = |even: bool| -> u64 {
        received
            .iter()
            .filter(|(n, _)| (*n % 2 == 0) == even)
            .map(|(_, c)| u64::from(*c) - 1)
            .sum()
    };
    let (with_id, without_id) = (duplicates_of(true), duplicates_of(false));
    println!(
        "{label}: duplicates: {with_id} of the 5,000 messages with an id, \
         {without_id} of the 5,000 without"
    );
    // Ids stop the redeliveries of cut-off batches from posting again; what
    // remains comes from posts answered after their attempt timeout.
    assert!(
        with_id * 3 < without_id,
        "idempotency ids did not cut duplicates: {with_id} with, {without_id} without"
    );
    let posts: u64 = ids.iter().map(|id| stack.posts_to(id)).sum();
    println!(
        "{label}: {MESSAGES} messages, 20% faults: all delivered in {:.1} s; \
         {frames} frames received ({duplicates} duplicates, {:.2}%); \
         {posts} Management API posts ({:.2} per message)",
        elapsed.as_secs_f64(),
        duplicates as f64 * 100.0 / MESSAGES as f64,
        posts as f64 / MESSAGES as f64,
    );
    // Faults were really injected and retried: one post in five fails.
    assert!(
        posts >= frames + MESSAGES as u64 / 10,
        "{posts} posts for {frames} frames: the faults did not happen"
    );

    // Handlers were cut off mid-batch, and their delivered records came back.
    let cut_off = stack.handler_timeouts();
    println!("{label}: {cut_off} batches cut off at the handler timeout");
    assert!(
        cut_off > 0,
        "no handler was cut off: the test lost its point"
    );

    // The gone connection: each of its messages was posted once, answered
    // 410, never retried, and its record is gone.
    assert_eq!(stack.posts_to(GHOST), GHOST_MESSAGES);
    assert!(stack.store().get_connection(GHOST).await.unwrap().is_none());

    // The poison ends in the dead letters, alone, with its parse error; it
    // held back none of the 10,000 above.
    let dead_deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = stack.dead_letters("notify-connection").unwrap();
        if !dead.is_empty() || Instant::now() > dead_deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1, "only the poison is dead-lettered");
    assert_eq!(dead[0].body, POISON);
    assert_eq!(dead[0].receive_count, 10);
    // Its last receive may have been in a batch a stall cut off: then the
    // error says so and keeps the handler's own.
    let parse_error = "malformed message: expected value at line 1 column 18";
    assert!(
        dead[0].last_error == parse_error
            || dead[0].last_error
                == format!(
                    "handler timed out after 1.8s (its handler's last error: {parse_error})"
                ),
        "{}",
        dead[0].last_error
    );
    for queue in ["notify-user", "deliveries", "commands"] {
        assert_eq!(stack.dead_letters(queue).unwrap().len(), 0, "{queue}");
    }
    drop(open);
    stack.shutdown().await;
}
