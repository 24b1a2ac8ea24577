//! notify-connection: post a NotifyConnection message's data to its connection
//! through the API Gateway Management API.
//!
//! First the batch's posts are booked from their bookers' shares of the
//! stack's budget of posts (a message's `booker`), then from the budget
//! ([`crate::pacing`]), and wait their turn. Then, outcome per record:
//!
//! | outcome | what happens |
//! |---|---|
//! | budget (or the record's booker's share) booked too far ahead | no post: each record is handled as a 429 that is still throttled (below) |
//! | 200 | delivered, message done |
//! | 410 Gone | stale record deleted (kept if it connected under a minute ago: the post raced its `$connect`), message done (never retried) |
//! | 429, 5xx, timeout, unreachable | posted again inside the invocation after a jittered backoff, while its time allows (see [`crate::retry`]) |
//! | still 5xx, timeout, unreachable | the message's visibility is cut to a jittered 1–2 s (doubling with its receive count, capped by `RETRY_DELAY_MAX_SECONDS`), then a batch item failure: SQS redelivers it in seconds, and its receive count still sends a poison message to the DLQ after maxReceiveCount |
//! | still 429 | the body is sent again, verbatim, with a jittered delay and the message attribute `Throttled` counting these hand-backs, and the record is done: a busy quota spends no receives. Past [`MAX_THROTTLED_REQUEUES`] it is handled as a 5xx |
//! | 403 Forbidden | batch item failure: a permission or endpoint mistake; the message is kept, ending in the DLQ for redrive once fixed |
//! | data over 128 KB, or 413 | batch item failure with no post (size is checked first); it ends in the DLQ |
//! | malformed body, other 4xx | batch item failure, ending in the DLQ |
//!
//! Its [`Services`]: `store`, `gateway`, `sent_log` (idempotency),
//! `settings.posting`, and `deliveries`: here the NotifyConnection queue
//! itself, where a failed record is handed back.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::{debug, error, info, warn};

use crate::batch::{BatchReport, process_batch, receive_count, record_fanout_latency};
use crate::metrics::{self, Metric};
use crate::pacing::{BUDGET_BOOKED, Pace, book_shares, pace};
use crate::ports::{ConnectionStore, GatewayError};
use crate::posting::{
    SentIds, already_posted, is_gone, post_with_retries, record_posted, retry_deadline,
};
use crate::protocol::{MessageError, NotifyConnection, render_data};
use crate::retry::{AdaptiveLimit, MAX_THROTTLED_REQUEUES, redelivery_delay};
use crate::services::Services;

/// The message attribute counting a record's hand-backs for throttling alone.
pub const THROTTLED_ATTRIBUTE: &str = "Throttled";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The message's `id` already reached this connection: not posted again.
    AlreadyPosted,
    /// The connection was gone; its record was deleted.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyConnectionError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Post(#[from] GatewayError),
}

impl NotifyConnectionError {
    /// Whether a redelivery may succeed (otherwise the message is headed for the DLQ).
    pub fn is_transient(&self) -> bool {
        matches!(self, NotifyConnectionError::Post(e) if e.is_transient())
    }
}

/// Delivers one NotifyConnection message, with an adaptive limit of its own.
pub async fn notify_connection(
    services: &Services,
    body: Option<&str>,
) -> Result<Delivery, NotifyConnectionError> {
    let limit = AdaptiveLimit::new(services.settings.posting.concurrency);
    notify_connection_within(services, &limit, body).await
}

