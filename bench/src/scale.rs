//! `make bench-scale`: a broadcast and a group send to 100,000 and 1,000,000
//! virtual connections, and to 10,000 real sockets, through the local stack
//! with AWS's Management API quota emulated (`--aws-quotas`: 10,000 posts/s,
//! burst 5,000) and a network-like post latency.
//!
//! Every case runs in its own child process (`scale-case`, this binary), so
//! each has a fresh stack and its own peak RSS (`VmHWM`), and is killed at its
//! time bound. The send goes the real way: `POST /send` (the HTTP API
//! handler pages the group's members or the 16 broadcast shards and enqueues
//! Deliveries messages of 100), the deliver handler's posts, the Management
//! API. The child prints one JSON line: [`Case`].

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::posting::PostingPolicy;
use switchboard::services::Settings;
use switchboard_local::emulation::{AWS_ACCOUNT_BURST, AWS_ACCOUNT_RATE, AwsLatency, Latency};
use switchboard_local::virtual_connections::VirtualSpread;
use switchboard_local::{Config, GatewayMode, RunningStack};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::clients::now_micros;
use crate::fanout::{bench_config, connect_clients, post};

/// Connections per virtual user (at most the default per-user cap of 10).
const PER_USER: usize = 5;
/// The group every connection of a case is in.
const GROUP: &str = "virtual:0";
const REAL_GROUP: &str = "bench";
const DATA: &str = "the quick brown fox jumps over the lazy dog";

/// The template's values the stack runs with (template.yaml): the Deliveries
/// queue's visibility timeout, maxReceiveCount, the deliver function's
/// timeout and its event source's MaximumConcurrency.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(90);
const MAX_RECEIVE_COUNT: u32 = 5;
const HANDLER_TIMEOUT: Duration = Duration::from_secs(15);
const SOURCE_CONCURRENCY: usize = 50;

/// Where `make bench-scale` writes its cases as JSON.
pub const JSON_FILE: &str = "BENCHMARKS-scale.json";

/// The post latency the runs assume: median 10 ms, 99th percentile 40 ms.
pub const LATENCY: &str = "10ms,40ms";

/// What one case measured.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub target: String,
    /// "virtual" or "real sockets".
    pub sockets: String,
    pub n: u64,
    /// Every connection had the message.
    pub complete: bool,
    pub reached: u64,
    /// From the send to the last delivered post (virtual) or the last client's frame (real).
    pub seconds: f64,
    /// N ÷ 10,000/s.
    pub quota_seconds: f64,
    /// How long `POST /send` took to answer 202.
    pub send_seconds: f64,
    pub posts: u64,
    pub throttled: u64,
    pub dead_letters: u64,
    /// The stack's budget of posts a second (`POST_RATE_LIMIT`; 0: unpaced,
    /// each instance finding the quota by its own 429s).
    pub budget: u32,
    /// Time to make the virtual connections (each by `$connect`), or to connect the real ones.
    pub setup_seconds: f64,
    pub rss_after_setup: u64,
    pub peak_rss: u64,
}

impl Case {
    pub fn ratio(&self) -> f64 {
        self.seconds / self.quota_seconds
    }

    pub fn posts_per_delivered(&self) -> f64 {
        self.posts as f64 / self.reached.max(1) as f64
    }

    pub fn to_json(&self) -> Value {
        json!({
            "target": self.target, "sockets": self.sockets, "n": self.n,
            "complete": self.complete, "reached": self.reached,
            "seconds": self.seconds, "quotaSeconds": self.quota_seconds,
            "ratio": self.ratio(), "sendSeconds": self.send_seconds,
            "posts": self.posts, "postsPerDelivered": self.posts_per_delivered(),
            "throttled": self.throttled, "deadLetters": self.dead_letters,
            "budget": self.budget,
            "setupSeconds": self.setup_seconds, "rssAfterSetup": self.rss_after_setup,
            "peakRss": self.peak_rss,
        })
    }

