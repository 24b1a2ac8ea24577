//! DynamoDB's latency around the stores (`--dynamodb-latency`, `--aws-latency`):
//! [`Delayed`] wraps a store port and waits one draw of a [`Latency`] before
//! each call, as a request to DynamoDB takes, whether the store behind it is
//! in memory or DynamoDB at moto. One draw per port call: a call that is one
//! batch request on DynamoDB (`BatchGetItem`, `BatchWriteItem`) waits once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard::ports::{
    Allowance, Booking, ConnectionPage, ConnectionRecord, ConnectionStore, Counter, History, Kept,
    MemberPage, Membership, MembershipStore, MembershipWrite, Position, Rate, SentLog, StoreError,
};

use crate::emulation::Latency;

/// A store port whose every call first waits a draw of `latency`.
pub struct Delayed<T: ?Sized> {
    inner: Arc<T>,
    latency: Latency,
}

impl<T: ?Sized> Delayed<T> {
    /// `inner` as is when `latency` adds nothing, else wrapped.
    pub fn wrap(inner: Arc<T>, latency: Latency) -> Arc<T>
    where
        Delayed<T>: Into<Arc<T>>,
    {
        if latency.is_none() {
            inner
        } else {
            Delayed { inner, latency }.into()
        }
    }
}

impl From<Delayed<dyn ConnectionStore>> for Arc<dyn ConnectionStore> {
    fn from(delayed: Delayed<dyn ConnectionStore>) -> Self {
        Arc::new(delayed)
    }
}

impl From<Delayed<dyn MembershipStore>> for Arc<dyn MembershipStore> {
    fn from(delayed: Delayed<dyn MembershipStore>) -> Self {
        Arc::new(delayed)
    }
}

impl From<Delayed<dyn History>> for Arc<dyn History> {
    fn from(delayed: Delayed<dyn History>) -> Self {
        Arc::new(delayed)
    }
}

impl From<Delayed<dyn SentLog>> for Arc<dyn SentLog> {
    fn from(delayed: Delayed<dyn SentLog>) -> Self {
        Arc::new(delayed)
    }
}

#[async_trait]
impl ConnectionStore for Delayed<dyn ConnectionStore> {
    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.latency.wait().await;
        self.inner.put_connection(record).await
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.latency.wait().await;
        self.inner.delete_connection(connection_id).await
    }

    async fn get_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.latency.wait().await;
        self.inner.get_connection(connection_id).await
    }

    async fn user_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        self.latency.wait().await;
        self.inner.user_connections(user_id, after).await
    }

    async fn shard_connections(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        self.latency.wait().await;
        self.inner.shard_connections(shard, after).await
    }

    async fn user_envelope_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        self.latency.wait().await;
        self.inner.user_envelope_connections(user_id, after).await
    }

    async fn take_allowance(
        &self,
        allowance: &Allowance,
        now_ms: i64,
        rate: Rate,
    ) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner.take_allowance(allowance, now_ms, rate).await
    }

    async fn reserve_allowance(
        &self,
        allowance: &Allowance,
        tokens: u32,
        now_ms: i64,
        rate: Rate,
        horizon: Duration,
    ) -> Result<Booking, StoreError> {
        self.latency.wait().await;
        self.inner
            .reserve_allowance(allowance, tokens, now_ms, rate, horizon)
            .await
    }
}

