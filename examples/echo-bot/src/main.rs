//! `cargo run -p echo-bot`: listens on ECHO_BOT_ADDR (default 127.0.0.1:8080),
//! verifies signatures with SWITCHBOARD_WEBHOOK_SECRET (the variable the local
//! stack reads too; raw, or the Standard Webhooks form `whsec_<base64>`),
//! replies through the HTTP API at SWITCHBOARD_HTTP_API (default
//! http://127.0.0.1:3001).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Ok(secret) = std::env::var("SWITCHBOARD_WEBHOOK_SECRET") else {
        eprintln!("set SWITCHBOARD_WEBHOOK_SECRET, the same as the stack's");
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
    let bot = match echo_bot::Bot::new(secret, api) {
        Ok(bot) => bot,
        Err(e) => {
            eprintln!("SWITCHBOARD_WEBHOOK_SECRET: {e}");
            return ExitCode::from(2);
        }
    };
    let app = echo_bot::app(bot);
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("echo-bot stopped: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
