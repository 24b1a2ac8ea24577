//! An echo bot: the smallest application of Switchboard's upstream events.
//!
//! - `POST /handler` (the webhook): checks the signature, drops a request
//!   whose id it has already acted on (a replay, or a retry of a delivered
//!   event), logs `connected` and `disconnected`, greets each new connection
//!   through the HTTP API's `POST /send`, and echoes asynchronous `message`
//!   events the same way;
//! - `POST /event` (the event hook): answers each client event with
//!   `{"echo": <its data>}`, which Switchboard hands back to that client;
//! - `POST /connect` (the connect hook): lets everyone in, except users
//!   named `mallory` (403).
//!
//! Every request must carry a valid Standard Webhooks signature
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`; 401 otherwise).
//! The body is the whole CloudEvent, so what the bot routes on (`type`,
//! `connectionid`, `userid`) is signed; no header is read for it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchboard::adapters::http::SdkPoster;
use switchboard::upstream::{CloudEvent, HttpPoster};
use switchboard::webhook::{DEFAULT_TOLERANCE, KeyError, Verified, key_from_secret, verify};
use tracing::{info, warn};

/// How many webhook ids the bot remembers at once (see [`SeenIds`]).
pub const SEEN_CAPACITY: usize = 100_000;

/// What the bot needs: the webhook key and where the HTTP API is.
pub struct Bot {
    key: Vec<u8>,
    /// e.g. `http://127.0.0.1:3001` (the local stack; `POST {api}/send`).
    pub api: String,
    http: SdkPoster,
    seen: Mutex<SeenIds>,
}

impl Bot {
    /// A bot verifying with the webhook secret the stack signs with (raw,
    /// or `whsec_<base64>`).
    pub fn new(secret: impl AsRef<[u8]>, api: impl Into<String>) -> Result<Arc<Self>, KeyError> {
        Ok(Arc::new(Bot {
            key: key_from_secret(secret.as_ref())?,
            api: api.into().trim_end_matches('/').to_owned(),
            http: switchboard::aws::poster(Duration::from_secs(5), None),
            seen: Mutex::new(SeenIds::new(SEEN_CAPACITY, DEFAULT_TOLERANCE)),
        }))
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

/// Whether a webhook id is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    /// Acted on already: drop it (and answer 2xx, so the sender stops).
    Duplicate,
    /// The set is full of ids still within their window: answer 503, and
    /// the sender retries later.
    Full,
}

/// The webhook ids the bot has acted on. Each is kept until no replay of it
/// can verify any more: its latest signature time plus the tolerance. (A
/// retry Switchboard signs after that, say an SQS redelivery minutes later,
/// is acted on again: delivery is at least once. An application that must
/// act exactly once keeps its ids longer, in its database.)
#[derive(Debug)]
pub struct SeenIds {
    until: HashMap<String, i64>,
    /// The same entries by expiry, oldest first.
    by_expiry: BTreeSet<(i64, String)>,
    capacity: usize,
    tolerance: i64,
}

impl SeenIds {
    pub fn new(capacity: usize, tolerance: Duration) -> Self {
        SeenIds {
            until: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
            tolerance: i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Records `id`, signed at `signed_at`, at `now` (Unix seconds).
    pub fn check(&mut self, id: &str, signed_at: i64, now: i64) -> Seen {
        while let Some((expiry, _)) = self.by_expiry.first() {
            if *expiry >= now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_first() {
                self.until.remove(&old);
            }
        }
        let expiry = signed_at.saturating_add(self.tolerance);
        if let Some(until) = self.until.get_mut(id) {
            if expiry > *until {
                self.by_expiry.remove(&(*until, id.to_owned()));
                self.by_expiry.insert((expiry, id.to_owned()));
                *until = expiry;
            }
            return Seen::Duplicate;
        }
        if self.until.len() >= self.capacity {
            return Seen::Full;
        }
        self.until.insert(id.to_owned(), expiry);
        self.by_expiry.insert((expiry, id.to_owned()));
        Seen::New
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
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

/// The event, if the signature verifies.
fn verified(
    bot: &Bot,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Verified, CloudEvent), StatusCode> {
    let verified = verify(headers, body, &bot.key, DEFAULT_TOLERANCE).map_err(|e| {
        warn!(error = %e, "unsigned or tampered request refused");
        StatusCode::UNAUTHORIZED
    })?;
    let event = serde_json::from_slice(body).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok((verified, event))
}

async fn handler(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    let (verified, event) = match verified(&bot, &headers, &body) {
        Ok(verified) => verified,
        Err(refused) => return refused.into_response(),
    };
    let seen = match bot.seen.lock() {
        Ok(mut seen) => seen.check(
            &verified.id,
            verified.timestamp,
            switchboard::clock::now_seconds(),
        ),
        Err(_) => Seen::Full,
    };
    match seen {
        Seen::New => {}
        Seen::Duplicate => {
            info!(id = verified.id, "duplicate dropped");
            return StatusCode::NO_CONTENT.into_response();
        }
        Seen::Full => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    let CloudEvent {
        id,
        kind,
        connectionid: connection_id,
        userid: user_id,
        data,
        ..
    } = event;
    match kind.as_str() {
        "switchboard.connected" => {
            info!(id, connection_id, user_id, groups = %data["groups"], "connected");
            bot.send(
                &connection_id,
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
            bot.send(&connection_id, json!({ "echo": data["data"] }))
                .await;
        }
        other => warn!(kind = other, "unknown event type"),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn event_hook(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    match verified(&bot, &headers, &body) {
        Ok((_, event)) if event.kind == "switchboard.message" => {
            info!(user_id = event.userid, event = %event.data["event"], "event hook");
            axum::Json(json!({ "echo": event.data["data"] })).into_response()
        }
        Ok(_) => StatusCode::BAD_REQUEST.into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn connect_hook(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    match verified(&bot, &headers, &body) {
        Ok((_, event)) if event.kind != "switchboard.connect" => {
            StatusCode::BAD_REQUEST.into_response()
        }
        Ok((_, event)) if event.userid == "mallory" => StatusCode::FORBIDDEN.into_response(),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_duplicate_until_no_replay_of_it_can_verify() {
        let mut seen = SeenIds::new(10, Duration::from_secs(300));
        let t = 1_700_000_000;
        assert_eq!(seen.check("a", t, t), Seen::New);
        assert_eq!(seen.check("a", t, t + 1), Seen::Duplicate);
        // A retry signed later keeps it longer.
        assert_eq!(seen.check("a", t + 100, t + 100), Seen::Duplicate);
        assert_eq!(seen.check("a", t, t + 400), Seen::Duplicate);
        // Past t + 100 + 300 no request signed for "a" until then verifies:
        // it is forgotten.
        assert_eq!(seen.check("b", t + 401, t + 401), Seen::New);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen.check("a", t + 401, t + 401), Seen::New);
    }

    #[test]
    fn a_full_set_refuses_new_ids_until_old_ones_expire() {
        let mut seen = SeenIds::new(2, Duration::from_secs(300));
        let t = 1_700_000_000;
        assert_eq!(seen.check("a", t, t), Seen::New);
        assert_eq!(seen.check("b", t, t), Seen::New);
        assert_eq!(seen.check("c", t, t), Seen::Full);
        assert_eq!(seen.check("a", t, t), Seen::Duplicate);
        assert_eq!(seen.check("c", t + 301, t + 301), Seen::New);
        assert_eq!(seen.len(), 1);
    }
}