#[async_trait]
impl MembershipStore for Delayed<dyn MembershipStore> {
    async fn join(&self, membership: &Membership) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner.join(membership).await
    }

    async fn leave(&self, group: &str, connection_id: &str) -> Result<Option<String>, StoreError> {
        self.latency.wait().await;
        self.inner.leave(group, connection_id).await
    }

    async fn join_in_order(
        &self,
        membership: &Membership,
        seq: Option<u64>,
    ) -> Result<MembershipWrite<()>, StoreError> {
        self.latency.wait().await;
        self.inner.join_in_order(membership, seq).await
    }

    async fn leave_in_order(
        &self,
        group: &str,
        connection_id: &str,
        seq: Option<u64>,
        expires_at: i64,
    ) -> Result<MembershipWrite<String>, StoreError> {
        self.latency.wait().await;
        self.inner
            .leave_in_order(group, connection_id, seq, expires_at)
            .await
    }

    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner.is_member(group, connection_id).await
    }

    async fn group_members(
        &self,
        group: &str,
        after: Option<&str>,
    ) -> Result<MemberPage, StoreError> {
        self.latency.wait().await;
        self.inner.group_members(group, after).await
    }

    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        self.latency.wait().await;
        self.inner.connection_groups(connection_id).await
    }

    async fn connection_items(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        self.latency.wait().await;
        self.inner.connection_items(connection_id).await
    }

    async fn delete_memberships(
        &self,
        connection_id: &str,
        groups: &[String],
    ) -> Result<usize, StoreError> {
        self.latency.wait().await;
        self.inner.delete_memberships(connection_id, groups).await
    }

    async fn take_group_slot(
        &self,
        connection_id: &str,
        limit: u32,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner
            .take_group_slot(connection_id, limit, expires_at)
            .await
    }

    async fn release_group_slot(&self, connection_id: &str) -> Result<(), StoreError> {
        self.latency.wait().await;
        self.inner.release_group_slot(connection_id).await
    }

    async fn forget_group_slots(&self, connection_id: &str) -> Result<(), StoreError> {
        self.latency.wait().await;
        self.inner.forget_group_slots(connection_id).await
    }

    async fn add_user_group(
        &self,
        user_id: &str,
        group: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner.add_user_group(user_id, group, expires_at).await
    }

    async fn remove_user_group(&self, user_id: &str, group: &str) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner.remove_user_group(user_id, group).await
    }

    async fn user_groups(&self, user_id: &str, now: i64) -> Result<Vec<String>, StoreError> {
        self.latency.wait().await;
        self.inner.user_groups(user_id, now).await
    }

    async fn add_to_counter(
        &self,
        group: &str,
        counter: &Counter,
        delta: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        self.latency.wait().await;
        self.inner
            .add_to_counter(group, counter, delta, expires_at)
            .await
    }

    async fn counter(&self, group: &str, counter: &Counter) -> Result<i64, StoreError> {
        self.latency.wait().await;
        self.inner.counter(group, counter).await
    }
    async fn swap_counter(
        &self,
        group: &str,
        counter: &Counter,
        from: i64,
        to: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.latency.wait().await;
        self.inner
            .swap_counter(group, counter, from, to, expires_at)
            .await
    }
}

#[async_trait]
impl History for Delayed<dyn History> {
    async fn append(
        &self,
        stream: &str,
        key: Option<&str>,
        frame: &str,
        expires_at: i64,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        self.latency.wait().await;
        self.inner
            .append(stream, key, frame, expires_at, counter_expires_at)
            .await
    }

    async fn position(
        &self,
        stream: &str,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        self.latency.wait().await;
        self.inner.position(stream, counter_expires_at).await
    }

    async fn read(
        &self,
        stream: &str,
        epoch: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<Vec<Kept>, StoreError> {
        self.latency.wait().await;
        self.inner.read(stream, epoch, from, to, now).await
    }
}

#[async_trait]
impl SentLog for Delayed<dyn SentLog> {
    async fn posted(&self, keys: &[String], now: i64) -> Result<HashSet<String>, StoreError> {
        self.latency.wait().await;
        self.inner.posted(keys, now).await
    }

    async fn record_posted(&self, keys: &[String], expires_at: i64) -> Result<(), StoreError> {
        self.latency.wait().await;
        self.inner.record_posted(keys, expires_at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::adapters::memory::MemoryStore;

    #[tokio::test]
    async fn every_call_waits_its_latency_and_none_is_not_wrapped() {
        let memory: Arc<dyn ConnectionStore> = Arc::new(MemoryStore::new());
        let fixed = Latency::Fixed(Duration::from_millis(8));
        let store = Delayed::wrap(memory.clone(), fixed);
        let record = ConnectionRecord {
            connection_id: "c1".into(),
            user_id: "u1".into(),
            ..ConnectionRecord::default()
        };
        let start = std::time::Instant::now();
        store.put_connection(&record).await.unwrap();
        let got = store.get_connection("c1").await.unwrap();
        assert_eq!(got.map(|r| r.user_id), Some("u1".to_owned()));
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(16) && elapsed < Duration::from_secs(2),
            "two calls, 8 ms each: {elapsed:?}"
        );

        let plain = Delayed::wrap(memory.clone(), Latency::None);
        assert!(Arc::ptr_eq(&plain, &memory), "no latency: the store itself");
    }
}
