//! The SQS batch runner every queue handler uses: records processed
//! concurrently, failures reported per record (`ReportBatchItemFailures`).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{FutureExt, StreamExt};
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
/// and collects the records it failed. Each record's outcome is its own: an
/// error, or even a panic, in one record is that record's batch item failure
/// and never fails its neighbours. (Release builds abort on a panic, so on
/// Lambda a panic still costs the whole batch: the handlers must not panic on
/// any input; this keeps that true of test and local builds too.) Each record runs in a `message` span
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
                let outcome = AssertUnwindSafe(fut).catch_unwind().await;
                let outcome = outcome.unwrap_or_else(|panic| {
                    let error = format!("the handler panicked: {}", panic_message(&*panic));
                    tracing::error!(error, "record failed by a panic; its neighbours go on");
                    Err(error)
                });
                let failure = outcome
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

/// The message a panic carries (`panic!` with a literal or a format).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn event(count: usize) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = (0..count)
            .map(|i| {
                let mut record = SqsMessage::default();
                record.message_id = Some(format!("m{i}"));
                record.body = Some(i.to_string());
                record
            })
            .collect();
        event
    }

    #[tokio::test]
    async fn one_records_panic_or_error_never_fails_its_neighbours() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let report = process_batch("test", event(10), 4, |record| {
            let done = done.clone();
            async move {
                let body = record.body.unwrap_or_default();
                tokio::task::yield_now().await;
                match body.as_str() {
                    "3" | "7" => panic!("record {body} is poison"),
                    "5" => Err("refused".to_owned()),
                    _ => {
                        done.lock().unwrap().push(body);
                        Ok(())
                    }
                }
            }
        })
        .await;
        let mut failures = report.failures;
        failures.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        assert_eq!(
            failures,
            [
                RecordFailure {
                    message_id: "m3".into(),
                    error: "the handler panicked: record 3 is poison".into(),
                },
                RecordFailure {
                    message_id: "m5".into(),
                    error: "refused".into(),
                },
                RecordFailure {
                    message_id: "m7".into(),
                    error: "the handler panicked: record 7 is poison".into(),
                },
            ]
        );
        let mut done = done.lock().unwrap().clone();
        done.sort();
        assert_eq!(done, ["0", "1", "2", "4", "6", "8", "9"]);
    }
}
