//! Retrying failed posts in seconds, not minutes: the rules deliver and
//! notify-connection share.
//!
//! - **Inside the invocation**: a transient failure (429, 5xx, timeout) is
//!   posted again after an exponential backoff with full jitter
//!   ([`backoff`]), while the invocation's time allows ([`Deadline`]: the
//!   Lambda context's deadline, or the local queue runner's handler timeout,
//!   capped by `POST_RETRY_BUDGET_MS`).
//! - **Then, by the queue, after a short jittered delay** ([`redelivery_delay`],
//!   1–2 s first, doubling, capped by `RETRY_DELAY_MAX_SECONDS`) instead of a
//!   whole visibility timeout: notify-connection shortens the failed message's
//!   visibility (its receive count is kept, so a poison message still reaches
//!   the DLQ after maxReceiveCount); deliver re-enqueues the failed connections
//!   with a delay.
//! - **Throttling is not failure**: posts in flight per instance follow an
//!   adaptive limit ([`AdaptiveLimit`], AIMD: halved on a 429, +1 after a
//!   window of successes, at most every 100 ms), and a record still throttled is handed back with a
//!   delay without spending the attempts that guard against poison (bounded by
//!   [`MAX_THROTTLED_REQUEUES`]).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sync::lock;

/// How many times one record may be handed back only because it was throttled
/// before its throttling counts as a failure (about ten minutes at the capped delay).
pub const MAX_THROTTLED_REQUEUES: u32 = 40;

/// The first in-invocation retry waits up to this long (then 2×, 4×…).
pub const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// The longest in-invocation backoff.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The wait before in-invocation retry number `retry` (1 for the first): a
/// random time in `[0, min(cap, base × 2^(retry-1))]` (full jitter, so
/// failures that happened together do not retry together).
pub fn backoff(base: Duration, retry: u32, cap: Duration) -> Duration {
    let exponent = retry.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exponent).min(cap);
    Duration::from_micros(fastrand::u64(..=ceiling.as_micros() as u64))
}

/// The delay before a record handed back to its queue for the `n`th time
/// (1 for the first) is tried again, in whole seconds as SQS takes it: a
/// random number in `[2^(n-1), 2^n]` seconds, capped by `max` (at least 1 s).
pub fn redelivery_delay(n: u32, max: Duration) -> Duration {
    let max = max.as_secs().max(1);
    let low = (1u64 << n.saturating_sub(1).min(20)).min(max);
    let high = (low * 2).min(max);
    Duration::from_secs(fastrand::u64(low..=high))
}

tokio::task_local! {
    static INVOCATION_DEADLINE: Instant;
}

/// Runs `work` (one handler invocation) with `deadline`: when it is cut off.
/// Lambda mains pass the context's deadline; the local queue runner its
/// handler timeout.
pub async fn with_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    INVOCATION_DEADLINE.scope(deadline, work).await
}

/// The Lambda context's deadline (milliseconds since the epoch) as an [`Instant`].
pub fn deadline_from_epoch_millis(deadline_ms: u64) -> Instant {
    let left = deadline_ms as i64 - crate::clock::now_millis();
    Instant::now() + Duration::from_millis(left.max(0) as u64)
}

/// `timeout`, shortened to end `reserve` before the invocation's deadline
/// (see [`with_deadline`]; zero when that has passed), so what waits for it
/// still answers before Lambda ends the invocation. Unchanged outside one.
pub fn within_invocation(timeout: Duration, reserve: Duration) -> Duration {
    match INVOCATION_DEADLINE.try_with(|d| *d) {
        Ok(cut_off) => timeout.min(cut_off.checked_sub(reserve).map_or(Duration::ZERO, |end| {
            end.saturating_duration_since(Instant::now())
        })),
        Err(_) => timeout,
    }
}

/// What an in-invocation retry leaves of the invocation after its last
/// attempt: the time to hand the record back to its queue.
pub const HAND_BACK_RESERVE: Duration = Duration::from_secs(1);

/// Until when an invocation may start another in-invocation retry.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    retry_until: Instant,
}

