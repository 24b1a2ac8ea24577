//! commands: the Commands queue handler. Every body carries `"version":1` and
//! a `"type"` (docs/server-api.md documents each type); [`crate::command_runner`] executes it.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tracing::{error, info, warn};

use crate::batch::{BatchReport, process_batch, receive_count};
use crate::command_runner::{CommandError, run_queued_command};
use crate::services::Services;

/// The commands function: a command that fails is a batch item failure and,
/// after `maxReceiveCount`, lands in the Commands DLQ.
pub async fn handle_commands(services: &Services, event: SqsEvent) -> SqsBatchResponse {
    commands_batch(services, event).await.into_response()
}

/// [`handle_commands`], with each failed record's reason.
pub async fn commands_batch(services: &Services, event: SqsEvent) -> BatchReport {
    process_batch(
        "commands",
        event,
        services.settings.enqueue.concurrency,
        |record| async move {
            let message_id = record.message_id.as_deref().unwrap_or("");
            match run_queued_command(
                services,
                record.body.as_deref(),
                Some(message_id).filter(|m| !m.is_empty()),
            )
            .await
            {
                Ok(addressed) => {
                    info!(message_id, addressed, "command done");
                    Ok(())
                }
                Err(e @ (CommandError::Message(_) | CommandError::LimitExceeded(_))) => {
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
        },
    )
    .await
}
