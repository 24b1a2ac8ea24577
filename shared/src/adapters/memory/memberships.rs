//! [`MembershipStore`] in memory: memberships in two ordered maps, user-level memberships and presence counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{following, page};
use crate::ports::{Counter, MemberPage, Membership, MembershipStore, StoreError};
use crate::sync::lock;

#[derive(Default)]
struct MembershipState {
    /// (group, connection id) -> membership: the memory twin of the table's key.
    by_group: BTreeMap<(String, String), Membership>,
    /// (connection id, group): the memory twin of the `byConnection` index.
    by_connection: BTreeSet<(String, String)>,
    /// (user id, group) -> expires at: user-level memberships.
    user_groups: BTreeMap<(String, String), i64>,
    /// (group, counter) -> value: presence counters.
    counters: HashMap<(String, Counter), i64>,
}

/// Group memberships in two ordered maps, with DynamoDB-like paging.
pub struct MemoryMemberships {
    state: Mutex<MembershipState>,
    page_size: usize,
}

impl Default for MemoryMemberships {
    fn default() -> Self {
        Self::with_page_size(1000)
    }
}

impl MemoryMemberships {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_page_size(page_size: usize) -> Self {
        MemoryMemberships {
            state: Mutex::default(),
            page_size: page_size.max(1),
        }
    }

    /// Every membership, ordered by group then connection id.
    pub fn all(&self) -> Vec<Membership> {
        lock(&self.state).by_group.values().cloned().collect()
    }
}

#[async_trait]
impl MembershipStore for MemoryMemberships {
    async fn join(&self, membership: &Membership) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        state
            .by_connection
            .insert((membership.connection_id.clone(), membership.group.clone()));
        let key = (membership.group.clone(), membership.connection_id.clone());
        Ok(state.by_group.insert(key, membership.clone()).is_none())
    }

    async fn leave(&self, group: &str, connection_id: &str) -> Result<Option<String>, StoreError> {
        let mut state = lock(&self.state);
        state
            .by_connection
            .remove(&(connection_id.to_owned(), group.to_owned()));
        Ok(state
            .by_group
            .remove(&(group.to_owned(), connection_id.to_owned()))
            .map(|m| m.user_id))
    }

    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.state)
            .by_group
            .contains_key(&(group.to_owned(), connection_id.to_owned())))
    }

    async fn group_members(
        &self,
        group: &str,
        after: Option<&str>,
    ) -> Result<MemberPage, StoreError> {
        let state = lock(&self.state);
        let members: Vec<(String, String)> = state
            .by_group
            .range(following(group.to_owned(), after))
            .take_while(|((g, _), _)| g == group)
            .take(self.page_size + 1)
            .map(|(_, m)| (m.connection_id.clone(), m.user_id.clone()))
            .collect();
        let (members, next) = page(members, self.page_size, |(id, _)| id.clone());
        Ok(MemberPage { members, next })
    }

    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.state)
            .by_connection
            .range((connection_id.to_owned(), String::new())..)
            .take_while(|(c, _)| c == connection_id)
            .map(|(_, g)| g.clone())
            .collect())
    }

    async fn add_user_group(
        &self,
        user_id: &str,
        group: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        Ok(lock(&self.state)
            .user_groups
            .insert((user_id.to_owned(), group.to_owned()), expires_at)
            .is_none())
    }

    async fn remove_user_group(&self, user_id: &str, group: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.state)
            .user_groups
            .remove(&(user_id.to_owned(), group.to_owned()))
            .is_some())
    }

    async fn user_groups(&self, user_id: &str, now: i64) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.state)
            .user_groups
            .range((user_id.to_owned(), String::new())..)
            .take_while(|((u, _), _)| u == user_id)
            .filter(|(_, expires_at)| **expires_at > now)
            .map(|((_, g), _)| g.clone())
            .collect())
    }

    async fn add_to_counter(
        &self,
        group: &str,
        counter: &Counter,
        delta: i64,
        _expires_at: i64,
    ) -> Result<i64, StoreError> {
        let mut state = lock(&self.state);
        let value = state
            .counters
            .entry((group.to_owned(), counter.clone()))
            .or_insert(0);
        *value += delta;
        Ok(*value)
    }

    async fn counter(&self, group: &str, counter: &Counter) -> Result<i64, StoreError> {
        Ok(lock(&self.state)
            .counters
            .get(&(group.to_owned(), counter.clone()))
            .copied()
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(group: &str, connection_id: &str, user: &str) -> Membership {
        Membership {
            group: group.into(),
            connection_id: connection_id.into(),
            user_id: user.into(),
            expires_at: 0,
        }
    }

    #[tokio::test]
    async fn memberships_are_idempotent_and_queryable_both_ways() {
        let store = MemoryMemberships::with_page_size(2);
        assert!(store.join(&membership("g1", "c1", "u1")).await.unwrap());
        assert!(
            !store.join(&membership("g1", "c1", "u1")).await.unwrap(),
            "joining twice"
        );
        for (g, c, u) in [
            ("g1", "c2", "u2"),
            ("g1", "c3", "u1"),
            ("g2", "c1", "u1"),
            ("g10", "c9", "u9"),
        ] {
            store.join(&membership(g, c, u)).await.unwrap();
        }
        let first = store.group_members("g1", None).await.unwrap();
        assert_eq!(
            first.members,
            [("c1".into(), "u1".into()), ("c2".into(), "u2".into())]
        );
        let second = store
            .group_members("g1", first.next.as_deref())
            .await
            .unwrap();
        assert_eq!(second.members, [("c3".to_string(), "u1".to_string())]);
        assert_eq!(second.next, None);
        assert_eq!(store.connection_groups("c1").await.unwrap(), ["g1", "g2"]);
        assert!(store.is_member("g2", "c1").await.unwrap());
        assert_eq!(
            store.leave("g2", "c1").await.unwrap().as_deref(),
            Some("u1")
        );
        assert_eq!(
            store.leave("g2", "c1").await.unwrap(),
            None,
            "leaving twice"
        );
        assert!(!store.is_member("g2", "c1").await.unwrap());
        assert_eq!(store.connection_groups("c1").await.unwrap(), ["g1"]);
    }
}
