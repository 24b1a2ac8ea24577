//! Reading a stream back (see [`crate::history`]): what the `recover` and
//! `history` actions send.
//!
//! A recovery from (offset `o`, epoch `e`) succeeds when the stream's epoch
//! is still `e` and every message after `o` is still kept: then the client
//! gets them in offset order and is exactly where the stream is. Otherwise
//! it is `recovered:false` with the reason, and the client reloads its
//! state. A gap larger than the request's budget is sent a page at a time
//! (`more:true`): the client recovers again from the last offset it got.

use std::time::Duration;

use serde::Serialize;

use crate::clock::now_seconds;
use crate::ports::{ConnectionRecord, GatewayError, Kept, Position, StoreError};
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

/// Recovers `stream` for a client at (`offset`, `epoch`), sending at most
/// `budget` messages.
pub async fn recover(
    recorder: &Recorder<'_>,
    stream: &Stream,
    offset: u64,
    epoch: &str,
    budget: usize,
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
    let to = top.offset.min(offset.saturating_add(budget as u64));
    let kept = read_whole(recorder, &key, &top.epoch, offset + 1, to).await?;
    let Some(kept) = kept else {
        return Ok(lost(Lost::Expired));
    };
    let name = stream.name();
    let messages = stamped(&kept, &name, &top.epoch);
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

/// The latest `limit` kept messages of `stream` (fewer if fewer are kept),
/// stamped, in offset order, and the stream's position.
pub async fn latest(
    recorder: &Recorder<'_>,
    stream: &Stream,
    limit: usize,
) -> Result<(Position, Vec<String>), StoreError> {
    let key = stream.key();
    let now = now_seconds();
    let top = read_top(recorder, &key, now).await?;
    let limit = (limit as u64).min(recorder.settings.size);
    if limit == 0 || top.offset == 0 {
        return Ok((top, Vec::new()));
    }
    let from = top.offset.saturating_sub(limit - 1).max(1);
    let kept = recorder
        .history
        .read(&key, &top.epoch, from, top.offset, now)
        .await?;
    let messages = stamped(&kept, &stream.name(), &top.epoch);
    Ok((top, messages))
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

/// Posts `frames` to the connection one after another, in order.
pub async fn send_in_order(
    services: &Services,
    connection_id: &str,
    frames: &[String],
) -> Result<(), GatewayError> {
    for frame in frames {
        services
            .gateway
            .post_to_connection(connection_id, frame.as_bytes())
            .await?;
    }
    Ok(())
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
