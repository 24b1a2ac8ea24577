//! notify-user: fan a NotifyUser message out to one NotifyConnection message
//! per connection of the user.
//!
//! Its [`Services`]: `store` (the user index), `deliveries` (here the
//! NotifyConnection queue: where this fan-out goes), `settings.enqueue`, and
//! `history` with `settings.history` (the user's stream, if it keeps history).

use aws_lambda_events::sqs::SqsEvent;
use tracing::{error, info, warn};

use futures::TryStreamExt;
use serde_json::value::RawValue;

use crate::batch::{BatchReport, process_batch, receive_count};
use crate::enqueue::enqueue_all;
use crate::fanout::{FanoutError, user_envelope_ids};
use crate::history::Stream;
use crate::pacing::user_booker;
use crate::ports::{StoreError, pages};
use crate::protocol::{MessageError, NotifyConnection, NotifyUser, render_data, server_message};
use crate::recorder::Recorder;
use crate::services::Services;

/// Enqueues one NotifyConnection message per connection of the message's user
/// and returns how many it enqueued. Pages through the user index (a Query,
/// never a Scan) and sends in batches of ten, retrying only the entries SQS
/// did not take.
///
/// If the user's stream keeps history (see [`crate::history`]), the message
/// is appended to it first, keyed by the message's `id`, else by `queue_key`
/// (the SQS message id), so a redelivery reuses its offset. Connections that
/// asked for envelopes get `data` as a stamped `message` frame; the others
/// get `data` itself.
///
/// On error the whole NotifyUser message is retried by SQS, so connections
/// already enqueued may be notified twice: delivery is at least once.
pub async fn notify_user(
    services: &Services,
    queue_key: Option<&str>,
    body: Option<&str>,
) -> Result<usize, FanoutError> {
    let message = NotifyUser::parse(body)?;
    // Data no client could receive fails here, once, not once per connection.
    render_data(&message.data)?;

    let user_id = message.user_id.as_str();
    let key = message.id.as_deref().or(queue_key);
    // A frame too large to envelope goes to every connection as plain `data`, and is not kept.
    let envelope = match (Recorder::of(services), server_message(None, &message.data)) {
        (Some(recorder), Ok(frame)) => recorder
            .append(&Stream::User(user_id.to_owned()), key, &frame)
            .await?
            .map(|appended| RawValue::from_string(appended.stamped))
            .transpose()
            .map_err(|e| MessageError::Malformed(e.to_string()))?,
        _ => None,
    };
    let store = &services.store;
    let mut connections = std::pin::pin!(pages(move |after| async move {
        let page = store.user_connections(user_id, after.as_deref()).await?;
        Ok::<_, StoreError>((page.connection_ids, page.next))
    }));
    let booker = user_booker(user_id);
    let mut enqueued = 0;
    // Read after the first page of connections: a connection listed there was
    // stored (with its choice) before this read.
    let mut enveloped = None;
    while let Some(ids) = connections.try_next().await? {
        if envelope.is_some() && enveloped.is_none() && !ids.is_empty() {
            enveloped = Some(user_envelope_ids(services, user_id).await?);
        }
        let enveloped = enveloped.as_ref();
        let bodies: Vec<String> = ids
            .iter()
            .map(|id| {
                let data = match &envelope {
                    Some(frame) if enveloped.is_some_and(|e| e.contains(id)) => frame,
                    _ => &message.data,
                };
                NotifyConnection::body(id, data, message.id.as_deref(), Some(&booker))
            })
            .collect();
        enqueued += enqueue_all(&*services.deliveries, bodies, &services.settings.enqueue).await?;
    }
    Ok(enqueued)
}

/// The notify-user function: each NotifyUser record that fails is reported
/// as a batch item failure (with its reason) and, after `maxReceiveCount`,
/// lands in the DLQ. The Lambda answers with [`BatchReport::into_response`].
pub async fn notify_user_batch(services: &Services, event: SqsEvent) -> BatchReport {
    process_batch(
        "notify-user",
        event,
        services.settings.enqueue.concurrency,
        |record| async move {
            let message_id = record.message_id.as_deref().unwrap_or("");
            let key = Some(message_id).filter(|m| !m.is_empty());
            let body = record.body.as_deref();
            match notify_user(services, key, body).await {
                Ok(0) => {
                    info!(message_id, "user has no connections; nothing to send");
                    Ok(())
                }
                Ok(enqueued) => {
                    info!(message_id, enqueued, "fanned out to the user's connections");
                    Ok(())
                }
                Err(e @ FanoutError::Message(_)) => {
                    error!(message_id, receive_count = receive_count(&record), error = %e,
                    "unprocessable NotifyUser message; it goes to the DLQ after maxReceiveCount");
                    Err(e.to_string())
                }
                Err(e) => {
                    warn!(message_id, receive_count = receive_count(&record), error = %e,
                    "NotifyUser failed; SQS will redeliver it");
                    Err(e.to_string())
                }
            }
        },
    )
    .await
}
