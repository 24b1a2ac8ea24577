//! Fan-out: the local stack against a bare tokio-tungstenite broadcast, same
//! N clients, same bytes, same machine, same run.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use switchboard::auth::{claims_for, mint};
use switchboard::rate::Rate;
use switchboard::services::Limits;
use switchboard::services::Settings;
use switchboard_local::{Config, GatewayMode, RunningStack};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::clients::now_micros;

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    pub target: &'static str,
    /// How the stack's handlers posted: "SDK over HTTP" or "in-process".
    pub posts: &'static str,
    pub n: usize,
    /// Median milliseconds from the send until the last client had the message.
    pub stack_ms: f64,
    pub bare_ms: f64,
    /// Stack RSS growth per idle connection, bytes (measured once, at the largest N).
    pub rss_per_connection: Option<f64>,
}

pub(crate) const GROUP: &str = "bench";
pub(crate) const DATA: &str =
    "the quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over";

/// The frame a group member receives, which the bare server sends verbatim.
fn group_frame() -> String {
    format!(r#"{{"type":"message","from":"server","group":"{GROUP}","data":"{DATA}"}}"#)
}

/// The client process, driven line by line.
pub(crate) struct Clients {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    expected: u64,
}

impl Clients {
    pub(crate) async fn start(url: &str, n: usize) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .args(["clients", "--url", url, "--n", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the client process: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut clients = Clients {
            child,
            stdin,
            stdout,
            expected: 0,
        };
        let ready = tokio::time::timeout(Duration::from_secs(120), clients.stdout.next_line())
            .await
            .map_err(|_| format!("{n} clients did not connect within 120 s"))?
            .map_err(|e| e.to_string())?;
        if ready.as_deref() != Some("READY") {
            return Err(format!("client process: {ready:?}"));
        }
        Ok(clients)
    }

    /// Announces one more message per client; returns a future for its arrival.
    pub(crate) async fn expect(&mut self, n: usize) -> Result<(), String> {
        self.expected += n as u64;
        let line = format!("EXPECT {}\n", self.expected);
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())
    }

    /// The wall-clock µs at which the last client had the message.
    pub(crate) async fn done(&mut self) -> Result<u64, String> {
        let line = self
            .stdout
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the client process ended")?;
        line.strip_prefix("DONE ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("round failed: {line}"))
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Resident set size of this process, bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A minimal POST to the stack's HTTP API; returns the status.
pub(crate) async fn post(stack: &RunningStack, path: &str, body: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(stack.addr())
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        stack.addr(),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP answer: {answer}"))
}

/// Runs `rounds` measured sends (after one warm-up) and returns the median ms.
/// [`measure`] of one `POST path` with `body` to the stack, answered 202.
pub(crate) async fn measure_post(
    clients: &mut Clients,
    stack: &RunningStack,
    n: usize,
    rounds: usize,
    path: &str,
    body: &str,
) -> Result<f64, String> {
    measure(clients, n, rounds, || async move {
        match post(stack, path, body).await? {
            202 => Ok(()),
            status => Err(format!("{path} answered {status}")),
        }
    })
    .await
}

pub(crate) async fn measure<F, Fut>(
    clients: &mut Clients,
    n: usize,
    rounds: usize,
    send: F,
) -> Result<f64, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut times = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        clients.expect(n).await?;
        let start = now_micros();
        send().await?;
        let last = clients.done().await?;
        if round > 0 {
            times.push(last.saturating_sub(start) as f64 / 1000.0);
        }
    }
    Ok(median(times))
}

/// The benches' stack: loopback on a free port, a fixed token secret, and no
/// per-user caps, for every bench client is the one user `bench` (the per-user
/// connection cap and handshake rate would refuse all but the first few; the
/// benches measure fan-out, not admission).
pub fn bench_config() -> Config {
    Config {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        token_secret: Some(BENCH_SECRET.into()),
        settings: Settings {
            limits: Limits {
                user_actions: Rate::new(1_000_000, Duration::from_secs(1)),
                max_connections_per_user: u32::MAX,
                ..Limits::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    }
}

/// The token secret of [`bench_config`].
pub const BENCH_SECRET: &str = "bench-secret-bench-secret-bench-secret!";

/// `n` WebSocket clients of user `bench` in `group` (by token), once every
/// `$connect` has returned (the stack's registry holds them all), within `within`.
pub async fn connect_clients(
    stack: &RunningStack,
    n: usize,
    group: &str,
    within: Duration,
) -> Result<Clients, String> {
    let token = mint(
        stack.secret(),
        &claims_for("bench", Duration::from_secs(3600), vec![group.into()]),
    )
    .map_err(|e| e.to_string())?;
    let clients = Clients::start(&format!("{}?token={token}", stack.websocket_url()), n).await?;
    let deadline = tokio::time::Instant::now() + within;
    while stack.open_connections() < n {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} connections registered",
                stack.open_connections()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(clients)
}

/// The stack: N clients of one user, all in group `bench` by token.
async fn stack_case(
    n: usize,
    rounds: usize,
    measure_rss: bool,
    gateway: GatewayMode,
) -> Result<Vec<Row>, String> {
    let stack = switchboard_local::start(Config {
        gateway,
        ..bench_config()
    })
    .await
    .map_err(|e| e.to_string())?;
    let before = rss_bytes();
    let mut clients = connect_clients(&stack, n, GROUP, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_per_connection = match (measure_rss, before, rss_bytes()) {
        (true, Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / n as f64),
        _ => None,
    };
    let group_body = format!(r#"{{"group":"{GROUP}","data":"{DATA}"}}"#);
    let all_body = format!(r#"{{"all":true,"data":"{DATA}"}}"#);
    let user_body = format!(r#"{{"userId":"bench","data":"{DATA}"}}"#);
    let mut rows = Vec::new();
    for (target, path, body) in [
        ("NotifyUser", "/queues/notify-user", user_body),
        ("group send", "/send", group_body),
        ("broadcast", "/send", all_body),
    ] {
        let ms = measure_post(&mut clients, &stack, n, rounds, path, &body).await?;
        rows.push(Row {
            target,
            posts: posts_label(gateway),
            n,
            stack_ms: ms,
            bare_ms: f64::NAN,
            rss_per_connection,
        });
    }
    clients.stop().await;
    stack.shutdown().await;
    Ok(rows)
}

/// The baseline: a bare tokio-tungstenite server that keeps a writer task per
/// connection and, on a send, hands the same bytes to every one.
async fn bare_case(n: usize, rounds: usize) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let senders: Arc<Mutex<Vec<mpsc::UnboundedSender<Message>>>> = Arc::default();
    let accept = {
        let senders = senders.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let senders = senders.clone();
                tokio::spawn(async move {
                    // The stack's socket settings: a small read buffer, no write buffering.
                    let config =
                        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                            .read_buffer_size(4096)
                            .write_buffer_size(0);
                    let Ok(socket) =
                        tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                    else {
                        return;
                    };
                    let (mut write, mut read) = socket.split();
                    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
                    if let Ok(mut all) = senders.lock() {
                        all.push(tx);
                    }
                    tokio::spawn(async move { while read.next().await.is_some() {} });
                    while let Some(message) = rx.recv().await {
                        if write.send(message).await.is_err() {
                            break;
                        }
                    }
                });
            }
        })
    };
    let mut clients = Clients::start(&format!("ws://{addr}/"), n).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while senders.lock().map(|s| s.len()).unwrap_or(0) < n {
        if tokio::time::Instant::now() > deadline {
            return Err("bare server: clients did not all register".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let frame = Utf8Bytes::from(group_frame());
    let ms = measure(&mut clients, n, rounds, || {
        let frame = frame.clone();
        let senders = senders.clone();
        async move {
            let all = senders.lock().map_err(|_| "poisoned")?;
            for tx in all.iter() {
                let _ = tx.send(Message::Text(frame.clone()));
            }
            Ok(())
        }
    })
    .await?;
    clients.stop().await;
    accept.abort();
    Ok(ms)
}

fn posts_label(gateway: GatewayMode) -> &'static str {
    match gateway {
        GatewayMode::Sdk => "SDK over HTTP",
        GatewayMode::InProcess => "in-process",
    }
}

/// Every case, the stack first at the largest N (so its RSS is measured in a
/// process that has not yet held other sockets), then the baselines.
pub async fn run(ns: &[usize], rounds: usize) -> Result<Vec<Row>, String> {
    let rounds = rounds.clamp(1, 50);
    let mut ns = ns.to_vec();
    ns.sort_unstable_by(|a, b| b.cmp(a));
    let mut rows = Vec::new();
    for (i, &n) in ns.iter().enumerate() {
        for (j, gateway) in [GatewayMode::Sdk, GatewayMode::InProcess]
            .into_iter()
            .enumerate()
        {
            eprintln!("fan-out: stack ({}), N = {n}", posts_label(gateway));
            rows.extend(stack_case(n, rounds, i == 0 && j == 0, gateway).await?);
        }
    }
    for &n in &ns {
        eprintln!("fan-out: bare broadcast, N = {n}");
        let bare = bare_case(n, rounds).await?;
        for row in rows.iter_mut().filter(|r| r.n == n) {
            row.bare_ms = bare;
        }
    }
    rows.sort_by_key(|r| (r.n, r.target, r.posts));
    Ok(rows)
}