impl Deadline {
    /// From now: at most `budget` of retrying, and never so late that one more
    /// attempt (`attempt_time`: every SDK attempt timing out) could outlive the
    /// invocation's deadline (see [`with_deadline`]), keeping
    /// [`HAND_BACK_RESERVE`] for handing the record back to its queue.
    pub fn start(budget: Duration, attempt_time: Duration) -> Self {
        let now = Instant::now();
        let mut retry_until = now + budget;
        if let Ok(cut_off) = INVOCATION_DEADLINE.try_with(|d| *d) {
            let reserve = attempt_time + HAND_BACK_RESERVE;
            retry_until = retry_until.min(cut_off.checked_sub(reserve).unwrap_or(now));
        }
        Deadline { retry_until }
    }

    /// Whether a retry after waiting `wait` still starts in time.
    pub fn allows(&self, wait: Duration) -> bool {
        Instant::now() + wait <= self.retry_until
    }

    /// How long until the last retry may start (zero once it has passed).
    pub fn left(&self) -> Duration {
        self.retry_until.saturating_duration_since(Instant::now())
    }
}

/// An adaptive limit on posts in flight (AIMD, as TCP's congestion window):
/// halved on a 429 when the quota is busy ([`THROTTLED_IN_RECENT`] 429s among
/// the last [`RECENT_OUTCOMES`] outcomes), once per burst (only a post that
/// started after the last decrease decreases it again), raised by one after as many successes as the
/// limit and at most once per [`INCREASE_SPACING`] (a gentle probe, so a quota
/// that allows only a few posts in flight sees few 429s), never below one nor
/// above the ceiling (`POST_CONCURRENCY`).
pub struct AdaptiveLimit {
    state: Mutex<LimitState>,
    freed: Notify,
    ceiling: usize,
}

/// The least time between two increases of an [`AdaptiveLimit`].
pub const INCREASE_SPACING: Duration = Duration::from_millis(100);

/// The outcomes an [`AdaptiveLimit`] remembers to tell a throttled quota from
/// a stray 429 ([`THROTTLED_IN_RECENT`] of them must be 429s to halve it).
pub const RECENT_OUTCOMES: usize = 32;

/// 429s among the last [`RECENT_OUTCOMES`] that mean the quota is busy: a
/// lone 429 (a struggling endpoint, one unlucky post) does not halve the
/// limit, for the posts it would hold back are not what the quota refused.
pub const THROTTLED_IN_RECENT: u32 = 2;

struct LimitState {
    limit: usize,
    in_flight: usize,
    successes: usize,
    /// The last [`RECENT_OUTCOMES`] outcomes, one bit each (1: throttled), newest lowest.
    recent: u32,
    /// The last increase or decrease (increases are spaced from both).
    last_change: Instant,
    last_decrease: Option<Instant>,
}

impl std::fmt::Debug for AdaptiveLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("limit", &self.limit())
            .field("ceiling", &self.ceiling)
            .finish()
    }
}

impl AdaptiveLimit {
    /// Starts at the ceiling.
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        AdaptiveLimit {
            state: Mutex::new(LimitState {
                limit: ceiling,
                in_flight: 0,
                successes: 0,
                recent: 0,
                last_change: Instant::now(),
                last_decrease: None,
            }),
            freed: Notify::new(),
            ceiling,
        }
    }

    /// Posts allowed in flight now.
    pub fn limit(&self) -> usize {
        lock(&self.state).limit
    }

    /// Waits for a slot; the slot is given back when the permit drops.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    return Permit {
                        limit: self,
                        started: Instant::now(),
                    };
                }
            }
            freed.await;
        }
    }

    fn throttled(&self, started: Instant) {
        let mut state = lock(&self.state);
        state.recent = (state.recent << 1) | 1;
        if state.recent.count_ones() < THROTTLED_IN_RECENT {
            // A stray 429, not a busy quota (yet).
            return;
        }
        if state.last_decrease.is_some_and(|at| started < at) {
            // Sent before the last decrease: that decrease already answered this burst.
            return;
        }
        let now = Instant::now();
        state.limit = (state.limit / 2).max(1);
        state.successes = 0;
        state.last_change = now;
        state.last_decrease = Some(now);
    }

    fn succeeded(&self) {
        let mut state = lock(&self.state);
        state.recent <<= 1;
        state.successes += 1;
        let now = Instant::now();
        if state.successes >= state.limit
            && state.limit < self.ceiling
            && now.duration_since(state.last_change) >= INCREASE_SPACING
        {
            state.successes = 0;
            state.limit += 1;
            state.last_change = now;
            drop(state);
            self.freed.notify_waiters();
        }
    }
}

