//! `cargo run -p echo-bot`: listens on ECHO_BOT_ADDR (default 127.0.0.1:8080),
//! verifies signatures with SWITCHBOARD_WEBHOOK_SECRET (the variable the local
//! stack reads too), replies through the HTTP API at SWITCHBOARD_HTTP_API
//! (default http://127.0.0.1:3001).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Some(secret) = std::env::var("SWITCHBOARD_WEBHOOK_SECRET")
        .ok()
        .filter(|s| s.len() >= switchboard::webhook::MIN_SECRET_BYTES)
    else {
        eprintln!("set SWITCHBOARD_WEBHOOK_SECRET (at least 32 bytes), the same as the stack's");
        return ExitCode::from(2);
    };
    let addr = std::env::var("ECHO_BOT_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let api =
        std::env::var("SWITCHBOARD_HTTP_API").unwrap_or_else(|_| "http://127.0.0.1:3001".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "echo-bot on http://{addr}: POST /handler (webhook), /event (event hook), /connect (connect hook)"
    );
    let app = echo_bot::app(echo_bot::Bot::new(secret, api));
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("echo-bot stopped: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
