//! Enqueueing many messages: SendMessageBatch ten at a time, several calls in
//! flight, retrying only the entries the queue did not take.

use std::time::Duration;

use futures::StreamExt;

use crate::ports::{MAX_BATCH, MessageQueue};

/// The retry policy of every enqueue (notify-user's NotifyConnection messages,
/// every fan-out's Deliveries messages, deliver's retries), and how many
/// records of a batch notify-user and commands work on at once.
#[derive(Debug, Clone)]
pub struct EnqueuePolicy {
    /// Attempts per SendMessageBatch entry before the NotifyUser message is failed.
    pub send_attempts: u32,
    /// First retry delay; doubled each attempt, with full jitter.
    pub retry_base_delay: Duration,
    /// Records of one notify-user or commands batch processed at once.
    pub concurrency: usize,
}

impl Default for EnqueuePolicy {
    fn default() -> Self {
        EnqueuePolicy {
            send_attempts: 3,
            retry_base_delay: Duration::from_millis(50),
            concurrency: 4,
        }
    }
}

/// SendMessageBatch calls in flight at once.
const SEND_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} messages were not enqueued: {reason}")]
pub struct EnqueueError {
    pub failed: usize,
    pub reason: String,
}

/// Sends every body and returns how many were sent. Entries SQS blames on the
/// sender are not retried; others are retried up to `send_attempts` times with
/// exponential backoff and full jitter.
pub async fn enqueue_all<Q: MessageQueue + ?Sized>(
    queue: &Q,
    bodies: Vec<String>,
    policy: &EnqueuePolicy,
) -> Result<usize, EnqueueError> {
    // Owned chunks keep the stream's closure free of borrowed lifetimes, so
    // the future stays `Send` for callers that spawn it.
    let chunks: Vec<Vec<String>> = bodies.chunks(MAX_BATCH).map(<[String]>::to_vec).collect();
    let results: Vec<Result<usize, EnqueueError>> = futures::stream::iter(chunks)
        .map(|chunk| send_with_retry(queue, chunk, policy))
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().sum()
}

async fn send_with_retry<Q: MessageQueue + ?Sized>(
    queue: &Q,
    mut pending: Vec<String>,
    policy: &EnqueuePolicy,
) -> Result<usize, EnqueueError> {
    let total = pending.len();
    let mut reason = String::new();
    for attempt in 1..=policy.send_attempts {
        match queue.send_batch(&pending).await {
            Ok(failures) if failures.is_empty() => return Ok(total),
            Ok(failures) => {
                if let Some(f) = failures.iter().find(|f| f.sender_fault) {
                    // SQS blames the message itself: sending it again cannot help.
                    return Err(EnqueueError {
                        failed: failures.len(),
                        reason: format!("{}: {}", f.code, f.message),
                    });
                }
                reason = failures
                    .first()
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .unwrap_or_default();
                pending = failures
                    .iter()
                    .filter_map(|f| pending.get(f.index).cloned())
                    .collect();
            }
            Err(e) => reason = e.to_string(),
        }
        if attempt < policy.send_attempts {
            tokio::time::sleep(backoff(policy.retry_base_delay, attempt)).await;
        }
    }
    Err(EnqueueError {
        failed: pending.len(),
        reason,
    })
}

/// Exponential backoff with full jitter: a random delay in `[0, base * 2^(attempt-1)]`.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let cap = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    Duration::from_micros(fastrand::u64(..=cap.as_micros() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_with_full_jitter() {
        let base = Duration::from_millis(10);
        for attempt in 1..=5u32 {
            let cap = base * (1 << (attempt - 1));
            let samples: Vec<Duration> = (0..2_000).map(|_| backoff(base, attempt)).collect();
            assert!(samples.iter().all(|d| *d <= cap), "attempt {attempt}");
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(
                distinct.len() > 500,
                "jittered, not fixed: {}",
                distinct.len()
            );
            let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
            // Full jitter: uniform over [0, cap], so the mean sits near cap / 2.
            assert!(
                mean > cap * 2 / 5 && mean < cap * 3 / 5,
                "attempt {attempt}: mean {mean:?} of cap {cap:?}"
            );
        }
        // The exponent is capped, so a huge attempt number cannot overflow.
        assert!(backoff(base, 1_000) <= base * (1 << 16));
    }
}
