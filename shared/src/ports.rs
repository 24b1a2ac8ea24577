//! The small traits handlers depend on. Adapters in [`crate::adapters`]
//! implement them for DynamoDB, SQS, the Management API and memory.

use std::time::Duration;

use async_trait::async_trait;

pub use crate::rate::Rate;

/// What Switchboard keeps about one open WebSocket connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub connection_id: String,
    pub user_id: String,
    /// When API Gateway accepted the connection, milliseconds since the Unix epoch.
    pub connected_at_ms: i64,
    /// When the store may drop the record (DynamoDB TTL), seconds since the Unix epoch.
    pub expires_at: i64,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Groups from the token's `groups` claim.
    pub groups: Vec<String>,
    /// The token's `subscribe` patterns: groups the client may join or leave.
    pub subscribe: Vec<String>,
    /// The token's `publish` patterns: groups the client may send client events to.
    pub publish: Vec<String>,
    /// The client asked at `$connect` (`?envelope=1`) for its user messages as
    /// enveloped `message` frames with `stream`, `offset` and `epoch`.
    pub envelope: bool,
    /// Event-name patterns the client may send to the application (`event`).
    pub events: Vec<String>,
}

/// Every page of a paged read (the ports answer pages: [`ConnectionPage`],
/// [`MemberPage`]), as a stream of each page's items: `read(after)` reads the
/// page after cursor `after` (`None`: the first page) and returns its items
/// and the next page's cursor (`None`: it was the last).
pub fn pages<T, E, F, Fut>(read: F) -> impl futures::Stream<Item = Result<T, E>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(T, Option<String>), E>>,
{
    // State: the reader and Some(cursor) while pages are left.
    futures::stream::try_unfold(
        (read, Some(None::<String>)),
        |(mut read, cursor)| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let (items, next) = read(after).await?;
            Ok(Some((items, (read, next.map(Some)))))
        },
    )
}

/// One page of a user's connection ids, and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionPage {
    pub connection_ids: Vec<String>,
    /// Pass back as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the request; retrying may help.
    #[error("connection store unavailable: {0}")]
    Unavailable(String),
    /// The store holds an item this code cannot read.
    #[error("corrupt connection record {connection_id}: {reason}")]
    Corrupt {
        connection_id: String,
        reason: String,
    },
}

/// Where connection records live.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError>;
    /// Deletes a record. Deleting an unknown id succeeds.
    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError>;
    async fn get_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    /// One page of `user_id`'s connections, in connection-id order, starting after `after`.
    async fn user_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError>;
    /// One page of the connections in broadcast shard `shard` (`0..SHARDS`), in
    /// connection-id order, starting after `after`. Every connection is in
    /// exactly one shard ([`shard_of`]), so reading all shards reads every
    /// connection once, without a Scan.
    async fn shard_connections(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError>;
    /// One page of `user_id`'s connections that asked for enveloped user
    /// messages ([`ConnectionRecord::envelope`]), in connection-id order.
    async fn user_envelope_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError>;
    /// Takes one token from a rate-limit bucket at `now_ms` ([`crate::rate::take`],
    /// atomically): true if allowed, false if over `rate`. A
    /// [`Allowance::ConnectionActions`] bucket lives on the connection's
    /// record: an unknown connection gets nothing and no item is created.
    async fn take_allowance(
        &self,
        allowance: &Allowance,
        now_ms: i64,
        rate: Rate,
    ) -> Result<bool, StoreError>;
    /// Books `tokens` of a shared bucket at `now_ms` ([`crate::rate::reserve`],
    /// atomically): to be used after the returned wait, or refused when the
    /// bucket is booked more than `horizon` ahead. For buckets that are not
    /// on a connection record ([`Allowance::Posts`]).
    async fn reserve_allowance(
        &self,
        allowance: &Allowance,
        tokens: u32,
        now_ms: i64,
        rate: Rate,
        horizon: Duration,
    ) -> Result<Booking, StoreError>;
}

/// What [`ConnectionStore::reserve_allowance`] booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    /// Booked: use the tokens after this wait (zero: now).
    After(Duration),
    /// Nothing booked: the bucket is booked past the horizon; try again
    /// after this long at the earliest.
    Full { retry_after: Duration },
}

impl Booking {
    /// From [`crate::rate::reserve`]'s answer.
    pub fn from_reserved(reserved: crate::rate::Reserved) -> Self {
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        match reserved {
            crate::rate::Reserved::After { wait_us, .. } => Booking::After(micros(wait_us)),
            crate::rate::Reserved::Full { retry_us } => Booking::Full {
                retry_after: micros(retry_us),
            },
        }
    }
}

