//! Queues and their event sources.
//!
//! [`LocalQueue`] is an in-process queue with SQS's delivery semantics: a
//! received message is invisible for the visibility timeout; a message the
//! handler reports as a batch item failure comes back after it; a message that
//! fails `max_receive_count` times moves to the dead letters with its last error.
//! As on SQS, a message may be sent with a delay and string message
//! attributes, and a received one may be made visible sooner or later by its
//! receipt handle (`ChangeMessageVisibility`): the handlers' fast retries.
//! [`run_local_source`] and [`run_sqs_source`] drive a handler with batches of
//! the template's `BatchSize` (ten; one Deliveries message for deliver), as
//! Lambda's SQS event source mapping does.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::batch::BatchReport;
use switchboard::ports::{MAX_BATCH, MAX_DELAY, MessageQueue, QueueError, SendFailure};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use switchboard::clock::now_millis;
use switchboard::sync::lock;

use crate::emulation::Latency;
use crate::events::{self, QueuedMessage};
use crate::ids::random_hex;

/// A queue handler: the same batch function a Lambda runs.
pub type BatchHandler = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, BatchReport> + Send + Sync>;

/// A message that failed `max_receive_count` times.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
    pub last_error: String,
    pub sent_at: String,
    pub dead_at: String,
}

struct Stored {
    message: QueuedMessage,
    visible_at: Instant,
    /// Its visibility was changed by receipt handle since it was received: a
    /// failure then leaves `visible_at` alone, as SQS's event source does.
    visibility_changed: bool,
    /// The last error its handler reported for it (not a cut-off): what the
    /// handler's log says on AWS, where `dlq list --errors` finds it.
    handler_error: Option<String>,
}

#[derive(Default)]
struct State {
    /// Messages not yet deleted, by send sequence number (so, in send order).
    messages: BTreeMap<u64, Stored>,
    /// Message id to sequence number: completing or failing a message is a lookup, not a scan.
    sequence_of: HashMap<String, u64>,
    next_sequence: u64,
    dead: Vec<DeadLetter>,
}

pub struct LocalQueue {
    name: String,
    state: Mutex<State>,
    wake: Notify,
    visibility_timeout: Duration,
    max_receive_count: u32,
    /// How long a sent message takes to reach its handler (`--queue-latency`).
    latency: Latency,
}

impl LocalQueue {
    pub fn new(name: &str, visibility_timeout: Duration, max_receive_count: u32) -> Self {
        LocalQueue {
            name: name.to_owned(),
            state: Mutex::default(),
            wake: Notify::new(),
            visibility_timeout,
            max_receive_count: max_receive_count.max(1),
            latency: Latency::None,
        }
    }

    /// Each message sent reaches a handler no sooner than a draw of `latency`
    /// after its send (and its delay): SQS and Lambda's event source mapping.
    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Enqueues a body and returns its message id.
    pub fn send(&self, body: String) -> String {
        self.send_with(body, Duration::ZERO, Vec::new())
    }

    /// Enqueues a body visible after `delay`, with string message attributes.
    pub fn send_with(
        &self,
        body: String,
        delay: Duration,
        attributes: Vec<(String, String)>,
    ) -> String {
        let message_id = format!(
            "{}-{}-{}-{}-{}",
            random_hex::<4>(),
            random_hex::<2>(),
            random_hex::<2>(),
            random_hex::<2>(),
            random_hex::<6>()
        );
        let mut state = lock(&self.state);
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        state.sequence_of.insert(message_id.clone(), sequence);
        state.messages.insert(
            sequence,
            Stored {
                message: QueuedMessage {
                    message_id: message_id.clone(),
                    receipt_handle: String::new(),
                    body,
                    receive_count: 0,
                    sent_at_ms: now_millis(),
                    first_received_at_ms: 0,
                    attributes,
                },
                visible_at: Instant::now() + delay + self.latency.sample(),
                visibility_changed: false,
                handler_error: None,
            },
        );
        drop(state);
        self.wake.notify_one();
        message_id
    }

