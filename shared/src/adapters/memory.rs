//! In-memory adapters: for tests and for the local stack's embedded defaults.
//!
//! They behave as the AWS services do where handlers can tell the difference
//! (idempotent deletes, paging, partial batch failures, 410 for unknown
//! connections), and let tests script failures.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::sync::lock;

use crate::ports::{
    ConnectionPage, ConnectionRecord, ConnectionStore, Counter, Gateway, GatewayError, MAX_BATCH,
    MemberPage, Membership, MembershipStore, MessageQueue, QueueError, SendFailure, SentLog,
    StoreError, shard_of,
};

#[derive(Default)]
struct StoreState {
    records: HashMap<String, ConnectionRecord>,
    /// (user id, connection id), the memory twin of the `byUser` index.
    by_user: BTreeSet<(String, String)>,
    /// (shard, connection id), the memory twin of the `byShard` index.
    by_shard: BTreeSet<(u32, String)>,
    /// connection id -> (window start ms, events in the window).
    allowances: HashMap<String, (i64, u32)>,
    fail_next: VecDeque<StoreError>,
}

/// The first `page_size` items of `items` and, if more follow, the cursor
/// (as DynamoDB does, a full page carries a cursor even if nothing follows it).
fn page<T, F: Fn(&T) -> String>(
    mut items: Vec<T>,
    page_size: usize,
    key: F,
) -> (Vec<T>, Option<String>) {
    if items.len() > page_size {
        items.truncate(page_size);
        let next = items.last().map(key);
        (items, next)
    } else {
        (items, None)
    }
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
        state.allowances.remove(connection_id);
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
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        let start = match after {
            Some(id) => Excluded((user_id.to_owned(), id.to_owned())),
            None => Included((user_id.to_owned(), String::new())),
        };
        let mut connection_ids: Vec<String> = state
            .by_user
            .range((start, Unbounded))
            .take_while(|(user, _)| user == user_id)
            .take(self.page_size + 1)
            .map(|(_, id)| id.clone())
            .collect();
        // As DynamoDB does, a full page carries a cursor even if nothing follows it.
        let next = if connection_ids.len() > self.page_size {
            connection_ids.truncate(self.page_size);
            connection_ids.last().cloned()
        } else {
            None
        };
        Ok(ConnectionPage {
            connection_ids,
            next,
        })
    }

    async fn shard_connections(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        let start = match after {
            Some(id) => Excluded((shard, id.to_owned())),
            None => Included((shard, String::new())),
        };
        let ids: Vec<String> = state
            .by_shard
            .range((start, Unbounded))
            .take_while(|(s, _)| *s == shard)
            .take(self.page_size + 1)
            .map(|(_, id)| id.clone())
            .collect();
        let (connection_ids, next) = page(ids, self.page_size, Clone::clone);
        Ok(ConnectionPage {
            connection_ids,
            next,
        })
    }

    async fn take_publish_allowance(
        &self,
        connection_id: &str,
        now_ms: i64,
        window_ms: i64,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        Self::take_failure(&mut state)?;
        if !state.records.contains_key(connection_id) {
            return Ok(false);
        }
        let window = now_ms - now_ms.rem_euclid(window_ms.max(1));
        let entry = state
            .allowances
            .entry(connection_id.to_owned())
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= limit {
            return Ok(false);
        }
        entry.1 += 1;
        Ok(true)
    }
}

#[derive(Default)]
struct QueueState {
    sent: Vec<String>,
    calls: usize,
    /// Per send_batch call, which entry indexes fail (and whether as sender fault).
    scripted: VecDeque<Result<Vec<(usize, bool)>, QueueError>>,
}

/// A queue that keeps what it was sent, with scriptable partial failures.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `send_batch` call fails the entries at `indexes` (retryable unless `sender_fault`).
    pub fn fail_entries_next(&self, indexes: &[usize], sender_fault: bool) {
        lock(&self.state)
            .scripted
            .push_back(Ok(indexes.iter().map(|&i| (i, sender_fault)).collect()));
    }

    /// The next `send_batch` call fails as a whole.
    pub fn fail_call_next(&self, error: QueueError) {
        lock(&self.state).scripted.push_back(Err(error));
    }

    /// Bodies accepted so far, in order.
    pub fn sent(&self) -> Vec<String> {
        lock(&self.state).sent.clone()
    }

    /// Removes and returns the accepted bodies.
    pub fn drain(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.state).sent)
    }

    /// How many times `send_batch` was called.
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }
}

