//! History and recovery: a **stream** (one user's messages, or one group's)
//! keeps its recent messages so a client that was away can get what it
//! missed.
//!
//! This module holds the rules: [`streams`] (stream names, epochs, the
//! `stream`/`offset`/`epoch` stamp on a message frame), and here
//! [`HistorySettings`], which streams keep history ([`keeps`]) and how long a
//! stream's counter lives. The logic over the services lives above:
//! [`crate::recorder`] (appending a message before it is fanned out) and
//! [`crate::recovery`] (reading a stream back for the `recover` and `history`
//! actions, and telling when it cannot be recovered).
//!
//! Every message appended to a stream gets an **offset** (a u64, strictly
//! increasing within the stream, 1 for the first) and carries the stream's
//! **epoch** (a random string, new whenever the stream's counter is new or
//! was lost). A client that holds the last (offset, epoch) it saw recovers
//! exactly what it missed, or learns (`recovered:false`) that it cannot.

use std::time::Duration;

use crate::groups::names::Grants;
use crate::rate::Rate;

pub mod streams;

pub use streams::{Stream, new_epoch, stamp};

/// Which streams keep history ([`crate::history`]) and how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// Whether every user's stream keeps history (`HISTORY_USERS`, default on).
    pub users: bool,
    /// Groups whose streams keep history (`HISTORY_GROUPS`, the group pattern
    /// rules; default none).
    pub groups: Grants,
    /// Messages kept per stream (`HISTORY_SIZE`, default 1000): a recovery
    /// from further back is `recovered:false`.
    pub size: u64,
    /// How long a message is kept (`HISTORY_TTL_SECONDS`, default 300).
    pub ttl: Duration,
    /// The most messages one `recover` or `history` request sends, over all
    /// its streams (`HISTORY_RECOVER_LIMIT`, default 200).
    pub recover_limit: usize,
    /// `recover` and `history` requests one user may make per window
    /// (`HISTORY_READ_LIMIT` per `HISTORY_READ_WINDOW_MS`, default 20 per 10 s).
    pub reads: Rate,
    /// Bytes of `recover` and `history` answers one user may receive per
    /// `HISTORY_READ_WINDOW_MS` (`HISTORY_READ_BYTES`, default 4 MiB, at least
    /// [`MIN_READ_BYTES`]); one answer is cut to fit it.
    pub read_bytes: u64,
}

/// The smallest `HISTORY_READ_BYTES`: room for the largest message that is
/// kept (128 KB) with its markers, twice.
pub const MIN_READ_BYTES: u64 = 256 * 1024;

/// What `recover` and `history` answers are counted in against
/// `HISTORY_READ_BYTES`: whole KiB, rounded up.
pub const READ_BYTES_UNIT: u64 = 1024;

impl HistorySettings {
    /// The user's bucket of answer bytes, in [`READ_BYTES_UNIT`]s, refilled
    /// over the reads' window.
    pub fn read_bytes_rate(&self) -> Rate {
        let units = (self.read_bytes / READ_BYTES_UNIT).clamp(1, u64::from(u32::MAX));
        Rate::new(units as u32, self.reads.window)
    }

    /// The most bytes one answer may hold: the whole bucket.
    pub fn answer_bytes(&self) -> usize {
        usize::try_from(self.read_bytes_rate().limit as u64 * READ_BYTES_UNIT).unwrap_or(usize::MAX)
    }
}

/// The default time a message is kept: long enough for a reconnect after a
/// network change or a laptop lid, short enough to cost little.
pub const DEFAULT_HISTORY_TTL: Duration = Duration::from_secs(300);

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            users: true,
            groups: Grants::default(),
            size: 1000,
            ttl: DEFAULT_HISTORY_TTL,
            recover_limit: 200,
            reads: Rate::new(20, Duration::from_secs(10)),
            read_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Whether `stream` keeps history under `settings`: user streams if
/// `HISTORY_USERS` is on, groups that `HISTORY_GROUPS` names.
pub fn keeps(settings: &HistorySettings, stream: &Stream) -> bool {
    match stream {
        Stream::User(_) => settings.users,
        Stream::Group(group) => settings.groups.allows(group),
    }
}

/// How long a stream's counter (and so its epoch) outlives its last append:
/// the messages' time to live again, and at least an hour.
pub fn counter_lifetime(settings: &HistorySettings) -> i64 {
    let ttl = settings.ttl.as_secs() as i64;
    ttl + ttl.max(3600)
}
