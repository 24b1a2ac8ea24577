//! The DynamoDB adapters: the connection store and sent log ([`DynamoStore`]) and the memberships ([`DynamoMemberships`]).
//!
//! Connections table (see `template.yaml`): partition key `connectionId`;
//! global secondary index `byUser` (partition `userId`, sort `connectionId`,
//! keys only) so a user's connections are a Query, never a Scan; index
//! `byShard` (partition `shard`, a number in `0..16`, sort `connectionId`, keys
//! only) so a broadcast reads every connection with 16 parallel Queries, never
//! a Scan; `expiresAt` is the TTL attribute, so records of connections whose
//! `$disconnect` never ran expire.
//!
//! - `tables.rs`: creating both tables as `template.yaml` declares them.
//! - `items.rs`: attribute names, connection records to and from items.
//! - `connections.rs`: [`ConnectionStore`](crate::ports::ConnectionStore) for [`DynamoStore`].
//! - `sent_log.rs`: [`SentLog`](crate::ports::SentLog) for [`DynamoStore`].
//! - `history.rs`: [`History`](crate::ports::History) for [`DynamoHistory`].
//! - `memberships.rs`: [`MembershipStore`](crate::ports::MembershipStore) for
//!   [`DynamoMemberships`]: memberships, user groups and presence counters.

mod connections;
mod history;
mod items;
mod memberships;
mod sent_log;
mod tables;

use std::marker::PhantomData;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::types::{KeysAndAttributes, WriteRequest};

use self::items::Item;
use crate::lazy::Lazy;
use crate::ports::StoreError;

pub use tables::{create_history_table, create_memberships_table, create_table};

/// The name of the user index.
pub const USER_INDEX: &str = "byUser";
/// The name of the broadcast index.
pub const SHARD_INDEX: &str = "byShard";
/// The sparse index of connections that asked for enveloped user messages
/// (partition `envelopeUser`, sort `connectionId`, keys only).
pub const ENVELOPE_INDEX: &str = "byEnvelopeUser";
/// The memberships table's index by connection (disconnect removes a connection's memberships).
pub const CONNECTION_INDEX: &str = "byConnection";
/// BatchGetItem reads at most 100 keys.
const BATCH_GET: usize = 100;

/// One DynamoDB table: the client, the table's name and a cap on the items
/// one page query returns. `T` says which table it is, and so which ports it
/// implements: [`DynamoStore`] and [`DynamoMemberships`].
#[derive(Clone, Debug)]
pub struct DynamoTable<T> {
    client: Lazy<Client>,
    table: String,
    page_limit: Option<i32>,
    kind: PhantomData<T>,
}

impl<T> DynamoTable<T> {
    pub fn new(client: impl Into<Lazy<Client>>, table: impl Into<String>) -> Self {
        DynamoTable {
            client: client.into(),
            table: table.into(),
            page_limit: None,
            kind: PhantomData,
        }
    }

    /// One BatchWriteItem of up to 25 `requests`, sending again what DynamoDB
    /// leaves unprocessed (throttling) until it takes them or the retries run
    /// out; `what` names the items in that error.
    async fn write_batch(
        &self,
        requests: Vec<WriteRequest>,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let send = |requests| {
            self.client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
        };
        let take = |output: BatchWriteItemOutput| {
            output
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .filter(|requests| !requests.is_empty())
                .cloned()
        };
        sent_log::until_processed(requests, send, take, |requests| {
            format!(
                "BatchWriteItem left {} {what} unprocessed (throttled)",
                requests.len()
            )
        })
        .await
    }

    /// One BatchGetItem of up to [`BATCH_GET`] keys (`request`), sending again the keys
    /// DynamoDB leaves unprocessed (throttling) until it reads them or the
    /// retries run out; `each` sees every item read, `what` names the keys in
    /// that error.
    async fn read_batch(
        &self,
        request: KeysAndAttributes,
        mut each: impl FnMut(&Item),
        what: &'static str,
    ) -> Result<(), StoreError> {
        let send = |request| {
            self.client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
        };
        let take = |output: BatchGetItemOutput| {
            let items = output.responses().and_then(|r| r.get(&self.table));
            for item in items.into_iter().flatten() {
                each(item);
            }
            output
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .filter(|k| !k.keys().is_empty())
                .cloned()
        };
        sent_log::until_processed(request, send, take, |_| {
            format!("BatchGetItem left {what} unprocessed (throttled)")
        })
        .await
    }

    /// Caps how many items one page query returns (a user's or a shard's
    /// connections, a group's members); DynamoDB otherwise stops at 1 MB.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }
}

/// The connections table (see the module's documentation); it holds the sent log too.
#[derive(Clone, Copy, Debug)]
pub struct Connections;

/// The memberships table: partition key `groupName`, sort key
/// `connectionId` (a group's members are one Query, paged), index
/// `byConnection` (partition `connectionId`, sort `groupName`, keys only) and
/// the `expiresAt` TTL attribute.
///
/// The same table holds two more kinds of item, keyed so they can never meet a
/// membership (`#` is in neither group names nor API Gateway connection ids):
///
/// | item | `groupName` | `connectionId` | other |
/// |---|---|---|---|
/// | user-level membership | `user#{userId}` | `group#{group}` | `expiresAt` |
/// | a user's connections in a presence group | `{group}#presence` | `user#{userId}` | `count`, `expiresAt` |
/// | a presence group's online users | `{group}#presence` | `#online` | `count`, `expiresAt` |
#[derive(Clone, Copy, Debug)]
pub struct Memberships;

/// The connection store and sent log on DynamoDB.
pub type DynamoStore = DynamoTable<Connections>;

/// Group memberships, user-level memberships and presence counters on
/// DynamoDB (the table's layout: [`Memberships`]).
pub type DynamoMemberships = DynamoTable<Memberships>;

/// The history table: partition key `stream`, sort key `offset` (a number).
/// Per stream, a counter item at offset 0 (`top`, `epoch`, `expiresAt`) and
/// one item per message (`frame`, `epoch`, `expiresAt`); per idempotency key,
/// an item in its own partition (`key#{stream length}#{stream}{key}`, offset
/// 0) holding the offset and epoch of the first append under that key.
#[derive(Clone, Copy, Debug)]
pub struct Histories;

/// Stream history on DynamoDB (the table's layout: [`Histories`]).
pub type DynamoHistory = DynamoTable<Histories>;

/// Any SDK failure, as the store error a retry may cure.
fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}
