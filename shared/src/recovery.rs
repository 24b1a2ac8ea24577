//! Reading a stream back (see [`crate::history`]): what the `recover` and
//! `history` actions send.
//!
//! A recovery from (offset `o`, epoch `e`) succeeds when the stream's epoch
//! is still `e` and every message after `o` is still kept: then the client
//! gets them in offset order and is exactly where the stream is. Otherwise
//! it is `recovered:false` with the reason, and the client reloads its
//! state. A gap larger than the request's budget (messages and bytes) is sent
//! a page at a time (`more:true`): the client recovers again from the last
//! offset it got.
//!
//! An answer is read whole before anything is posted, then [`answer`] books
//! it: its bytes from the user's bucket ([`take_history_bytes`]), its posts
//! from the stack's post budget ([`crate::pacing`]), and posts it in order,
//! packed into `batch` frames when the client asked for them.

use std::time::Duration;

use serde::Serialize;

use crate::clock::now_seconds;
use crate::limits::{LimitError, take_history_bytes};
use crate::pacing::{Pace, pace_for, user_booker};
use crate::ports::{ConnectionRecord, GatewayError, Kept, Position, StoreError};
use crate::posting::retry_deadline;
use crate::protocol::{BATCH_BYTES, batched};
use crate::services::Services;

use crate::history::{Stream, counter_lifetime, keeps, stamp};
use crate::recorder::Recorder;

/// Reads of a range with a hole in it, before the hole counts as lost: an
/// append takes its offset before it writes the message, so a hole at the
/// tail may be a message still being written.
const HOLE_READS: usize = 3;
const HOLE_WAIT: Duration = Duration::from_millis(50);

/// Why a stream cannot be recovered from where the client was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lost {
    /// The stream's epoch is not the client's: its history was reset or lost.
    EpochChanged,
    /// The client is further back than the stream keeps (`HISTORY_SIZE`).
    TooOld,
    /// A message the client missed is no longer kept (`HISTORY_TTL_SECONDS`).
    Expired,
    /// The client's offset is past the stream's latest in the same epoch.
    OffsetAhead,
}

/// What one stream's recovery sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The missed messages, stamped, in offset order.
    pub messages: Vec<String>,
    /// `None` if recovered; the reason otherwise (and `messages` is empty).
    pub lost: Option<Lost>,
    /// Where the client is after these messages: the last one's offset (or
    /// the stream's latest) and the stream's epoch.
    pub position: Position,
    /// More missed messages follow `position` than the budget allowed.
    pub more: bool,
}

/// What one answer may still send: messages (`HISTORY_RECOVER_LIMIT`) and
/// bytes of message frames (the user's `HISTORY_READ_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub messages: usize,
    pub bytes: usize,
}

impl Budget {
    /// Takes `frame` from the budget if it fits.
    fn take(&mut self, frame: &str) -> bool {
        let fits = self.messages > 0 && frame.len() <= self.bytes;
        if fits {
            self.messages -= 1;
            self.bytes -= frame.len();
        }
        fits
    }
}

/// Recovers `stream` for a client at (`offset`, `epoch`), sending what fits
/// in `budget` (and taking it from there).
pub async fn recover(
    recorder: &Recorder<'_>,
    stream: &Stream,
    offset: u64,
    epoch: &str,
    budget: &mut Budget,
) -> Result<Recovery, StoreError> {
    let key = stream.key();
    let now = now_seconds();
    let top = read_top(recorder, &key, now).await?;
    let lost = |lost| Recovery {
        messages: Vec::new(),
        lost: Some(lost),
        position: top.clone(),
        more: false,
    };
    if top.epoch != epoch {
        return Ok(lost(Lost::EpochChanged));
    }
    if offset > top.offset {
        return Ok(lost(Lost::OffsetAhead));
    }
    let oldest_kept = top.offset.saturating_sub(recorder.settings.size) + 1;
    if offset + 1 < oldest_kept {
        return Ok(lost(Lost::TooOld));
    }
    let to = top
        .offset
        .min(offset.saturating_add(budget.messages as u64));
    let kept = read_whole(recorder, &key, &top.epoch, offset + 1, to).await?;
    let Some(kept) = kept else {
        return Ok(lost(Lost::Expired));
    };
    let name = stream.name();
    let mut messages = Vec::with_capacity(kept.len());
    let mut reached = offset;
    for k in &kept {
        let position = Position {
            offset: k.offset,
            epoch: top.epoch.clone(),
        };
        if let Some(message) = stamp(&k.frame, &name, &position) {
            if !budget.take(&message) {
                break;
            }
            messages.push(message);
        }
        reached = k.offset;
    }
    let to = reached;
    Ok(Recovery {
        messages,
        lost: None,
        position: Position {
            offset: to,
            epoch: top.epoch.clone(),
        },
        more: to < top.offset,
    })
}

/// The position of the stream stored under `key`; a stream with no counter
/// gets one, kept for the counter's lifetime from `now`.
async fn read_top(recorder: &Recorder<'_>, key: &str, now: i64) -> Result<Position, StoreError> {
    recorder
        .history
        .position(key, now + counter_lifetime(recorder.settings))
        .await
}

