//! Posting to connections, the rules deliver and notify-connection share:
//! idempotent posts (check, post, record) and what a 410 Gone means.
//!
//! A queued message may carry an `id`; a redelivery of it (SQS is at least
//! once, and a handler cut off mid-batch gets its whole batch back) is not
//! posted again to a connection that already got it within the window.
//! The order is check, post, record. A failure between the post and the
//! record costs a duplicate on redelivery, never a loss; so does a store that
//! cannot answer: without an answer the post goes ahead.
//!
//! A transient failure is posted again inside the invocation
//! ([`post_with_retries`]: backoff with full jitter, posts in flight under an
//! [`AdaptiveLimit`]); see [`crate::retry`] for what happens after.
//!
//! A 410 for a connection that is still opening (see
//! [`crate::connection::CONNECT_GRACE_MS`]) means the post raced its
//! `$connect`: the connection is kept. Otherwise it is gone and forgotten.

use std::collections::HashSet;
use std::time::Duration;

use tracing::{info, warn};

use crate::clock::{now_millis, now_seconds};
use crate::connection::is_opening;
use crate::metrics::{self, Metric};
use crate::ports::{ConnectionStore, Gateway, GatewayError, SentLog, StoreError};
use crate::retry::{AdaptiveLimit, Deadline, RETRY_BACKOFF, RETRY_BACKOFF_MAX, backoff};

/// The default idempotency window: a redelivered message with an `id` is not
/// posted twice to a connection within it.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(3600);

/// How posts to connections are made, by deliver and notify-connection alike:
/// concurrency, the Management API client's timeouts and retries, and the
/// idempotency window.
#[derive(Debug, Clone)]
pub struct PostingPolicy {
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Per-attempt timeout of one post.
    pub post_timeout: Duration,
    /// Attempts per post (throttling, 5xx, timeouts and transport errors are
    /// retried with backoff by `adapters/management_api.rs`).
    pub post_attempts: u32,
    /// The initial retry backoff: attempt n waits a random time in
    /// `[0, post_backoff × 2^(n-1)]` (exponential backoff, full jitter).
    pub post_backoff: Duration,
    /// How long a posted message `id` is remembered per connection; zero
    /// turns idempotency off.
    pub idempotency_window: Duration,
    /// Open the Management API connection (root certificates, TLS handshake)
    /// during init instead of on the first post.
    pub warm_connections: bool,
    /// How long a record may keep retrying failed posts inside the invocation
    /// (never past the invocation's deadline: see [`crate::retry`]).
    pub retry_budget: Duration,
    /// The longest delay before a record handed back to its queue is tried
    /// again (the delays start at 1–2 s and double).
    pub retry_delay_max: Duration,
    /// Posts a second for the whole stack, every instance of every posting
    /// function together (see [`crate::pacing`]); 0 turns pacing off.
    pub rate_limit: u32,
    /// The most of that budget, in percent, one booker (the user or group a
    /// send is for) may book ([`crate::pacing`]); 100 turns the share off.
    pub booker_share: u32,
}

impl Default for PostingPolicy {
    fn default() -> Self {
        PostingPolicy {
            concurrency: 10,
            post_timeout: Duration::from_secs(1),
            post_attempts: 2,
            post_backoff: Duration::from_millis(100),
            idempotency_window: IDEMPOTENCY_WINDOW,
            warm_connections: false,
            retry_budget: Duration::from_secs(3),
            retry_delay_max: Duration::from_secs(20),
            rate_limit: 0,
            booker_share: crate::pacing::DEFAULT_BOOKER_SHARE,
        }
    }
}

/// Where posted ids are remembered and for how long; only when idempotency is on.
#[derive(Clone, Copy)]
pub struct SentIds<'a> {
    log: &'a dyn SentLog,
    window: Duration,
}

impl<'a> SentIds<'a> {
    /// `None` (idempotency off) without a store or with a zero window.
    pub fn new(log: Option<&'a dyn SentLog>, policy: &PostingPolicy) -> Option<Self> {
        match log {
            Some(log) if !policy.idempotency_window.is_zero() => Some(SentIds {
                log,
                window: policy.idempotency_window,
            }),
            _ => None,
        }
    }
}

/// The record key for message `id` posted to `connection_id` (`#` is in neither).
pub fn sent_key(id: &str, connection_id: &str) -> String {
    format!("{id}#{connection_id}")
}

