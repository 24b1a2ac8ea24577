//! Seconds, not minutes, after a failed post: with the template's 60 s
//! visibility timeout and one post in five failing (429, 500, or a stall past
//! the attempt timeout), a NotifyUser message to each of 100 real clients and
//! a broadcast to all of them reach every client within 10 s, and nothing
//! lands in a dead-letter queue. Before the fast retries, a failed
//! NotifyConnection record waited out the whole 60 s visibility timeout.
//!
//! Bounded: 100 clients, 2 messages each, at most 12 s of waiting.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use support::*;
use switchboard::posting::PostingPolicy;
use switchboard::services::Settings;
use switchboard_local::Config;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 100;
const GOAL: Duration = Duration::from_secs(10);
/// How long a client waits at most (past [`GOAL`], so a late client is
/// reported with its time rather than as missing).
const WAIT: Duration = Duration::from_secs(12);

/// When the client saw the NotifyUser message and the broadcast, from `start`.
async fn receive(mut client: Client, start: Instant) -> (Option<Duration>, Option<Duration>) {
    let (mut by_user, mut by_broadcast) = (None, None);
    let deadline = start + WAIT;
    while by_user.is_none() || by_broadcast.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match tokio::time::timeout(left, client.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!("socket ended early: {other:?}"),
            Err(_) => break,
        };
        if let Message::Text(text) = frame {
            if text.contains("\"to-user\"") {
                by_user.get_or_insert(start.elapsed());
            }
            if text.contains("\"to-everyone\"") {
                by_broadcast.get_or_insert(start.elapsed());
            }
        }
    }
    (by_user, by_broadcast)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_twenty_percent_faults_with_60_s_visibility_every_client_has_it_within_10_s() {
    let stack = stack_with(Config {
        // The template's visibility timeout (maxReceiveCount 3, from support).
        visibility_timeout: Duration::from_secs(60),
        fault_rate: 0.2,
        fault_stall: Duration::from_millis(1500),
        settings: Settings {
            posting: PostingPolicy {
                // Far above a loopback post's latency, so only injected stalls time out.
                post_timeout: Duration::from_millis(1000),
                ..PostingPolicy::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    let mut clients = Vec::new();
    for k in 0..CLIENTS {
        clients.push(connect(&stack, &format!("user-{k}")).await);
    }
    let start = Instant::now();
    let receivers: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(receive(client, start)))
        .collect();
    for k in 0..CLIENTS {
        let body = format!(r#"{{"userId":"user-{k}","data":{{"kind":"to-user"}}}}"#);
        stack.enqueue("notify-user", body).await.unwrap();
    }
    let broadcast = r#"{"version":1,"type":"broadcast","data":{"kind":"to-everyone"}}"#;
    stack.enqueue("commands", broadcast.into()).await.unwrap();

    let mut last_user = Duration::ZERO;
    let mut last_broadcast = Duration::ZERO;
    let mut late = Vec::new();
    for (k, receiver) in receivers.into_iter().enumerate() {
        let (by_user, by_broadcast) = receiver.await.unwrap();
        match (by_user, by_broadcast) {
            (Some(u), Some(b)) if u <= GOAL && b <= GOAL => {
                last_user = last_user.max(u);
                last_broadcast = last_broadcast.max(b);
            }
            other => late.push((k, other)),
        }
    }
    println!(
        "20% faults, 60 s visibility: last NotifyUser client after {:.1} s, last broadcast client after {:.1} s",
        last_user.as_secs_f64(),
        last_broadcast.as_secs_f64()
    );
    assert!(
        late.is_empty(),
        "clients without both messages within {GOAL:?} (user, broadcast): {late:?}"
    );
    for queue in ["notify-user", "notify-connection", "commands", "deliveries"] {
        assert_eq!(
            stack.dead_letters(queue).map(|d| d.len()),
            Some(0),
            "{queue}: nothing dead-lettered"
        );
    }
    stack.shutdown().await;
}