/// A rate-limit bucket (see [`crate::limits`] for what each one bounds).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Allowance {
    /// Every client action of one connection.
    ConnectionActions(String),
    /// Every client action and `$connect` of one user, over all their connections.
    UserActions(String),
    /// `publish` of one user, over all their connections.
    UserPublishes(String),
    /// Presence-changing `subscribe`/`unsubscribe` of one user in one group.
    PresenceChanges { group: String, user_id: String },
    /// `recover` and `history` requests of one user, over all their connections.
    HistoryReads(String),
    /// Bytes of `recover` and `history` answers to one user, in KiB.
    HistoryBytes(String),
    /// Management API posts of the whole stack, every function and instance
    /// (see [`crate::pacing`]).
    Posts,
    /// The share of those posts one booker (`user:{id}` or `group:{name}`)
    /// may book (see [`crate::pacing`]).
    BookerPosts(String),
}

impl Allowance {
    /// The store key of a bucket that is not on a connection record:
    /// `limit#actions#{user}`, `limit#publish#{user}`,
    /// `limit#presence#{group}#{user}` (`#` is in neither group names nor
    /// API Gateway connection ids, so these never meet a record). `None` for
    /// [`Allowance::ConnectionActions`], which lives on the record.
    pub fn key(&self) -> Option<String> {
        match self {
            Allowance::ConnectionActions(_) => None,
            Allowance::UserActions(user) => Some(format!("limit#actions#{user}")),
            Allowance::UserPublishes(user) => Some(format!("limit#publish#{user}")),
            Allowance::PresenceChanges { group, user_id } => {
                Some(format!("limit#presence#{group}#{user_id}"))
            }
            Allowance::HistoryReads(user) => Some(format!("limit#history#{user}")),
            Allowance::HistoryBytes(user) => Some(format!("limit#history-bytes#{user}")),
            Allowance::Posts => Some("limit#posts".to_owned()),
            Allowance::BookerPosts(booker) => Some(format!("limit#posts#{booker}")),
        }
    }
}

/// Broadcast shards: the all-connections index is spread over this many
/// partition keys so no single partition takes every connect and disconnect.
pub const SHARDS: u32 = 16;

/// The broadcast shard of a connection: FNV-1a of its id, mod [`SHARDS`]. Stable
/// across processes and releases, since it is written into the record.
pub fn shard_of(connection_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in connection_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

/// The most messages one [`MessageQueue::send_batch`] call takes (SQS's limit).
pub const MAX_BATCH: usize = 10;

/// One entry of a batch that the queue did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Index into the slice passed to `send_batch`.
    pub index: usize,
    pub code: String,
    pub message: String,
    /// The queue blames the message itself: sending it again will fail again.
    pub sender_fault: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("a batch holds at most {MAX_BATCH} messages, got {0}")]
    BatchTooLarge(usize),
    #[error("this queue cannot {0}")]
    Unsupported(&'static str),
}

/// The longest delay SQS takes (`DelaySeconds`, 15 minutes).
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// A queue that accepts message bodies, and takes records back for a later try.
#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// Sends up to [`MAX_BATCH`] bodies at once; returns the entries that failed.
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, QueueError>;

    /// Sends up to [`MAX_BATCH`] bodies that become visible after `delay`
    /// (whole seconds, at most [`MAX_DELAY`]: SQS `DelaySeconds`), each with the
    /// string message `attributes`. Queues that cannot answer `Unsupported`.
    async fn send_later(
        &self,
        bodies: &[String],
        delay: Duration,
        attributes: &[(&str, String)],
    ) -> Result<Vec<SendFailure>, QueueError> {
        let _ = (bodies, delay, attributes);
        Err(QueueError::Unsupported("send with a delay"))
    }

    /// Makes a received message visible again `delay` from now (SQS
    /// `ChangeMessageVisibility` on its receipt handle). Its receive count is
    /// kept, so a message that keeps failing still reaches the DLQ after
    /// maxReceiveCount. Queues that cannot answer `Unsupported`.
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        let _ = (receipt_handle, delay);
        Err(QueueError::Unsupported("change a message's visibility"))
    }
}

