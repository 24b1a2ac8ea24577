//! The Management API's post and delete, written once: the HTTP endpoint
//! (`/@connections/{id}`) and the in-process gateway both answer from here, so
//! both apply API Gateway's rules (410 for a connection that is gone, 413 over
//! 128 KB) and the same injected faults.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use switchboard::enqueue::backoff;
use switchboard::ports::{Gateway, GatewayError};
use tracing::info;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use switchboard::clock::now_millis;
use tokio::sync::mpsc;

use crate::config::MAX_MESSAGE_BYTES;
use crate::connections::{Connections, Outbound, Unsent};
use crate::emulation::{AccountThrottle, Latency};
use crate::ids::random_unit;
use crate::virtual_connections::VirtualConnections;

/// What a post to a connection came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posted {
    Delivered,
    Gone,
    TooLarge,
    /// Injected: 429.
    Throttled,
    /// 429: over the account-level throttle (`--management-rate`, `--aws-quotas`).
    OverQuota,
    /// 429: the connection's outbound queue is full (its client is not reading).
    SlowConsumer,
    /// Injected: 500.
    Failed,
    /// Injected: answered only after `fault_stall` (504).
    Stalled,
}

/// An error answer of the Management API, as API Gateway gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// The `x-amzn-ErrorType` the SDKs read the error's type from.
    pub(crate) error_type: &'static str,
    pub(crate) message: Option<&'static str>,
}

impl Refusal {
    /// 410: the connection is gone (or never was).
    pub(crate) const GONE: Refusal = Refusal {
        status: StatusCode::GONE,
        error_type: "GoneException",
        message: None,
    };
}

impl Posted {
    /// The Management API's answer to the post, written once for the HTTP
    /// endpoint and the in-process gateway: `Ok` is a 200.
    pub(crate) fn answer(self) -> Result<(), Refusal> {
        let (status, error_type, message) = match self {
            Posted::Delivered => return Ok(()),
            Posted::Gone => return Err(Refusal::GONE),
            Posted::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeException",
                "Message too long",
            ),
            Posted::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "injected fault: rate exceeded",
            ),
            Posted::OverQuota => (
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "Rate exceeded",
            ),
            Posted::SlowConsumer => (
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceededException",
                "the connection is not reading: its outbound queue is full; retry later",
            ),
            Posted::Failed => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
                "injected fault",
            ),
            Posted::Stalled => (
                StatusCode::GATEWAY_TIMEOUT,
                "InternalServerErrorException",
                "injected fault: stalled",
            ),
        };
        Err(Refusal {
            status,
            error_type,
            message: Some(message),
        })
    }
}

impl From<Refusal> for GatewayError {
    /// The error the SDK adapter makes of the same answer over HTTP.
    fn from(refusal: Refusal) -> Self {
        let message = refusal.message.unwrap_or_default().to_owned();
        match refusal.status.as_u16() {
            410 => GatewayError::Gone,
            413 => GatewayError::PayloadTooLarge(message),
            429 => GatewayError::Throttled(message),
            status if status >= 500 => GatewayError::Server { status, message },
            status => GatewayError::Rejected { status, message },
        }
    }
}

/// Every post's answer, counted: `GET /metrics` has them as
/// `switchboard_management_posts_total{answer=…}`, `GET /management/stats` as JSON.
pub(crate) struct PostCounts {
    /// The family `GET /metrics` renders (labels: `answer`).
    pub(crate) family: Family<Vec<(String, String)>, Counter>,
    pub(crate) delivered: Counter,
    /// 429 from the account-level throttle.
    pub(crate) over_quota: Counter,
    /// Every other refusal (410, 413, injected faults, slow consumers).
    pub(crate) refused: Counter,
    /// When the first and the last post arrived (ms since the Unix epoch; 0: none).
    pub(crate) first_ms: AtomicI64,
    pub(crate) last_ms: AtomicI64,
    /// When the last post was delivered.
    pub(crate) last_delivered_ms: AtomicI64,
}

impl Default for PostCounts {
    fn default() -> Self {
        let family = Family::<Vec<(String, String)>, Counter>::default();
        let counter = |answer: &str| {
            family
                .get_or_create(&vec![("answer".to_owned(), answer.to_owned())])
                .clone()
        };
        PostCounts {
            delivered: counter("delivered"),
            over_quota: counter("throttled_account"),
            refused: counter("refused"),
            family,
            first_ms: AtomicI64::new(0),
            last_ms: AtomicI64::new(0),
            last_delivered_ms: AtomicI64::new(0),
        }
    }
}

