//! Time to the last client under injected faults: NotifyUser, group and
//! broadcast sends to N real clients through the local stack with the
//! template's 60 s visibility timeout and `--fault-rate 0.2` (a third each
//! 429, 500, a stall past the attempt timeout), against the same sends on the
//! same stack settings without faults, same run.

use std::time::Duration;

use switchboard_local::Config;

use crate::fanout::{DATA, GROUP, bench_config, connect_clients, measure_post};

/// The goal: every client has the message within this long under faults.
pub const GOAL_MS: f64 = 10_000.0;

/// One target's times, with and without faults.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: &'static str,
    pub n: usize,
    pub fault_rate: f64,
    /// Median ms from the send to the last client, without faults and with them.
    pub clean_ms: f64,
    pub faults_ms: f64,
}

/// The three targets' median times on a stack with `fault_rate`.
async fn case(
    n: usize,
    rounds: usize,
    fault_rate: f64,
) -> Result<Vec<(&'static str, f64)>, String> {
    let stack = switchboard_local::start(Config {
        // The template's visibility timeout: before fast retries, a failed record waited it out.
        visibility_timeout: Duration::from_secs(60),
        fault_rate,
        ..bench_config()
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut clients = connect_clients(&stack, n, GROUP, Duration::from_secs(60)).await?;
    let mut times = Vec::new();
    for (target, path, body) in [
        (
            "NotifyUser",
            "/queues/notify-user",
            format!(r#"{{"userId":"bench","data":"{DATA}"}}"#),
        ),
        (
            "group send",
            "/send",
            format!(r#"{{"group":"{GROUP}","data":"{DATA}"}}"#),
        ),
        (
            "broadcast",
            "/send",
            format!(r#"{{"all":true,"data":"{DATA}"}}"#),
        ),
    ] {
        let ms = measure_post(&mut clients, &stack, n, rounds, path, &body).await?;
        times.push((target, ms));
    }
    clients.stop().await;
    stack.shutdown().await;
    Ok(times)
}

/// Every target to `n` clients, without faults then with `fault_rate`.
pub async fn run(n: usize, rounds: usize, fault_rate: f64) -> Result<Vec<Row>, String> {
    let rounds = rounds.clamp(1, 10);
    eprintln!("faults: N = {n}, no faults");
    let clean = case(n, rounds, 0.0).await?;
    eprintln!("faults: N = {n}, fault rate {fault_rate}");
    let faults = case(n, rounds, fault_rate).await?;
    Ok(clean
        .into_iter()
        .zip(faults)
        .map(|((target, clean_ms), (_, faults_ms))| Row {
            target,
            n,
            fault_rate,
            clean_ms,
            faults_ms,
        })
        .collect())
}
