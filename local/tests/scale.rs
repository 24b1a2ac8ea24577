//! Scale emulation on the local stack: virtual connections made by `$connect`
//! and reached through the real handlers beside real sockets, and the
//! Management API's account-level throttle (docs/local-stack.md, "Scale").

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use switchboard::services::Settings;
use switchboard_local::emulation::AwsLatency;
use switchboard_local::virtual_connections::VirtualSpread;
use switchboard_local::{Config, GatewayMode};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn stats(stack: &switchboard_local::RunningStack) -> Value {
    let answer = http(stack, "GET", "/management/stats", "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    parse(&answer.body)
}

async fn send(stack: &switchboard_local::RunningStack, body: &str) -> u64 {
    let answer = http(stack, "POST", "/send", body).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    parse(&answer.body)["addressed"].as_u64().unwrap()
}

const N: usize = 5_000;

#[tokio::test]
async fn a_broadcast_reaches_every_virtual_connection_and_the_real_sockets_once() {
    let stack = stack_with(Config {
        virtual_connections: VirtualSpread {
            connections: N,
            users: 1_000,
            groups: 2,
            group_size: 2_000,
        },
        // The Management API's own code without the HTTP round trip (the
        // HTTP endpoint is asserted below): a loaded 2-core machine stays fast.
        gateway: GatewayMode::InProcess,
        ..Config::default()
    })
    .await;
    // The records and memberships are what $connect writes.
    let record = stack.store().get_connection("virtual-4242").await.unwrap();
    let record = record.expect("virtual-4242 has a record");
    assert_eq!(record.user_id, "virtual-user-848");
    assert!(
        record.groups.is_empty(),
        "4242 is past the two groups of 2,000"
    );
    let record = stack.store().get_connection("virtual-2001").await.unwrap();
    assert_eq!(record.unwrap().groups, ["virtual:1"]);
    assert_eq!(
        connections_of(&stack, "virtual-user-0").await,
        [
            "virtual-0",
            "virtual-1",
            "virtual-2",
            "virtual-3",
            "virtual-4"
        ]
    );
    let mut alice = connect(&stack, "alice").await;
    let mut bob = connect(&stack, "bob").await;

    assert_eq!(
        send(&stack, r#"{"all":true,"data":"to all"}"#).await,
        N as u64 + 2
    );
    let frame = r#"{"type":"message","from":"server","data":"to all"}"#;
    assert_eq!(next_text(&mut alice).await, frame);
    assert_eq!(next_text(&mut bob).await, frame);
    eventually("every virtual connection reached", || async {
        stats(&stack).await["virtualConnections"]["reached"] == N as u64
    })
    .await;
    let tally = &stats(&stack).await["virtualConnections"];
    assert_eq!(tally["delivered"], N as u64, "{tally}");
    assert_eq!(tally["mostToOne"], 1, "no connection got it twice: {tally}");

    // A group send reaches its 2,000 members and nobody else.
    assert_eq!(
        send(&stack, r#"{"group":"virtual:1","data":"g"}"#).await,
        2_000
    );
    eventually("the group's members reached", || async {
        stats(&stack).await["virtualConnections"]["delivered"] == N as u64 + 2_000
    })
    .await;
    assert_eq!(stack.posts_to("virtual-2000"), 2);
    assert_eq!(stack.posts_to("virtual-1999"), 1);
    silent(&mut alice, Duration::from_millis(200)).await;
    let s = stats(&stack).await;
    assert_eq!(s["throttledAccount"], 0);
    assert_eq!(s["refused"], 0);
    assert_eq!(s["delivered"], N as u64 + 2 + 2_000);

    // DELETE runs $disconnect; then the connection is gone, as a real one.
    let deleted = http(&stack, "DELETE", "/@connections/virtual-7", "").await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    eventually("virtual-7's record removed by $disconnect", || async {
        stack
            .store()
            .get_connection("virtual-7")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let again = http(&stack, "DELETE", "/@connections/virtual-7", "").await;
    assert_eq!(again.status, 410);
    for id in ["virtual-7", "virtual-5000", "virtual-07"] {
        let post = http(&stack, "POST", &format!("/@connections/{id}"), "x").await;
        assert_eq!(post.status, 410, "{id}");
        assert_eq!(post.header("x-amzn-ErrorType"), Some("GoneException"));
    }
    assert_eq!(
        send(&stack, r#"{"all":true,"data":"again"}"#).await,
        N as u64 + 1
    );
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"message","from":"server","data":"again"}"#
    );
    eventually("the others reached again", || async {
        stats(&stack).await["virtualConnections"]["delivered"] == 2 * N as u64 + 2_000 - 1
    })
    .await;
    assert_eq!(
        stack.posts_to("virtual-7"),
        2,
        "the broadcast, then one 410"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn virtual_connections_over_the_per_user_cap_are_refused_at_start() {
    let refused = switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        virtual_connections: VirtualSpread {
            connections: 100,
            users: 5,
            ..VirtualSpread::default()
        },
        ..Config::default()
    })
    .await;
    let error = refused.err().expect("20 per user is over the cap of 10");
    assert!(error.is_usage());
    assert_eq!(
        error.to_string(),
        "--virtual-connections 100 over --virtual-users 5 is 20 connections per user; \
         $connect admits at most --max-connections-per-user 10: raise it or add users"
    );
}

#[tokio::test]
async fn the_account_throttle_answers_429_limit_exceeded_beyond_its_burst() {
    let stack = stack_with(Config {
        virtual_connections: VirtualSpread {
            connections: 10,
            ..VirtualSpread::default()
        },
        // 1 per second, a burst of 3.
        management_quota: Some((1, 3)),
        ..Config::default()
    })
    .await;
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..10 {
        answers.push(http(&stack, "POST", &format!("/@connections/virtual-{i}"), "hi").await);
    }
    let seconds = started.elapsed().as_secs();
    let delivered = answers.iter().filter(|a| a.status == 200).count() as u64;
    let throttled: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(delivered + throttled.len() as u64, 10);
    // The bucket's arithmetic: the burst, plus one per whole second that passed.
    assert!(delivered >= 3, "{delivered}");
    assert!(delivered <= 3 + seconds + 1, "{delivered} in {seconds} s");
    assert!(answers[..3].iter().all(|a| a.status == 200));
    let refusal = throttled.first().expect("at least one 429");
    assert_eq!(
        refusal.header("x-amzn-ErrorType"),
        Some("LimitExceededException")
    );
    assert_eq!(
        parse(&refusal.body),
        serde_json::json!({"message": "Rate exceeded"})
    );
    let s = stats(&stack).await;
    assert_eq!(s["throttledAccount"], throttled.len() as u64);
    assert_eq!(s["delivered"], delivered);
    assert_eq!(
        (s["accountRate"].clone(), s["accountBurst"].clone()),
        (1.into(), 3.into())
    );
    // Nothing was delivered to a throttled connection.
    assert_eq!(s["virtualConnections"]["reached"], delivered);
    let metrics = http(&stack, "GET", "/metrics", "").await.body;
    let line = format!(
        "switchboard_management_posts_total{{answer=\"throttled_account\"}} {}",
        throttled.len()
    );
    assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    stack.shutdown().await;
}

#[tokio::test]
async fn by_default_posts_are_not_throttled_nor_delayed() {
    let config = Config::default();
    assert_eq!(config.management_quota, None);
    assert_eq!(config.aws_latency, AwsLatency::default());
    assert_eq!(config.virtual_connections, VirtualSpread::default());
    let stack = stack_with(config).await;
    let _alice = connect(&stack, "alice").await;
    let id = connections_of(&stack, "alice").await.remove(0);
    for _ in 0..50 {
        let post = http(
            &stack,
            "POST",
            &format!("/@connections/{}", urlencode(&id)),
            "x",
        )
        .await;
        assert_eq!(post.status, 200, "{}", post.body);
    }
    let s = stats(&stack).await;
    assert_eq!(s["posts"], 50);
    assert_eq!(s["throttledAccount"], 0);
    assert_eq!(s["accountRate"], Value::Null);
    assert_eq!(s["postLatency"], "None");
    assert_eq!(s["virtualConnections"]["connections"], 0);
    stack.shutdown().await;
}

/// Hardening, item 3's last clause: many users publishing into one big group
/// at once degrade into paced posts, not dead letters. 40 real publishers
/// (each its own user) and 460 virtual members are one group; all 40 publish
/// at once: 19,960 posts through a throttle of 4,000/s with the stack's
/// budget at 95 % of it, as on AWS. Every member gets every event exactly
/// once, within seconds (no visibility timeout is waited out: it is 30 s),
/// with next to no 429s and nothing dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_users_publishing_into_one_big_group_at_once_are_paced_not_dead_lettered() {
    use futures::{SinkExt, StreamExt};
    use switchboard::auth::{claims_for, mint};
    use switchboard::posting::PostingPolicy;
    use tokio_tungstenite::tungstenite::Message;

    const PUBLISHERS: usize = 40;
    const VIRTUAL: usize = 460;
    let stack = stack_with(Config {
        virtual_connections: VirtualSpread {
            connections: VIRTUAL,
            users: VIRTUAL / 5,
            groups: 1,
            group_size: 0,
        },
        gateway: GatewayMode::InProcess,
        management_quota: Some((4_000, 2_000)),
        visibility_timeout: Duration::from_secs(30),
        settings: Settings {
            posting: PostingPolicy {
                rate_limit: 3_800,
                ..PostingPolicy::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    let mut clients = Vec::new();
    for k in 0..PUBLISHERS {
        let mut claims = claims_for(
            &format!("publisher-{k}"),
            Duration::from_secs(300),
            vec!["virtual:0".into()],
        );
        claims.publish = vec!["virtual:*".into()];
        let token = mint(stack.secret(), &claims).unwrap();
        clients.push(try_connect(&stack, Some(&token)).await.unwrap());
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(k, mut client)| {
            tokio::spawn(async move {
                let frame =
                    format!(r#"{{"action":"publish","group":"virtual:0","data":{k},"id":{k}}}"#);
                client.send(Message::text(frame)).await.unwrap();
                let mut events = std::collections::BTreeMap::new();
                let mut acked = false;
                while events.len() < PUBLISHERS - 1 || !acked {
                    let Ok(Some(Ok(Message::Text(text)))) =
                        tokio::time::timeout_at(deadline, client.next()).await
                    else {
                        break;
                    };
                    let v = parse(&text);
                    match v["type"].as_str() {
                        Some("ack") => {
                            assert_eq!(v["ok"], true, "{text}");
                            acked = true;
                        }
                        Some("message") => {
                            *events.entry(v["data"].as_u64().unwrap()).or_insert(0u32) += 1;
                        }
                        _ => panic!("unexpected frame {text}"),
                    }
                }
                (k, acked, events, client)
            })
        })
        .collect();
    let mut open = Vec::new();
    for reader in readers {
        let (k, acked, events, client) = reader.await.unwrap();
        assert!(acked, "publisher {k} got no ack");
        let expected: Vec<u64> = (0..PUBLISHERS as u64).filter(|&n| n != k as u64).collect();
        assert_eq!(
            events.keys().copied().collect::<Vec<_>>(),
            expected,
            "publisher {k}"
        );
        assert!(
            events.values().all(|&n| n == 1),
            "publisher {k}: duplicates"
        );
        open.push(client);
    }
    let posts = (VIRTUAL * PUBLISHERS + PUBLISHERS * (PUBLISHERS - 1)) as u64;
    eventually("every virtual member has every event", || async {
        stats(&stack).await["virtualConnections"]["delivered"] == (VIRTUAL * PUBLISHERS) as u64
    })
    .await;
    let took = started.elapsed();
    let s = stats(&stack).await;
    let tally = &s["virtualConnections"];
    assert_eq!(tally["reached"], VIRTUAL as u64, "{tally}");
    assert_eq!(tally["mostToOne"], PUBLISHERS as u64, "{tally}");
    assert_eq!(s["delivered"], posts, "{s}");
    let throttled = s["throttledAccount"].as_u64().unwrap();
    println!(
        "{PUBLISHERS} publishers into a group of {}: {posts} posts in {:.1} s \
         (throttle 4,000/s: {:.1} s), {throttled} answered 429",
        VIRTUAL + PUBLISHERS,
        took.as_secs_f64(),
        posts as f64 / 4_000.0
    );
    assert!(
        throttled * 100 <= posts,
        "{throttled} 429s for {posts} posts: the budget did not pace them"
    );
    for queue in ["notify-user", "notify-connection", "commands", "deliveries"] {
        assert_eq!(
            stack.dead_letters(queue).unwrap_or_default().len(),
            0,
            "{queue}"
        );
    }
    // Each Deliveries message's booking is one PostBudgetWait value.
    let metrics = http(&stack, "GET", "/metrics", "").await.body;
    let bookings: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"switchboard_post_budget_wait_milliseconds_count{function="deliver"} "#,
            )
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no deliver bookings in /metrics"));
    // 40 publishes into 500 members: at least 5 Deliveries messages each.
    assert!(bookings >= 200, "{bookings} bookings");
    drop(open);
}

#[tokio::test]
async fn under_aws_latency_a_notify_user_takes_at_least_its_hops() {
    use switchboard_local::emulation::Latency;
    let ms = |n| Latency::Fixed(Duration::from_millis(n));
    // Fixed times, so the bound is exact: two queue hops (NotifyUser, then
    // NotifyConnection), at least one DynamoDB call (the user's connections)
    // and one post. Real queues and handlers, so only a lower bound holds.
    let stack = stack_with(Config {
        aws_latency: AwsLatency {
            route: ms(5),
            queue: ms(40),
            store: ms(10),
            post: ms(15),
        },
        ..Config::default()
    })
    .await;
    let mut alice = connect(&stack, "alice").await;
    let start = Instant::now();
    let answer = http(
        &stack,
        "POST",
        "/queues/notify-user",
        r#"{"userId":"alice","data":"slow"}"#,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let frame = next_text(&mut alice).await;
    let elapsed = start.elapsed();
    assert_eq!(frame, "slow", "a user message arrives as its data");
    assert!(
        elapsed >= Duration::from_millis(2 * 40 + 10 + 15),
        "two queue hops, a query and a post: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let latency = stats(&stack).await["postLatency"].clone();
    assert_eq!(latency, "Fixed(15ms)");
    stack.shutdown().await;
}