impl PostCounts {
    fn count(&self, posted: Posted) {
        let now = now_millis();
        let _ = self
            .first_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_ms.fetch_max(now, Ordering::Relaxed);
        match posted {
            Posted::Delivered => {
                self.delivered.inc();
                self.last_delivered_ms.fetch_max(now, Ordering::Relaxed);
            }
            Posted::OverQuota => {
                self.over_quota.inc();
            }
            _ => {
                self.refused.inc();
            }
        }
    }

    /// Every post so far.
    pub(crate) fn posts(&self) -> u64 {
        self.delivered.get() + self.over_quota.get() + self.refused.get()
    }
}

/// What the Management API emulates of AWS (all off by default).
#[derive(Default)]
pub(crate) struct AwsBehaviour {
    pub(crate) throttle: Option<AccountThrottle>,
    pub(crate) latency: Latency,
}

pub(crate) struct Management {
    pub(crate) connections: Arc<Connections>,
    /// Posts by connection id (fault-tolerance tests read it); an entry goes
    /// when its connection closes. Virtual connections are counted in
    /// [`VirtualConnections`] instead.
    pub(crate) posts: Arc<Mutex<HashMap<String, u64>>>,
    pub(crate) virtuals: Arc<VirtualConnections>,
    pub(crate) counts: PostCounts,
    aws: AwsBehaviour,
    /// Where a deleted virtual connection's id goes for its `$disconnect`.
    pub(crate) virtual_disconnects: OnceLock<mpsc::UnboundedSender<String>>,
    fault_rate: f64,
    fault_stall: Duration,
}

impl Management {
    pub(crate) fn new(fault_rate: f64, fault_stall: Duration) -> Self {
        Management {
            connections: Arc::default(),
            posts: Arc::default(),
            virtuals: Arc::default(),
            counts: PostCounts::default(),
            aws: AwsBehaviour::default(),
            virtual_disconnects: OnceLock::new(),
            fault_rate,
            fault_stall,
        }
    }

    /// With virtual connections and AWS's throttle and latency.
    pub(crate) fn emulating(mut self, virtuals: VirtualConnections, aws: AwsBehaviour) -> Self {
        self.virtuals = Arc::new(virtuals);
        self.aws = aws;
        self
    }

    pub(crate) fn throttle(&self) -> Option<&AccountThrottle> {
        self.aws.throttle.as_ref()
    }

    pub(crate) fn latency(&self) -> Latency {
        self.aws.latency
    }

    /// `POST /@connections/{id}`: the body becomes one text frame (binary if
    /// it is not UTF-8).
    pub(crate) async fn post(&self, id: &str, body: &[u8]) -> Posted {
        let posted = self.answer(id, body).await;
        self.counts.count(posted);
        posted
    }

