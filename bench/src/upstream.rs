//! Upstream events: `$connect` latency with a connect hook against the same
//! stack without one (same run, interleaved handshakes, a loopback hook
//! receiver answering 204), and the AWS requests each sink costs per event.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use switchboard::auth::{claims_for, mint};
use switchboard::services::Settings;
use switchboard_local::{Config, RunningStack, UpstreamConfig};

/// One measured case.
#[derive(Debug, Clone)]
pub struct Row {
    pub handshakes: usize,
    /// Median and p90 handshake time (TCP connect to the 101), milliseconds.
    pub hook_median_ms: f64,
    pub hook_p90_ms: f64,
    pub plain_median_ms: f64,
    pub plain_p90_ms: f64,
}

const SECRET: &str = "bench-webhook-secret-bench-webhook-secret";

async fn stack(upstream: UpstreamConfig) -> Result<RunningStack, String> {
    switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap_or(([127, 0, 0, 1], 0).into()),
        token_secret: Some("bench-token-secret-bench-token-secret!".into()),
        upstream,
        settings: Settings {
            limits: switchboard::services::Limits {
                max_connections_per_user: 1_000_000,
                user_actions: switchboard::rate::Rate::new(1_000_000, Duration::from_secs(1)),
                ..Default::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// One handshake (and its close), timed to the 101.
async fn handshake(stack: &RunningStack, user: &str) -> Result<f64, String> {
    let token = mint(
        stack.secret(),
        &claims_for(user, Duration::from_secs(60), vec![]),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("{}?token={token}", stack.websocket_url())),
    )
    .await
    .map_err(|_| "a handshake took over 10 s".to_owned())?
    .map_err(|e| e.to_string())?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let _ = socket.close(None).await;
    Ok(ms)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// `handshakes` handshakes against each stack, alternating, after 20 warm-ups each.
pub async fn run(handshakes: usize) -> Result<Row, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let hook = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new().route("/connect", post(|| async { StatusCode::NO_CONTENT }));
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    let hooked = stack(UpstreamConfig {
        connect_hook: Some(format!("http://{hook}/connect")),
        secret: Some(SECRET.into()),
        ..UpstreamConfig::default()
    })
    .await?;
    let plain = stack(UpstreamConfig::default()).await?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..handshakes + 20 {
        let a = handshake(&hooked, &format!("u{i}")).await?;
        let b = handshake(&plain, &format!("u{i}")).await?;
        if i >= 20 {
            with.push(a);
            without.push(b);
        }
    }
    hooked.shutdown().await;
    plain.shutdown().await;
    receiver.abort();
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    Ok(Row {
        handshakes,
        hook_median_ms: percentile(&with, 0.5),
        hook_p90_ms: percentile(&with, 0.9),
        plain_median_ms: percentile(&without, 0.5),
        plain_p90_ms: percentile(&without, 0.9),
    })
}
