//! Recovery: the time a client that was away takes to get N missed user
//! messages with one `recover`, against the time the same N messages take to
//! reach it live, on the local stack (same process, same run, same client).

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard::auth::{claims_for, mint};
use switchboard::history::HistorySettings;
use switchboard::rate::Rate;
use switchboard::services::Limits;
use switchboard::services::Settings;
use switchboard_local::{Config, RunningStack};
use tokio_tungstenite::tungstenite::Message;

use crate::fanout::BENCH_SECRET as SECRET;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One run's medians.
#[derive(Debug, Clone)]
pub struct Row {
    pub messages: usize,
    pub rounds: usize,
    /// Milliseconds from the first enqueue until the client held all N live.
    pub live_ms: f64,
    /// Milliseconds from sending `recover` until the `recovered` frame.
    pub recover_ms: f64,
}

/// Every wait is bounded.
const WAIT: Duration = Duration::from_secs(60);

async fn open(stack: &RunningStack, user: &str, envelope: bool) -> Result<Client, String> {
    let token = mint(
        stack.secret(),
        &claims_for(user, Duration::from_secs(600), vec![]),
    )
    .map_err(|e| e.to_string())?;
    let flag = if envelope { "&envelope=1" } else { "" };
    let url = format!("{}?token={token}{flag}", stack.websocket_url());
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| e.to_string())
}

async fn next_frame(client: &mut Client) -> Result<Value, String> {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .map_err(|_| "no frame within 60 s".to_owned())?
            .ok_or("socket ended")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).map_err(|e| e.to_string());
        }
    }
}

async fn enqueue(stack: &RunningStack, user: &str, n: usize, from: usize) -> Result<(), String> {
    for i in from..from + n {
        let body = json!({"userId": user, "data": {"n": i, "download": "report.pdf"}});
        stack.enqueue("notify-user", body.to_string()).await?;
    }
    Ok(())
}

/// The user stream's position as a `history` with `limit:0` reports it.
async fn position(stack: &RunningStack, user: &str) -> Result<(u64, String), String> {
    let mut probe = open(stack, user, false).await?;
    probe
        .send(Message::text(
            r#"{"action":"history","stream":"user","limit":0}"#,
        ))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = next_frame(&mut probe).await?;
        if frame["type"] == "history" {
            let offset = frame["offset"].as_u64().ok_or("no offset")?;
            let epoch = frame["epoch"].as_str().ok_or("no epoch")?.to_owned();
            let _ = probe.close(None).await;
            return Ok((offset, epoch));
        }
    }
}

async fn round(stack: &RunningStack, user: &str, n: usize) -> Result<(f64, f64), String> {
    // Live: the client is connected while N messages go through notify-user.
    let mut client = open(stack, user, true).await?;
    let start = Instant::now();
    enqueue(stack, user, n, 0).await?;
    let mut received = 0;
    while received < n {
        if next_frame(&mut client).await?["type"] == "message" {
            received += 1;
        }
    }
    let live_ms = start.elapsed().as_secs_f64() * 1000.0;
    let _ = client.close(None).await;
    let deadline = Instant::now() + WAIT;
    while !stack
        .store()
        .user_connections(user, None)
        .await
        .map_err(|e| e.to_string())?
        .connection_ids
        .is_empty()
    {
        if Instant::now() > deadline {
            return Err("the client's record was not removed".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Away: the next N are kept while nobody is connected.
    let (held, epoch) = position(stack, user).await?;
    enqueue(stack, user, n, n).await?;
    let deadline = Instant::now() + WAIT;
    while position(stack, user).await?.0 < held + n as u64 {
        if Instant::now() > deadline {
            return Err("the missed messages were not all kept".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = open(stack, user, true).await?;
    let start = Instant::now();
    let recover =
        json!({"action":"recover","streams":[{"stream":"user","offset":held,"epoch":epoch}]});
    client
        .send(Message::text(recover.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let mut recovered = 0;
    loop {
        let frame = next_frame(&mut client).await?;
        match frame["type"].as_str() {
            Some("message") => recovered += 1,
            Some("recovered") if frame["more"] == false => break,
            Some("recovered") => return Err(format!("recovery was paged: {frame}")),
            _ => {}
        }
    }
    let recover_ms = start.elapsed().as_secs_f64() * 1000.0;
    let _ = client.close(None).await;
    if recovered != n {
        return Err(format!("recovered {recovered} of {n}"));
    }
    Ok((live_ms, recover_ms))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub async fn run(n: usize, rounds: usize) -> Result<Row, String> {
    let stack = switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        token_secret: Some(SECRET.into()),
        settings: Settings {
            history: HistorySettings {
                // One recover for the whole gap.
                recover_limit: n.max(1),
                reads: Rate::new(100_000, Duration::from_secs(1)),
                ..HistorySettings::default()
            },
            limits: Limits {
                connection_actions: Rate::new(100_000, Duration::from_secs(1)),
                user_actions: Rate::new(100_000, Duration::from_secs(1)),
                ..Limits::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut live = Vec::new();
    let mut recovered = Vec::new();
    // One unmeasured round first.
    for r in 0..=rounds {
        let (l, rec) = round(&stack, &format!("bench-recovery-{r}"), n).await?;
        if r > 0 {
            live.push(l);
            recovered.push(rec);
        }
    }
    stack.shutdown().await;
    Ok(Row {
        messages: n,
        rounds,
        live_ms: median(live),
        recover_ms: median(recovered),
    })
}
