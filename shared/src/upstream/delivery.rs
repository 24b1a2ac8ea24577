//! One webhook delivery: the event POSTed in CloudEvents' structured mode
//! (the body is the whole event, `application/cloudevents+json`), signed as
//! Standard Webhooks defines ([`crate::webhook`]) afresh on every attempt,
//! retried with jittered backoff on a timeout, 408, 429 or 5xx. A 4xx other
//! than 408/429 is final: the receiver refused this event and will refuse it
//! again, so it goes to the dead letters with its status.

use std::time::Duration;

use crate::webhook::{header_id, signed_headers};

use super::events::CONTENT_TYPE;
use super::{CloudEvent, HttpPoster, PostError};

/// The headers of one signed request for `event` with `body` (its JSON):
/// the content type and the three Standard Webhooks headers, the event's id
/// as `webhook-id`. Everything a receiver acts on is in `body`, so signed.
pub fn signed_request_headers(
    key: &[u8],
    event: &CloudEvent,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut headers = vec![("content-type", CONTENT_TYPE.to_owned())];
    headers.extend(signed_headers(key, &header_id(&event.id), body));
    headers
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx, on attempt `attempts`.
    Delivered { attempts: u32 },
    /// Every attempt timed out, failed to connect, or answered 408/429/5xx.
    Retry(String),
    /// The receiver refused the event for good.
    Final { status: u16 },
    /// The request cannot be built (the poster refused it): nothing was
    /// sent, and no retry can help.
    Unsendable(String),
}

/// Whether a status is worth retrying: 408, 429, 5xx, and anything that is
/// neither success nor a client error (a 3xx is not followed).
pub fn retryable(status: u16) -> bool {
    !(400..500).contains(&status) || status == 408 || status == 429
}

/// POSTs `event` to `url` until it is delivered, refused, or out of attempts.
pub async fn deliver(
    http: &dyn HttpPoster,
    url: &str,
    key: &[u8],
    event: &CloudEvent,
    policy: &DeliveryPolicy,
) -> Outcome {
    let body = event.body();
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        let headers = signed_request_headers(key, event, &body);
        match http.post(url, &headers, body.clone(), policy.timeout).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                return Outcome::Delivered { attempts: attempt };
            }
            Ok(answer) if !retryable(answer.status) => {
                return Outcome::Final {
                    status: answer.status,
                };
            }
            Ok(answer) => last = format!("the receiver answered {}", answer.status),
            Err(PostError::InvalidRequest(e)) => return Outcome::Unsendable(e),
            Err(e) => last = e.to_string(),
        }
        if attempt < attempts {
            tokio::time::sleep(backoff(policy.base_delay, attempt)).await;
        }
    }
    Outcome::Retry(format!("{attempts} attempts: {last}"))
}

/// Full jitter: a random time in `[0, base × 2^(attempt-1)]`, capped at 10 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let millis = backoff_cap(base, attempt).as_millis() as u64;
    Duration::from_millis(fastrand::u64(0..=millis))
}

/// The longest wait after attempt `attempt`: `base × 2^(attempt-1)`, at most 10 s.
fn backoff_cap(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(10))
}

/// The longest [`deliver`] may take for one event: every attempt timing out,
/// and the longest wait between each two.
pub fn longest_delivery(policy: &DeliveryPolicy) -> Duration {
    let attempts = policy.attempts.max(1);
    (1..attempts).fold(policy.timeout.saturating_mul(attempts), |total, attempt| {
        total + backoff_cap(policy.base_delay, attempt)
    })
}

/// How the `upstream` function posts webhooks ([`crate::upstream::delivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// POSTs per event in one invocation; then the message goes back to the
    /// queue (and, after the queue's receive count, to its DLQ).
    pub attempts: u32,
    /// Attempt n waits a random time in `[0, base_delay × 2^(n-1)]` (full jitter).
    pub base_delay: Duration,
    /// Per attempt: connect, send and answer.
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_other_than_408_and_429_are_final() {
        for status in [408, 429, 500, 502, 503, 504, 302] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 413, 422] {
            assert!(!retryable(status), "{status}");
        }
    }

    #[test]
    fn the_longest_delivery_is_every_attempt_timing_out_and_every_wait() {
        // 3 × 5 s, and waits of at most 200 ms and 400 ms.
        assert_eq!(
            longest_delivery(&DeliveryPolicy::default()),
            Duration::from_millis(15_600)
        );
        let once = DeliveryPolicy {
            attempts: 1,
            ..DeliveryPolicy::default()
        };
        assert_eq!(longest_delivery(&once), Duration::from_secs(5));
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 1..40 {
            let cap = Duration::from_millis(100 * (1u64 << (attempt - 1).min(16)))
                .min(Duration::from_secs(10));
            assert!(backoff(Duration::from_millis(100), attempt) <= cap);
        }
    }
}