    /// Hands out up to `max` visible messages and hides them while they are
    /// handled: for the visibility timeout, or for `handling` (the handler's
    /// timeout) if that is longer, as SQS requires of a Lambda event source.
    pub fn receive(&self, max: usize, handling: Duration) -> Vec<QueuedMessage> {
        let now = Instant::now();
        let hidden = self.visibility_timeout.max(handling);
        let mut state = lock(&self.state);
        let mut batch = Vec::new();
        for stored in state.messages.values_mut() {
            if batch.len() == max {
                break;
            }
            if stored.visible_at > now {
                continue;
            }
            stored.visible_at = now + hidden;
            stored.visibility_changed = false;
            let m = &mut stored.message;
            m.receive_count += 1;
            m.receipt_handle = random_hex::<12>();
            if m.first_received_at_ms == 0 {
                m.first_received_at_ms = now_millis();
            }
            batch.push(m.clone());
        }
        batch
    }

    /// Puts `body` straight into the dead letters with `error` (a message
    /// its handler knows can never succeed, e.g. a webhook answered 400).
    pub fn bury(&self, body: String, error: String) {
        let now = events::iso_time(now_millis());
        lock(&self.state).dead.push(DeadLetter {
            message_id: random_hex::<16>(),
            body,
            receive_count: 1,
            last_error: error,
            sent_at: now.clone(),
            dead_at: now,
        });
    }

    /// Deletes a handled message.
    pub fn complete(&self, message_id: &str) {
        let mut state = lock(&self.state);
        if let Some(sequence) = state.sequence_of.remove(message_id) {
            state.messages.remove(&sequence);
        }
    }

    /// Makes the message received with `receipt_handle` visible `delay` from
    /// now; false if no message in flight has that handle.
    pub fn change_visibility(&self, receipt_handle: &str, delay: Duration) -> bool {
        let mut state = lock(&self.state);
        let Some(stored) = state
            .messages
            .values_mut()
            .find(|s| s.message.receipt_handle == receipt_handle)
        else {
            return false;
        };
        stored.visible_at = Instant::now() + delay;
        stored.visibility_changed = true;
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Records a failed attempt. The message reappears one visibility timeout
    /// later (or when [`LocalQueue::change_visibility`] said), or moves to the
    /// dead letters once it was received `max_receive_count` times.
    pub fn fail(&self, message_id: &str, error: &str) {
        self.failed(message_id, error, true);
    }

    /// Records an attempt whose handler was cut off (`error` says how): as
    /// [`LocalQueue::fail`], but a dead letter's error also keeps the last one
    /// the handler itself reported for the message, if any (a poison message
    /// whose last batch timed out is still dead for its own reason).
    pub fn cut_off(&self, message_id: &str, error: &str) {
        self.failed(message_id, error, false);
    }

    fn failed(&self, message_id: &str, error: &str, by_handler: bool) {
        let mut state = lock(&self.state);
        let Some(&sequence) = state.sequence_of.get(message_id) else {
            return;
        };
        let visible_at = Instant::now() + self.visibility_timeout;
        if let Some(stored) = state.messages.get_mut(&sequence) {
            if !stored.visibility_changed {
                stored.visible_at = visible_at;
            }
            if by_handler {
                stored.handler_error = Some(error.to_owned());
            }
            // The source may be asleep until the end of the handling window.
            self.wake.notify_one();
        }
        let exhausted = state
            .messages
            .get(&sequence)
            .is_some_and(|s| s.message.receive_count >= self.max_receive_count);
        if exhausted {
            state.sequence_of.remove(message_id);
            let Some(Stored {
                message,
                handler_error,
                ..
            }) = state.messages.remove(&sequence)
            else {
                return;
            };
            let error = match handler_error {
                Some(own) if !by_handler => format!("{error} (its handler's last error: {own})"),
                _ => error.to_owned(),
            };
            warn!(queue = %self.name, message_id, error, "message moved to the dead letters");
            state.dead.push(DeadLetter {
                message_id: message.message_id,
                body: message.body,
                receive_count: message.receive_count,
                last_error: error,
                sent_at: events::iso_time(message.sent_at_ms),
                dead_at: events::iso_time(now_millis()),
            });
        }
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.state).dead.clone()
    }

