//! [`NoMemberships`]: the membership store of the functions that read none.

use async_trait::async_trait;

use crate::ports::{Counter, MemberPage, Membership, MembershipStore, MembershipWrite, StoreError};

/// The membership store of the functions that read and write no memberships
/// (notify-user, notify-connection): a call would be a bug, and fails loudly
/// instead of touching a table the function has no permission for. Unlike an
/// in-memory stand-in, it brings no store code into the bootstrap.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMemberships;

fn refused(operation: &'static str) -> StoreError {
    tracing::error!(operation, "this function keeps no memberships");
    StoreError::Unavailable(format!("this function keeps no memberships ({operation})"))
}

#[async_trait]
impl MembershipStore for NoMemberships {
    async fn join_in_order(
        &self,
        _membership: &Membership,
        _seq: Option<u64>,
    ) -> Result<MembershipWrite<()>, StoreError> {
        Err(refused("join"))
    }
    async fn leave_in_order(
        &self,
        _group: &str,
        _connection_id: &str,
        _seq: Option<u64>,
        _expires_at: i64,
    ) -> Result<MembershipWrite<String>, StoreError> {
        Err(refused("leave"))
    }
    async fn is_member(&self, _group: &str, _connection_id: &str) -> Result<bool, StoreError> {
        Err(refused("is_member"))
    }
    async fn group_members(
        &self,
        _group: &str,
        _after: Option<&str>,
    ) -> Result<MemberPage, StoreError> {
        Err(refused("group_members"))
    }
    async fn connection_groups(&self, _connection_id: &str) -> Result<Vec<String>, StoreError> {
        Err(refused("connection_groups"))
    }
    async fn connection_items(&self, _connection_id: &str) -> Result<Vec<String>, StoreError> {
        Err(refused("connection_items"))
    }
    async fn delete_memberships(
        &self,
        _connection_id: &str,
        _groups: &[String],
    ) -> Result<usize, StoreError> {
        Err(refused("delete_memberships"))
    }
    async fn take_group_slot(
        &self,
        _connection_id: &str,
        _limit: u32,
        _expires_at: i64,
    ) -> Result<bool, StoreError> {
        Err(refused("take_group_slot"))
    }
    async fn release_group_slot(&self, _connection_id: &str) -> Result<(), StoreError> {
        Err(refused("release_group_slot"))
    }
    async fn forget_group_slots(&self, _connection_id: &str) -> Result<(), StoreError> {
        Err(refused("forget_group_slots"))
    }
    async fn add_user_group(
        &self,
        _user_id: &str,
        _group: &str,
        _expires_at: i64,
    ) -> Result<bool, StoreError> {
        Err(refused("add_user_group"))
    }
    async fn remove_user_group(&self, _user_id: &str, _group: &str) -> Result<bool, StoreError> {
        Err(refused("remove_user_group"))
    }
    async fn user_groups(&self, _user_id: &str, _now: i64) -> Result<Vec<String>, StoreError> {
        Err(refused("user_groups"))
    }
    async fn add_to_counter(
        &self,
        _group: &str,
        _counter: &Counter,
        _delta: i64,
        _expires_at: i64,
    ) -> Result<i64, StoreError> {
        Err(refused("add_to_counter"))
    }
    async fn counter(&self, _group: &str, _counter: &Counter) -> Result<i64, StoreError> {
        Err(refused("counter"))
    }
    async fn swap_counter(
        &self,
        _group: &str,
        _counter: &Counter,
        _from: i64,
        _to: i64,
        _expires_at: i64,
    ) -> Result<bool, StoreError> {
        Err(refused("swap_counter"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_is_refused_by_name() {
        let store = NoMemberships;
        assert_eq!(
            store.connection_items("c1").await.unwrap_err().to_string(),
            "connection store unavailable: this function keeps no memberships (connection_items)"
        );
        assert!(
            store
                .join(&Membership {
                    group: "g".into(),
                    connection_id: "c1".into(),
                    user_id: "u".into(),
                    expires_at: 0,
                })
                .await
                .is_err()
        );
    }
}
