//! [`ConnectionStore`] in memory: records in a map, the user and shard indexes in ordered sets, publish allowances.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{following, page};
use crate::ports::{
    Allowance, Booking, ConnectionPage, ConnectionRecord, ConnectionStore, Rate, StoreError,
    shard_of,
};
use crate::rate::{Reserved, micros, reserve, take};
use crate::sync::lock;

#[derive(Default)]
struct StoreState {
    records: HashMap<String, ConnectionRecord>,
    /// (user id, connection id), the memory twin of the `byUser` index.
    by_user: BTreeSet<(String, String)>,
    /// (shard, connection id), the memory twin of the `byShard` index.
    by_shard: BTreeSet<(u32, String)>,
    /// Rate-limit buckets: their theoretical arrival times (see [`crate::rate`]).
    allowances: HashMap<Allowance, i64>,
    fail_next: VecDeque<StoreError>,
}

/// A connection store in a map, with a user index and DynamoDB-like paging.
pub struct MemoryStore {
    state: Mutex<StoreState>,
    page_size: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_page_size(1000)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose user queries return at most `page_size` ids a page.
    pub fn with_page_size(page_size: usize) -> Self {
        MemoryStore {
            state: Mutex::default(),
            page_size: page_size.max(1),
        }
    }

    /// Makes the next store call fail with `error` (once per call to this method).
    pub fn fail_next(&self, error: StoreError) {
        lock(&self.state).fail_next.push_back(error);
    }

    /// Every record, ordered by connection id.
    pub fn records(&self) -> Vec<ConnectionRecord> {
        let mut records: Vec<_> = lock(&self.state).records.values().cloned().collect();
        records.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        records
    }

    pub fn len(&self) -> usize {
        lock(&self.state).records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_failure(state: &mut StoreState) -> Result<(), StoreError> {
        state.fail_next.pop_front().map_or(Ok(()), Err)
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        if let Some(old) = state.records.remove(&record.connection_id) {
            state.by_user.remove(&(old.user_id, old.connection_id));
        }
        state
            .by_user
            .insert((record.user_id.clone(), record.connection_id.clone()));
        state.by_shard.insert((
            shard_of(&record.connection_id),
            record.connection_id.clone(),
        ));
        state
            .records
            .insert(record.connection_id.clone(), record.clone());
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        if let Some(old) = state.records.remove(connection_id) {
            state.by_user.remove(&(old.user_id, old.connection_id));
        }
        state
            .by_shard
            .remove(&(shard_of(connection_id), connection_id.to_owned()));
        state
            .allowances
            .remove(&Allowance::ConnectionActions(connection_id.to_owned()));
        Ok(())
    }

    async fn get_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        Ok(state.records.get(connection_id).cloned())
    }

    async fn user_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        let user_id = user_id.to_owned();
        Ok(ids_page(&state.by_user, &user_id, after, self.page_size))
    }

    async fn user_envelope_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        // The memory twin of the sparse `byEnvelopeUser` index.
        let index: BTreeSet<(String, String)> = state
            .by_user
            .range(following(user_id.to_owned(), after))
            .take_while(|(u, _)| u == user_id)
            .filter(|(_, id)| state.records.get(id).is_some_and(|r| r.envelope))
            .cloned()
            .collect();
        Ok(ids_page(&index, &user_id.to_owned(), None, self.page_size))
    }

    async fn shard_connections(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        Ok(ids_page(&state.by_shard, &shard, after, self.page_size))
    }

    async fn take_allowance(
        &self,
        allowance: &Allowance,
        now_ms: i64,
        rate: Rate,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        if let Allowance::ConnectionActions(id) = allowance
            && !state.records.contains_key(id)
        {
            return Ok(false);
        }
        let tat = state.allowances.get(allowance).copied();
        match take(tat, micros(now_ms), rate) {
            Some(next) => {
                state.allowances.insert(allowance.clone(), next);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn reserve_allowance(
        &self,
        allowance: &Allowance,
        tokens: u32,
        now_ms: i64,
        rate: Rate,
        horizon: Duration,
    ) -> Result<Booking, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        let tat = state.allowances.get(allowance).copied();
        let horizon_us = i64::try_from(horizon.as_micros()).unwrap_or(i64::MAX);
        let reserved = reserve(tat, micros(now_ms), rate, tokens, horizon_us);
        if let Reserved::After { tat, .. } = reserved {
            state.allowances.insert(allowance.clone(), tat);
        }
        Ok(Booking::from_reserved(reserved))
    }
}

/// One page of the ids under `partition` in an ordered index keyed (partition, id).
fn ids_page<P: Ord + Clone>(
    index: &BTreeSet<(P, String)>,
    partition: &P,
    after: Option<&str>,
    page_size: usize,
) -> ConnectionPage {
    let ids: Vec<String> = index
        .range(following(partition.clone(), after))
        .take_while(|(p, _)| p == partition)
        .take(page_size + 1)
        .map(|(_, id)| id.clone())
        .collect();
    let (connection_ids, next) = page(ids, page_size, Clone::clone);
    ConnectionPage {
        connection_ids,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, user: &str) -> ConnectionRecord {
        ConnectionRecord {
            connection_id: id.into(),
            user_id: user.into(),
            connected_at_ms: 0,
            expires_at: 0,
            source_ip: None,
            user_agent: None,
            groups: vec![],
            subscribe: vec![],
            events: vec![],
            publish: vec![],
            envelope: false,
        }
    }

    #[tokio::test]
    async fn user_pages_cover_every_connection_once_and_no_other_user() {
        let store = MemoryStore::with_page_size(2);
        for (id, user) in [
            ("a", "u1"),
            ("b", "u2"),
            ("c", "u1"),
            ("d", "u1"),
            ("e", "u10"),
        ] {
            store.put_connection(&record(id, user)).await.unwrap();
        }
        let first = store.user_connections("u1", None).await.unwrap();
        assert_eq!(first.connection_ids, ["a", "c"]);
        assert_eq!(first.next.as_deref(), Some("c"));
        let second = store.user_connections("u1", Some("c")).await.unwrap();
        assert_eq!(second.connection_ids, ["d"]);
        assert_eq!(second.next, None);
        assert!(
            store
                .user_connections("nobody", None)
                .await
                .unwrap()
                .connection_ids
                .is_empty()
        );
    }

    #[tokio::test]
    async fn replacing_and_deleting_keep_the_index_true() {
        let store = MemoryStore::new();
        store.put_connection(&record("a", "u1")).await.unwrap();
        store.put_connection(&record("a", "u2")).await.unwrap();
        assert!(
            store
                .user_connections("u1", None)
                .await
                .unwrap()
                .connection_ids
                .is_empty()
        );
        store.delete_connection("a").await.unwrap();
        store.delete_connection("a").await.unwrap();
        assert!(store.is_empty());
        assert!(
            store
                .user_connections("u2", None)
                .await
                .unwrap()
                .connection_ids
                .is_empty()
        );
    }
}
