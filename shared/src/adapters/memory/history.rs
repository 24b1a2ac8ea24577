//! [`History`] in memory: per stream a counter, an epoch and the messages by offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::clock::now_seconds;
use crate::history::new_epoch;
use crate::ports::{History, Kept, Position, StoreError};
use crate::sync::lock;

struct StreamState {
    top: u64,
    epoch: String,
    expires_at: i64,
    /// offset → (frame, expires at).
    messages: BTreeMap<u64, (String, i64)>,
}

#[derive(Default)]
struct HistoryState {
    streams: HashMap<String, StreamState>,
    /// (stream, idempotency key) → (first append's position, expires at).
    keys: HashMap<(String, String), (Position, i64)>,
    /// Expired keys are dropped when `keys` reaches this size (amortised).
    prune_at: usize,
    /// Appends since expired messages and streams were last swept.
    appends: u64,
}

/// Appends between two sweeps of every stream.
const SWEEP_EVERY: u64 = 1024;

/// Streams in a map. A stream whose counter expired starts over with a new
/// epoch, as a DynamoDB counter item removed by its TTL does. Memory is
/// bounded: at most `keep` messages per stream, and expired messages and
/// streams are swept every [`SWEEP_EVERY`] appends.
pub struct MemoryHistory {
    state: Mutex<HistoryState>,
    keep: u64,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::keeping(u64::MAX)
    }
}

impl MemoryHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// A history that keeps at most `keep` messages per stream (the
    /// `HISTORY_SIZE` its readers go by; older ones could never be read).
    pub fn keeping(keep: u64) -> Self {
        MemoryHistory {
            state: Mutex::default(),
            keep: keep.max(1),
        }
    }

    /// Forgets `stream` (its counter and messages), as if its counter had
    /// expired: the next append starts a new epoch.
    pub fn forget(&self, stream: &str) {
        lock(&self.state).streams.remove(stream);
    }

    /// Messages kept for `stream` (expired or not).
    pub fn len(&self, stream: &str) -> usize {
        lock(&self.state)
            .streams
            .get(stream)
            .map_or(0, |s| s.messages.len())
    }
}

impl HistoryState {
    /// The live counter of `stream`, a new one if it has none or it expired.
    fn stream(&mut self, stream: &str, counter_expires_at: i64, now: i64) -> &mut StreamState {
        let fresh = || StreamState {
            top: 0,
            epoch: new_epoch(),
            expires_at: counter_expires_at,
            messages: BTreeMap::new(),
        };
        let state = self.streams.entry(stream.to_owned()).or_insert_with(fresh);
        if state.expires_at <= now {
            *state = fresh();
        }
        state
    }
}

#[async_trait]
impl History for MemoryHistory {
    async fn append(
        &self,
        stream: &str,
        key: Option<&str>,
        frame: &str,
        expires_at: i64,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        let now = now_seconds();
        let mut state = lock(&self.state);
        let key = key.map(|k| (stream.to_owned(), k.to_owned()));
        if let Some(key) = &key {
            match state.keys.get(key) {
                Some((position, until)) if *until > now => return Ok(position.clone()),
                _ => {}
            }
        }
        let s = state.stream(stream, counter_expires_at, now);
        s.top += 1;
        s.expires_at = s.expires_at.max(counter_expires_at);
        s.messages.insert(s.top, (frame.to_owned(), expires_at));
        // Bounded memory: drop what expired or fell out of the size from the front.
        let keep = self.keep;
        while let Some((&oldest, (_, until))) = s.messages.first_key_value() {
            if *until > now && s.top - oldest < keep {
                break;
            }
            s.messages.remove(&oldest);
        }
        let position = Position {
            offset: s.top,
            epoch: s.epoch.clone(),
        };
        state.appends += 1;
        if state.appends % SWEEP_EVERY == 0 {
            state.streams.retain(|_, s| {
                s.messages.retain(|_, (_, until)| *until > now);
                s.expires_at > now
            });
        }
        if let Some(key) = key {
            if state.keys.len() >= state.prune_at {
                state.keys.retain(|_, (_, until)| *until > now);
                state.prune_at = (state.keys.len() * 2).max(1024);
            }
            state.keys.insert(key, (position.clone(), expires_at));
        }
        Ok(position)
    }

    async fn position(
        &self,
        stream: &str,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        let mut state = lock(&self.state);
        let s = state.stream(stream, counter_expires_at, now_seconds());
        Ok(Position {
            offset: s.top,
            epoch: s.epoch.clone(),
        })
    }

    async fn read(
        &self,
        stream: &str,
        epoch: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<Vec<Kept>, StoreError> {
        let state = lock(&self.state);
        let Some(s) = state.streams.get(stream).filter(|s| s.epoch == epoch) else {
            return Ok(Vec::new());
        };
        if from > to {
            return Ok(Vec::new());
        }
        Ok(s.messages
            .range(from..=to)
            .filter(|(_, (_, until))| *until > now)
            .map(|(offset, (frame, _))| Kept {
                offset: *offset,
                frame: frame.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_is_bounded_by_the_size_kept() {
        let history = MemoryHistory::keeping(3);
        let far = i64::MAX;
        let mut epoch = String::new();
        for n in 1..=5u64 {
            let position = history
                .append("s", None, &n.to_string(), far, far)
                .await
                .unwrap();
            assert_eq!(position.offset, n);
            epoch = position.epoch;
        }
        assert_eq!(history.len("s"), 3);
        let kept = history.read("s", &epoch, 1, 5, 0).await.unwrap();
        assert_eq!(
            kept.iter().map(|k| k.offset).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }

    #[tokio::test]
    async fn an_expired_counter_starts_a_new_epoch() {
        let history = MemoryHistory::new();
        let first = history.append("s", None, "1", i64::MAX, 1).await.unwrap();
        // Its counter expired long ago: offsets start over, with a new epoch.
        let second = history
            .append("s", None, "2", i64::MAX, i64::MAX)
            .await
            .unwrap();
        assert_eq!(second.offset, 1);
        assert_ne!(second.epoch, first.epoch);
    }
}
