//! The token bucket every rate limit uses, as GCRA (the generic cell rate
//! algorithm): one number per bucket, the theoretical arrival time (`tat`) of
//! the next event, in microseconds since the Unix epoch.
//!
//! A [`Rate`] of `limit` per `window` is a bucket of `limit` tokens refilled
//! at `limit` per `window`: a full bucket takes `limit` events at once, then
//! one every `window / limit`. Unlike a fixed window it never lets `2 × limit`
//! through around a window boundary: in any span of `d` at most
//! `limit + d × limit / window` events pass.
//!
//! Taking a token is `tat' = max(tat, now) + interval`, allowed while
//! `max(tat, now) <= now + (limit - 1) × interval`. Every store applies
//! exactly [`take`]; the DynamoDB adapter does it with conditional
//! UpdateItems (no read), see `adapters/dynamodb/connections.rs`.

use std::time::Duration;

/// At most `limit` events at once and `limit` per `window` on average. A
/// `limit` of 0 refuses everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
}

impl Rate {
    pub const fn new(limit: u32, window: Duration) -> Self {
        Rate { limit, window }
    }

    /// Microseconds between two tokens at the steady rate (at least 1).
    pub fn interval_us(&self) -> i64 {
        let window = i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX);
        (window / i64::from(self.limit.max(1))).max(1)
    }

    /// The latest `tat` that still allows an event at `now_us`:
    /// `now + (limit - 1) × interval`.
    pub fn latest_tat(&self, now_us: i64) -> i64 {
        let slack = i64::from(self.limit.saturating_sub(1)).saturating_mul(self.interval_us());
        now_us.saturating_add(slack)
    }
}

/// Takes one token at `now_us` from a bucket whose stored `tat` is `tat`
/// (`None`: never used). The new `tat` to store if allowed, `None` if over.
pub fn take(tat: Option<i64>, now_us: i64, rate: Rate) -> Option<i64> {
    if rate.limit == 0 {
        return None;
    }
    let start = tat.map_or(now_us, |tat| tat.max(now_us));
    (start <= rate.latest_tat(now_us)).then(|| start.saturating_add(rate.interval_us()))
}

/// A reservation of tokens ([`reserve`]): when they may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Taken: use them after waiting this many microseconds (0: at once).
    /// The new `tat` to store.
    After { wait_us: i64, tat: i64 },
    /// Not taken: the bucket is booked further ahead than the horizon; try
    /// again in this many microseconds at the earliest.
    Full { retry_us: i64 },
}

/// Reserves `tokens` at `now_us` from a bucket whose stored `tat` is `tat`,
/// booking ahead: a bucket with too few tokens now still gives them, to be
/// used when they will have refilled (the wait), as long as that is within
/// `horizon_us`. Callers that book ahead and then wait get the bucket's rate
/// between them, in order, with no refusals to retry: how every instance of a
/// function shares one budget of posts ([`crate::pacing`]).
///
/// `tat' = max(tat, now) + tokens × interval`; the tokens may be used once
/// `tat' <= now + limit × interval` (for one token, exactly [`take`]'s rule).
pub fn reserve(
    tat: Option<i64>,
    now_us: i64,
    rate: Rate,
    tokens: u32,
    horizon_us: i64,
) -> Reserved {
    if rate.limit == 0 {
        return Reserved::Full {
            retry_us: horizon_us.max(1),
        };
    }
    let start = tat.map_or(now_us, |tat| tat.max(now_us));
    let next = start.saturating_add(i64::from(tokens).saturating_mul(rate.interval_us()));
    let wait_us = (next - ready_by(now_us, rate)).max(0);
    if wait_us > horizon_us {
        Reserved::Full {
            retry_us: wait_us - horizon_us,
        }
    } else {
        Reserved::After { wait_us, tat: next }
    }
}

/// `now + limit × interval`: tokens booked up to this `tat` may be used now.
pub fn ready_by(now_us: i64, rate: Rate) -> i64 {
    now_us.saturating_add(i64::from(rate.limit).saturating_mul(rate.interval_us()))
}

