//! deliver: the worker behind every fan-out (group sends, user and connection
//! sends, broadcasts, client events, presence events). One Deliveries message
//! carries one finished frame for up to 100 connections; the worker posts it to
//! all of them concurrently through the Management API.
//!
//! - First, the message's posts are booked from its booker's share of the
//!   stack's budget of posts, then from the budget ([`crate::pacing`]), and
//!   wait their turn; a share or budget booked too far ahead sends them all
//!   back as throttled (below) without posting.
//! - 200: delivered.
//! - 410 Gone: the connection's record and memberships are deleted (unless it
//!   connected less than a minute ago: then the post raced its `$connect`);
//!   not retried.
//! - 429, 5xx, timeout: posted again inside the invocation after a jittered
//!   backoff while its time allows (posts in flight under the invocation's
//!   adaptive limit, halved on 429s: see [`crate::retry`]).
//! - Still failing: the connections that failed go back on the Deliveries
//!   queue as one new message with the next attempt number and a jittered
//!   delay (1–2 s, doubling per attempt, capped by `RETRY_DELAY_MAX_SECONDS`),
//!   so connections that already got the frame do not get it again. After
//!   [`MAX_DELIVERY_ATTEMPTS`] the message is refused and lands in the
//!   Deliveries DLQ with exactly the connections that never got it.
//! - Still throttled (429): those connections go back the same way but keep
//!   their attempt number (the body's `throttled` counts these hand-backs,
//!   up to [`MAX_THROTTLED_REQUEUES`]; past it a 429 counts as a failure): a
//!   busy quota alone never sends a message to the DLQ.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use tracing::{error, info, warn};

use crate::batch::{BatchReport, process_batch, receive_count, record_fanout_latency};
use crate::enqueue::EnqueuePolicy;
use crate::enqueue::{EnqueueError, enqueue_all};
use crate::membership::forget_gone;
use crate::metrics::{self, Metric};
use crate::pacing::{BUDGET_BOOKED, Pace, pace_for};
use crate::ports::{GatewayError, MessageQueue};
use crate::posting::{SentIds, already_posted, post_with_retries, record_posted, retry_deadline};
use crate::protocol::{DeliveryBatch, MessageError};
use crate::retry::{AdaptiveLimit, LimitPool, MAX_THROTTLED_REQUEUES, redelivery_delay};
use crate::services::Services;

/// Tries per connection before its Deliveries message goes to the DLQ.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverOutcome {
    pub delivered: usize,
    pub gone: usize,
    /// Connections handed back to the queue for another attempt.
    pub retried: usize,
    /// Of those, the ones handed back only because they were throttled.
    pub throttled: usize,
    /// Connections the message's `id` already reached (a redelivery): skipped.
    pub already_posted: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("{connections} connections still failing after {attempts} attempts")]
    Exhausted { attempts: u32, connections: usize },
    #[error("could not hand failed connections back to the queue: {0}")]
    Enqueue(#[from] EnqueueError),
}

/// Delivers one Deliveries message, with an adaptive limit of its own.
pub async fn deliver(
    services: &Services,
    body: Option<&str>,
) -> Result<DeliverOutcome, DeliverError> {
    let limit = AdaptiveLimit::new(services.settings.posting.concurrency);
    deliver_within(services, &limit, body).await
}

