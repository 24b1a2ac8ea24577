//! Upstream events: the application hears its clients.
//!
//! - [`events`]: the CloudEvents (`connected`, `disconnected`, `message`);
//! - [`Upstream`]: where events go, each sink optional: the Upstream queue
//!   (drained by the `upstream` function, which POSTs signed webhooks,
//!   [`delivery`]) and an EventBridge bus ([`EventBus`]); and the synchronous
//!   hooks ([`hooks`]: `connect` and `event`);
//! - the ports they need: [`HttpPoster`] (one POST) and [`EventBus`].
//!
//! Producers ([`Upstream::emit`]) never fail the client's route: an event no
//! sink took is logged and counted ([`Upstream::lost`]).

pub mod delivery;
pub mod events;
pub mod hooks;
pub mod secret;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tracing::{error, warn};

use crate::ports::MessageQueue;

use delivery::DeliveryPolicy;
pub use events::{CloudEvent, EventKind};
pub use secret::WebhookSecret;

/// A receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a POST got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the receiver: {0}")]
    Transport(String),
    /// The request cannot be built (a header that cannot hold its value):
    /// sending it again cannot help.
    #[error("the request cannot be built: {0}")]
    InvalidRequest(String),
}

/// One HTTP POST, bounded by `timeout` as a whole (connect, send, answer).
#[async_trait]
pub trait HttpPoster: Send + Sync {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpAnswer, PostError>;
}

/// Why an event bus refused events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// Some entries failed (PutEvents answers per entry).
    #[error("{failed} of the events were not accepted: {reason}")]
    Partial { failed: usize, reason: String },
}

/// An event bus (EventBridge): puts events, up to 10 at once.
#[async_trait]
pub trait EventBus: Send + Sync {
    async fn put_events(&self, events: &[CloudEvent]) -> Result<(), BusError>;
}

/// Where upstream events go. The default sends nothing anywhere.
#[derive(Default)]
pub struct Upstream {
    /// The Upstream queue, drained by the webhook sender.
    pub queue: Option<Arc<dyn MessageQueue>>,
    /// The EventBridge bus.
    pub bus: Option<Arc<dyn EventBus>>,
    pub connect_hook: Option<Hook>,
    pub event_hook: Option<Hook>,
    /// What the hooks POST with.
    pub http: Option<Arc<dyn HttpPoster>>,
    /// What the hooks sign with.
    pub secret: WebhookSecret,
    lost: AtomicU64,
}

impl Upstream {
    /// Whether any asynchronous sink is on (producers skip the work otherwise).
    pub fn has_sinks(&self) -> bool {
        self.queue.is_some() || self.bus.is_some()
    }

    /// Events that no sink took, since start (each also logged as an error).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Hands `event` to every asynchronous sink. Never fails: a sink that
    /// refuses is logged (without the event's data) and counted, and the
    /// caller's route goes on.
    pub async fn emit(&self, event: &CloudEvent) {
        if let Some(queue) = &self.queue {
            let body = event.to_json();
            let result = queue.send_batch(std::slice::from_ref(&body)).await;
            let failure = match result {
                Ok(failures) => failures
                    .first()
                    .map(|f| format!("{}: {}", f.code, f.message)),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = failure {
                self.count_lost(event, "upstream queue", &reason);
            }
        }
        if let Some(bus) = &self.bus {
            if let Err(e) = bus.put_events(std::slice::from_ref(event)).await {
                self.count_lost(event, "event bus", &e.to_string());
            }
        }
    }

    fn count_lost(&self, event: &CloudEvent, sink: &str, reason: &str) {
        let lost = self.lost.fetch_add(1, Ordering::Relaxed) + 1;
        error!(event_id = %event.id, event_type = %event.kind, sink, reason, lost,
            "upstream event not enqueued");
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("queue", &self.queue.is_some())
            .field("bus", &self.bus.is_some())
            .field("connect_hook", &self.connect_hook)
            .field("event_hook", &self.event_hook)
            .finish()
    }
}

/// Warns once per call site when a hook is configured without a client.
pub(crate) fn no_client() -> PostError {
    warn!("a hook is configured but no HTTP client is wired");
    PostError::Transport("no HTTP client".into())
}

/// A synchronous hook (see [`crate::upstream::hooks`]): where it is, how long
/// it may take, and whether its failure (timeout, 5xx, unreachable) lets the
/// request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub url: String,
    pub timeout: Duration,
    /// `false` (the default): a failed hook refuses the request.
    pub fail_open: bool,
}

/// The default time a hook may take. The template allows at most 4 s
/// (`HookTimeoutMs`): the hook and the rest of the handler end within the
/// connect and actions functions' 6 s, and a hook is also cut short to end
/// [`crate::upstream::hooks::HOOK_RESERVE`] before its invocation does.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the webhook secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSecretSetting {
    /// `WEBHOOK_SECRET_ARN`: a Secrets Manager secret (its `SecretString`), read on first use (AWS).
    SecretsManager { secret_id: String },
    /// `WEBHOOK_SECRET`: the secret itself (tests; the local stack takes `--webhook-secret`).
    Plain(String),
}

/// Upstream events and hooks, from the environment. Every part is optional:
/// a function reads only the variables its template entry sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// `UPSTREAM_QUEUE_URL`: producers put events here for the webhook sender.
    pub queue_url: Option<String>,
    /// `EVENT_BUS_NAME`: producers put events on this EventBridge bus.
    pub event_bus: Option<String>,
    /// `CONNECT_HOOK_URL`, `CONNECT_HOOK_TIMEOUT_MS` (default 2000), `CONNECT_HOOK_FAIL_OPEN` (default false).
    pub connect_hook: Option<Hook>,
    /// `EVENT_HOOK_URL`, `EVENT_HOOK_TIMEOUT_MS` (default 2000).
    pub event_hook: Option<Hook>,
    /// `WEBHOOK_URL`: where the `upstream` function POSTs.
    pub webhook_url: Option<String>,
    /// `UPSTREAM_DLQ_URL`: where the `upstream` function puts events a receiver refused for good.
    pub dead_letter_queue_url: Option<String>,
    /// `WEBHOOK_ATTEMPTS`, `WEBHOOK_RETRY_BASE_DELAY_MS`, `WEBHOOK_TIMEOUT_MS`.
    pub delivery: DeliveryPolicy,
    /// `WEBHOOK_SECRET_ARN` or `WEBHOOK_SECRET` (both: an error).
    pub secret: Option<WebhookSecretSetting>,
}

impl UpstreamSettings {
    /// The longest any hook may take (the HTTP client's connect/read timeout).
    pub fn longest_timeout(&self) -> Duration {
        [&self.connect_hook, &self.event_hook]
            .into_iter()
            .flatten()
            .map(|h| h.timeout)
            .chain([self.delivery.timeout])
            .max()
            .unwrap_or(DEFAULT_HOOK_TIMEOUT)
    }
}