#[async_trait]
impl MessageQueue for MemoryQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        let mut state = lock(&self.state);
        state.calls += 1;
        let failing = match state.scripted.pop_front() {
            Some(Err(e)) => return Err(e),
            Some(Ok(failing)) => failing,
            None => Vec::new(),
        };
        let mut failures = Vec::new();
        for (index, body) in bodies.iter().enumerate() {
            match failing.iter().find(|(i, _)| *i == index) {
                Some(&(_, sender_fault)) => failures.push(SendFailure {
                    index,
                    code: if sender_fault {
                        "InvalidParameterValue".into()
                    } else {
                        "InternalError".into()
                    },
                    message: "scripted failure".into(),
                    sender_fault,
                }),
                None => state.sent.push(body.clone()),
            }
        }
        Ok(failures)
    }
}

#[derive(Default)]
struct GatewayState {
    open: BTreeSet<String>,
    delivered: BTreeMap<String, Vec<String>>,
    scripted: HashMap<String, VecDeque<GatewayError>>,
    posts: usize,
    /// Count posts without keeping their frames (benchmarks).
    discard: bool,
}

/// A gateway with a set of open connections: posts to others answer 410, as
/// API Gateway does. Tests can script errors per connection.
#[derive(Default)]
pub struct MemoryGateway {
    state: Mutex<GatewayState>,
}

impl MemoryGateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// A gateway that counts posts but keeps no frames, for benchmarks that
    /// post millions of times.
    pub fn discarding() -> Self {
        let gateway = Self::default();
        lock(&gateway.state).discard = true;
        gateway
    }

    pub fn open(&self, connection_id: &str) {
        lock(&self.state).open.insert(connection_id.to_owned());
    }

    /// The next post to `connection_id` fails with `error`, before it is delivered.
    pub fn fail_next(&self, connection_id: &str, error: GatewayError) {
        lock(&self.state)
            .scripted
            .entry(connection_id.to_owned())
            .or_default()
            .push_back(error);
    }

    /// Frames delivered to `connection_id`, in order.
    pub fn delivered(&self, connection_id: &str) -> Vec<String> {
        lock(&self.state)
            .delivered
            .get(connection_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many posts were attempted in all.
    pub fn posts(&self) -> usize {
        lock(&self.state).posts
    }

    pub fn is_open(&self, connection_id: &str) -> bool {
        lock(&self.state).open.contains(connection_id)
    }
}

#[async_trait]
impl Gateway for MemoryGateway {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> Result<(), GatewayError> {
        let mut state = lock(&self.state);
        state.posts += 1;
        if let Some(error) = state
            .scripted
            .get_mut(connection_id)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        if !state.open.contains(connection_id) {
            return Err(GatewayError::Gone);
        }
        if state.discard {
            return Ok(());
        }
        let text = String::from_utf8_lossy(data).into_owned();
        state
            .delivered
            .entry(connection_id.to_owned())
            .or_default()
            .push(text);
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError> {
        if lock(&self.state).open.remove(connection_id) {
            Ok(())
        } else {
            Err(GatewayError::Gone)
        }
    }
}

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
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let state = lock(&self.state);
        let start = match after {
            Some(id) => Excluded((group.to_owned(), id.to_owned())),
            None => Included((group.to_owned(), String::new())),
        };
        let mut members: Vec<(String, String)> = state
            .by_group
            .range((start, Unbounded))
            .take_while(|((g, _), _)| g == group)
            .take(self.page_size + 1)
            .map(|(_, m)| (m.connection_id.clone(), m.user_id.clone()))
            .collect();
        let next = if members.len() > self.page_size {
            members.truncate(self.page_size);
            members.last().map(|(id, _)| id.clone())
        } else {
            None
        };
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
            publish: vec![],
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

    #[tokio::test]
    async fn gateway_answers_gone_for_unknown_connections() {
        let gateway = MemoryGateway::new();
        gateway.open("c1");
        gateway.post_to_connection("c1", b"hi").await.unwrap();
        assert_eq!(
            gateway.post_to_connection("c2", b"hi").await,
            Err(GatewayError::Gone)
        );
        assert_eq!(gateway.delivered("c1"), ["hi"]);
        gateway.delete_connection("c1").await.unwrap();
        assert_eq!(
            gateway.delete_connection("c1").await,
            Err(GatewayError::Gone)
        );
    }

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

    #[tokio::test]
    async fn queue_refuses_oversized_batches() {
        let queue = MemoryQueue::new();
        let bodies = vec![String::new(); MAX_BATCH + 1];
        assert_eq!(
            queue.send_batch(&bodies).await,
            Err(QueueError::BatchTooLarge(11))
        );
        assert!(queue.sent().is_empty());
    }
}

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
    async fn posted(
        &self,
        keys: &[String],
        now: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
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
