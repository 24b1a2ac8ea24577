//! History and recovery: a **stream** (one user's messages, or one group's)
//! keeps its recent messages so a client that was away can get what it
//! missed.
//!
//! - [`streams`] (rules): stream names, epochs, the `stream`/`offset`/`epoch`
//!   stamp on a message frame.
//! - [`log`] (logic): which streams keep history, and appending a message
//!   before it is fanned out.
//! - [`recovery`] (logic): reading a stream back for the `recover` and
//!   `history` actions, and telling when it cannot be recovered.
//!
//! Every message appended to a stream gets an **offset** (a u64, strictly
//! increasing within the stream, 1 for the first) and carries the stream's
//! **epoch** (a random string, new whenever the stream's counter is new or
//! was lost). A client that holds the last (offset, epoch) it saw recovers
//! exactly what it missed, or learns (`recovered:false`) that it cannot.

use std::time::Duration;

use crate::groups::names::Grants;
use crate::rate::Rate;

pub mod log;
pub mod recovery;
pub mod streams;

pub use log::{Recorder, keeps};
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
        }
    }
}