    fn from_json(v: &Value) -> Option<Case> {
        Some(Case {
            target: v["target"].as_str()?.to_owned(),
            sockets: v["sockets"].as_str()?.to_owned(),
            n: v["n"].as_u64()?,
            complete: v["complete"].as_bool()?,
            reached: v["reached"].as_u64()?,
            seconds: v["seconds"].as_f64()?,
            quota_seconds: v["quotaSeconds"].as_f64()?,
            send_seconds: v["sendSeconds"].as_f64()?,
            posts: v["posts"].as_u64()?,
            throttled: v["throttled"].as_u64()?,
            dead_letters: v["deadLetters"].as_u64()?,
            // Runs before pacing had none.
            budget: v["budget"].as_u64().map_or(0, |b| b as u32),
            setup_seconds: v["setupSeconds"].as_f64()?,
            rss_after_setup: v["rssAfterSetup"].as_u64()?,
            peak_rss: v["peakRss"].as_u64()?,
        })
    }
}

/// The cases of a run's JSON file (what `make bench-scale` wrote).
pub fn cases_from_json(text: &str) -> Result<Vec<Case>, String> {
    let values: Vec<Value> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    values
        .iter()
        .map(|v| Case::from_json(v).ok_or_else(|| format!("bad case: {v}")))
        .collect()
}