/// Offsets `from..=to` of `stream`, all of them, or `None` if one is not kept.
async fn read_whole(
    recorder: &Recorder<'_>,
    key: &str,
    epoch: &str,
    from: u64,
    to: u64,
) -> Result<Option<Vec<Kept>>, StoreError> {
    if from > to {
        return Ok(Some(Vec::new()));
    }
    let wanted = (to - from + 1) as usize;
    for attempt in 0..HOLE_READS {
        if attempt > 0 {
            tokio::time::sleep(HOLE_WAIT).await;
        }
        let kept = recorder
            .history
            .read(key, epoch, from, to, now_seconds())
            .await?;
        let whole = kept.len() == wanted
            && kept
                .iter()
                .enumerate()
                .all(|(i, k)| k.offset == from + i as u64);
        if whole {
            return Ok(Some(kept));
        }
    }
    Ok(None)
}

/// The latest kept messages of `stream`, stamped, in offset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// The stream's position.
    pub position: Position,
    pub messages: Vec<String>,
    /// Older kept messages were left out to stay within `max_bytes`.
    pub more: bool,
}

/// The latest `limit` kept messages of `stream` (fewer if fewer are kept,
/// and only the newest that fit in `max_bytes`).
pub async fn latest(
    recorder: &Recorder<'_>,
    stream: &Stream,
    limit: usize,
    max_bytes: usize,
) -> Result<Latest, StoreError> {
    let key = stream.key();
    let now = now_seconds();
    let top = read_top(recorder, &key, now).await?;
    let limit = (limit as u64).min(recorder.settings.size);
    if limit == 0 || top.offset == 0 {
        return Ok(Latest {
            position: top,
            messages: Vec::new(),
            more: false,
        });
    }
    let from = top.offset.saturating_sub(limit - 1).max(1);
    let kept = recorder
        .history
        .read(&key, &top.epoch, from, top.offset, now)
        .await?;
    let mut messages = stamped(&kept, &stream.name(), &top.epoch);
    let mut bytes = 0usize;
    let fit = messages
        .iter()
        .rev()
        .take_while(|m| {
            bytes += m.len();
            bytes <= max_bytes
        })
        .count();
    let more = fit < messages.len();
    messages.drain(..messages.len() - fit);
    Ok(Latest {
        position: top,
        messages,
        more,
    })
}

fn stamped(kept: &[Kept], name: &str, epoch: &str) -> Vec<String> {
    kept.iter()
        .filter_map(|k| {
            let position = Position {
                offset: k.offset,
                epoch: epoch.to_owned(),
            };
            stamp(&k.frame, name, &position)
        })
        .collect()
}

/// Why a client may not read a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not its own user stream, nor a group it is a member of.
    #[error("{0}")]
    Forbidden(String),
    /// The stream keeps no history.
    #[error("\"{0}\" keeps no history")]
    NotKept(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the connection of `record` may read `stream`: its own user's
/// stream, or a group it is a member of, that keeps history.
pub async fn may_read(
    services: &Services,
    record: &ConnectionRecord,
    stream: &Stream,
) -> Result<(), ReadError> {
    if let Stream::Group(group) = stream
        && !services
            .memberships
            .is_member(group, &record.connection_id)
            .await?
    {
        return Err(ReadError::Forbidden(format!(
            "join \"{group}\" before reading its history"
        )));
    }
    if !keeps(&services.settings.history, stream) || services.history.is_none() {
        return Err(ReadError::NotKept(stream.name()));
    }
    Ok(())
}

/// Why an answer was not posted.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The user's bytes (or the store that keeps them): nothing was posted.
    #[error(transparent)]
    Bytes(#[from] LimitError),
    /// The stack's post budget is booked too far ahead: nothing was posted.
    #[error("{}", crate::pacing::BUDGET_BOOKED)]
    Posts { retry_after: Duration },
    /// A post failed: the frames before it were posted.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// What [`answer`] posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub posts: usize,
    pub bytes: usize,
}

/// Answers `user_id`'s connection with `frames`, in order: packed into
/// `batch` frames if `batch`, booked from the user's answer bytes and from
/// the stack's post budget (waiting for its turn, as deliver does), then
/// posted one after another.
pub async fn answer(
    services: &Services,
    connection_id: &str,
    user_id: &str,
    frames: Vec<String>,
    batch: bool,
) -> Result<Posted, AnswerError> {
    let posts = if batch {
        batched(frames, BATCH_BYTES)
    } else {
        frames
    };
    let bytes = posts.iter().map(String::len).sum();
    take_history_bytes(services, user_id, bytes).await?;
    let policy = &services.settings.posting;
    let deadline = retry_deadline(policy);
    // The user's share of the budget first, as deliver books a booker's.
    if let Pace::Busy { retry_after } = pace_for(
        &*services.store,
        policy.rate_limit,
        policy.booker_share,
        Some(&user_booker(user_id)),
        posts.len(),
        &deadline,
    )
    .await
    {
        return Err(AnswerError::Posts { retry_after });
    }
    for post in &posts {
        services
            .gateway
            .post_to_connection(connection_id, post.as_bytes())
            .await?;
    }
    Ok(Posted {
        posts: posts.len(),
        bytes,
    })
}

impl Lost {
    /// The `reason` a `recovered:false` frame carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Lost::EpochChanged => "epoch_changed",
            Lost::TooOld => "too_old",
            Lost::Expired => "expired",
            Lost::OffsetAhead => "offset_ahead",
        }
    }
}
