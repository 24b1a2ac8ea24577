//! An echo bot: the smallest application of Switchboard's upstream events.
//!
//! - `POST /handler` (the webhook): checks the signature, logs `connected`
//!   and `disconnected`, greets each new connection through the HTTP API's
//!   `POST /send`, and echoes asynchronous `message` events the same way;
//! - `POST /event` (the event hook): answers each client event with
//!   `{"echo": <its data>}`, which Switchboard hands back to that client;
//! - `POST /connect` (the connect hook): lets everyone in, except users
//!   named `mallory` (403).
//!
//! Every request must carry a valid `Switchboard-Signature` (401 otherwise).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchboard::adapters::http::SdkPoster;
use switchboard::upstream::HttpPoster;
use switchboard::webhook::{DEFAULT_TOLERANCE, verify};
use tracing::{info, warn};

/// What the bot needs: the webhook secret and where the HTTP API is.
pub struct Bot {
    pub secret: Vec<u8>,
    /// e.g. `http://127.0.0.1:3001` (the local stack; `POST {api}/send`).
    pub api: String,
    http: SdkPoster,
}

impl Bot {
    pub fn new(secret: impl Into<Vec<u8>>, api: impl Into<String>) -> Arc<Self> {
        Arc::new(Bot {
            secret: secret.into(),
            api: api.into().trim_end_matches('/').to_owned(),
            http: switchboard::aws::poster(Duration::from_secs(5), None),
        })
    }

    /// Sends `data` to one connection through `POST /send`.
    async fn send(&self, connection_id: &str, data: Value) {
        let body = json!({ "connectionId": connection_id, "data": data }).to_string();
        let headers = [("content-type", "application/json".to_owned())];
        let url = format!("{}/send", self.api);
        match self
            .http
            .post(&url, &headers, body.into_bytes(), Duration::from_secs(5))
            .await
        {
            Ok(answer) if answer.status == 202 => {}
            Ok(answer) => warn!(status = answer.status, "POST /send refused"),
            Err(e) => warn!(error = %e, "POST /send failed"),
        }
    }
}

/// The bot's routes.
pub fn app(bot: Arc<Bot>) -> Router {
    Router::new()
        .route("/handler", post(handler))
        .route("/event", post(event_hook))
        .route("/connect", post(connect_hook))
        .with_state(bot)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The body as JSON, if the signature verifies.
fn verified(bot: &Bot, headers: &HeaderMap, body: &Bytes) -> Result<Value, StatusCode> {
    if let Err(e) = verify(headers, body, &bot.secret, DEFAULT_TOLERANCE) {
        warn!(error = %e, "unsigned or tampered request refused");
        return Err(StatusCode::UNAUTHORIZED);
    }
    serde_json::from_slice(body).map_err(|_| StatusCode::BAD_REQUEST)
}

async fn handler(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    let data = match verified(&bot, &headers, &body) {
        Ok(data) => data,
        Err(refused) => return refused.into_response(),
    };
    let (kind, id) = (header(&headers, "ce-type"), header(&headers, "ce-id"));
    let connection_id = header(&headers, "ce-connectionid");
    let user_id = header(&headers, "ce-userid");
    match kind {
        "switchboard.connected" => {
            info!(id, connection_id, user_id, groups = %data["groups"], "connected");
            bot.send(
                connection_id,
                json!({ "text": format!("welcome, {user_id}") }),
            )
            .await;
        }
        "switchboard.disconnected" => {
            info!(id, connection_id, user_id, code = %data["statusCode"], reason = %data["reason"],
                duration_ms = %data["durationMs"], "disconnected");
        }
        "switchboard.message" => {
            info!(id, connection_id, user_id, event = %data["event"], "message");
            bot.send(connection_id, json!({ "echo": data["data"] }))
                .await;
        }
        other => warn!(kind = other, "unknown event type"),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn event_hook(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    match verified(&bot, &headers, &body) {
        Ok(data) => {
            info!(user_id = header(&headers, "ce-userid"), event = %data["event"], "event hook");
            axum::Json(json!({ "echo": data["data"] })).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

async fn connect_hook(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    match verified(&bot, &headers, &body) {
        Ok(claims) if claims["userId"] == "mallory" => StatusCode::FORBIDDEN.into_response(),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}
