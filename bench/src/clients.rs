//! The client side of the fan-out benchmark, in its own process: N WebSocket
//! clients, driven over stdin/stdout.
//!
//! Protocol: prints `READY` once every client is connected; then for each
//! `EXPECT <total>` line on stdin, waits until the clients together hold
//! `total` text messages and prints `DONE <micros>`: the wall-clock time (µs
//! since the Unix epoch) at which the last of them arrived. A round that does
//! not complete within 120 s prints `TIMEOUT <received>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 200;
/// The longest a round may take.
const ROUND_LIMIT: Duration = Duration::from_secs(120);

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

pub async fn run(url: &str, n: usize) -> Result<(), String> {
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let sockets: Vec<_> = futures::stream::iter(0..n)
        .map(|_| tokio_tungstenite::connect_async(url.to_owned()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut writers = Vec::with_capacity(n);
    for socket in sockets {
        let (socket, _) = socket.map_err(|e| format!("connect {url}: {e}"))?;
        let (write, mut read) = socket.split();
        writers.push(write);
        let (received, last) = (received.clone(), last.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = read.next().await {
                if let Message::Text(_) = message {
                    last.fetch_max(now_micros(), Ordering::Relaxed);
                    received.fetch_add(1, Ordering::Release);
                }
            }
        });
    }
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(b"READY\n")
        .await
        .map_err(|e| e.to_string())?;
    stdout.flush().await.map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(total) = line
            .strip_prefix("EXPECT ")
            .and_then(|t| t.trim().parse::<u64>().ok())
        else {
            break;
        };
        let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
        let answer = loop {
            let got = received.load(Ordering::Acquire);
            if got >= total {
                break format!("DONE {}\n", last.load(Ordering::Relaxed));
            }
            if tokio::time::Instant::now() > deadline {
                break format!("TIMEOUT {got}\n");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        stdout
            .write_all(answer.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stdout.flush().await.map_err(|e| e.to_string())?;
    }
    drop(writers);
    Ok(())
}