/// A limit idle this long starts again at its ceiling: what it learnt about
/// the quota is stale (as TCP restarts its window after an idle spell).
pub const LIMIT_IDLE_RESET: Duration = Duration::from_secs(10);

/// Adaptive limits kept across invocations, one per instance: on Lambda an
/// instance handles one invocation at a time, so the pool holds one limit and
/// each invocation goes on from what the last one learnt about the quota
/// instead of probing it afresh; on the local stack, one per batch running at
/// once (each stands for an instance).
#[derive(Default)]
pub struct LimitPool {
    idle: Mutex<Vec<std::sync::Arc<AdaptiveLimit>>>,
}

impl LimitPool {
    pub const fn new() -> Self {
        LimitPool {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An instance's limit with this `ceiling` (a new one if none is free),
    /// back in the pool when the guard drops.
    pub fn checkout(&self, ceiling: usize) -> PooledLimit<'_> {
        let ceiling = ceiling.max(1);
        let found = {
            let mut idle = lock(&self.idle);
            idle.iter()
                .position(|l| l.ceiling == ceiling)
                .map(|at| idle.swap_remove(at))
        };
        let limit = found.unwrap_or_else(|| std::sync::Arc::new(AdaptiveLimit::new(ceiling)));
        {
            let mut state = lock(&limit.state);
            if state.last_change.elapsed() >= LIMIT_IDLE_RESET {
                state.limit = ceiling;
                state.successes = 0;
                state.recent = 0;
                state.last_change = Instant::now();
            }
        }
        PooledLimit {
            pool: self,
            limit: Some(limit),
        }
    }
}

/// A limit checked out of a [`LimitPool`].
pub struct PooledLimit<'a> {
    pool: &'a LimitPool,
    limit: Option<std::sync::Arc<AdaptiveLimit>>,
}

impl std::ops::Deref for PooledLimit<'_> {
    type Target = AdaptiveLimit;
    fn deref(&self) -> &AdaptiveLimit {
        self.limit
            .as_deref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for PooledLimit<'_> {
    fn drop(&mut self) {
        if let Some(limit) = self.limit.take() {
            lock(&self.pool.idle).push(limit);
        }
    }
}

/// A slot of an [`AdaptiveLimit`]; report the post's outcome on it.
pub struct Permit<'a> {
    limit: &'a AdaptiveLimit,
    started: Instant,
}