/// Delivers one NotifyConnection message, its posts within `limit` (the
/// invocation's: every record of a batch shares it).
async fn notify_connection_within(
    services: &Services,
    limit: &AdaptiveLimit,
    body: Option<&str>,
) -> Result<Delivery, NotifyConnectionError> {
    let policy = &services.settings.posting;
    let message = NotifyConnection::parse(body)?;
    let text = render_data(&message.data)?;
    let id = message.id.as_deref();
    let target = std::slice::from_ref(&message.connection_id);
    let sent = SentIds::new(services.sent_log.as_deref(), policy);
    if !already_posted(sent, id, target).await.is_empty() {
        return Ok(Delivery::AlreadyPosted);
    }
    let deadline = retry_deadline(policy);
    let result = post_with_retries(
        &*services.gateway,
        limit,
        &deadline,
        &message.connection_id,
        text.as_bytes(),
    )
    .await;
    match result {
        Ok(()) => {
            record_posted(sent, id, target).await;
            Ok(Delivery::Delivered)
        }
        Err(GatewayError::Gone) => {
            // The message is done either way: a gone connection cannot receive it.
            if let Err(e) = delete_if_gone(&*services.store, &message.connection_id).await {
                warn!(connection_id = %message.connection_id, error = %e,
                    "could not delete a gone connection's record; its TTL will");
            }
            Ok(Delivery::Gone)
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes the record of a connection a post found gone, unless it is still
/// opening (see [`crate::posting::is_gone`]).
async fn delete_if_gone<S: ConnectionStore + ?Sized>(
    store: &S,
    connection_id: &str,
) -> Result<(), crate::ports::StoreError> {
    if is_gone(store, connection_id).await? {
        store.delete_connection(connection_id).await?;
    }
    Ok(())
}

/// The notify-connection function: posts the batch's records concurrently and
/// reports the ones to retry as batch item failures. `limit` holds the posts
/// in flight in this instance: one for all its invocations, so what one learnt
/// about the quota the next goes on from.
pub async fn handle_notify_connection(
    services: &Services,
    limit: &AdaptiveLimit,
    event: SqsEvent,
) -> SqsBatchResponse {
    notify_connection_batch(services, limit, event)
        .await
        .into_response()
}

/// [`handle_notify_connection`], with each failed record's reason.
pub async fn notify_connection_batch(
    services: &Services,
    limit: &AdaptiveLimit,
    event: SqsEvent,
) -> BatchReport {
    let policy = &services.settings.posting;
    let store = &*services.store;
    // The batch's posts are booked from their bookers' shares of the stack's
    // budget, then from the budget, together.
    let deadline = retry_deadline(policy);
    let mut bookers: BTreeMap<String, usize> = BTreeMap::new();
    for record in &event.records {
        if let Some(booker) = booker_of(record) {
            *bookers.entry(booker).or_default() += 1;
        }
    }
    let shares: Vec<(&str, usize)> = bookers.iter().map(|(b, n)| (b.as_str(), *n)).collect();
    let (over_share, _) = book_shares(
        store,
        policy.rate_limit,
        policy.booker_share,
        &shares,
        &deadline,
    )
    .await;
    let held: usize = over_share.iter().filter_map(|b| bookers.get(b)).sum();
    let paced = pace(
        store,
        policy.rate_limit,
        event.records.len() - held,
        &deadline,
    )
    .await;
    let busy = matches!(paced, Pace::Busy { .. });
    let over_share = &over_share;
    process_batch("notify-connection", event, policy.concurrency, |record| async move {
        let message_id = record.message_id.as_deref().unwrap_or("");
        if busy || booker_of(&record).is_some_and(|b| over_share.contains(&b)) {
            let booked = NotifyConnectionError::Post(GatewayError::Throttled(BUDGET_BOOKED.into()));
            return hand_back(services, &record, &booked).await;
        }
        match notify_connection_within(services, limit, record.body.as_deref()).await {
            Ok(Delivery::Delivered) => {
                record_fanout_latency(&record);
                debug!(message_id, "delivered");
                Ok(())
            }
            Ok(Delivery::AlreadyPosted) => {
                info!(message_id, "a redelivery of a message already posted; not posted again");
                Ok(())
            }
            Ok(Delivery::Gone) => {
                info!(message_id, "connection gone; record deleted, message dropped");
                Ok(())
            }
            Err(e) if e.is_transient() => hand_back(services, &record, &e).await,
            Err(e) => {
                error!(message_id, receive_count = receive_count(&record), error = %e,
                    "undeliverable NotifyConnection message; it goes to the DLQ after maxReceiveCount");
                Err(e.to_string())
            }
        }
    })
    .await
}

/// The record's booker, if its body names one (a body that cannot be read
/// has none here, and fails when it is handled).
fn booker_of(record: &SqsMessage) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Booker {
        booker: Option<String>,
    }
    let body = record.body.as_deref()?;
    serde_json::from_str::<Booker>(body).ok()?.booker
}

/// How many times this record was handed back for throttling alone.
fn throttled_count(record: &SqsMessage) -> u32 {
    record
        .message_attributes
        .get(THROTTLED_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A record whose post still fails after the in-invocation retries: sent
/// again to its own queue with a delay if only throttled (the record is then
/// done), else made visible again in seconds and reported failed. If the
/// queue fails, the record waits out the visibility timeout.
async fn hand_back(
    services: &Services,
    record: &SqsMessage,
    error: &NotifyConnectionError,
) -> Result<(), String> {
    let message_id = record.message_id.as_deref().unwrap_or("");
    let receives = receive_count(record);
    let max_delay = services.settings.posting.retry_delay_max;
    let queue = &services.deliveries;
    let throttled = throttled_count(record);
    if matches!(
        error,
        NotifyConnectionError::Post(GatewayError::Throttled(_))
    ) && throttled < MAX_THROTTLED_REQUEUES
        && let Some(body) = &record.body
    {
        let delay = redelivery_delay(throttled + 1, max_delay);
        let count = (throttled + 1).to_string();
        match queue
            .send_later(
                std::slice::from_ref(body),
                delay,
                &[(THROTTLED_ATTRIBUTE, count)],
            )
            .await
        {
            Ok(failures) if failures.is_empty() => {
                metrics::count(Metric::RetriesScheduled, &["notify-connection"], 1);
                info!(
                    message_id,
                    throttled = throttled + 1,
                    delay_s = delay.as_secs(),
                    "throttled; sent again with a delay"
                );
                return Ok(());
            }
            Ok(failures) => warn!(message_id, code = %failures[0].code,
                "could not send a throttled record again; SQS will redeliver it"),
            Err(e) => warn!(message_id, error = %e,
                "could not send a throttled record again; SQS will redeliver it"),
        }
    }
    let delay = redelivery_delay(receives, max_delay);
    match record.receipt_handle.as_deref() {
        Some(receipt_handle) => match queue.retry_after(receipt_handle, delay).await {
            Ok(()) => {
                metrics::count(Metric::RetriesScheduled, &["notify-connection"], 1);
                warn!(message_id, receive_count = receives, delay_s = delay.as_secs(), error = %error,
                    "post failed; SQS will redeliver in seconds");
            }
            Err(e) => warn!(message_id, receive_count = receives, error = %error, queue_error = %e,
                "post failed and its visibility could not be cut; SQS will redeliver after the visibility timeout"),
        },
        None => warn!(message_id, receive_count = receives, error = %error,
            "post failed; SQS will redeliver after the visibility timeout"),
    }
    Err(error.to_string())
}
