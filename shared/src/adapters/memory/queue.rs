//! [`MessageQueue`] in memory: keeps what it was sent, with scriptable partial failures.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{MAX_BATCH, MessageQueue, QueueError, SendFailure};
use crate::sync::lock;

#[derive(Default)]
struct QueueState {
    sent: Vec<String>,
    calls: usize,
    /// Per send_batch call, which entry indexes fail (and whether as sender fault).
    scripted: VecDeque<Result<Vec<(usize, bool)>, QueueError>>,
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
