//! Appending a message to its stream (see [`crate::history`]) before it is
//! fanned out (so a client that recovers after the fan-out read its
//! connections can never miss it).

use tracing::warn;

use crate::clock::now_seconds;
use crate::ports::{History, Position, StoreError};
use crate::protocol::MAX_MESSAGE_BYTES;
use crate::services::Services;

use crate::history::streams::{Stream, stamp, stamp_overhead};
use crate::history::{HistorySettings, counter_lifetime, keeps};

/// A message appended to its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub position: Position,
    /// The frame with its `stream`, `offset` and `epoch`.
    pub stamped: String,
}

/// The history store and the settings that say what it keeps.
#[derive(Clone, Copy)]
pub struct Recorder<'a> {
    pub history: &'a dyn History,
    pub settings: &'a HistorySettings,
}

impl<'a> Recorder<'a> {
    /// The services' recorder; `None` when no history store is wired.
    pub fn of(services: &'a Services) -> Option<Self> {
        services.history.as_deref().map(|history| Recorder {
            history,
            settings: &services.settings.history,
        })
    }

    /// Whether `stream` keeps history.
    pub fn keeps(&self, stream: &Stream) -> bool {
        keeps(self.settings, stream)
    }

    /// Appends `frame` (a finished message frame) to `stream` if the stream
    /// keeps history, and returns it stamped. `key` (the message's `id` or its
    /// queue message id) makes a redelivery reuse the first append's offset.
    ///
    /// `None` if the stream keeps no history, or if the stamped frame would
    /// not fit API Gateway's 128 KB: such a message is delivered unstamped
    /// (its plain frame) and not kept.
    pub async fn append(
        &self,
        stream: &Stream,
        key: Option<&str>,
        frame: &str,
    ) -> Result<Option<Appended>, StoreError> {
        if !self.keeps(stream) {
            return Ok(None);
        }
        let name = stream.name();
        if frame.len() + stamp_overhead(&name) > MAX_MESSAGE_BYTES {
            warn!(
                size = frame.len(),
                "a message too large to carry its offset is delivered but not kept in history"
            );
            return Ok(None);
        }
        let now = now_seconds();
        let expires_at = now + self.settings.ttl.as_secs() as i64;
        let position = self
            .history
            .append(
                &stream.key(),
                key,
                frame,
                expires_at,
                now + counter_lifetime(self.settings),
            )
            .await?;
        Ok(stamp(frame, &name, &position).map(|stamped| Appended { position, stamped }))
    }
}
