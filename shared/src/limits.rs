//! What a client may do how often: the rate limits every client action takes
//! from, and the per-user connection cap at `$connect`.
//!
//! Every bucket is a token bucket ([`crate::rate`]) kept in the connection
//! store ([`ConnectionStore::take_allowance`]):
//!
//! | bucket | taken by | setting |
//! |---|---|---|
//! | the connection's actions | every `subscribe`, `unsubscribe`, `publish`, `presence` | `ACTION_LIMIT` per `ACTION_WINDOW_MS` |
//! | the user's actions | the same, over all the user's connections, and each `$connect` | `USER_ACTION_LIMIT` per `ACTION_WINDOW_MS` |
//! | the user's publishes | every `publish` that passed the checks above | `PUBLISH_LIMIT` per `PUBLISH_WINDOW_MS` |
//! | the user's presence changes in a group | `subscribe`/`unsubscribe` in a presence group; the join and leave announcements of `$connect` and `$disconnect` | `PRESENCE_CHANGE_LIMIT` per `PRESENCE_CHANGE_WINDOW_MS` |
//! | the user's history reads | every `recover` and `history` | `HISTORY_READ_LIMIT` per `HISTORY_READ_WINDOW_MS` |
//! | the user's history bytes | the bytes each `recover` and `history` answer posts | `HISTORY_READ_BYTES` per `HISTORY_READ_WINDOW_MS` |
//!
//! A refused action changes nothing, so a presence change that was refused
//! announces nothing and presence stays true. Joins at `$connect` and leaves
//! at `$disconnect` take from the same bucket at their announcement
//! ([`crate::membership`]): the connection is made (or closed) either way,
//! and a join over the limit is not announced, nor is its leave. So one user
//! can make at most `PRESENCE_CHANGE_LIMIT` join/leave announcements per
//! window in a group (one more when the last is the leave ending an
//! announced stay), however many connections they toggle or reconnect.

use std::fmt;
use std::time::Duration;

use crate::history::READ_BYTES_UNIT;
use crate::ports::{Allowance, Booking, ConnectionStore, Rate, StoreError};
use crate::services::{Limits, Services};

/// A limit that refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    ConnectionActions(Rate),
    UserActions(Rate),
    UserPublishes(Rate),
    PresenceChanges(Rate),
    /// `recover` and `history` requests of one user.
    HistoryReads(Rate),
    /// Bytes of `recover` and `history` answers to one user: at most `bytes`
    /// per `window`; the answer fits in `retry_after`.
    HistoryBytes {
        bytes: u64,
        window: Duration,
        retry_after: Duration,
    },
    /// The user already has this many open connections.
    Connections(u32),
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rate, what) = match self {
            Exceeded::Connections(cap) => {
                return write!(
                    f,
                    "too many connections: this user already has {cap} open, the most allowed"
                );
            }
            Exceeded::HistoryBytes { bytes, window, .. } => {
                return write!(
                    f,
                    "at most {bytes} bytes of recover and history answers per user per {} ms; slow down",
                    window.as_millis()
                );
            }
            Exceeded::ConnectionActions(rate) => (rate, "actions per connection"),
            Exceeded::UserActions(rate) => (rate, "actions per user"),
            Exceeded::UserPublishes(rate) => (rate, "events per user"),
            Exceeded::HistoryReads(rate) => (rate, "recover and history requests per user"),
            Exceeded::PresenceChanges(rate) => (
                rate,
                "subscribes and unsubscribes per user in a presence group",
            ),
        };
        write!(
            f,
            "at most {} {what} per {} ms; slow down",
            rate.limit,
            rate.window.as_millis()
        )
    }
}

impl Exceeded {
    /// When trying again can succeed, where the limit knows it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Exceeded::HistoryBytes { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Exceeded(Exceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn limits(services: &Services) -> &Limits {
    &services.settings.limits
}

async fn take(
    services: &Services,
    allowance: Allowance,
    rate: Rate,
    exceeded: impl FnOnce(Rate) -> Exceeded,
) -> Result<(), LimitError> {
    let now_ms = crate::clock::now_millis();
    if services
        .store
        .take_allowance(&allowance, now_ms, rate)
        .await?
    {
        Ok(())
    } else {
        Err(LimitError::Exceeded(exceeded(rate)))
    }
}

/// Every client action: one token from the connection's bucket, then one
/// from the user's. A flood from one connection is refused by its own bucket
/// (one store write per refused frame).
pub async fn take_action(
    services: &Services,
    connection_id: &str,
    user_id: &str,
) -> Result<(), LimitError> {
    let limits = limits(services);
    take(
        services,
        Allowance::ConnectionActions(connection_id.to_owned()),
        limits.connection_actions,
        Exceeded::ConnectionActions,
    )
    .await?;
    take(
        services,
        Allowance::UserActions(user_id.to_owned()),
        limits.user_actions,
        Exceeded::UserActions,
    )
    .await
}