/// How a post or delete through the Management API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// 410: the connection no longer exists.
    #[error("the connection is gone (410)")]
    Gone,
    /// 429 LimitExceededException.
    #[error("throttled by API Gateway (429): {0}")]
    Throttled(String),
    /// 403: the caller may not manage this connection (a permission or endpoint mistake).
    #[error("forbidden (403): {0}")]
    Forbidden(String),
    /// 413: the payload exceeds API Gateway's message limit.
    #[error("payload too large (413): {0}")]
    PayloadTooLarge(String),
    /// Any other 4xx, e.g. 400 for a malformed connection id.
    #[error("rejected by API Gateway ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// 5xx.
    #[error("API Gateway server error ({status}): {message}")]
    Server { status: u16, message: String },
    /// No answer within the configured timeout.
    #[error("timed out waiting for API Gateway")]
    Timeout,
    /// The request could not be sent (connection refused, DNS, TLS).
    #[error("could not reach API Gateway: {0}")]
    Unreachable(String),
}

impl GatewayError {
    /// Whether sending the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GatewayError::Throttled(_)
                | GatewayError::Server { .. }
                | GatewayError::Timeout
                | GatewayError::Unreachable(_)
        )
    }
}

/// The API Gateway Management API: the way back to a connected client.
#[async_trait]
pub trait Gateway: Send + Sync {
    /// Sends `data` to the connection as one text frame.
    async fn post_to_connection(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> Result<(), GatewayError>;
    /// Closes the connection.
    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError>;
}

/// Which (message id, connection) pairs were posted: a redelivered message
/// that carries an `id` is not posted twice to the same connection.
#[async_trait]
pub trait SentLog: Send + Sync {
    /// The keys of `keys` recorded as posted and not expired at `now`
    /// (seconds since the Unix epoch).
    async fn posted(
        &self,
        keys: &[String],
        now: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Records `keys` as posted until `expires_at` (seconds since the Unix epoch).
    async fn record_posted(&self, keys: &[String], expires_at: i64) -> Result<(), StoreError>;
}

/// One connection's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub connection_id: String,
    pub user_id: String,
    /// When the store may drop it (DynamoDB TTL), seconds since the Unix epoch.
    pub expires_at: i64,
}

/// One page of a group's members, and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberPage {
    /// (connection id, user id), in connection-id order.
    pub members: Vec<(String, String)>,
    /// Pass back as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}

/// What an ordered membership write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipWrite<T> {
    /// The membership changed (joined where it was not a member, or left
    /// where it was); `T` is what the change reports (the user id on leave).
    Changed(T),
    /// Applied, but the membership was already in that state.
    Unchanged,
    /// Not applied: the stored sequence is as new or newer (a later frame won).
    Stale,
}

impl<T> MembershipWrite<T> {
    /// `changed`, `unchanged` or `stale`, for logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            MembershipWrite::Changed(_) => "changed",
            MembershipWrite::Unchanged => "unchanged",
            MembershipWrite::Stale => "stale",
        }
    }
}

/// The most items one [`MembershipStore::delete_memberships`] write call
/// deletes (DynamoDB's BatchWriteItem limit).
pub const MEMBERSHIP_DELETE_BATCH: usize = 25;

