//! Pacing: one budget of Management API posts for the whole stack.
//!
//! API Gateway throttles `POST @connections` per account and Region (10,000
//! requests a second, burst 5,000, by default). Each deliver and
//! notify-connection instance can only see its own 429s, so instances that
//! each probe for their share (the adaptive limit in [`crate::retry`]) keep
//! overshooting it together: fifty of them made 22–40 % of a broadcast's posts
//! retries. Instead, every instance books its posts ahead from one shared
//! bucket of `POST_RATE_LIMIT` posts a second ([`Allowance::Posts`]: one
//! `limit#posts` item in the connections table, one conditional UpdateItem per
//! Deliveries message or notify-connection batch, never a read), then waits
//! its turn ([`crate::rate::reserve`]). Between them they post at the budget's
//! rate, in the order they booked, and the quota's 429s are left for the
//! account's other traffic, which the adaptive limit still answers.
//!
//! - The bucket holds half a second of posts, as API Gateway's does (burst
//!   5,000 at 10,000 a second): the budget is the quota's own bucket at 95 %,
//!   so a send of a few thousand goes out at once and the quota's burst still
//!   covers it. It never holds less than one Deliveries message (100 posts).
//! - A booking further ahead than [`MAX_WAIT`] (or the invocation's retry
//!   deadline) is refused, and the work goes back to its queue with a delay,
//!   as throttled work does: an instance does not sleep away its invocation.
//! - A store that cannot answer does not stop delivery: the posts go ahead
//!   unpaced (the quota still guards itself, and the adaptive limit answers it).
//! - Every booking's wait is the `PostBudgetWait` metric: waits that grow
//!   say the budget, not the functions, bounds the fan-out.
//! - `POST_RATE_LIMIT=0` turns pacing off.
//!
//! A fair share: one booker may book at most `POST_BOOKER_SHARE` percent of
//! the budget (50 by default). A booker is whom a send is for, carried by its
//! Deliveries and NotifyConnection messages: `user:{id}` for a user's sends
//! (notify-user, `sendToUser`), client events (`publish`) and presence
//! announcements (whose join or leave it is), `group:{name}` for the
//! application's sends to a group. Each booker has a bucket of its own
//! ([`Allowance::BookerPosts`], `limit#posts#{booker}`, built as the budget's
//! at the share's rate), booked first: a booking past [`MAX_WAIT`] there hands
//! the work back as the full budget does, and never touches the budget. So a
//! user reconnecting into a big presence group, or one huge group send, books
//! at most its share, and the rest of the budget stays for everyone else:
//! another user's notification waits for its own turn, not behind theirs.
//! Broadcasts and sends to one connection have no booker (the application's,
//! to everyone or to one). 50 % keeps a lone send at half the budget's pace
//! (4,750 posts a second at the template's default) while every other booker
//! always has the other half; 100 turns the share off.

use std::time::Duration;

use tracing::{debug, warn};

use crate::clock::now_millis;
use crate::metrics::{self, Metric};
use crate::ports::{Allowance, Booking, ConnectionStore};
use crate::protocol::DELIVERY_BATCH;
use crate::rate::Rate;
use crate::retry::Deadline;

/// The reason given for work handed back because the budget had no room
/// (as a 429's message).
pub const BUDGET_BOOKED: &str = "the stack's post budget is booked ahead";

/// The template's default budget (`PostRateLimit`): 95 % of API Gateway's
/// default account quota of 10,000 requests a second.
pub const TEMPLATE_RATE: u32 = 9_500;

/// The default share of the budget one booker may book, in percent.
pub const DEFAULT_BOOKER_SHARE: u32 = 50;