/// Delivers one Deliveries message, its posts within `limit` (the
/// invocation's: every record of a batch shares it).
pub async fn deliver_within(
    services: &Services,
    limit: &AdaptiveLimit,
    body: Option<&str>,
) -> Result<DeliverOutcome, DeliverError> {
    let settings = &services.settings;
    let batch = DeliveryBatch::parse(body)?;
    if batch.attempt > MAX_DELIVERY_ATTEMPTS {
        return Err(DeliverError::Exhausted {
            attempts: batch.attempt - 1,
            connections: batch.connection_ids.len(),
        });
    }
    let text = batch.frame.get();
    let id = batch.id.as_deref();
    let sent = SentIds::new(services.sent_log.as_deref(), &settings.posting);
    let done = already_posted(sent, id, &batch.connection_ids).await;
    let targets: Vec<String> = batch
        .connection_ids
        .iter()
        .filter(|c| !done.contains(c.as_str()))
        .cloned()
        .collect();
    let deadline = retry_deadline(&settings.posting);
    let throttle_is_failure = batch.throttled >= MAX_THROTTLED_REQUEUES;
    let posting = &settings.posting;
    let store = &*services.store;
    let paced = pace_for(
        store,
        posting.rate_limit,
        posting.booker_share,
        batch.booker.as_deref(),
        targets.len(),
        &deadline,
    )
    .await;
    let results: Vec<(String, Result<(), GatewayError>)> = match paced {
        // The stack's budget of posts is booked too far ahead: every target
        // goes back as throttled (unless its hand-backs are spent).
        Pace::Busy { .. } if !throttle_is_failure => targets
            .into_iter()
            .map(|id| (id, Err(GatewayError::Throttled(BUDGET_BOOKED.into()))))
            .collect(),
        _ => {
            futures::stream::iter(targets)
                .map(|id| {
                    let text = text.as_bytes();
                    async move {
                        let result =
                            post_with_retries(&*services.gateway, limit, &deadline, &id, text)
                                .await;
                        (id, result)
                    }
                })
                .buffer_unordered(settings.posting.concurrency)
                .collect()
                .await
        }
    };
    let mut outcome = DeliverOutcome {
        already_posted: done.len(),
        ..DeliverOutcome::default()
    };
    let mut failed = Vec::new();
    let mut throttled = Vec::new();
    let mut delivered = Vec::new();
    for (connection_id, result) in results {
        match result {
            Ok(()) => {
                outcome.delivered += 1;
                delivered.push(connection_id);
            }
            Err(GatewayError::Gone) => {
                outcome.gone += 1;
                if let Err(e) = forget_gone(services, &connection_id).await {
                    warn!(%connection_id, error = %e, "could not forget a gone connection; TTLs will");
                }
            }
            Err(GatewayError::Throttled(_)) if !throttle_is_failure => {
                throttled.push(connection_id);
            }
            Err(e) => {
                warn!(%connection_id, attempt = batch.attempt, error = %e, "post failed; will retry");
                failed.push(connection_id);
            }
        }
    }
    record_posted(sent, id, &delivered).await;
    outcome.retried = failed.len() + throttled.len();
    outcome.throttled = throttled.len();
    let mut later = Vec::new();
    if !throttled.is_empty() {
        let retry = DeliveryBatch {
            connection_ids: throttled,
            frame: batch.frame.clone(),
            attempt: batch.attempt,
            id: batch.id.clone(),
            throttled: batch.throttled + 1,
            booker: batch.booker.clone(),
        };
        later.push((
            retry.body(),
            redelivery_delay(retry.throttled, settings.posting.retry_delay_max),
        ));
    }
    if !failed.is_empty() {
        let retry = DeliveryBatch {
            connection_ids: failed,
            frame: batch.frame,
            attempt: batch.attempt + 1,
            id: batch.id,
            throttled: batch.throttled,
            booker: batch.booker,
        };
        later.push((
            retry.body(),
            redelivery_delay(batch.attempt, settings.posting.retry_delay_max),
        ));
    }
    for (body, delay) in later {
        hand_back(&*services.deliveries, body, delay, &settings.enqueue).await?;
    }
    Ok(outcome)
}

/// Puts connections back on the Deliveries queue, visible after `delay`; if
/// the queue cannot delay (or the delayed send fails), at once, with the
/// enqueue policy's retries: sooner beats lost.
async fn hand_back(
    queue: &dyn MessageQueue,
    body: String,
    delay: Duration,
    policy: &EnqueuePolicy,
) -> Result<(), EnqueueError> {
    metrics::count(Metric::RetriesScheduled, &["deliveries"], 1);
    match queue
        .send_later(std::slice::from_ref(&body), delay, &[])
        .await
    {
        Ok(failures) if failures.is_empty() => return Ok(()),
        Ok(failures) => {
            warn!(code = %failures[0].code, "delayed hand-back refused; sending it at once")
        }
        Err(crate::ports::QueueError::Unsupported(_)) => {}
        Err(e) => warn!(error = %e, "delayed hand-back failed; sending it at once"),
    }
    enqueue_all(queue, vec![body], policy).await.map(|_| ())
}

/// deliver's limits on posts in flight, kept across invocations: what one
/// invocation learnt about the quota, the next goes on from (one per
/// instance; see [`LimitPool`]).
static DELIVER_LIMITS: LimitPool = LimitPool::new();

/// The deliver function.
pub async fn handle_deliveries(services: &Services, event: SqsEvent) -> SqsBatchResponse {
    deliveries_batch(services, event).await.into_response()
}

/// [`handle_deliveries`], with each failed record's reason.
pub async fn deliveries_batch(services: &Services, event: SqsEvent) -> BatchReport {
    // The records run together, their posts within one adaptive limit (this
    // instance's share of the quota): a connection whose posts keep failing
    // holds up its own message only, not the rest of the batch.
    let pooled = DELIVER_LIMITS.checkout(services.settings.posting.concurrency);
    let limit: &AdaptiveLimit = &pooled;
    let records = event.records.len();
    process_batch("deliveries", event, records, |record| async move {
        let message_id = record.message_id.as_deref().unwrap_or("");
        match deliver_within(services, limit, record.body.as_deref()).await {
            Ok(outcome) => {
                if outcome.delivered > 0 {
                    record_fanout_latency(&record);
                }
                info!(
                    message_id,
                    delivered = outcome.delivered,
                    gone = outcome.gone,
                    retried = outcome.retried,
                    throttled = outcome.throttled,
                    already_posted = outcome.already_posted,
                    "delivered"
                );
                Ok(())
            }
            Err(e @ DeliverError::Enqueue(_)) => {
                warn!(message_id, receive_count = receive_count(&record), error = %e,
                    "delivery incomplete; SQS will redeliver the whole message");
                Err(e.to_string())
            }
            Err(e) => {
                error!(message_id, receive_count = receive_count(&record), error = %e,
                    "undeliverable; it goes to the DLQ after maxReceiveCount");
                Err(e.to_string())
            }
        }
    })
    .await
}
