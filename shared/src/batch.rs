//! The SQS batch runner every queue handler uses: records processed
//! concurrently, failures reported per record (`ReportBatchItemFailures`).

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use tracing::Instrument;

use crate::metrics::{self, Metric};

/// A record a queue handler could not finish, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub message_id: String,
    pub error: String,
}

/// What a queue handler made of a batch: the records to redeliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub failures: Vec<RecordFailure>,
}

impl BatchReport {
    /// The Lambda answer: one batch item failure per failed record, so SQS
    /// redelivers only those (`ReportBatchItemFailures`).
    ///
    /// A record without a message id (never seen from SQS) is reported with an
    /// empty id, which makes Lambda retry the whole batch: a loud failure, never a loss.
    pub fn into_response(self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for failure in self.failures {
            response.add_failure(failure.message_id);
        }
        response
    }
}

/// Runs `process` on every record of `queue`, at most `concurrency` at once,
/// and collects the records it failed. Each record runs in a `message` span
/// (queue, message id), so every log line it writes carries them. A failure on
/// the receive that exhausts the redrive policy ([`crate::config::max_receive_count`])
/// counts as [`Metric::DeadLettered`].
pub(crate) async fn process_batch<F, Fut>(
    queue: &'static str,
    event: SqsEvent,
    concurrency: usize,
    process: F,
) -> BatchReport
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let max_receive_count = crate::config::max_receive_count();
    let failures = futures::stream::iter(event.records)
        .map(|record| {
            let message_id = record.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!("message", queue, message_id = %message_id);
            let last_receive = max_receive_count.is_some_and(|max| receive_count(&record) >= max);
            let fut = process(record);
            async move {
                let failure = fut
                    .await
                    .err()
                    .map(|error| RecordFailure { message_id, error });
                if failure.is_some() && last_receive {
                    metrics::count(Metric::DeadLettered, &[queue], 1);
                }
                failure
            }
            .instrument(span)
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(std::future::ready)
        .collect()
        .await;
    BatchReport { failures }
}

/// Milliseconds from the message's `SentTimestamp` (when SQS accepted it) to
/// now: the [`Metric::FanoutLatency`] of a message whose posts just ended.
pub(crate) fn record_fanout_latency(record: &SqsMessage) {
    if let Some(sent) = record
        .attributes
        .get("SentTimestamp")
        .and_then(|t| t.parse::<i64>().ok())
    {
        let elapsed = (crate::clock::now_millis() - sent).max(0);
        metrics::record(Metric::FanoutLatency, &[], elapsed as u64);
    }
}

/// How many times SQS has handed out this message, as the event reports it.
pub(crate) fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}
