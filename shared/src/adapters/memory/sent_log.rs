//! [`SentLog`] in memory: a map from key to expiry, pruned as it grows.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{SentLog, StoreError};
use crate::sync::lock;

/// [`SentLog`] in memory: a map from key to expiry, pruned as it grows.
#[derive(Debug, Default)]
pub struct MemorySentLog {
    sent: Mutex<SentMap>,
}

#[derive(Debug, Default)]
struct SentMap {
    expiry: HashMap<String, i64>,
    /// The size at which the next prune runs: doubles past what a prune keeps,
    /// so pruning costs O(1) per record however many are live.
    prune_at: usize,
}

impl MemorySentLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys currently remembered (expired ones included until the next prune).
    pub fn len(&self) -> usize {
        lock(&self.sent).expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Past this many keys, recording prunes the expired ones first.
const SENT_PRUNE_AT: usize = 100_000;

#[async_trait]
impl SentLog for MemorySentLog {
    async fn posted(&self, keys: &[String], now: i64) -> Result<HashSet<String>, StoreError> {
        let sent = lock(&self.sent);
        Ok(keys
            .iter()
            .filter(|k| {
                sent.expiry
                    .get(k.as_str())
                    .is_some_and(|until| *until > now)
            })
            .cloned()
            .collect())
    }

    async fn record_posted(&self, keys: &[String], expires_at: i64) -> Result<(), StoreError> {
        let mut sent = lock(&self.sent);
        if sent.expiry.len() >= sent.prune_at.max(SENT_PRUNE_AT) {
            let now = crate::clock::now_seconds();
            sent.expiry.retain(|_, until| *until > now);
            sent.prune_at = sent.expiry.len() * 2;
        }
        for key in keys {
            sent.expiry.insert(key.clone(), expires_at);
        }
        Ok(())
    }
}
