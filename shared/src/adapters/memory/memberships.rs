//! [`MembershipStore`] in memory: memberships in two ordered maps, user-level memberships and presence counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{following, page};
use crate::ports::{
    Counter, MEMBERSHIP_DELETE_BATCH, MemberPage, Membership, MembershipStore, MembershipWrite,
    StoreError,
};
use crate::sync::lock;

/// One item of the memberships table: a membership or a tombstone.
#[derive(Debug, Clone)]
struct Item {
    membership: Membership,
    /// The sequence of the client frame that last wrote it.
    seq: Option<u64>,
    /// A tombstone: the connection left; only the sequence matters.
    left: bool,
}

impl Item {
    /// Whether a write carrying `seq` may apply.
    fn accepts(&self, seq: Option<u64>) -> bool {
        match (seq, self.seq) {
            (Some(new), Some(stored)) => new > stored,
            _ => true,
        }
    }
}

#[derive(Default)]
struct MembershipState {
    /// (group, connection id) -> item: the memory twin of the table's key.
    by_group: BTreeMap<(String, String), Item>,
    /// (connection id, group): the memory twin of the `byConnection` index.
    by_connection: BTreeSet<(String, String)>,
    /// connection id -> group slots taken.
    slots: HashMap<String, u32>,
    /// Calls of `delete_memberships`' write step, as BatchWriteItem calls.
    delete_calls: usize,
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
        lock(&self.state)
            .by_group
            .values()
            .filter(|item| !item.left)
            .map(|item| item.membership.clone())
            .collect()
    }

    /// How many items (memberships and tombstones) the store holds.
    pub fn item_count(&self) -> usize {
        lock(&self.state).by_group.len()
    }

    /// The group slots the connection holds.
    pub fn group_slots(&self, connection_id: &str) -> u32 {
        lock(&self.state)
            .slots
            .get(connection_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many batch write calls `delete_memberships` made so far.
    pub fn delete_calls(&self) -> usize {
        lock(&self.state).delete_calls
    }
}

#[async_trait]
impl MembershipStore for MemoryMemberships {
    async fn join_in_order(
        &self,
        membership: &Membership,
        seq: Option<u64>,
    ) -> Result<MembershipWrite<()>, StoreError> {
        let mut state = lock(&self.state);
        let key = (membership.group.clone(), membership.connection_id.clone());
        let old = state.by_group.get(&key);
        if old.is_some_and(|old| !old.accepts(seq)) {
            return Ok(MembershipWrite::Stale);
        }
        let was_member = old.is_some_and(|old| !old.left);
        let seq = seq.or(old.and_then(|old| old.seq));
        state.by_group.insert(
            key,
            Item {
                membership: membership.clone(),
                seq,
                left: false,
            },
        );
        state
            .by_connection
            .insert((membership.connection_id.clone(), membership.group.clone()));
        Ok(if was_member {
            MembershipWrite::Unchanged
        } else {
            MembershipWrite::Changed(())
        })
    }

    async fn leave_in_order(
        &self,
        group: &str,
        connection_id: &str,
        seq: Option<u64>,
        expires_at: i64,
    ) -> Result<MembershipWrite<String>, StoreError> {
        let mut state = lock(&self.state);
        let key = (group.to_owned(), connection_id.to_owned());
        match state.by_group.get_mut(&key) {
            Some(item) if !item.accepts(seq) => Ok(MembershipWrite::Stale),
            Some(item) => {
                let was_member = !item.left;
                item.left = true;
                item.seq = seq.or(item.seq);
                Ok(if was_member {
                    MembershipWrite::Changed(item.membership.user_id.clone())
                } else {
                    MembershipWrite::Unchanged
                })
            }
            None => {
                if seq.is_some() {
                    let membership = Membership {
                        group: group.to_owned(),
                        connection_id: connection_id.to_owned(),
                        user_id: String::new(),
                        expires_at,
                    };
                    let tombstone = Item {
                        membership,
                        seq,
                        left: true,
                    };
                    state.by_group.insert(key, tombstone);
                    state
                        .by_connection
                        .insert((connection_id.to_owned(), group.to_owned()));
                }
                Ok(MembershipWrite::Unchanged)
            }
        }
    }

    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.state)
            .by_group
            .get(&(group.to_owned(), connection_id.to_owned()))
            .is_some_and(|item| !item.left))
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
            .filter(|(_, item)| !item.left)
            .take(self.page_size + 1)
            .map(|(_, item)| {
                let m = &item.membership;
                (m.connection_id.clone(), m.user_id.clone())
            })
            .collect();
        let (members, next) = page(members, self.page_size, |(id, _)| id.clone());
        Ok(MemberPage { members, next })
    }

    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .by_connection
            .range((connection_id.to_owned(), String::new())..)
            .take_while(|(c, _)| c == connection_id)
            .filter(|(c, g)| {
                state
                    .by_group
                    .get(&(g.clone(), c.clone()))
                    .is_some_and(|item| !item.left)
            })
            .map(|(_, g)| g.clone())
            .collect())
    }

    async fn connection_items(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.state)
            .by_connection
            .range((connection_id.to_owned(), String::new())..)
            .take_while(|(c, _)| c == connection_id)
            .map(|(_, g)| g.clone())
            .collect())
    }

    async fn delete_memberships(
        &self,
        connection_id: &str,
        groups: &[String],
    ) -> Result<usize, StoreError> {
        let mut state = lock(&self.state);
        let mut calls = 0;
        for chunk in groups.chunks(MEMBERSHIP_DELETE_BATCH) {
            for group in chunk {
                state
                    .by_group
                    .remove(&(group.clone(), connection_id.to_owned()));
                state
                    .by_connection
                    .remove(&(connection_id.to_owned(), group.clone()));
            }
            calls += 1;
        }
        state.delete_calls += calls;
        Ok(calls)
    }

    async fn take_group_slot(
        &self,
        connection_id: &str,
        limit: u32,
        _expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let taken = state.slots.entry(connection_id.to_owned()).or_insert(0);
        if *taken >= limit {
            return Ok(false);
        }
        *taken += 1;
        Ok(true)
    }

    async fn release_group_slot(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(taken) = state.slots.get_mut(connection_id) {
            // Like DynamoDB's ADD: the count may go below zero transiently.
            *taken = taken.saturating_sub(1);
        }
        Ok(())
    }

    async fn forget_group_slots(&self, connection_id: &str) -> Result<(), StoreError> {
        lock(&self.state).slots.remove(connection_id);
        Ok(())
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

    async fn swap_counter(
        &self,
        group: &str,
        counter: &Counter,
        from: i64,
        to: i64,
        _expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let value = state
            .counters
            .entry((group.to_owned(), counter.clone()))
            .or_insert(0);
        if *value != from {
            return Ok(false);
        }
        *value = to;
        Ok(true)
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
