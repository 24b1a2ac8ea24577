//! Latency: the common sends end to end on the local stack, real WebSocket
//! clients on 127.0.0.1, each case in every [`COLUMNS`] way (with no emulated
//! latency, and with `--aws-latency`'s), same run.
//!
//! - a client `publish` to a group of 5 (the sender is a sixth member, and is
//!   excluded): from the sender's frame to the last member's frame;
//! - NotifyUser (`POST /queues/notify-user`) to a user with 2 connections;
//! - `POST /send` to one connection;
//! - a client `publish` to a group of 1,000.
//!
//! Each round waits for the last frame before the next starts, so a round's
//! time is one message's end-to-end latency, not a queue's backlog. The
//! members live in a child process ([`Clients`]); the sender in this one.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use switchboard::auth::{claims_for, mint};
use switchboard::rate::Rate;
use switchboard_local::emulation::AwsLatency;
use switchboard_local::{Config, GatewayMode, RunningStack};
use tokio_tungstenite::tungstenite::Message;

use crate::clients::now_micros;
use crate::fanout::{Clients, bench_config, connect_clients, post};

/// One way of running every case: a column of the table.
pub struct Column {
    pub name: &'static str,
    /// The stack's configuration for this way (from [`stack_config`]).
    pub configure: fn(&mut Config),
}

/// The ways each case runs, in the table's order. A way (the direct path,
/// when there is one) is one more entry here.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "no emulated latency",
        configure: |_| {},
    },
    Column {
        name: "--aws-latency",
        configure: |config| config.aws_latency = AwsLatency::aws(),
    },
];

/// One case: what is sent, to how many, how often.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub kind: Kind,
    /// Connections that receive each message.
    pub receivers: usize,
    pub rounds: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A client `publish` to a group of `receivers` others.
    Publish,
    /// `POST /queues/notify-user` to a user with `receivers` connections.
    NotifyUser,
    /// `POST /send` to one connection.
    SendToConnection,
}

/// The cases, in the table's order.
pub const CASES: &[Case] = &[
    Case {
        name: "publish to a group of 5",
        kind: Kind::Publish,
        receivers: 5,
        rounds: 100,
    },
    Case {
        name: "NotifyUser, 2 connections",
        kind: Kind::NotifyUser,
        receivers: 2,
        rounds: 100,
    },
    Case {
        name: "POST /send to one connection",
        kind: Kind::SendToConnection,
        receivers: 1,
        rounds: 100,
    },
    Case {
        name: "publish to a group of 1,000",
        kind: Kind::Publish,
        receivers: 1_000,
        rounds: 10,
    },
];

/// A case's times in one column: milliseconds, p50 and p99.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One case in every column, in [`COLUMNS`]' order.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: Case,
    pub times: Vec<Times>,
}

const GROUP: &str = "room:latency";
const DATA: &str = "hello, room";
/// The longest one round may take before the run fails.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// The latency bench's stack: the benches' own ([`bench_config`]), posting in
/// process (the emulated latency, not this machine's HTTP, is what a round
/// waits for), the sender unthrottled.
pub fn stack_config() -> Config {
    let mut config = bench_config();
    config.gateway = GatewayMode::InProcess;
    config.settings.publish_limit = 1_000_000;
    config.settings.limits.connection_actions = Rate::new(1_000_000, Duration::from_secs(1));
    config
}

/// The sender: a member of [`GROUP`] allowed to publish to it.
async fn sender(
    stack: &RunningStack,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let mut claims = claims_for("sender", Duration::from_secs(3600), vec![GROUP.into()]);
    claims.publish = vec![GROUP.into()];
    let token = mint(stack.secret(), &claims).map_err(|e| e.to_string())?;
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}", stack.websocket_url()))
            .await
            .map_err(|e| format!("sender: {e}"))?;
    Ok(socket)
}

/// Runs `case` in `column`: a stack of its own, `case.receivers` members
/// (user `bench`), one warm-up round, then `case.rounds` measured.
async fn run_case(case: &Case, column: &Column) -> Result<Times, String> {
    let mut config = stack_config();
    (column.configure)(&mut config);
    let stack = switchboard_local::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut clients =
        connect_clients(&stack, case.receivers, GROUP, Duration::from_secs(60)).await?;
    let mut times = Vec::with_capacity(case.rounds);
    match case.kind {
        Kind::Publish => {
            let mut socket = sender(&stack).await?;
            // The sender's own frames (its acks) are read and dropped.
            for round in 0..=case.rounds {
                clients.expect(case.receivers).await?;
                let frame = format!(
                    r#"{{"action":"publish","group":"{GROUP}","data":"{DATA}","id":{round}}}"#
                );
                let start = now_micros();
                socket
                    .send(Message::text(frame))
                    .await
                    .map_err(|e| e.to_string())?;
                let last = done_within(&mut clients, async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await?;
                if round > 0 {
                    times.push(last.saturating_sub(start) as f64 / 1000.0);
                }
            }
        }
        Kind::NotifyUser | Kind::SendToConnection => {
            let (path, body) = if case.kind == Kind::NotifyUser {
                (
                    "/queues/notify-user",
                    format!(r#"{{"userId":"bench","data":"{DATA}"}}"#),
                )
            } else {
                let page = stack
                    .store()
                    .user_connections("bench", None)
                    .await
                    .map_err(|e| e.to_string())?;
                let id = page
                    .connection_ids
                    .first()
                    .ok_or("no connection of user bench")?
                    .clone();
                (
                    "/send",
                    format!(r#"{{"connectionId":"{id}","data":"{DATA}"}}"#),
                )
            };
            for round in 0..=case.rounds {
                clients.expect(case.receivers).await?;
                let start = now_micros();
                match post(&stack, path, &body).await? {
                    200 | 202 => {}
                    status => return Err(format!("{path} answered {status}")),
                }
                let last = done_within(&mut clients, std::future::pending()).await?;
                if round > 0 {
                    times.push(last.saturating_sub(start) as f64 / 1000.0);
                }
            }
        }
    }
    clients.stop().await;
    stack.shutdown().await;
    Ok(percentiles(times))
}

/// The µs at which the last member had this round's message, driving `beside`
/// (the sender's socket) meanwhile; an error after [`ROUND_LIMIT`].
async fn done_within(
    clients: &mut Clients,
    beside: impl std::future::Future<Output = ()>,
) -> Result<u64, String> {
    let done = tokio::time::timeout(ROUND_LIMIT, async {
        tokio::select! {
            done = clients.done() => done,
            () = beside => Err("the sender's socket closed".to_owned()),
        }
    });
    done.await
        .map_err(|_| format!("a round took longer than {ROUND_LIMIT:?}"))?
}

/// p50 and p99 (nearest rank) of `times`.
fn percentiles(mut times: Vec<f64>) -> Times {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len().max(1));
        times.get(rank - 1).copied().unwrap_or(f64::NAN)
    };
    Times {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// Every case in every column.
pub async fn run() -> Result<Vec<Row>, String> {
    let started = Instant::now();
    let mut rows = Vec::new();
    for case in CASES {
        let mut times = Vec::new();
        for column in COLUMNS {
            eprintln!("latency: {}, {}", case.name, column.name);
            times.push(run_case(case, column).await?);
        }
        rows.push(Row { case: *case, times });
    }
    eprintln!("latency: {:.0} s", started.elapsed().as_secs_f64());
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let times: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(
            percentiles(times),
            Times {
                p50_ms: 50.0,
                p99_ms: 99.0
            }
        );
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentiles(ten).p99_ms, 10.0, "p99 of 10 is the largest");
    }
}