/// A `publish`: one token from the user's publish bucket.
pub async fn take_publish(services: &Services, user_id: &str) -> Result<(), LimitError> {
    take(
        services,
        Allowance::UserPublishes(user_id.to_owned()),
        services.settings.publish_rate(),
        Exceeded::UserPublishes,
    )
    .await
}

/// A `recover` or `history`: one token from the user's history-read bucket
/// (each may send up to `HISTORY_RECOVER_LIMIT` messages).
pub async fn take_history_read(services: &Services, user_id: &str) -> Result<(), LimitError> {
    take(
        services,
        Allowance::HistoryReads(user_id.to_owned()),
        services.settings.history.reads,
        Exceeded::HistoryReads,
    )
    .await
}

/// A `recover` or `history` answer of `bytes` to `user_id`: booked from the
/// user's bucket of answer bytes if it holds them now, refused (nothing
/// taken) otherwise. An answer is counted as at most the whole bucket, so a
/// full bucket always takes one.
pub async fn take_history_bytes(
    services: &Services,
    user_id: &str,
    bytes: usize,
) -> Result<(), LimitError> {
    let settings = &services.settings.history;
    let rate = settings.read_bytes_rate();
    let units = (bytes as u64)
        .div_ceil(READ_BYTES_UNIT)
        .min(u64::from(rate.limit)) as u32;
    let booking = services
        .store
        .reserve_allowance(
            &Allowance::HistoryBytes(user_id.to_owned()),
            units,
            crate::clock::now_millis(),
            rate,
            Duration::ZERO,
        )
        .await?;
    match booking {
        Booking::After(_) => Ok(()),
        Booking::Full { retry_after } => Err(LimitError::Exceeded(Exceeded::HistoryBytes {
            bytes: u64::from(rate.limit) * READ_BYTES_UNIT,
            window: rate.window,
            retry_after,
        })),
    }
}

/// A `subscribe` or `unsubscribe` of `group`: in a presence group, one token
/// from the user's presence-change bucket for the group; free elsewhere.
pub async fn take_presence_change(
    services: &Services,
    group: &str,
    user_id: &str,
) -> Result<(), LimitError> {
    if !services.settings.presence.allows(group) {
        return Ok(());
    }
    take(
        services,
        Allowance::PresenceChanges {
            group: group.to_owned(),
            user_id: user_id.to_owned(),
        },
        limits(services).presence_changes,
        Exceeded::PresenceChanges,
    )
    .await
}

/// A presence change that is announced whatever the bucket holds (the leave
/// of a user whose join was announced: members must not be left believing
/// the user is online): its token is booked ahead, up to one window, so the
/// user's next join waits for it.
pub async fn charge_presence_change(
    services: &Services,
    group: &str,
    user_id: &str,
) -> Result<(), StoreError> {
    let rate = limits(services).presence_changes;
    services
        .store
        .reserve_allowance(
            &Allowance::PresenceChanges {
                group: group.to_owned(),
                user_id: user_id.to_owned(),
            },
            1,
            crate::clock::now_millis(),
            rate,
            rate.window,
        )
        .await
        .map(|_| ())
}

/// A handshake of `user_id`: refused if the user already has
/// `MAX_CONNECTIONS_PER_USER` open connections (read from the user index;
/// nothing is written then), otherwise one token from the user's action
/// bucket, which bounds how fast one user can open connections and so how
/// many handshakes can race past the count.
pub async fn admit_connection(services: &Services, user_id: &str) -> Result<(), LimitError> {
    let limits = limits(services);
    let cap = limits.max_connections_per_user;
    if open_connections(&*services.store, user_id, cap).await? >= cap as usize {
        return Err(LimitError::Exceeded(Exceeded::Connections(cap)));
    }
    take(
        services,
        Allowance::UserActions(user_id.to_owned()),
        limits.user_actions,
        Exceeded::UserActions,
    )
    .await
}

/// How many connections `user_id` has, counted up to `at_most` (pages of the
/// user index, at most `at_most + 1` of them).
pub async fn open_connections(
    store: &dyn ConnectionStore,
    user_id: &str,
    at_most: u32,
) -> Result<usize, StoreError> {
    let at_most = at_most as usize;
    let mut count = 0;
    let mut after: Option<String> = None;
    for _ in 0..=at_most {
        if count >= at_most {
            break;
        }
        let page = store.user_connections(user_id, after.as_deref()).await?;
        count += page.connection_ids.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(count)
}