    /// Moves up to `max` dead letters, oldest first, back into the queue as new
    /// messages (SQS's DLQ redrive: a new message id, a receive count of zero).
    /// Returns how many moved; the rest stay dead.
    pub fn redrive(&self, max: usize) -> usize {
        let letters: Vec<DeadLetter> = {
            let mut state = lock(&self.state);
            let count = max.min(state.dead.len());
            state.dead.drain(..count).collect()
        };
        for letter in &letters {
            self.send(letter.body.clone());
        }
        letters.len()
    }

    /// Messages not yet deleted (visible or in flight).
    pub fn depth(&self) -> usize {
        lock(&self.state).messages.len()
    }

    fn next_visible(&self) -> Option<Instant> {
        lock(&self.state)
            .messages
            .values()
            .map(|s| s.visible_at)
            .min()
    }
}

#[async_trait]
impl MessageQueue for LocalQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        for body in bodies {
            self.send(body.clone());
        }
        Ok(Vec::new())
    }

    async fn send_later(
        &self,
        bodies: &[String],
        delay: Duration,
        attributes: &[(&str, String)],
    ) -> Result<Vec<SendFailure>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        let attributes: Vec<(String, String)> = attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        for body in bodies {
            self.send_with(body.clone(), delay.min(MAX_DELAY), attributes.clone());
        }
        Ok(Vec::new())
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        if self.change_visibility(receipt_handle, delay.min(MAX_DELAY)) {
            Ok(())
        } else {
            Err(QueueError::Unavailable(
                "no message in flight has this receipt handle".into(),
            ))
        }
    }
}

/// Each queue's event source `MaximumConcurrency` in `template.yaml` (its
/// `…MaxConcurrency` parameter's default): the local sources never run more
/// batches at once than Lambda would (a unit test reads the template).
pub const MAXIMUM_CONCURRENCY: [(&str, usize); 5] = [
    ("notify-user", 5),
    ("notify-connection", 20),
    ("commands", 5),
    ("deliveries", 50),
    ("upstream", 5),
];

/// Each queue's event source `BatchSize` in `template.yaml`: deliver takes one
/// Deliveries message (up to 100 posts) per invocation, the others ten
/// records (a unit test reads the template).
pub const BATCH_SIZE: [(&str, usize); 5] = [
    ("notify-user", 10),
    ("notify-connection", 10),
    ("commands", 10),
    ("deliveries", 1),
    ("upstream", 10),
];

/// The records one invocation of `queue`'s handler gets at most: the
/// template's `BatchSize` for it ([`MAX_BATCH`] for a queue it does not name).
pub fn batch_size(queue: &str) -> usize {
    BATCH_SIZE
        .iter()
        .find(|(name, _)| *name == queue)
        .map_or(MAX_BATCH, |(_, size)| *size)
}

/// The batches `queue`'s source handles at once: the template's maximum
/// concurrency for it, or `cap` (`--source-concurrency`) if lower.
pub fn source_concurrency(queue: &str, cap: usize) -> usize {
    MAXIMUM_CONCURRENCY
        .iter()
        .find(|(name, _)| *name == queue)
        .map_or(cap, |(_, max)| cap.min(*max))
        .max(1)
}

/// How a local event source drives its handler, as Lambda's SQS event source does.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Batches handled at once (Lambda's maximum concurrency for the source).
    pub concurrency: usize,
    /// The function timeout: a handler still running then is cut off and its
    /// whole batch comes back.
    pub timeout: Duration,
    /// Handlers cut off so far (shared by every source of a stack).
    pub timeouts: Arc<std::sync::atomic::AtomicU64>,
}

