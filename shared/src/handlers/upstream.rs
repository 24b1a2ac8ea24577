//! The Upstream queue: each message is one event (structured CloudEvent
//! JSON); each is POSTed to the webhook ([`crate::upstream::delivery`]).
//!
//! - delivered (2xx): done;
//! - refused for good (a 4xx other than 408/429): put on the dead-letter
//!   queue as `{"status":…,"event":…}` and done (if that put fails, the
//!   message is retried: nothing is lost);
//! - out of attempts (timeouts, 408, 429, 5xx): a batch item failure, so SQS
//!   redelivers it after the visibility timeout and, after the queue's
//!   `maxReceiveCount`, moves it to the same dead-letter queue;
//! - no usable webhook secret: a batch item failure (nothing is sent unsigned);
//! - an event whose request cannot be built (the poster refused it): put on
//!   the dead-letter queue with status 0, alone; the rest of the batch goes
//!   on.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, info, warn};

use crate::batch::{BatchReport, process_batch};
use crate::ports::MessageQueue;
use crate::upstream::delivery::{DeliveryPolicy, Outcome, deliver};
use crate::upstream::{CloudEvent, HttpPoster, WebhookSecret};

/// What the webhook sender needs.
#[derive(Clone)]
pub struct WebhookSender {
    pub http: Arc<dyn HttpPoster>,
    pub url: String,
    pub secret: WebhookSecret,
    pub policy: DeliveryPolicy,
    /// Where refused events go, with their status.
    pub dead_letters: Arc<dyn MessageQueue>,
    /// Events handled at once.
    pub concurrency: usize,
}

/// The body put on the dead-letter queue for an event the receiver refused.
pub fn dead_letter_body(status: u16, event: &str) -> String {
    let event: serde_json::Value =
        serde_json::from_str(event).unwrap_or_else(|_| serde_json::Value::String(event.into()));
    serde_json::json!({ "status": status, "event": event }).to_string()
}

/// Delivers a batch; returns the records to redeliver.
pub async fn upstream_batch(sender: &WebhookSender, event: SqsEvent) -> BatchReport {
    process_batch("upstream", event, sender.concurrency, |record| async move {
        let body = record.body.unwrap_or_default();
        let Ok(event) = serde_json::from_str::<CloudEvent>(&body) else {
            // Never deliverable: straight to the dead letters (status 0).
            return bury(sender, 0, &body, "not a CloudEvent").await;
        };
        let secret = sender.secret.bytes().await.map_err(|e| {
            error!(error = %e, "no webhook secret: the event stays queued");
            e.to_string()
        })?;
        match deliver(&*sender.http, &sender.url, secret, &event, &sender.policy).await {
            Outcome::Delivered { attempts } => {
                info!(event_id = %event.id, event_type = %event.kind, attempts, "event delivered");
                Ok(())
            }
            Outcome::Final { status } => {
                bury(
                    sender,
                    status,
                    &body,
                    &format!("the receiver answered {status}"),
                )
                .await
            }
            Outcome::Unsendable(reason) => {
                error!(event_id = ?event.id, reason, "event cannot be sent");
                bury(sender, 0, &body, &reason).await
            }
            Outcome::Retry(reason) => {
                warn!(event_id = %event.id, reason, "event not delivered; it will be retried");
                Err(reason)
            }
        }
    })
    .await
}

async fn bury(sender: &WebhookSender, status: u16, body: &str, why: &str) -> Result<(), String> {
    let dead = dead_letter_body(status, body);
    match sender
        .dead_letters
        .send_batch(std::slice::from_ref(&dead))
        .await
    {
        Ok(failures) if failures.is_empty() => {
            warn!(status, why, "event moved to the dead letters");
            Ok(())
        }
        Ok(failures) => Err(format!(
            "cannot move the event to the dead letters: {}",
            failures
                .first()
                .map(|f| f.message.as_str())
                .unwrap_or_default()
        )),
        Err(e) => Err(format!("cannot move the event to the dead letters: {e}")),
    }
}

/// The Lambda answer for [`upstream_batch`].
pub async fn handle_upstream(sender: &WebhookSender, event: SqsEvent) -> SqsBatchResponse {
    upstream_batch(sender, event).await.into_response()
}