/// Where group memberships live, queryable by group and by connection.
///
/// A membership item carries the sequence of the client frame that last
/// wrote it (if the frame had one). Leaving keeps the item as a tombstone
/// with that sequence, so an older frame that arrives late cannot undo a
/// newer one; tombstones are invisible to every read but
/// [`MembershipStore::connection_items`] and expire with the connection.
#[async_trait]
pub trait MembershipStore: Send + Sync {
    /// Adds the membership; true if it is new. Joining twice is harmless.
    async fn join(&self, membership: &Membership) -> Result<bool, StoreError> {
        Ok(matches!(
            self.join_in_order(membership, None).await?,
            MembershipWrite::Changed(())
        ))
    }
    /// Removes the membership; the member's user id if there was one. Leaving twice is harmless.
    async fn leave(&self, group: &str, connection_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            match self.leave_in_order(group, connection_id, None, 0).await? {
                MembershipWrite::Changed(user_id) => Some(user_id),
                _ => None,
            },
        )
    }
    /// Adds the membership if `seq` is newer than the item's stored sequence
    /// (always without `seq`, which leaves the stored sequence as it is).
    async fn join_in_order(
        &self,
        membership: &Membership,
        seq: Option<u64>,
    ) -> Result<MembershipWrite<()>, StoreError>;
    /// Leaves the group if `seq` is newer than the item's stored sequence
    /// (always without `seq`). With `seq`, a tombstone expiring at
    /// `expires_at` records it even where there was no membership.
    async fn leave_in_order(
        &self,
        group: &str,
        connection_id: &str,
        seq: Option<u64>,
        expires_at: i64,
    ) -> Result<MembershipWrite<String>, StoreError>;
    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError>;
    /// One page of the group's members, starting after connection id `after`.
    async fn group_members(
        &self,
        group: &str,
        after: Option<&str>,
    ) -> Result<MemberPage, StoreError>;
    /// Every group the connection is in.
    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError>;
    /// The group of every item the connection has: memberships and tombstones.
    async fn connection_items(&self, connection_id: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes the connection's items in `groups` (memberships or
    /// tombstones), [`MEMBERSHIP_DELETE_BATCH`] per write call; returns how
    /// many write calls it made. No presence counter changes.
    async fn delete_memberships(
        &self,
        connection_id: &str,
        groups: &[String],
    ) -> Result<usize, StoreError>;

    /// Takes one of the connection's `limit` group slots; false (and nothing
    /// taken) if all are taken. A slot is held by every membership, so a
    /// connection is in at most `limit` groups.
    async fn take_group_slot(
        &self,
        connection_id: &str,
        limit: u32,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Gives one group slot back.
    async fn release_group_slot(&self, connection_id: &str) -> Result<(), StoreError>;
    /// Forgets the connection's slot count.
    async fn forget_group_slots(&self, connection_id: &str) -> Result<(), StoreError>;

    /// Adds a user-level membership (applied to the user's connections at
    /// `$connect` until removed or expired); true if it is new.
    async fn add_user_group(
        &self,
        user_id: &str,
        group: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    /// Removes a user-level membership; true if there was one.
    async fn remove_user_group(&self, user_id: &str, group: &str) -> Result<bool, StoreError>;
    /// The user's unexpired user-level memberships.
    async fn user_groups(&self, user_id: &str, now: i64) -> Result<Vec<String>, StoreError>;

    /// Atomically adds `delta` to a presence counter of `group` and returns the
    /// new value: the user's connections in the group, or the group's online users.
    async fn add_to_counter(
        &self,
        group: &str,
        counter: &Counter,
        delta: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError>;
    /// A counter's current value (0 if it does not exist).
    async fn counter(&self, group: &str, counter: &Counter) -> Result<i64, StoreError>;
    /// Atomically sets a presence counter of `group` to `to` if it holds
    /// `from` (a counter that does not exist holds 0); true if it did.
    async fn swap_counter(
        &self,
        group: &str,
        counter: &Counter,
        from: i64,
        to: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
}

/// A presence counter of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Counter {
    /// How many of the user's connections are in the group.
    UserConnections(String),
    /// How many distinct users are in the group.
    OnlineUsers,
    /// 1 while the user is in the group without their join having been
    /// announced (it was over the presence-change limit), so their leave is
    /// not announced either (see [`crate::membership`]); 0 otherwise.
    Unannounced(String),
}

/// Where a stream is: the offset of its latest message (0 before the first)
/// and its epoch (see [`crate::history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

/// One message kept in a stream: its offset and its frame as appended
/// (without `stream`, `offset` and `epoch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub offset: u64,
    pub frame: String,
}

/// Where streams keep their messages (see [`crate::history`]): a counter per
/// stream, bumped atomically, and the messages by offset, each with an expiry.
#[async_trait]
pub trait History: Send + Sync {
    /// Appends `frame` to `stream` (a storage key, [`crate::history::Stream::key`])
    /// and returns the message's offset and the stream's epoch. A stream with
    /// no counter (new, or lost) starts at offset 1 with a new epoch. With
    /// `key`, a second append under the same key (a redelivered queue message)
    /// writes nothing new and returns the first append's position. The
    /// message may be dropped after `expires_at` (seconds since the Unix
    /// epoch); the counter lives until `counter_expires_at`.
    async fn append(
        &self,
        stream: &str,
        key: Option<&str>,
        frame: &str,
        expires_at: i64,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError>;
    /// The stream's position; a stream with no counter gets one (offset 0,
    /// a new epoch) that lives until `counter_expires_at`.
    async fn position(&self, stream: &str, counter_expires_at: i64)
    -> Result<Position, StoreError>;
    /// The messages of epoch `epoch` with offsets `from..=to` that have not
    /// expired at `now`, in offset order. At most `to - from + 1`; a message
    /// that expired or was never written is simply not there.
    async fn read(
        &self,
        stream: &str,
        epoch: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<Vec<Kept>, StoreError>;
}