/// Feeds `queue` to `handler` until `shutdown` turns true.
pub async fn run_local_source(
    queue: Arc<LocalQueue>,
    handler: BatchHandler,
    options: SourceOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let SourceOptions {
        concurrency,
        timeout,
        timeouts,
    } = options;
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch = queue.receive(batch_size(queue.name()), timeout);
        if batch.is_empty() {
            drop(slot);
            let wait_until = queue
                .next_visible()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
                .max(Instant::now() + Duration::from_millis(1));
            tokio::select! {
                _ = queue.wake.notified() => {}
                _ = tokio::time::sleep_until(wait_until) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let queue = queue.clone();
        let handler = handler.clone();
        let timeouts = timeouts.clone();
        tokio::spawn(async move {
            let event = events::sqs(queue.name(), &batch);
            // As Lambda does, a handler that outlives its timeout is cut off and
            // its whole batch comes back, delivered records included.
            // The handler's retries stop in time for its cut-off, as for a
            // Lambda function's deadline.
            let deadline = Instant::now() + timeout;
            // A handler that panics fails its whole batch, as an aborted
            // Lambda instance does (release builds abort on a panic): every
            // record comes back and counts towards the dead letters.
            let handled = switchboard::retry::with_deadline(deadline, handler(event));
            let handled = AssertUnwindSafe(handled).catch_unwind().map(|outcome| {
                outcome.unwrap_or_else(|panic| {
                    let error = format!(
                        "the handler panicked: {}",
                        switchboard::batch::panic_message(&*panic)
                    );
                    error!(
                        queue = queue.name(),
                        size = batch.len(),
                        error,
                        "handler panicked"
                    );
                    BatchReport {
                        failures: batch
                            .iter()
                            .map(|m| switchboard::batch::RecordFailure {
                                message_id: m.message_id.clone(),
                                error: error.clone(),
                            })
                            .collect(),
                    }
                })
            });
            let (failures, cut_off): (Vec<(String, String)>, bool) =
                match tokio::time::timeout(timeout, handled).await {
                    Ok(report) => (
                        report
                            .failures
                            .into_iter()
                            .map(|f| (f.message_id, f.error))
                            .collect(),
                        false,
                    ),
                    Err(_) => {
                        timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        warn!(
                            queue = queue.name(),
                            size = batch.len(),
                            ?timeout,
                            "handler timed out; the batch will be redelivered"
                        );
                        let failures = batch
                            .iter()
                            .map(|m| {
                                (
                                    m.message_id.clone(),
                                    format!("handler timed out after {timeout:?}"),
                                )
                            })
                            .collect();
                        (failures, true)
                    }
                };
            let failed: HashMap<&str, &str> = failures
                .iter()
                .map(|(id, error)| (id.as_str(), error.as_str()))
                .collect();
            for message in &batch {
                match failed.get(message.message_id.as_str()) {
                    Some(error) if cut_off => queue.cut_off(&message.message_id, error),
                    Some(error) => queue.fail(&message.message_id, error),
                    None => queue.complete(&message.message_id),
                }
            }
            debug!(
                queue = queue.name(),
                size = batch.len(),
                failed = failed.len(),
                "batch handled"
            );
            drop(slot);
        });
    }
}

/// Polls an SQS queue as Lambda's event source mapping does: long-poll up to
/// ten messages, run the handler, delete the records that succeeded. Failed
/// records reappear after the queue's visibility timeout, and SQS's redrive
/// policy moves them to the dead-letter queue. With `latency`, a batch starts
/// no sooner than a draw of it after its latest message was sent.
pub async fn run_sqs_source(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    name: String,
    handler: BatchHandler,
    latency: Latency,
    mut shutdown: watch::Receiver<bool>,
) {
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
    loop {
        if *shutdown.borrow() {
            return;
        }
        let receive = client
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(batch_size(&name) as i32)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let output = tokio::select! {
            output = receive => output,
            _ = shutdown.changed() => return,
        };
        let messages = match output {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                error!(queue = %name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let batch: Vec<QueuedMessage> = messages
            .iter()
            .map(|m| {
                let attribute = |name: MessageSystemAttributeName| {
                    m.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or_default()
                };
                QueuedMessage {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        as u32,
                    sent_at_ms: attribute(MessageSystemAttributeName::SentTimestamp),
                    first_received_at_ms: attribute(
                        MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
                    ),
                    attributes: m
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .filter_map(|(name, value)| {
                            Some((name.clone(), value.string_value()?.to_owned()))
                        })
                        .collect(),
                }
            })
            .collect();
        if !latency.is_none() {
            let sent_at = batch.iter().map(|m| m.sent_at_ms).max().unwrap_or_default();
            let due = sent_at.saturating_add(latency.sample().as_millis() as i64);
            let wait = due.saturating_sub(now_millis());
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        let report = handler(events::sqs(&name, &batch)).await;
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter(|(_, m)| !report.failures.iter().any(|f| f.message_id == m.message_id))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt_handle)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        if let Err(e) = client
            .delete_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            // Undeleted messages come back after the visibility timeout: a duplicate, never a loss.
            error!(queue = %name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
        }
    }
}

/// A queue's dead letters as a queue port: what a handler sends here is dead
/// at once (the webhook sender's refused events, `{"status":…,"event":…}`),
/// as the Upstream DLQ holds them on AWS.
pub struct DeadLetterQueue(pub Arc<LocalQueue>);

#[async_trait]
impl MessageQueue for DeadLetterQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, QueueError> {
        for body in bodies {
            let status = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["status"].as_u64())
                .unwrap_or(0);
            self.0
                .bury(body.clone(), format!("the receiver answered {status}"));
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cut_visibility_outlasts_the_failure_and_delayed_sends_wait() {
        let queue = LocalQueue::new("q", Duration::from_secs(60), 3);
        let id = queue.send("body".into());
        let first = queue.receive(10, Duration::ZERO);
        assert!(queue.change_visibility(&first[0].receipt_handle, Duration::from_millis(30)));
        assert!(!queue.change_visibility("no-such-handle", Duration::ZERO));
        queue.fail(&id, "boom");
        assert!(queue.receive(10, Duration::ZERO).is_empty());
        tokio::time::sleep(Duration::from_millis(40)).await;
        let again = queue.receive(10, Duration::ZERO);
        assert_eq!(again.len(), 1, "back after 30 ms, not 60 s");
        assert_eq!(again[0].receive_count, 2, "its receive count kept");
        queue.complete(&id);

        let sent = queue
            .send_later(
                &["later".into()],
                Duration::from_millis(30),
                &[("Throttled", "1".into())],
            )
            .await;
        assert_eq!(sent, Ok(Vec::new()));
        assert!(queue.receive(10, Duration::ZERO).is_empty(), "delayed");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let later = queue.receive(10, Duration::ZERO);
        assert_eq!(later[0].body, "later");
        assert_eq!(
            later[0].attributes,
            [("Throttled".to_owned(), "1".to_owned())]
        );
        let event = events::sqs("q", &later);
        let attribute = &event.records[0].message_attributes["Throttled"];
        assert_eq!(attribute.string_value.as_deref(), Some("1"));
    }

    #[test]
    fn sources_take_the_templates_batch_size() {
        let template = include_str!("../../template.yaml");
        for (queue, resource) in [
            ("notify-user", "NotifyUserQueue"),
            ("notify-connection", "NotifyConnectionQueue"),
            ("commands", "CommandsQueue"),
            ("deliveries", "DeliveriesQueue"),
            ("upstream", "UpstreamQueue"),
        ] {
            let at = template
                .find(&format!("Queue: !GetAtt {resource}.Arn\n"))
                .unwrap_or_else(|| panic!("{resource}'s event source in template.yaml"));
            let rest = &template[at..];
            let size = &rest[rest.find("BatchSize: ").unwrap() + 11..];
            let size: usize = size[..size.find('\n').unwrap()].trim().parse().unwrap();
            assert_eq!(batch_size(queue), size, "{queue}");
        }
        assert_eq!(batch_size("other"), MAX_BATCH);
    }

    #[test]
    fn sources_run_no_more_batches_at_once_than_the_template_allows() {
        let template = include_str!("../../template.yaml");
        let parameter = |name: &str| -> usize {
            let at = template
                .find(&format!("\n  {name}:\n"))
                .unwrap_or_else(|| panic!("{name} in template.yaml"));
            let default = &template[at..][template[at..].find("Default: ").unwrap() + 9..];
            default[..default.find('\n').unwrap()]
                .trim()
                .parse()
                .unwrap()
        };
        for (queue, parameter_name) in [
            ("notify-user", "NotifyUserMaxConcurrency"),
            ("notify-connection", "NotifyConnectionMaxConcurrency"),
            ("commands", "CommandsMaxConcurrency"),
            ("deliveries", "DeliverMaxConcurrency"),
            ("upstream", "UpstreamMaxConcurrency"),
        ] {
            let max = parameter(parameter_name);
            assert_eq!(source_concurrency(queue, 1000), max, "{queue}");
            assert_eq!(source_concurrency(queue, 3), 3.min(max), "{queue}");
        }
        assert_eq!(source_concurrency("other", 7), 7);
    }

    #[tokio::test]
    async fn a_dead_letter_cut_off_at_last_keeps_its_handler_s_own_error() {
        let queue = LocalQueue::new("q", Duration::ZERO, 2);
        let poison = queue.send("poison".into());
        queue.receive(10, Duration::ZERO);
        queue.fail(&poison, "malformed message");
        queue.receive(10, Duration::ZERO);
        queue.cut_off(&poison, "handler timed out after 1s");
        let dead = queue.dead_letters();
        assert_eq!(
            dead[0].last_error,
            "handler timed out after 1s (its handler's last error: malformed message)"
        );
        // Cut off every time: the cut-off alone.
        let slow = queue.send("slow".into());
        for _ in 0..2 {
            queue.receive(10, Duration::ZERO);
            queue.cut_off(&slow, "handler timed out after 1s");
        }
        assert_eq!(
            queue.dead_letters()[1].last_error,
            "handler timed out after 1s"
        );
    }

    #[tokio::test]
    async fn failed_messages_return_after_the_visibility_timeout_then_die() {
        let queue = LocalQueue::new("q", Duration::from_millis(30), 2);
        let id = queue.send("body".into());
        let first = queue.receive(10, Duration::ZERO);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        assert!(
            queue.receive(10, Duration::ZERO).is_empty(),
            "invisible while in flight"
        );
        queue.fail(&id, "boom");
        assert!(
            queue.receive(10, Duration::ZERO).is_empty(),
            "still invisible"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        let second = queue.receive(10, Duration::ZERO);
        assert_eq!(second[0].receive_count, 2);
        queue.fail(&id, "boom again");
        assert_eq!(queue.depth(), 0);
        let dead = queue.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error, "boom again");
        assert_eq!(dead[0].receive_count, 2);
    }

    #[tokio::test]
    async fn completed_messages_are_gone_and_batches_hold_ten() {
        let queue = LocalQueue::new("q", Duration::from_secs(30), 3);
        for i in 0..12 {
            queue.send(format!("{i}"));
        }
        let batch = queue.receive(MAX_BATCH, Duration::ZERO);
        assert_eq!(batch.len(), 10);
        for m in &batch {
            queue.complete(&m.message_id);
        }
        assert_eq!(queue.depth(), 2);
        assert_eq!(queue.receive(MAX_BATCH, Duration::ZERO).len(), 2);
    }

    #[tokio::test]
    async fn a_message_stays_hidden_while_handled_and_returns_one_visibility_timeout_after_failing()
    {
        let queue = LocalQueue::new("q", Duration::from_millis(20), 5);
        let id = queue.send("body".into());
        assert_eq!(queue.receive(10, Duration::from_millis(200)).len(), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            queue.receive(10, Duration::ZERO).is_empty(),
            "a handler may run 200 ms: past the visibility timeout it is still hidden"
        );
        queue.fail(&id, "boom");
        assert!(
            queue.receive(10, Duration::ZERO).is_empty(),
            "hidden 20 ms after failing"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        let again = queue.receive(10, Duration::ZERO);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
    }
}
