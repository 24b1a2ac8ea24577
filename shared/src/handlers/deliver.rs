//! deliver: the worker behind every fan-out (group sends, user and connection
//! sends, broadcasts, client events, presence events). One Deliveries message
//! carries one finished frame for up to 100 connections; the worker posts it to
//! all of them concurrently through the Management API.
//!
//! - 200: delivered.
//! - 410 Gone: the connection's record and memberships are deleted (unless it
//!   connected less than a minute ago: then the post raced its `$connect`);
//!   not retried.
//! - Any other failure: the connections that failed go back on the Deliveries
//!   queue as one new message with the next attempt number, so connections that
//!   already got the frame do not get it again. After [`MAX_DELIVERY_ATTEMPTS`]
//!   the message is refused and lands in the Deliveries DLQ with exactly the
//!   connections that never got it.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use tracing::{error, info, warn};

use crate::batch::{BatchReport, process_batch, receive_count, record_fanout_latency};
use crate::enqueue::{EnqueueError, enqueue_all};
use crate::ports::GatewayError;
use crate::posting::{SentIds, already_posted, count_post, forget_gone, record_posted};
use crate::protocol::{DeliveryBatch, MessageError};
use crate::services::Services;

/// Tries per connection before its Deliveries message goes to the DLQ.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverOutcome {
    pub delivered: usize,
    pub gone: usize,
    /// Connections handed back to the queue for another attempt.
    pub retried: usize,
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

/// Delivers one Deliveries message.
pub async fn deliver(
    services: &Services,
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
    let results: Vec<(String, Result<(), GatewayError>)> = futures::stream::iter(targets)
        .map(|id| {
            let text = text.as_bytes();
            async move {
                let result = services.gateway.post_to_connection(&id, text).await;
                (id, result)
            }
        })
        .buffer_unordered(settings.posting.concurrency)
        .collect()
        .await;
    let mut outcome = DeliverOutcome {
        already_posted: done.len(),
        ..DeliverOutcome::default()
    };
    let mut failed = Vec::new();
    let mut delivered = Vec::new();
    for (connection_id, result) in results {
        count_post(&result);
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
            Err(e) => {
                warn!(%connection_id, attempt = batch.attempt, error = %e, "post failed; will retry");
                failed.push(connection_id);
            }
        }
    }
    record_posted(sent, id, &delivered).await;
    if !failed.is_empty() {
        outcome.retried = failed.len();
        let retry = DeliveryBatch {
            connection_ids: failed,
            frame: batch.frame,
            attempt: batch.attempt + 1,
            id: batch.id,
        };
        enqueue_all(&*services.deliveries, vec![retry.body()], &settings.enqueue).await?;
    }
    Ok(outcome)
}

/// The deliver function.
pub async fn handle_deliveries(services: &Services, event: SqsEvent) -> SqsBatchResponse {
    deliveries_batch(services, event).await.into_response()
}

/// [`handle_deliveries`], with each failed record's reason.
pub async fn deliveries_batch(services: &Services, event: SqsEvent) -> BatchReport {
    // One message already fans out to up to 100 posts; take records one at a time.
    process_batch("deliveries", event, 1, |record| async move {
        let message_id = record.message_id.as_deref().unwrap_or("");
        match deliver(services, record.body.as_deref()).await {
            Ok(outcome) => {
                if outcome.delivered > 0 {
                    record_fanout_latency(&record);
                }
                info!(
                    message_id,
                    delivered = outcome.delivered,
                    gone = outcome.gone,
                    retried = outcome.retried,
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