    async fn answer(&self, id: &str, body: &[u8]) -> Posted {
        let virtual_index = self.virtuals.index(id);
        match virtual_index {
            Some(index) => self.virtuals.received(index),
            None => {
                if let Ok(mut posts) = self.posts.lock() {
                    *posts.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
        // The account's throttle decides at arrival, before anything about the connection.
        let over_quota = self.aws.throttle.as_ref().is_some_and(|t| !t.take());
        self.aws.latency.wait().await;
        if over_quota {
            return Posted::OverQuota;
        }
        if body.len() > MAX_MESSAGE_BYTES {
            return Posted::TooLarge;
        }
        if let Some(index) = virtual_index {
            return self.post_virtual(index).await;
        }
        let Some(connection) = self.connections.get(id) else {
            info!(connection_id = id, "post to a gone connection: 410");
            return Posted::Gone;
        };
        // Faults hit live connections only, so a 410 stays a clean signal in tests.
        if let Some(fault) = self.injected_fault().await {
            return fault;
        }
        let frame = match String::from_utf8(body.to_vec()) {
            Ok(text) => Outbound::Text(text),
            Err(e) => Outbound::Binary(e.into_bytes()),
        };
        match connection.send(frame) {
            Ok(()) => {}
            Err(Unsent::Closed) => return Posted::Gone,
            Err(Unsent::Full) => {
                info!(
                    connection_id = id,
                    queued = connection.queued_bytes(),
                    "post to a connection that is not reading: 429"
                );
                return Posted::SlowConsumer;
            }
        }
        info!(connection_id = id, user_id = %connection.user_id, bytes = body.len(), "post");
        Posted::Delivered
    }

    /// A post to a virtual connection: counted, not sent anywhere.
    async fn post_virtual(&self, index: usize) -> Posted {
        if !self.virtuals.is_open(index) {
            return Posted::Gone;
        }
        if let Some(fault) = self.injected_fault().await {
            return fault;
        }
        self.virtuals.delivered(index);
        Posted::Delivered
    }

    /// `DELETE /@connections/{id}`: false if the connection is gone.
    pub(crate) fn delete(&self, id: &str) -> bool {
        if let Some(index) = self.virtuals.index(id) {
            if !self.virtuals.close(index) {
                return false;
            }
            // Its `$disconnect` runs as a closed socket's would.
            if let Some(disconnects) = self.virtual_disconnects.get() {
                let _ = disconnects.send(id.to_owned());
            }
            info!(connection_id = id, "delete (virtual connection)");
            return true;
        }
        let Some(connection) = self.connections.get(id) else {
            return false;
        };
        let _ = connection.send(Outbound::Close(
            1000,
            "Connection closed by the Management API".into(),
        ));
        info!(connection_id = id, user_id = %connection.user_id, "delete");
        true
    }

    /// `--fault-rate`: a share of posts answer 429 or 500, or stall past the
    /// client's timeout, a third each, as a struggling API Gateway would.
    async fn injected_fault(&self) -> Option<Posted> {
        if self.fault_rate <= 0.0 || random_unit() >= self.fault_rate {
            return None;
        }
        let pick = random_unit();
        if pick < 1.0 / 3.0 {
            Some(Posted::Throttled)
        } else if pick < 2.0 / 3.0 {
            Some(Posted::Failed)
        } else {
            tokio::time::sleep(self.fault_stall).await;
            Some(Posted::Stalled)
        }
    }
}

/// The handlers' gateway with `--gateway in-process`: posts go straight to
/// [`Management`], with what the SDK client adds on the HTTP path kept: each
/// attempt bounded by `POST_TIMEOUT_MS`, and 429s, 5xx and timeouts retried up
/// to `POST_ATTEMPTS` with exponential backoff and full jitter from
/// `POST_BACKOFF_MS`. Only the SigV4-signed HTTP round trip is left out.
pub(crate) struct InProcessGateway {
    pub(crate) management: Arc<Management>,
    pub(crate) options: switchboard::posting::PostingPolicy,
}

impl InProcessGateway {
    async fn attempt(&self, id: &str, data: &[u8]) -> Result<(), GatewayError> {
        let posted =
            tokio::time::timeout(self.options.post_timeout, self.management.post(id, data)).await;
        match posted {
            Err(_) => Err(GatewayError::Timeout),
            Ok(posted) => posted.answer().map_err(GatewayError::from),
        }
    }
}

#[async_trait]
impl Gateway for InProcessGateway {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> Result<(), GatewayError> {
        let attempts = self.options.post_attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = self.attempt(connection_id, data).await;
            let retryable = result.as_ref().is_err_and(GatewayError::is_transient);
            if !retryable || attempt >= attempts {
                return result;
            }
            tokio::time::sleep(backoff(self.options.post_backoff, attempt)).await;
            attempt += 1;
        }
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError> {
        if self.management.delete(connection_id) {
            Ok(())
        } else {
            Err(GatewayError::Gone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_process_gateway_sees_what_the_sdk_makes_of_each_answer() {
        let error = |posted: Posted| posted.answer().map_err(GatewayError::from);
        assert!(error(Posted::Delivered).is_ok());
        assert!(matches!(error(Posted::Gone), Err(GatewayError::Gone)));
        assert!(matches!(
            error(Posted::TooLarge),
            Err(GatewayError::PayloadTooLarge(m)) if m == "Message too long"
        ));
        assert!(matches!(
            error(Posted::Throttled),
            Err(GatewayError::Throttled(m)) if m == "injected fault: rate exceeded"
        ));
        assert!(matches!(
            error(Posted::OverQuota),
            Err(GatewayError::Throttled(m)) if m == "Rate exceeded"
        ));
        assert_eq!(
            Posted::OverQuota.answer().unwrap_err().error_type,
            "LimitExceededException"
        );
        assert!(matches!(
            error(Posted::SlowConsumer),
            Err(GatewayError::Throttled(m)) if m.starts_with("the connection is not reading")
        ));
        assert!(matches!(
            error(Posted::Failed),
            Err(GatewayError::Server { status: 500, message }) if message == "injected fault"
        ));
        assert!(matches!(
            error(Posted::Stalled),
            Err(GatewayError::Server { status: 504, message }) if message == "injected fault: stalled"
        ));
    }
}
