//! notify-user: fan a NotifyUser message out to one NotifyConnection message
//! per connection of the user.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, info, warn};

use std::collections::HashSet;

use futures::TryStreamExt;
use serde_json::value::RawValue;

use crate::batch::{BatchReport, process_batch, receive_count};
use crate::enqueue::EnqueuePolicy;
use crate::enqueue::enqueue_all;
use crate::fanout::{FanoutError, pages};
use crate::history::{Recorder, Stream};
use crate::ports::{ConnectionStore, MessageQueue, StoreError};
use crate::protocol::{MessageError, NotifyConnection, NotifyUser, render_data, server_message};

/// Enqueues one NotifyConnection message per connection of the message's user
/// and returns how many it enqueued. Pages through the user index (a Query,
/// never a Scan) and sends in batches of ten, retrying only the entries SQS
/// did not take.
///
/// On error the whole NotifyUser message is retried by SQS, so connections
/// already enqueued may be notified twice: delivery is at least once.
pub async fn notify_user<S, Q>(
    store: &S,
    queue: &Q,
    policy: &EnqueuePolicy,
    body: Option<&str>,
) -> Result<usize, FanoutError>
where
    S: ConnectionStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    notify_user_recorded(store, queue, policy, None, None, body).await
}

/// [`notify_user`], first appending the message to the user's stream if it
/// keeps history (see [`crate::history`]), keyed by the message's `id`, else
/// by `queue_key` (the SQS message id), so a redelivery reuses its offset.
/// Connections that asked for envelopes get `data` as a stamped `message`
/// frame; the others get `data` exactly as before.
pub async fn notify_user_recorded<S, Q>(
    store: &S,
    queue: &Q,
    policy: &EnqueuePolicy,
    recorder: Option<Recorder<'_>>,
    queue_key: Option<&str>,
    body: Option<&str>,
) -> Result<usize, FanoutError>
where
    S: ConnectionStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    let message = NotifyUser::parse(body)?;
    // Data no client could receive fails here, once, not once per connection.
    render_data(&message.data)?;

    let user_id = message.user_id.as_str();
    let key = message.id.as_deref().or(queue_key);
    // A frame too large to envelope is delivered as before and not kept.
    let envelope = match (recorder, server_message(None, &message.data)) {
        (Some(recorder), Ok(frame)) => recorder
            .append(&Stream::User(user_id.to_owned()), key, &frame)
            .await?
            .map(|appended| RawValue::from_string(appended.stamped))
            .transpose()
            .map_err(|e| MessageError::Malformed(e.to_string()))?,
        _ => None,
    };
    let mut connections = std::pin::pin!(pages(move |after| async move {
        let page = store.user_connections(user_id, after.as_deref()).await?;
        Ok::<_, StoreError>((page.connection_ids, page.next))
    }));
    let mut enqueued = 0;
    // Read after the first page of connections: a connection listed there was
    // stored (with its choice) before this read.
    let mut enveloped: Option<HashSet<String>> = None;
    while let Some(ids) = connections.try_next().await? {
        if envelope.is_some() && enveloped.is_none() && !ids.is_empty() {
            let ids: Vec<String> = pages(move |after| async move {
                let page = store
                    .user_envelope_connections(user_id, after.as_deref())
                    .await?;
                Ok::<_, StoreError>((page.connection_ids, page.next))
            })
            .try_concat()
            .await?;
            enveloped = Some(ids.into_iter().collect());
        }
        let enveloped = enveloped.as_ref();
        let bodies: Vec<String> = ids
            .iter()
            .map(|id| {
                let data = match &envelope {
                    Some(frame) if enveloped.is_some_and(|e| e.contains(id)) => frame,
                    _ => &message.data,
                };
                NotifyConnection::body(id, data, message.id.as_deref())
            })
            .collect();
        enqueued += enqueue_all(queue, bodies, policy).await?;
    }
    Ok(enqueued)
}

/// The notify-user function: each NotifyUser record that fails is reported
/// as a batch item failure and, after `maxReceiveCount`, lands in the DLQ.
pub async fn handle_notify_user<S, Q>(
    store: &S,
    queue: &Q,
    policy: &EnqueuePolicy,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: ConnectionStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    notify_user_batch(store, queue, policy, event)
        .await
        .into_response()
}

/// [`handle_notify_user`] with history: each message is appended to its
/// user's stream first (see [`notify_user_recorded`]).
pub async fn handle_notify_user_recorded<S, Q>(
    store: &S,
    queue: &Q,
    policy: &EnqueuePolicy,
    recorder: Option<Recorder<'_>>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: ConnectionStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    notify_user_batch_recorded(store, queue, policy, recorder, event)
        .await
        .into_response()
}

/// [`handle_notify_user`], with each failed record's reason.
pub async fn notify_user_batch<S, Q>(
    store: &S,
    queue: &Q,
    policy: &EnqueuePolicy,
    event: SqsEvent,
) -> BatchReport
where
    S: ConnectionStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    notify_user_batch_recorded(store, queue, policy, None, event).await
}

/// [`handle_notify_user_recorded`], with each failed record's reason.
pub async fn notify_user_batch_recorded<S, Q>(
    store: &S,
    queue: &Q,
    policy: &EnqueuePolicy,
    recorder: Option<Recorder<'_>>,
    event: SqsEvent,
) -> BatchReport
where
    S: ConnectionStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    process_batch(
        "notify-user",
        event,
        policy.concurrency,
        |record| async move {
            let message_id = record.message_id.as_deref().unwrap_or("");
            let key = Some(message_id).filter(|m| !m.is_empty());
            let body = record.body.as_deref();
            match notify_user_recorded(store, queue, policy, recorder, key, body).await {
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