/// The connections among `connection_ids` that already got message `id`.
/// Empty when the message has no id, idempotency is off, or the store fails.
pub async fn already_posted(
    sent: Option<SentIds<'_>>,
    id: Option<&str>,
    connection_ids: &[String],
) -> HashSet<String> {
    let (Some(id), Some(sent)) = (id, sent) else {
        return HashSet::new();
    };
    let keys: Vec<String> = connection_ids.iter().map(|c| sent_key(id, c)).collect();
    match sent.log.posted(&keys, now_seconds()).await {
        Ok(posted) => connection_ids
            .iter()
            .zip(&keys)
            .filter(|(_, key)| posted.contains(*key))
            .map(|(c, _)| c.clone())
            .collect(),
        Err(e) => {
            warn!(message_id = id, error = %e,
                "cannot read idempotency records; posting anyway (a duplicate beats a loss)");
            HashSet::new()
        }
    }
}

/// Records that message `id` reached `connection_ids`.
pub async fn record_posted(sent: Option<SentIds<'_>>, id: Option<&str>, connection_ids: &[String]) {
    let (Some(id), Some(sent)) = (id, sent) else {
        return;
    };
    if connection_ids.is_empty() {
        return;
    }
    let keys: Vec<String> = connection_ids.iter().map(|c| sent_key(id, c)).collect();
    let until = now_seconds() + sent.window.as_secs() as i64;
    if let Err(e) = sent.log.record_posted(&keys, until).await {
        warn!(message_id = id, error = %e,
            "cannot record idempotency records; a redelivery may post again");
    }
}

/// Counts one post's outcome: delivered, gone, throttled (429) or failed.
pub fn count_post(result: &Result<(), GatewayError>) {
    let metric = match result {
        Ok(()) => Metric::PostsDelivered,
        Err(GatewayError::Gone) => Metric::PostsGone,
        Err(GatewayError::Throttled(_)) => Metric::PostsThrottled,
        Err(_) => Metric::PostsFailed,
    };
    metrics::count(metric, &[], 1);
}

/// The longest one post may take: every attempt of the Management API
/// client timing out, with its backoffs (at most `post_backoff × 2^attempts`
/// together).
pub fn post_time(policy: &PostingPolicy) -> Duration {
    policy
        .post_timeout
        .saturating_mul(policy.post_attempts.max(1))
        + policy
            .post_backoff
            .saturating_mul(1 << policy.post_attempts.min(10))
}

/// The in-invocation retry budget and the time one more post may take
/// ([`post_time`]).
pub fn retry_deadline(policy: &PostingPolicy) -> Deadline {
    Deadline::start(policy.retry_budget, post_time(policy))
}

/// Posts `data` to a connection, a slot of `limit` per attempt, and posts a
/// transient failure again after a jittered backoff while `deadline` allows
/// (a 429 also halves the limit). Returns the last outcome; every attempt is
/// counted ([`count_post`]) and every retry as [`Metric::PostsRetried`].
pub async fn post_with_retries<G: Gateway + ?Sized>(
    gateway: &G,
    limit: &AdaptiveLimit,
    deadline: &Deadline,
    connection_id: &str,
    data: &[u8],
) -> Result<(), GatewayError> {
    let mut retry = 0;
    loop {
        let result = {
            let slot = limit.acquire().await;
            let result = gateway.post_to_connection(connection_id, data).await;
            match &result {
                Ok(()) => slot.succeeded(),
                Err(GatewayError::Throttled(_)) => slot.throttled(),
                Err(_) => {}
            }
            result
        };
        count_post(&result);
        if !result.as_ref().is_err_and(GatewayError::is_transient) {
            return result;
        }
        retry += 1;
        let wait = backoff(RETRY_BACKOFF, retry, RETRY_BACKOFF_MAX);
        if !deadline.allows(wait) {
            return result;
        }
        metrics::count(Metric::PostsRetried, &[], 1);
        tokio::time::sleep(wait).await;
    }
}

/// Whether a connection a post found gone (410) is gone for good: not while it
/// is still opening, for then the post raced its `$connect` and forgetting it
/// would orphan a live connection.
pub async fn is_gone<S: ConnectionStore + ?Sized>(
    store: &S,
    connection_id: &str,
) -> Result<bool, StoreError> {
    let now_ms = now_millis();
    if let Some(record) = store.get_connection(connection_id).await?
        && is_opening(&record, now_ms)
    {
        info!(connection_id, "410 while the connection is opening; kept");
        return Ok(false);
    }
    Ok(true)
}