/// This process's resident set: now (`VmRSS`) or its peak (`VmHWM`), bytes.
fn rss(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The longest a case may run after its setup: four quota bounds plus a
/// minute (a redelivery after the 90 s visibility timeout fits once).
fn bound(n: usize) -> Duration {
    Duration::from_secs_f64(4.0 * n as f64 / f64::from(AWS_ACCOUNT_RATE) + 120.0)
}

fn stack_config(n_virtual: usize, budget: u32) -> Result<Config, String> {
    Ok(Config {
        gateway: GatewayMode::InProcess,
        visibility_timeout: VISIBILITY_TIMEOUT,
        max_receive_count: MAX_RECEIVE_COUNT,
        handler_timeout: HANDLER_TIMEOUT,
        source_concurrency: SOURCE_CONCURRENCY,
        management_quota: Some((AWS_ACCOUNT_RATE, AWS_ACCOUNT_BURST)),
        aws_latency: AwsLatency {
            post: Latency::parse(LATENCY)?,
            ..AwsLatency::default()
        },
        virtual_connections: VirtualSpread {
            connections: n_virtual,
            users: n_virtual.div_ceil(PER_USER),
            groups: usize::from(n_virtual > 0),
            group_size: 0,
        },
        settings: Settings {
            posting: PostingPolicy {
                rate_limit: budget,
                ..PostingPolicy::default()
            },
            ..bench_config().settings
        },
        // The real-socket case's clients are one user (as in the fan-out bench).
        ..bench_config()
    })
}

fn dead_letters(stack: &RunningStack) -> u64 {
    ["notify-user", "notify-connection", "commands", "deliveries"]
        .iter()
        .filter_map(|q| stack.dead_letters(q))
        .map(|d| d.len() as u64)
        .sum()
}

fn body(target: &str, group: &str) -> String {
    match target {
        "broadcast" => format!(r#"{{"all":true,"data":"{DATA}"}}"#),
        _ => format!(r#"{{"group":"{group}","data":"{DATA}"}}"#),
    }
}

/// One case, in this process (the `scale-case` child): prints its JSON line.
pub async fn case(target: &str, n: usize, real: bool, budget: u32) -> Result<(), String> {
    let started = Instant::now();
    let stack = switchboard_local::start(stack_config(if real { 0 } else { n }, budget)?)
        .await
        .map_err(|e| e.to_string())?;
    let mut clients = None;
    if real {
        clients = Some(connect_clients(&stack, n, REAL_GROUP, Duration::from_secs(120)).await?);
    }
    let setup_seconds = started.elapsed().as_secs_f64();
    let rss_after_setup = rss("VmRSS:");
    if let Some(clients) = clients.as_mut() {
        clients.expect(n).await?;
    }
    let t0 = now_micros();
    let send = body(target, if real { REAL_GROUP } else { GROUP });
    match post(&stack, "/send", &send).await? {
        202 => {}
        status => return Err(format!("/send answered {status}")),
    }
    let send_seconds = (now_micros() - t0) as f64 / 1e6;
    let deadline = Instant::now() + bound(n);
    let (complete, end_us) = match clients.as_mut() {
        Some(clients) => match tokio::time::timeout(bound(n), clients.done()).await {
            Ok(Ok(last)) => (true, last),
            _ => (false, now_micros()),
        },
        None => loop {
            let stats = stack.management_stats();
            if stats.virtual_connections.reached >= n as u64 {
                break (true, stats.last_delivered_ms as u64 * 1000);
            }
            if Instant::now() > deadline {
                break (false, now_micros());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        },
    };
    // Late redeliveries and dead letters show within a moment of the last post.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = stack.management_stats();
    let reached = if real {
        if complete { n as u64 } else { 0 }
    } else {
        stats.virtual_connections.reached
    };
    let result = Case {
        target: target.to_owned(),
        sockets: if real { "real sockets" } else { "virtual" }.to_owned(),
        n: n as u64,
        complete,
        reached,
        seconds: end_us.saturating_sub(t0) as f64 / 1e6,
        quota_seconds: n as f64 / f64::from(AWS_ACCOUNT_RATE),
        send_seconds,
        posts: stats.posts,
        throttled: stats.throttled_account,
        dead_letters: dead_letters(&stack),
        budget,
        setup_seconds,
        rss_after_setup,
        peak_rss: rss("VmHWM:"),
    };
    println!("{}", result.to_json());
    if let Some(clients) = clients {
        clients.stop().await;
    }
    // The stack's tasks end with the process.
    std::process::exit(0);
}

/// Runs each case in a child process, bounded; returns what they measured.
pub async fn run(virtual_ns: &[usize], real_n: usize) -> Result<Vec<Case>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cases = Vec::new();
    let paced = switchboard::pacing::TEMPLATE_RATE;
    let mut plan: Vec<(&str, usize, bool, u32)> = Vec::new();
    if real_n > 0 {
        plan.extend([
            ("broadcast", real_n, true, paced),
            ("group send", real_n, true, paced),
        ]);
    }
    for (i, &n) in virtual_ns.iter().enumerate() {
        plan.push(("broadcast", n, false, paced));
        if i == 0 {
            // The same-run baseline for the posts per message: no shared
            // budget, each instance finding the quota by its own 429s.
            plan.push(("broadcast", n, false, 0));
        }
        plan.push(("group send", n, false, paced));
    }
    for (target, n, real, budget) in plan {
        eprintln!(
            "bench-scale: {target} to {n} {}, budget {budget}/s",
            if real {
                "real sockets"
            } else {
                "virtual connections"
            }
        );
        let mut command = tokio::process::Command::new(&exe);
        command.args([
            "scale-case",
            "--target",
            target,
            "--n",
            &n.to_string(),
            "--budget",
            &budget.to_string(),
        ]);
        if real {
            command.arg("--real");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a case: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // Setup (a million `$connect`s) plus the case's own bound.
        let limit = bound(n) + Duration::from_secs(300);
        let line = tokio::time::timeout(limit, lines.next_line()).await;
        let _ = child.kill().await;
        let line = match line {
            Ok(Ok(Some(line))) => line,
            Ok(_) => return Err(format!("{target} to {n}: the case ended without a result")),
            Err(_) => return Err(format!("{target} to {n}: no result within {limit:?}")),
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        let case = Case::from_json(&value).ok_or_else(|| format!("bad case line: {line}"))?;
        eprintln!("  {line}");
        cases.push(case);
    }
    Ok(cases)
}
