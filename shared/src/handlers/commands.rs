//! commands: the server-side Commands queue.
//!
//! - `sendToGroup` pages through the group's members and hands them to the
//!   deliver workers in batches of [`DELIVERY_BATCH`], so a group of 10,000
//!   costs 100 Deliveries messages (10 SendMessageBatch calls), not 10,000.
//! - `addConnectionToGroup` / `removeConnectionFromGroup` change one membership
//!   (the server decides; no token pattern applies). Adding a connection that
//!   is gone does nothing.
//! - `closeConnection` sends `{"type":"close","reason":…}`, then closes the
//!   connection through the Management API, which runs `$disconnect`.

use std::collections::HashSet;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, info, warn};

use crate::config::NotifyUserOptions;
use crate::handlers::enqueue::{EnqueueError, enqueue_all};
use crate::handlers::{BatchReport, FanoutPorts, process_batch, receive_count};
use crate::ports::{
    ConnectionStore, Gateway, GatewayError, Membership, MembershipStore, MessageQueue, StoreError,
};
use crate::protocol::{
    Command, DELIVERY_BATCH, DeliveryBatch, MessageError, close_frame, group_message,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// Runs one command; returns how many connections it addressed.
///
/// On error SQS retries the whole command, so members already handed to the
/// workers may get the message twice: delivery is at least once.
pub async fn run_command<S, M, G, Q>(
    ports: &FanoutPorts<'_, S, M, G, Q>,
    options: &NotifyUserOptions,
    body: Option<&str>,
) -> Result<usize, CommandError>
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
    G: Gateway + ?Sized,
    Q: MessageQueue + ?Sized,
{
    match Command::parse(body)? {
        Command::AddConnectionToGroup {
            connection_id,
            group,
        } => {
            let Some(record) = ports.store.get_connection(&connection_id).await? else {
                info!(connection_id, group, "connection gone; nothing to add");
                return Ok(0);
            };
            ports
                .memberships
                .join(&Membership {
                    group,
                    connection_id,
                    user_id: record.user_id,
                    expires_at: record.expires_at,
                })
                .await?;
            Ok(1)
        }
        Command::RemoveConnectionFromGroup {
            connection_id,
            group,
        } => Ok(usize::from(
            ports.memberships.leave(&group, &connection_id).await?,
        )),
        Command::CloseConnection {
            connection_id,
            reason,
        } => {
            let frame = close_frame(reason.as_deref());
            // Already closed (410) is fine either way: the command's goal holds.
            match ports
                .gateway
                .post_to_connection(&connection_id, frame.as_bytes())
                .await
            {
                Ok(()) | Err(GatewayError::Gone) => {}
                Err(e) => return Err(e.into()),
            }
            match ports.gateway.delete_connection(&connection_id).await {
                Ok(()) | Err(GatewayError::Gone) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(1)
        }
        Command::SendToGroup {
            group,
            data,
            exclude_connection_ids,
        } => {
            // A frame no client could receive fails once, here.
            group_message(&group, &data)?;
            let excluded: HashSet<&str> =
                exclude_connection_ids.iter().map(String::as_str).collect();
            let mut addressed = 0;
            let mut after: Option<String> = None;
            loop {
                let page = ports
                    .memberships
                    .group_members(&group, after.as_deref())
                    .await?;
                let ids: Vec<String> = page
                    .members
                    .into_iter()
                    .map(|(connection_id, _)| connection_id)
                    .filter(|id| !excluded.contains(id.as_str()))
                    .collect();
                addressed += ids.len();
                let bodies: Vec<String> = ids
                    .chunks(DELIVERY_BATCH)
                    .map(|chunk| {
                        DeliveryBatch {
                            connection_ids: chunk.to_vec(),
                            group: group.clone(),
                            data: data.clone(),
                            attempt: 1,
                        }
                        .body()
                    })
                    .collect();
                enqueue_all(ports.deliveries, bodies, options).await?;
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(addressed),
                }
            }
        }
    }
}

/// The commands function: a command that fails is a batch item failure and,
/// after `maxReceiveCount`, lands in the Commands DLQ.
pub async fn handle_commands<S, M, G, Q>(
    ports: &FanoutPorts<'_, S, M, G, Q>,
    options: &NotifyUserOptions,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
    G: Gateway + ?Sized,
    Q: MessageQueue + ?Sized,
{
    commands_batch(ports, options, event).await.into_response()
}

/// [`handle_commands`], with each failed record's reason.
pub async fn commands_batch<S, M, G, Q>(
    ports: &FanoutPorts<'_, S, M, G, Q>,
    options: &NotifyUserOptions,
    event: SqsEvent,
) -> BatchReport
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
    G: Gateway + ?Sized,
    Q: MessageQueue + ?Sized,
{
    process_batch(event, options.concurrency, |record| async move {
        let message_id = record.message_id.as_deref().unwrap_or("");
        match run_command(ports, options, record.body.as_deref()).await {
            Ok(addressed) => {
                info!(
                    message_id,
                    addressed, "command handed to the deliver workers"
                );
                Ok(())
            }
            Err(e @ CommandError::Message(_)) => {
                error!(message_id, receive_count = receive_count(&record), error = %e,
                    "unprocessable command; it goes to the DLQ after maxReceiveCount");
                Err(e.to_string())
            }
            Err(e) => {
                warn!(message_id, receive_count = receive_count(&record), error = %e,
                    "command failed; SQS will redeliver it");
                Err(e.to_string())
            }
        }
    })
    .await
}