/// Milliseconds to microseconds, for [`take`]'s clock.
pub fn micros(now_ms: i64) -> i64 {
    now_ms.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn run(rate: Rate, times_us: &[i64]) -> usize {
        let mut tat = None;
        let mut passed = 0;
        for &now in times_us {
            if let Some(next) = take(tat, now, rate) {
                tat = Some(next);
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn a_full_bucket_takes_limit_at_once_then_refills_at_the_rate() {
        let rate = Rate::new(10, Duration::from_secs(1));
        // 30 events in 1 ms: the bucket's 10.
        assert_eq!(run(rate, &[0; 30]), 10);
        // Then one per 100 ms.
        let mut tat = None;
        for _ in 0..10 {
            tat = take(tat, 0, rate);
        }
        assert_eq!(take(tat, 99_999, rate), None);
        let tat = take(tat, 100_000, rate).expect("refilled one");
        assert_eq!(take(Some(tat), 100_000, rate), None);
    }

    #[test]
    fn no_double_burst_across_what_was_a_window_boundary() {
        // The fixed window let 2 × 10 pass in 80 ms around a boundary at 1 s.
        let rate = Rate::new(10, Duration::from_secs(1));
        let times: Vec<i64> = (0..20).map(|i| 960_000 + i * 4_000).collect();
        assert_eq!(run(rate, &times), 10);
    }

    #[test]
    fn any_span_passes_at_most_limit_plus_the_refill() {
        let rate = Rate::new(5, Duration::from_secs(1));
        // One attempt every 10 ms for 10 s.
        let times: Vec<i64> = (0..1000).map(|i| i * 10_000).collect();
        let mut tat = None;
        let mut passed = Vec::new();
        for &now in &times {
            if let Some(next) = take(tat, now, rate) {
                tat = Some(next);
                passed.push(now);
            }
        }
        // 5 at once, then 5 per second: 5 + 5 × 9.99.
        assert_eq!(passed.len(), 5 + 49);
        for (i, &start) in passed.iter().enumerate() {
            let within = passed[i..]
                .iter()
                .take_while(|&&t| t < start + SECOND)
                .count();
            assert!(within <= 5 + 5, "{within} in one second from {start}");
        }
    }

    #[test]
    fn idle_time_refills_at_most_the_bucket() {
        let rate = Rate::new(3, Duration::from_secs(1));
        let tat = take(None, 0, rate);
        // An hour later the bucket holds 3, not 3 × 3600.
        assert_eq!(run(rate, &[3_600 * SECOND; 10]), 3);
        assert!(take(tat, 3_600 * SECOND, rate).is_some());
    }

    /// Books `tokens` at each time in turn, as the stores do.
    fn book(rate: Rate, times_us: &[(i64, u32)], horizon_us: i64) -> Vec<Reserved> {
        let mut tat = None;
        times_us
            .iter()
            .map(|&(now, tokens)| {
                let r = reserve(tat, now, rate, tokens, horizon_us);
                if let Reserved::After { tat: next, .. } = r {
                    tat = Some(next);
                }
                r
            })
            .collect()
    }

    #[test]
    fn reservations_book_ahead_at_the_rate_in_order() {
        // 1,000 a second, 100 at once: ten callers of 100 tokens at the same
        // instant go at 0, 100, 200 … 900 ms.
        let rate = Rate::new(100, Duration::from_millis(100));
        let booked = book(rate, &[(0, 100); 10], 5 * SECOND);
        let waits: Vec<i64> = booked
            .iter()
            .map(|r| match r {
                Reserved::After { wait_us, .. } => *wait_us,
                full => panic!("{full:?}"),
            })
            .collect();
        let expected: Vec<i64> = (0..10).map(|i| i * 100_000).collect();
        assert_eq!(waits, expected);
    }

    #[test]
    fn one_token_reservations_agree_with_take() {
        let rate = Rate::new(5, Duration::from_secs(1));
        let times: Vec<i64> = (0..300).map(|i| i * 37_000).collect();
        let mut tat_take = None;
        let mut tat_reserve = None;
        for &now in &times {
            let taken = take(tat_take, now, rate);
            let reserved = reserve(tat_reserve, now, rate, 1, 0);
            match (taken, reserved) {
                (Some(a), Reserved::After { wait_us: 0, tat: b }) => {
                    assert_eq!(a, b);
                    tat_take = Some(a);
                    tat_reserve = Some(b);
                }
                (None, Reserved::Full { .. }) => {}
                other => panic!("at {now}: {other:?}"),
            }
        }
    }

    #[test]
    fn past_the_horizon_nothing_is_booked() {
        let rate = Rate::new(10, Duration::from_secs(1));
        // 10 now, then 10 more in 1 s; a horizon of 1.5 s refuses the third ten.
        let booked = book(rate, &[(0, 10), (0, 10), (0, 10), (0, 10)], 1_500_000);
        assert!(matches!(booked[0], Reserved::After { wait_us: 0, .. }));
        assert!(matches!(
            booked[1],
            Reserved::After {
                wait_us: 1_000_000,
                ..
            }
        ));
        assert_eq!(booked[2], Reserved::Full { retry_us: 500_000 });
        assert_eq!(
            booked[3],
            Reserved::Full { retry_us: 500_000 },
            "the refusal booked nothing"
        );
        // Idle for a while: the bucket is full again, not owed.
        let later = reserve(Some(2_000_000), 60 * SECOND, rate, 10, 0);
        assert!(matches!(later, Reserved::After { wait_us: 0, .. }));
        assert!(matches!(
            reserve(None, 0, Rate::new(0, Duration::from_secs(1)), 1, SECOND),
            Reserved::Full { .. }
        ));
    }

    #[test]
    fn more_tokens_than_the_bucket_wait_for_the_refill() {
        let rate = Rate::new(10, Duration::from_secs(1));
        assert!(matches!(
            reserve(None, 0, rate, 25, 10 * SECOND),
            Reserved::After {
                wait_us: 1_500_000,
                ..
            }
        ));
    }

    #[test]
    fn a_zero_limit_refuses_everything() {
        assert_eq!(run(Rate::new(0, Duration::from_secs(1)), &[0, SECOND]), 0);
    }
}
