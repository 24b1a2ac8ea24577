//! commands: the server-side Commands queue. `sendToGroup` pages through the
//! group's members and hands them to the deliver workers in batches of
//! [`DELIVERY_BATCH`], so a group of 10,000 costs 100 Deliveries messages (10
//! SendMessageBatch calls), not 10,000.

use std::collections::HashSet;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, info, warn};

use crate::config::NotifyUserOptions;
use crate::handlers::enqueue::{EnqueueError, enqueue_all};
use crate::handlers::{BatchReport, process_batch, receive_count};
use crate::ports::{MembershipStore, MessageQueue, StoreError};
use crate::protocol::{Command, DELIVERY_BATCH, DeliveryBatch, MessageError, group_message};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Runs one command; returns how many connections it addressed.
///
/// On error SQS retries the whole command, so members already handed to the
/// workers may get the message twice: delivery is at least once.
pub async fn run_command<M, Q>(
    memberships: &M,
    deliveries: &Q,
    options: &NotifyUserOptions,
    body: Option<&str>,
) -> Result<usize, CommandError>
where
    M: MembershipStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    match Command::parse(body)? {
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
                let page = memberships.group_members(&group, after.as_deref()).await?;
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
                enqueue_all(deliveries, bodies, options).await?;
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
pub async fn handle_commands<M, Q>(
    memberships: &M,
    deliveries: &Q,
    options: &NotifyUserOptions,
    event: SqsEvent,
) -> SqsBatchResponse
where
    M: MembershipStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    commands_batch(memberships, deliveries, options, event)
        .await
        .into_response()
}

/// [`handle_commands`], with each failed record's reason.
pub async fn commands_batch<M, Q>(
    memberships: &M,
    deliveries: &Q,
    options: &NotifyUserOptions,
    event: SqsEvent,
) -> BatchReport
where
    M: MembershipStore + ?Sized,
    Q: MessageQueue + ?Sized,
{
    process_batch(event, options.concurrency, |record| async move {
        let message_id = record.message_id.as_deref().unwrap_or("");
        match run_command(memberships, deliveries, options, record.body.as_deref()).await {
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
