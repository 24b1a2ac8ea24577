//! notify-connection: post a NotifyConnection message's data to its connection
//! through the API Gateway Management API.
//!
//! Outcome per record:
//! | outcome | what happens |
//! |---|---|
//! | 200 | delivered, message done |
//! | 410 Gone | stale record deleted (kept if it connected under a minute ago: the post raced its `$connect`), message done (never retried) |
//! | 429, 5xx, timeout, unreachable | batch item failure: SQS redelivers after the visibility timeout |
//! | 403 Forbidden | batch item failure: a permission or endpoint mistake; the message is kept, ending in the DLQ for redrive once fixed |
//! | data over 128 KB, or 413 | batch item failure with no post (size is checked first); it ends in the DLQ |
//! | malformed body, other 4xx | batch item failure, ending in the DLQ |

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{debug, error, info, warn};

use crate::batch::{BatchReport, process_batch, receive_count, record_fanout_latency};
use crate::ports::{ConnectionStore, Gateway, GatewayError};
use crate::posting::{Posting, already_posted, count_post, is_gone, record_posted};
use crate::protocol::{MessageError, NotifyConnection, render_data};

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

/// Delivers one NotifyConnection message.
pub async fn notify_connection<S, G>(
    store: &S,
    gateway: &G,
    posting: &Posting,
    body: Option<&str>,
) -> Result<Delivery, NotifyConnectionError>
where
    S: ConnectionStore + ?Sized,
    G: Gateway + ?Sized,
{
    let message = NotifyConnection::parse(body)?;
    let text = render_data(&message.data)?;
    let id = message.id.as_deref();
    let target = std::slice::from_ref(&message.connection_id);
    if !already_posted(posting.sent_ids(), id, target)
        .await
        .is_empty()
    {
        return Ok(Delivery::AlreadyPosted);
    }
    let result = gateway
        .post_to_connection(&message.connection_id, text.as_bytes())
        .await;
    count_post(&result);
    match result {
        Ok(()) => {
            record_posted(posting.sent_ids(), id, target).await;
            Ok(Delivery::Delivered)
        }
        Err(GatewayError::Gone) => {
            // The message is done either way: a gone connection cannot receive it.
            if let Err(e) = delete_if_gone(store, &message.connection_id).await {
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
/// reports the ones to retry as batch item failures.
pub async fn handle_notify_connection<S, G>(
    store: &S,
    gateway: &G,
    posting: &Posting,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: ConnectionStore + ?Sized,
    G: Gateway + ?Sized,
{
    notify_connection_batch(store, gateway, posting, event)
        .await
        .into_response()
}

/// [`handle_notify_connection`], with each failed record's reason.
pub async fn notify_connection_batch<S, G>(
    store: &S,
    gateway: &G,
    posting: &Posting,
    event: SqsEvent,
) -> BatchReport
where
    S: ConnectionStore + ?Sized,
    G: Gateway + ?Sized,
{
    process_batch("notify-connection", event, posting.policy.concurrency, |record| async move {
        let message_id = record.message_id.as_deref().unwrap_or("");
        match notify_connection(store, gateway, posting, record.body.as_deref()).await {
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
            Err(e) if e.is_transient() => {
                warn!(message_id, receive_count = receive_count(&record), error = %e,
                    "post failed; SQS will redeliver");
                Err(e.to_string())
            }
            Err(e) => {
                error!(message_id, receive_count = receive_count(&record), error = %e,
                    "undeliverable NotifyConnection message; it goes to the DLQ after maxReceiveCount");
                Err(e.to_string())
            }
        }
    })
    .await
}