impl Permit<'_> {
    /// The post was throttled (429): halve the limit.
    pub fn throttled(&self) {
        self.limit.throttled(self.started);
    }

    /// The post succeeded.
    pub fn succeeded(&self) {
        self.limit.succeeded();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        lock(&self.limit.state).in_flight -= 1;
        self.limit.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        for retry in 1..8 {
            let ceiling = (RETRY_BACKOFF * (1 << (retry - 1))).min(RETRY_BACKOFF_MAX);
            for _ in 0..200 {
                assert!(backoff(RETRY_BACKOFF, retry, RETRY_BACKOFF_MAX) <= ceiling);
            }
        }
        let waits: std::collections::HashSet<Duration> = (0..50)
            .map(|_| backoff(RETRY_BACKOFF, 3, RETRY_BACKOFF_MAX))
            .collect();
        assert!(waits.len() > 10, "jittered: {waits:?}");
    }

    #[test]
    fn redelivery_delays_start_at_one_to_two_seconds_and_stay_capped() {
        let max = Duration::from_secs(20);
        for _ in 0..200 {
            let first = redelivery_delay(1, max).as_secs();
            assert!((1..=2).contains(&first), "{first}");
            let third = redelivery_delay(3, max).as_secs();
            assert!((4..=8).contains(&third), "{third}");
            assert!(redelivery_delay(30, max).as_secs() == 20);
            assert!(redelivery_delay(1, Duration::ZERO).as_secs() == 1);
        }
    }

    #[tokio::test]
    async fn the_limit_halves_once_per_burst_and_grows_back_gently() {
        let limit = AdaptiveLimit::new(16);
        let (a, b, c, d) = (
            limit.acquire().await,
            limit.acquire().await,
            limit.acquire().await,
            limit.acquire().await,
        );
        a.throttled();
        assert_eq!(limit.limit(), 16, "one 429 is not yet a busy quota");
        b.throttled();
        assert_eq!(limit.limit(), 8);
        c.throttled();
        d.throttled();
        assert_eq!(limit.limit(), 8, "one burst of 429s halves it once");
        drop((a, b, c, d));
        for _ in 0..5 {
            limit.acquire().await.throttled();
        }
        assert_eq!(limit.limit(), 1, "floor");
        limit.acquire().await.succeeded();
        assert_eq!(limit.limit(), 1, "no sooner than INCREASE_SPACING");
        tokio::time::sleep(INCREASE_SPACING).await;
        limit.acquire().await.succeeded();
        assert_eq!(limit.limit(), 2);
        tokio::time::sleep(INCREASE_SPACING).await;
        limit.acquire().await.succeeded();
        assert_eq!(
            limit.limit(),
            2,
            "a window is as many successes as the limit"
        );
        limit.acquire().await.succeeded();
        assert_eq!(limit.limit(), 3);
    }

    #[tokio::test]
    async fn stray_429s_among_successes_leave_the_limit_alone() {
        let limit = AdaptiveLimit::new(8);
        for _ in 0..20 {
            limit.acquire().await.throttled();
            for _ in 0..RECENT_OUTCOMES {
                limit.acquire().await.succeeded();
            }
        }
        assert_eq!(limit.limit(), 8, "one 429 in every 33 outcomes");
    }

    #[tokio::test]
    async fn a_pooled_limit_remembers_the_quota_across_invocations() {
        let pool = LimitPool::new();
        {
            let limit = pool.checkout(8);
            for _ in 0..THROTTLED_IN_RECENT {
                limit.acquire().await.throttled();
            }
            assert_eq!(limit.limit(), 4);
        }
        let next = pool.checkout(8);
        assert_eq!(next.limit(), 4, "the next invocation goes on from there");
        let other = pool.checkout(8);
        assert_eq!(other.limit(), 8, "a second instance at once starts afresh");
        let _ = pool.checkout(3);
        drop((next, other));
        assert_eq!(lock(&pool.idle).len(), 3);
    }

    #[tokio::test]
    async fn the_limit_never_passes_its_ceiling() {
        let limit = AdaptiveLimit::new(2);
        tokio::time::sleep(INCREASE_SPACING).await;
        for _ in 0..10 {
            limit.acquire().await.succeeded();
        }
        assert_eq!(limit.limit(), 2);
    }

    #[tokio::test]
    async fn permits_wait_for_a_free_slot() {
        let limit = std::sync::Arc::new(AdaptiveLimit::new(1));
        let first = limit.acquire().await;
        let waiting = {
            let limit = limit.clone();
            tokio::spawn(async move {
                let _second = limit.acquire().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the one slot is taken");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("freed")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_timeout_within_the_invocation_ends_its_reserve_before_the_deadline() {
        let (four, one) = (Duration::from_secs(4), Duration::from_secs(1));
        assert_eq!(
            within_invocation(four, one),
            four,
            "no invocation: unchanged"
        );
        let cut_off = Instant::now() + Duration::from_secs(3);
        let inside = with_deadline(cut_off, async { within_invocation(four, one) }).await;
        assert!(
            inside <= Duration::from_secs(2) && inside > Duration::from_millis(1_900),
            "3 s left − 1 s reserve: {inside:?}"
        );
        let short = with_deadline(cut_off, async { within_invocation(one, one) }).await;
        assert_eq!(short, one, "a timeout that fits is kept");
        let late = Instant::now() + Duration::from_millis(500);
        let late = with_deadline(late, async { within_invocation(four, one) }).await;
        assert_eq!(late, Duration::ZERO, "less left than the reserve");
    }

    #[tokio::test]
    async fn the_deadline_leaves_room_for_one_more_attempt() {
        let unbounded = Deadline::start(Duration::from_secs(5), Duration::from_secs(3));
        assert!(unbounded.allows(Duration::from_secs(4)));
        let cut_off = Instant::now() + Duration::from_secs(5);
        let inside = with_deadline(cut_off, async {
            Deadline::start(Duration::from_secs(5), Duration::from_secs(3))
        })
        .await;
        assert!(inside.allows(Duration::from_millis(500)));
        assert!(
            !inside.allows(Duration::from_millis(1500)),
            "5 s left − 3 s attempt − 1 s to hand it back"
        );
    }
}
