//! A running stack: the state its server, sockets and queue sources share
//! ([`Stack`]), and the handle [`crate::start`] returns ([`RunningStack`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard::auth::{SecretError, TokenSecret, TokenVerifier};
use switchboard::config::NegotiateSettings;
use switchboard::ports::{ConnectionStore, MembershipStore};
use switchboard::services::Services;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::access::ApiKey;
use crate::config::{Config, MAX_QUEUE_MESSAGE_BYTES};
use crate::connections::Connections;
use crate::management::Management;
use crate::metrics::Prometheus;
use crate::producer::Producers;
use crate::queues::DeadLetter;

/// State shared by the server, the sockets and the queue sources.
pub(crate) struct Stack {
    pub(crate) config: Config,
    pub(crate) services: Services,
    pub(crate) http: NegotiateSettings,
    pub(crate) verifier: Result<TokenVerifier, SecretError>,
    pub(crate) connections: Arc<Connections>,
    /// The Management API's post and delete (shares `connections` and `posts`).
    pub(crate) management: Arc<Management>,
    pub(crate) producers: Producers,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Management API posts by connection id (fault-tolerance tests read it);
    /// an entry goes when its connection closes.
    pub(crate) posts: Arc<Mutex<HashMap<String, u64>>>,
    /// Queue handlers cut off at `handler_timeout`.
    pub(crate) handler_timeouts: Arc<AtomicU64>,
    /// The key the HTTP API, the Management API and the queues require, if any.
    pub(crate) api_key: Option<ApiKey>,
    /// What the handlers counted (`GET /metrics`).
    pub(crate) metrics: Arc<Prometheus>,
}

impl Stack {
    pub(crate) fn management_stats(&self) -> ManagementStats {
        let management = &self.management;
        let counts = &management.counts;
        let throttle = management.throttle();
        ManagementStats {
            posts: counts.posts(),
            delivered: counts.delivered.get(),
            throttled_account: counts.over_quota.get(),
            refused: counts.refused.get(),
            first_post_ms: counts.first_ms.load(Ordering::Relaxed),
            last_post_ms: counts.last_ms.load(Ordering::Relaxed),
            last_delivered_ms: counts.last_delivered_ms.load(Ordering::Relaxed),
            account_rate: throttle.map(|t| t.per_second()),
            account_burst: throttle.map(|t| t.burst()),
            post_latency: format!("{:?}", management.latency()),
            real_connections: self.connections.len() as u64,
            virtual_connections: management.virtuals.tally(),
        }
    }
}

/// `GET /management/stats`: what the Management API answered (every post,
/// real or virtual, HTTP or in-process) and what reached the virtual connections.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagementStats {
    pub posts: u64,
    pub delivered: u64,
    /// 429 `LimitExceededException` from the account-level throttle.
    pub throttled_account: u64,
    /// 410, 413, injected faults, slow consumers.
    pub refused: u64,
    /// When the first and the last post arrived, and the last was delivered
    /// (ms since the Unix epoch; 0: none yet).
    pub first_post_ms: i64,
    pub last_post_ms: i64,
    pub last_delivered_ms: i64,
    /// The account-level throttle, if any.
    pub account_rate: Option<u32>,
    pub account_burst: Option<u32>,
    pub post_latency: String,
    pub real_connections: u64,
    pub virtual_connections: crate::virtual_connections::VirtualTally,
}

/// A started stack. Dropping it does not stop it; call [`RunningStack::shutdown`].
pub struct RunningStack {
    pub(crate) addr: SocketAddr,
    pub(crate) stack: Arc<Stack>,
    pub(crate) secret: TokenSecret,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl RunningStack {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:3001/local`
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{}", self.addr, self.stack.config.stage)
    }

    /// `http://127.0.0.1:3001/local`: the Management API endpoint (`WEBSOCKET_ENDPOINT`).
    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.stack.config.stage)
    }

    /// `http://127.0.0.1:3001`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the stack runs with.
    pub fn config(&self) -> &crate::config::Config {
        &self.stack.config
    }

    /// Upstream events no sink took (each also logged).
    pub fn upstream_lost(&self) -> u64 {
        self.stack.services.upstream.lost()
    }

    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }

    pub fn store(&self) -> Arc<dyn ConnectionStore> {
        self.stack.services.store.clone()
    }

    pub fn memberships(&self) -> Arc<dyn MembershipStore> {
        self.stack.services.memberships.clone()
    }

    /// Puts `body` on a producer queue (`notify-user`, `notify-connection`,
    /// `commands`), exactly as `POST /queues/{queue}` does; returns the message id.
    pub async fn enqueue(&self, queue: &str, body: String) -> Result<String, String> {
        let Some(producer) = self.stack.producers.writable(queue) else {
            return Err(format!("unknown queue {queue}"));
        };
        if body.len() > MAX_QUEUE_MESSAGE_BYTES {
            return Err(too_large_for_sqs(body.len()));
        }
        producer.send(body).await
    }

    /// Management API posts received for `connection_id`, answered or not,
    /// while it is open (or, for an id that never connected, ever).
    pub fn posts_to(&self, connection_id: &str) -> u64 {
        if let Some(posts) = self.stack.management.virtuals.posts_to(connection_id) {
            return posts;
        }
        self.stack
            .posts
            .lock()
            .map(|p| p.get(connection_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Dead letters of an in-memory queue (`notify-user`, `notify-connection`,
    /// `commands`, `deliveries`); `None` for SQS-backed queues.
    pub fn dead_letters(&self, queue: &str) -> Option<Vec<DeadLetter>> {
        self.stack.producers.any(queue)?.dead_letters()
    }

    /// Queue handlers cut off at the handler timeout so far (in-memory queues).
    pub fn handler_timeouts(&self) -> u64 {
        self.stack.handler_timeouts.load(Ordering::Relaxed)
    }

    /// The API key the HTTP API, the Management API and the queue endpoints
    /// require (`Authorization: Bearer <key>`), if any.
    pub fn api_key(&self) -> Option<&str> {
        self.stack.api_key.as_ref().map(ApiKey::as_str)
    }

    /// Whether the stack generated its API key (the banner prints it then).
    pub fn api_key_generated(&self) -> bool {
        self.stack.api_key.as_ref().is_some_and(|k| k.generated)
    }

    /// Bytes waiting in a connection's outbound queue; `None` if it is not open.
    pub fn outbound_bytes(&self, connection_id: &str) -> Option<usize> {
        Some(self.stack.connections.get(connection_id)?.queued_bytes())
    }

    /// What the Management API answered, and what reached the virtual connections.
    pub fn management_stats(&self) -> ManagementStats {
        self.stack.management_stats()
    }

    /// Open WebSocket connections.
    pub fn open_connections(&self) -> usize {
        self.stack.connections.len()
    }

    /// Closes every socket with 1001 (running `$disconnect` for each), then stops
    /// the queue sources and the server. Bounded: gives sockets 5 s to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.stack.connections.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        info!("stopped");
    }
}

/// Why a queue message over SQS's size limit is refused.
pub(crate) fn too_large_for_sqs(bytes: usize) -> String {
    format!(
        "the message is {bytes} bytes; SQS takes at most {MAX_QUEUE_MESSAGE_BYTES}; nothing was enqueued"
    )
}