/// The booker of sends for user `user_id`.
pub fn user_booker(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The booker of the application's sends to `group`.
pub fn group_booker(group: &str) -> String {
    format!("group:{group}")
}

/// The longest an instance waits for its booked turn.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// The budget's bucket for `per_second` posts: half a second's worth at once,
/// and never less than one Deliveries message (so even a small budget always
/// has room for one when idle, instead of refusing every message), refilled
/// at `per_second`. `None` when pacing is off.
pub fn budget(per_second: u32) -> Option<Rate> {
    if per_second == 0 {
        return None;
    }
    let burst = (per_second / 2).max(DELIVERY_BATCH as u32);
    let window = Duration::from_secs_f64(f64::from(burst) / f64::from(per_second));
    Some(Rate::new(burst, window))
}

/// One booker's bucket: the budget's for `share` percent of `per_second`
/// (at least one post a second). `None` when pacing or the share is off.
pub fn booker_budget(per_second: u32, share: u32) -> Option<Rate> {
    if share >= 100 {
        return None;
    }
    let rate = u64::from(per_second) * u64::from(share) / 100;
    budget(u32::try_from(rate).unwrap_or(u32::MAX).max(1)).filter(|_| per_second > 0)
}

/// Books each booker's posts from its share of the budget of `per_second`
/// ([`booker_budget`]), then waits for the latest of their turns (at most
/// [`MAX_WAIT`], and within `deadline`). Returns the bookers whose share is
/// booked too far ahead (their work goes back to its queue; nothing of theirs
/// was booked) and how long until they should try again.
pub async fn book_shares<S: ConnectionStore + ?Sized>(
    store: &S,
    per_second: u32,
    share: u32,
    bookings: &[(&str, usize)],
    deadline: &Deadline,
) -> (Vec<String>, Duration) {
    let Some(rate) = booker_budget(per_second, share) else {
        return (Vec::new(), Duration::ZERO);
    };
    let horizon = deadline.left().min(MAX_WAIT);
    let (mut busy, mut retry, mut wait) = (Vec::new(), Duration::ZERO, Duration::ZERO);
    for &(booker, posts) in bookings {
        if posts == 0 {
            continue;
        }
        let tokens = u32::try_from(posts).unwrap_or(u32::MAX);
        let allowance = Allowance::BookerPosts(booker.to_owned());
        match store
            .reserve_allowance(&allowance, tokens, now_millis(), rate, horizon)
            .await
        {
            Ok(Booking::After(after)) => wait = wait.max(after),
            Ok(Booking::Full { retry_after }) => {
                debug!(
                    booker,
                    posts, "the booker's share of the post budget is booked ahead"
                );
                busy.push(booker.to_owned());
                retry = retry.max(retry_after);
            }
            Err(e) => warn!(error = %e, "cannot book a booker's share; posting without it"),
        }
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    (busy, retry)
}

/// Books `posts` posts for `booker` (if any) from its share of the budget
/// ([`book_shares`]), then from the budget itself ([`pace`]): busy if either
/// is booked too far ahead, and nothing is booked from the budget for a
/// booker over its share.
pub async fn pace_for<S: ConnectionStore + ?Sized>(
    store: &S,
    per_second: u32,
    share: u32,
    booker: Option<&str>,
    posts: usize,
    deadline: &Deadline,
) -> Pace {
    let shares: Vec<(&str, usize)> = booker.map(|b| (b, posts)).into_iter().collect();
    let (over_share, retry_after) = book_shares(store, per_second, share, &shares, deadline).await;
    if over_share.is_empty() {
        pace(store, per_second, posts, deadline).await
    } else {
        Pace::Busy { retry_after }
    }
}

/// What an instance may do with the posts it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Post now (its turn came, pacing is off, or the store did not answer).
    Go,
    /// The budget is booked too far ahead: hand the work back to its queue.
    Busy { retry_after: Duration },
}

/// Books `posts` posts from the stack's budget of `per_second` and waits for
/// their turn (at most [`MAX_WAIT`], and within `deadline`).
pub async fn pace<S: ConnectionStore + ?Sized>(
    store: &S,
    per_second: u32,
    posts: usize,
    deadline: &Deadline,
) -> Pace {
    let Some(rate) = budget(per_second) else {
        return Pace::Go;
    };
    if posts == 0 {
        return Pace::Go;
    }
    let horizon = deadline.left().min(MAX_WAIT);
    let tokens = u32::try_from(posts).unwrap_or(u32::MAX);
    match store
        .reserve_allowance(&Allowance::Posts, tokens, now_millis(), rate, horizon)
        .await
    {
        Ok(Booking::After(wait)) => {
            metrics::record(Metric::PostBudgetWait, &[], wait.as_millis() as u64);
            if !wait.is_zero() {
                debug!(
                    posts,
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the post budget"
                );
                tokio::time::sleep(wait).await;
            }
            Pace::Go
        }
        Ok(Booking::Full { retry_after }) => Pace::Busy { retry_after },
        Err(e) => {
            warn!(error = %e, "cannot book the post budget; posting unpaced");
            Pace::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;

    #[test]
    fn the_bucket_holds_half_a_second() {
        let rate = budget(9_500).expect("on");
        assert_eq!(rate.limit, 4_750);
        assert_eq!(rate.interval_us(), 105);
        // A small budget still holds one Deliveries message, at its own rate.
        let slow = budget(10).expect("on");
        assert_eq!(slow.limit, 100);
        assert_eq!(slow.interval_us(), 100_000);
        assert_eq!(budget(0), None);
    }

    #[tokio::test]
    async fn instances_booking_together_post_at_the_budget_s_rate() {
        // 1,000 posts a second, 500 at once; ten instances of 100 posts each
        // at once: five go now, the last half a second later.
        let store = std::sync::Arc::new(MemoryStore::default());
        let deadline = Deadline::start(Duration::from_secs(5), Duration::ZERO);
        let started = tokio::time::Instant::now();
        let runs: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let pace = pace(&*store, 1_000, 100, &deadline).await;
                    (pace, started.elapsed())
                })
            })
            .collect();
        let mut took = Vec::new();
        for run in runs {
            let (pace, after) = run.await.expect("no panic");
            assert_eq!(pace, Pace::Go);
            took.push(after);
        }
        took.sort();
        assert!(took[4] < Duration::from_millis(50), "{took:?}");
        assert!(took[5] >= Duration::from_millis(90), "{took:?}");
        assert!(took[9] >= Duration::from_millis(490), "{took:?}");
        assert!(took[9] < Duration::from_millis(900), "{took:?}");
    }

    #[tokio::test]
    async fn a_budget_booked_past_the_wait_sends_the_work_back() {
        let store = MemoryStore::default();
        let deadline = Deadline::start(Duration::from_secs(30), Duration::ZERO);
        // 100 a second: 300 posts book three seconds ahead.
        assert_eq!(pace(&store, 100, 10, &deadline).await, Pace::Go);
        let booked = store
            .reserve_allowance(
                &Allowance::Posts,
                300,
                now_millis(),
                budget(100).expect("on"),
                Duration::from_secs(10),
            )
            .await
            .expect("memory");
        assert!(matches!(booked, Booking::After(w) if w > Duration::from_secs(2)));
        let busy = pace(&store, 100, 10, &deadline).await;
        assert!(
            matches!(busy, Pace::Busy { retry_after } if retry_after > Duration::ZERO),
            "{busy:?}"
        );
        // Off: nothing is booked, nothing waits.
        assert_eq!(pace(&store, 0, 10_000, &deadline).await, Pace::Go);
    }

    #[tokio::test]
    async fn every_booking_s_wait_is_a_post_budget_wait_value() {
        use crate::metrics::{Invocation, MetricsSink, measure};
        #[derive(Default)]
        struct Waits(std::sync::Mutex<Vec<u64>>);
        impl MetricsSink for Waits {
            fn export(&self, _function: &'static str, invocation: &Invocation) {
                for (series, values) in &invocation.series {
                    if series.metric == Metric::PostBudgetWait {
                        self.0.lock().unwrap().extend(values);
                    }
                }
            }
        }
        let store = MemoryStore::default();
        let deadline = Deadline::start(Duration::from_secs(5), Duration::ZERO);
        let waits = Waits::default();
        measure(&waits, "deliver", async {
            // 100 a second, 100 at once: the third booking of 50 waits 500 ms.
            for _ in 0..3 {
                assert_eq!(pace(&store, 100, 50, &deadline).await, Pace::Go);
            }
        })
        .await;
        let waits = waits.0.into_inner().unwrap();
        assert_eq!(waits.len(), 3, "{waits:?}");
        assert_eq!(waits[..2], [0, 0]);
        assert!((480..=500).contains(&waits[2]), "{waits:?}");
    }

    #[tokio::test]
    async fn a_small_budget_still_carries_one_deliveries_message() {
        // 10 posts a second: a message of 100 goes when the bucket is idle,
        // and the next one is turned back (10 s ahead) instead of posted.
        let store = MemoryStore::default();
        let deadline = Deadline::start(Duration::from_secs(5), Duration::ZERO);
        assert_eq!(pace(&store, 10, 100, &deadline).await, Pace::Go);
        assert!(matches!(
            pace(&store, 10, 100, &deadline).await,
            Pace::Busy { retry_after } if retry_after >= Duration::from_secs(7)
        ));
    }

    #[test]
    fn a_booker_s_bucket_is_the_budget_s_at_its_share() {
        let rate = booker_budget(9_500, 50).expect("on");
        assert_eq!(rate, budget(4_750).expect("on"));
        // Never less than one post a second, nor than one Deliveries message at once.
        let small = booker_budget(1, 10).expect("on");
        assert_eq!(small.limit, 100);
        assert_eq!(booker_budget(9_500, 100), None, "the share is off");
        assert_eq!(booker_budget(0, 50), None, "pacing is off");
    }

    #[tokio::test]
    async fn a_booker_over_its_share_is_held_back_and_books_nothing_of_the_budget() {
        // 1,000 a second, 50 %: mallory's bucket holds 250 and refills at
        // 500 a second, so within the 2 s horizon she books 1,250.
        let store = MemoryStore::default();
        let deadline = Deadline::start(Duration::from_secs(30), Duration::ZERO);
        let (busy, _) = book_shares(&store, 1_000, 50, &[("user:m", 200)], &deadline).await;
        assert!(busy.is_empty());
        let booked = store
            .reserve_allowance(
                &Allowance::BookerPosts("user:m".into()),
                1_200,
                now_millis(),
                booker_budget(1_000, 50).expect("on"),
                Duration::from_secs(10),
            )
            .await
            .expect("memory");
        assert!(matches!(booked, Booking::After(w) if w > Duration::from_secs(2)));
        let (busy, retry_after) = book_shares(
            &store,
            1_000,
            50,
            &[("user:m", 100), ("user:v", 100)],
            &deadline,
        )
        .await;
        assert_eq!(busy, ["user:m"]);
        assert!(retry_after > Duration::ZERO);
        // The budget itself was never booked by the shares: it is whole.
        let whole = store
            .reserve_allowance(
                &Allowance::Posts,
                500,
                now_millis(),
                budget(1_000).expect("on"),
                Duration::ZERO,
            )
            .await
            .expect("memory");
        assert_eq!(whole, Booking::After(Duration::ZERO));
        // Off: nobody is held back.
        let (busy, _) = book_shares(&store, 1_000, 100, &[("user:m", 100)], &deadline).await;
        assert!(busy.is_empty());
    }

    #[tokio::test]
    async fn a_store_that_cannot_answer_does_not_stop_posts() {
        let store = MemoryStore::default();
        store.fail_next(crate::ports::StoreError::Unavailable("down".into()));
        let deadline = Deadline::start(Duration::from_secs(5), Duration::ZERO);
        assert_eq!(pace(&store, 1_000, 10, &deadline).await, Pace::Go);
    }
}
