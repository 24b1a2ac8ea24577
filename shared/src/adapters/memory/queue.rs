//! [`MessageQueue`] in memory: keeps what it was sent, with scriptable partial failures.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{MAX_BATCH, MessageQueue, QueueError, SendFailure};
use crate::sync::lock;

#[derive(Default)]
struct QueueState {
    sent: Vec<String>,
    calls: usize,
    /// Per send_batch call, which entry indexes fail (and whether as sender fault).
    scripted: VecDeque<Result<Vec<(usize, bool)>, QueueError>>,
    /// Per accepted body sent with a delay: the delay and attributes.
    later: Vec<Later>,
    /// Visibility changes asked for, by receipt handle.
    retries: Vec<(String, Duration)>,
}

/// A body sent with [`MessageQueue::send_later`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Later {
    pub body: String,
    pub delay: Duration,
    pub attributes: Vec<(String, String)>,
}

/// A queue that keeps what it was sent, with scriptable partial failures.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `send_batch` call fails the entries at `indexes` (retryable unless `sender_fault`).
    pub fn fail_entries_next(&self, indexes: &[usize], sender_fault: bool) {
        lock(&self.state)
            .scripted
            .push_back(Ok(indexes.iter().map(|&i| (i, sender_fault)).collect()));
    }

    /// The next `send_batch` call fails as a whole.
    pub fn fail_call_next(&self, error: QueueError) {
        lock(&self.state).scripted.push_back(Err(error));
    }

    /// Bodies accepted so far, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.state).sent.clone()
    }

    /// Removes and returns the accepted bodies.
    pub fn drain(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.state).sent)
    }

    /// Bodies sent with a delay, in order (they are in [`MemoryQueue::sent`] too).
    pub fn sent_later(&self) -> Vec<Later> {
        lock(&self.state).later.clone()
    }

    /// `retry_after` calls so far: receipt handle and delay.
    pub fn retries(&self) -> Vec<(String, Duration)> {
        lock(&self.state).retries.clone()
    }

    /// How many times `send_batch` was called.
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }
}

#[async_trait]
impl MessageQueue for MemoryQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        let mut state = lock(&self.state);
        state.calls += 1;
        let failing = match state.scripted.pop_front() {
            Some(Err(e)) => return Err(e),
            Some(Ok(failing)) => failing,
            None => Vec::new(),
        };
        let mut failures = Vec::new();
        for (index, body) in bodies.iter().enumerate() {
            match failing.iter().find(|(i, _)| *i == index) {
                Some(&(_, sender_fault)) => failures.push(SendFailure {
                    index,
                    code: if sender_fault {
                        "InvalidParameterValue".into()
                    } else {
                        "InternalError".into()
                    },
                    message: "scripted failure".into(),
                    sender_fault,
                }),
                None => state.sent.push(body.clone()),
            }
        }
        Ok(failures)
    }

    async fn send_later(
        &self,
        bodies: &[String],
        delay: Duration,
        attributes: &[(&str, String)],
    ) -> Result<Vec<SendFailure>, QueueError> {
        let failures = self.send_batch(bodies).await?;
        let attributes: Vec<(String, String)> = attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        let mut state = lock(&self.state);
        for (index, body) in bodies.iter().enumerate() {
            if failures.iter().all(|f| f.index != index) {
                state.later.push(Later {
                    body: body.clone(),
                    delay,
                    attributes: attributes.clone(),
                });
            }
        }
        Ok(failures)
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        lock(&self.state)
            .retries
            .push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_refuses_oversized_batches() {
        let queue = MemoryQueue::new();
        let bodies = vec![String::new(); MAX_BATCH + 1];
        assert_eq!(
            queue.send_batch(&bodies).await,
            Err(QueueError::BatchTooLarge(11))
        );
        assert!(queue.sent().is_empty());
    }
}
