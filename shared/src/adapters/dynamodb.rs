//! The connection store and the memberships on DynamoDB.
//!
//! Connections table (see `template.yaml`): partition key `connectionId`;
//! global secondary index `byUser` (partition `userId`, sort `connectionId`,
//! keys only) so a user's connections are a Query, never a Scan; index
//! `byShard` (partition `shard`, a number in `0..16`, sort `connectionId`, keys
//! only) so a broadcast reads every connection with 16 parallel Queries, never
//! a Scan; `expiresAt` is the TTL attribute, so records of connections whose
//! `$disconnect` never ran expire.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::lazy::Lazy;
use crate::ports::{
    ConnectionPage, ConnectionRecord, ConnectionStore, Counter, SentLog, StoreError, shard_of,
};

/// The name of the user index.
pub const USER_INDEX: &str = "byUser";
/// The name of the broadcast index.
pub const SHARD_INDEX: &str = "byShard";
const SHARD: &str = "shard";
const WINDOW: &str = "publishWindow";
const WINDOW_COUNT: &str = "publishCount";

const CONNECTION_ID: &str = "connectionId";
const USER_ID: &str = "userId";
const CONNECTED_AT: &str = "connectedAt";
const EXPIRES_AT: &str = "expiresAt";
const SOURCE_IP: &str = "sourceIp";
const USER_AGENT: &str = "userAgent";
const GROUPS: &str = "groups";
const SUBSCRIBE: &str = "subscribe";
const PUBLISH: &str = "publish";

type Item = HashMap<String, AttributeValue>;

/// One keys-only global secondary index: name, partition key, sort key.
struct Index<'a> {
    name: &'a str,
    hash: &'a str,
    range: &'a str,
}

/// The key layout of a table: string keys except those named in `numbers`.
struct TableShape<'a> {
    hash: &'a str,
    range: Option<&'a str>,
    indexes: &'a [Index<'a>],
    numbers: &'a [&'a str],
}

/// Creates an on-demand table of `shape`. For tests and local setups;
/// deployments get their tables from `template.yaml`.
async fn create_shaped_table(
    client: &Client,
    name: &str,
    shape: TableShape<'_>,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(unavailable)
    };
    let mut names = vec![shape.hash];
    names.extend(shape.range);
    for index in shape.indexes {
        names.extend([index.hash, index.range]);
    }
    names.sort_unstable();
    names.dedup();
    let attributes = names
        .into_iter()
        .map(|name| {
            let kind = if shape.numbers.contains(&name) {
                ScalarAttributeType::N
            } else {
                ScalarAttributeType::S
            };
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(unavailable)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .key_schema(key(shape.hash, KeyType::Hash)?);
    if let Some(range) = shape.range {
        request = request.key_schema(key(range, KeyType::Range)?);
    }
    for index in shape.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.hash, KeyType::Hash)?)
                .key_schema(key(index.range, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(unavailable)?,
        );
    }
    request.send().await.map_err(unavailable)?;
    Ok(())
}

/// Creates the connections table as `template.yaml` declares it (key
/// `connectionId`, indexes `byUser` and `byShard`).
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let shape = TableShape {
        hash: CONNECTION_ID,
        range: None,
        indexes: &[
            Index {
                name: USER_INDEX,
                hash: USER_ID,
                range: CONNECTION_ID,
            },
            Index {
                name: SHARD_INDEX,
                hash: SHARD,
                range: CONNECTION_ID,
            },
        ],
        numbers: &[SHARD],
    };
    create_shaped_table(client, name, shape).await
}

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Lazy<Client>,
    table: String,
    page_limit: Option<i32>,
}

impl DynamoStore {
    pub fn new(client: impl Into<Lazy<Client>>, table: impl Into<String>) -> Self {
        DynamoStore {
            client: client.into(),
            table: table.into(),
            page_limit: None,
        }
    }

    /// Caps how many items one user query returns (DynamoDB otherwise stops at 1 MB).
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }
}

/// Idempotency records share the connections table: key `sent#{messageId}#{connectionId}`
/// (never an API Gateway connection id, which has no `#`), `expiresAt` for TTL, and
/// no `userId` or `shard`, so they stay out of both indexes.
const SENT_PREFIX: &str = "sent#";
/// BatchGetItem reads at most 100 keys, BatchWriteItem writes at most 25 items.
const BATCH_GET: usize = 100;
const BATCH_WRITE: usize = 25;
/// Rounds for the keys or items a batch call leaves unprocessed (throttling).
const BATCH_ROUNDS: u32 = 4;

#[async_trait]
impl SentLog for DynamoStore {
    async fn posted(
        &self,
        keys: &[String],
        now: i64,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut posted = std::collections::HashSet::new();
        for chunk in keys.chunks(BATCH_GET) {
            let mut request = KeysAndAttributes::builder()
                .projection_expression("#k, #e")
                .expression_attribute_names("#k", CONNECTION_ID)
                .expression_attribute_names("#e", EXPIRES_AT);
            for key in chunk {
                request = request.keys(HashMap::from([(
                    CONNECTION_ID.to_owned(),
                    AttributeValue::S(format!("{SENT_PREFIX}{key}")),
                )]));
            }
            let mut pending = Some(request.build().map_err(unavailable)?);
            let mut round = 0;
            while let Some(request) = pending.take() {
                round += 1;
                if round > BATCH_ROUNDS {
                    return Err(StoreError::Unavailable(
                        "BatchGetItem left keys unprocessed (throttled)".into(),
                    ));
                }
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let live = number(item, EXPIRES_AT).is_some_and(|until| until > now);
                    if let (true, Some(AttributeValue::S(key))) = (live, item.get(CONNECTION_ID))
                        && let Some(key) = key.strip_prefix(SENT_PREFIX)
                    {
                        posted.insert(key.to_owned());
                    }
                }
                pending = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if pending.is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << round)).await;
                }
            }
        }
        Ok(posted)
    }

    async fn record_posted(&self, keys: &[String], expires_at: i64) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    let item = HashMap::from([
                        (
                            CONNECTION_ID.to_owned(),
                            AttributeValue::S(format!("{SENT_PREFIX}{key}")),
                        ),
                        (
                            EXPIRES_AT.to_owned(),
                            AttributeValue::N(expires_at.to_string()),
                        ),
                    ]);
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(unavailable)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let mut round = 0;
            while !requests.is_empty() {
                round += 1;
                if round > BATCH_ROUNDS {
                    return Err(StoreError::Unavailable(format!(
                        "BatchWriteItem left {} items unprocessed (throttled)",
                        requests.len()
                    )));
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(unavailable)?;
                requests = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !requests.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << round)).await;
                }
            }
        }
        Ok(())
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

fn to_item(record: &ConnectionRecord) -> Item {
    let mut item = Item::new();
    item.insert(
        CONNECTION_ID.into(),
        AttributeValue::S(record.connection_id.clone()),
    );
    item.insert(USER_ID.into(), AttributeValue::S(record.user_id.clone()));
    item.insert(
        SHARD.into(),
        AttributeValue::N(shard_of(&record.connection_id).to_string()),
    );
    item.insert(
        CONNECTED_AT.into(),
        AttributeValue::N(record.connected_at_ms.to_string()),
    );
    item.insert(
        EXPIRES_AT.into(),
        AttributeValue::N(record.expires_at.to_string()),
    );
    if let Some(ip) = &record.source_ip {
        item.insert(SOURCE_IP.into(), AttributeValue::S(ip.clone()));
    }
    if let Some(agent) = &record.user_agent {
        item.insert(USER_AGENT.into(), AttributeValue::S(agent.clone()));
    }
    for (name, list) in [
        (GROUPS, &record.groups),
        (SUBSCRIBE, &record.subscribe),
        (PUBLISH, &record.publish),
    ] {
        if !list.is_empty() {
            let values = list.iter().cloned().map(AttributeValue::S).collect();
            item.insert(name.into(), AttributeValue::L(values));
        }
    }
    item
}

fn from_item(item: &Item) -> Result<ConnectionRecord, StoreError> {
    let id = item
        .get(CONNECTION_ID)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let corrupt = |reason: &str| StoreError::Corrupt {
        connection_id: id.clone(),
        reason: reason.to_owned(),
    };
    let string = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
    let number = |key: &str| -> Result<i64, StoreError> {
        item.get(key)
            .and_then(|v| v.as_n().ok())
            .ok_or_else(|| corrupt(&format!("{key} is missing or not a number")))?
            .parse()
            .map_err(|_| corrupt(&format!("{key} is not an integer")))
    };
    let list = |key: &str| -> Result<Vec<String>, StoreError> {
        match item.get(key) {
            None => Ok(Vec::new()),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| {
                    v.as_s()
                        .cloned()
                        .map_err(|_| corrupt(&format!("{key} holds a non-string")))
                })
                .collect(),
            Some(_) => Err(corrupt(&format!("{key} is not a list"))),
        }
    };
    Ok(ConnectionRecord {
        user_id: string(USER_ID).ok_or_else(|| corrupt("userId is missing"))?,
        connected_at_ms: number(CONNECTED_AT)?,
        expires_at: number(EXPIRES_AT)?,
        source_ip: string(SOURCE_IP),
        user_agent: string(USER_AGENT),
        groups: list(GROUPS)?,
        subscribe: list(SUBSCRIBE)?,
        publish: list(PUBLISH)?,
        connection_id: id.clone(),
    })
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        // DeleteItem on a missing key succeeds, which makes $disconnect idempotent.
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, AttributeValue::S(connection_id.to_owned()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, AttributeValue::S(connection_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output.item().map(from_item).transpose()
    }

    async fn user_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        // On a keys-only index the cursor is the table key plus the index key.
        let start = after.map(|id| {
            Item::from([
                (USER_ID.to_owned(), AttributeValue::S(user_id.to_owned())),
                (CONNECTION_ID.to_owned(), AttributeValue::S(id.to_owned())),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", USER_ID)
            .expression_attribute_values(":u", AttributeValue::S(user_id.to_owned()))
            .projection_expression("#c")
            .expression_attribute_names("#c", CONNECTION_ID)
            .set_exclusive_start_key(start)
            .set_limit(self.page_limit)
            .send()
            .await
            .map_err(unavailable)?;
        let connection_ids = output
            .items()
            .iter()
            .filter_map(|item| item.get(CONNECTION_ID)?.as_s().ok().cloned())
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|key| key.get(CONNECTION_ID)?.as_s().ok().cloned());
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
        let shard_value = AttributeValue::N(shard.to_string());
        let start = after.map(|id| {
            Item::from([
                (SHARD.to_owned(), shard_value.clone()),
                (CONNECTION_ID.to_owned(), AttributeValue::S(id.to_owned())),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SHARD_INDEX)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", SHARD)
            .expression_attribute_values(":s", shard_value)
            .projection_expression("#c")
            .expression_attribute_names("#c", CONNECTION_ID)
            .set_exclusive_start_key(start)
            .set_limit(self.page_limit)
            .send()
            .await
            .map_err(unavailable)?;
        let connection_ids = output
            .items()
            .iter()
            .filter_map(|item| item.get(CONNECTION_ID)?.as_s().ok().cloned())
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|key| key.get(CONNECTION_ID)?.as_s().ok().cloned());
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
        let window = now_ms - now_ms.rem_euclid(window_ms.max(1));
        // One write in the common case: count within the current window.
        if self.count_in_window(connection_id, window, limit).await? || limit == 0 {
            return Ok(limit > 0);
        }
        // Start a new window, only if the stored one is older (or absent).
        let started = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, AttributeValue::S(connection_id.to_owned()))
            .update_expression("SET #w = :w, #n = :one")
            .condition_expression("attribute_exists(#c) AND (attribute_not_exists(#w) OR #w < :w)")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#w", WINDOW)
            .expression_attribute_names("#n", WINDOW_COUNT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":w", AttributeValue::N(window.to_string()))
            .send()
            .await;
        match started {
            Ok(_) => Ok(true),
            // Another event started this window first: count in it.
            Err(e) if is_condition_failure(&e) => {
                self.count_in_window(connection_id, window, limit).await
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn is_condition_failure(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    matches!(
        e.as_service_error(),
        Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))
    )
}

impl DynamoStore {
    /// Counts one event in `window` if the stored window is `window` and not full.
    async fn count_in_window(
        &self,
        connection_id: &str,
        window: i64,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, AttributeValue::S(connection_id.to_owned()))
            .update_expression("ADD #n :one")
            .condition_expression("attribute_exists(#c) AND #w = :w AND #n < :limit")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#w", WINDOW)
            .expression_attribute_names("#n", WINDOW_COUNT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":w", AttributeValue::N(window.to_string()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_items() {
        let record = ConnectionRecord {
            connection_id: "c1".into(),
            user_id: "u1".into(),
            connected_at_ms: 1_700_000_000_123,
            expires_at: 1_700_008_100,
            source_ip: Some("203.0.113.7".into()),
            user_agent: None,
            groups: vec!["a".into(), "b".into()],
            subscribe: vec!["chat:*".into()],
            publish: vec![],
        };
        assert_eq!(from_item(&to_item(&record)).unwrap(), record);
    }

    #[test]
    fn corrupt_items_are_reported_not_guessed() {
        let mut item = Item::new();
        item.insert(CONNECTION_ID.into(), AttributeValue::S("c1".into()));
        item.insert(USER_ID.into(), AttributeValue::S("u1".into()));
        item.insert(CONNECTED_AT.into(), AttributeValue::S("yesterday".into()));
        item.insert(EXPIRES_AT.into(), AttributeValue::N("1".into()));
        assert_eq!(
            from_item(&item),
            Err(StoreError::Corrupt {
                connection_id: "c1".into(),
                reason: "connectedAt is missing or not a number".into()
            })
        );
    }
}

/// The memberships table's index by connection (disconnect removes a connection's memberships).
pub const CONNECTION_INDEX: &str = "byConnection";
const GROUP_NAME: &str = "groupName";

/// Group memberships on DynamoDB: partition key `groupName`, sort key
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
#[derive(Clone, Debug)]
pub struct DynamoMemberships {
    client: Lazy<Client>,
    table: String,
    page_limit: Option<i32>,
}

impl DynamoMemberships {
    pub fn new(client: impl Into<Lazy<Client>>, table: impl Into<String>) -> Self {
        DynamoMemberships {
            client: client.into(),
            table: table.into(),
            page_limit: None,
        }
    }

    /// Caps how many members one group query returns.
    pub fn with_page_limit(mut self, limit: i32) -> Self {
        self.page_limit = Some(limit);
        self
    }

    fn key(group: &str, connection_id: &str) -> Item {
        Item::from([
            (GROUP_NAME.to_owned(), AttributeValue::S(group.to_owned())),
            (
                CONNECTION_ID.to_owned(),
                AttributeValue::S(connection_id.to_owned()),
            ),
        ])
    }
}

/// Creates the memberships table as `template.yaml` declares it (key
/// `groupName` + `connectionId`, index `byConnection`).
pub async fn create_memberships_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let shape = TableShape {
        hash: GROUP_NAME,
        range: Some(CONNECTION_ID),
        indexes: &[Index {
            name: CONNECTION_INDEX,
            hash: CONNECTION_ID,
            range: GROUP_NAME,
        }],
        numbers: &[],
    };
    create_shaped_table(client, name, shape).await
}

#[async_trait]
impl crate::ports::MembershipStore for DynamoMemberships {
    async fn join(&self, membership: &crate::ports::Membership) -> Result<bool, StoreError> {
        let mut item = Self::key(&membership.group, &membership.connection_id);
        item.insert(
            USER_ID.into(),
            AttributeValue::S(membership.user_id.clone()),
        );
        item.insert(
            EXPIRES_AT.into(),
            AttributeValue::N(membership.expires_at.to_string()),
        );
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes().is_none_or(|old| old.is_empty()))
    }

    async fn leave(&self, group: &str, connection_id: &str) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(group, connection_id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output
            .attributes()
            .filter(|old| !old.is_empty())
            .map(|old| {
                old.get(USER_ID)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            }))
    }

    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(group, connection_id)))
            .projection_expression("#c")
            .expression_attribute_names("#c", CONNECTION_ID)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().is_some())
    }

    async fn group_members(
        &self,
        group: &str,
        after: Option<&str>,
    ) -> Result<crate::ports::MemberPage, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", GROUP_NAME)
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()))
            .projection_expression("#c, #u")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#u", USER_ID)
            .set_exclusive_start_key(after.map(|id| Self::key(group, id)))
            .set_limit(self.page_limit)
            .send()
            .await
            .map_err(unavailable)?;
        let members = output
            .items()
            .iter()
            .filter_map(|item| {
                let connection = item.get(CONNECTION_ID)?.as_s().ok()?.clone();
                let user = item.get(USER_ID)?.as_s().ok()?.clone();
                Some((connection, user))
            })
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|key| key.get(CONNECTION_ID)?.as_s().ok().cloned());
        Ok(crate::ports::MemberPage { members, next })
    }

    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        let mut groups = Vec::new();
        let mut start: Option<Item> = None;
        // A connection is in few groups; follow pages anyway, bounded by the data.
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CONNECTION_INDEX)
                .key_condition_expression("#c = :c")
                .expression_attribute_names("#c", CONNECTION_ID)
                .expression_attribute_values(":c", AttributeValue::S(connection_id.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            groups.extend(
                output
                    .items()
                    .iter()
                    .filter_map(|item| item.get(GROUP_NAME)?.as_s().ok().cloned()),
            );
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(groups),
            }
        }
    }

    async fn add_user_group(
        &self,
        user_id: &str,
        group: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut item = Self::key(&user_partition(user_id), &user_group_sort(group));
        item.insert(EXPIRES_AT.into(), AttributeValue::N(expires_at.to_string()));
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes().is_none_or(|old| old.is_empty()))
    }

    async fn remove_user_group(&self, user_id: &str, group: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                &user_partition(user_id),
                &user_group_sort(group),
            )))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes().is_some_and(|old| !old.is_empty()))
    }

    async fn user_groups(&self, user_id: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let mut groups = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#g = :g AND begins_with(#c, :prefix)")
                .expression_attribute_names("#g", GROUP_NAME)
                .expression_attribute_names("#c", CONNECTION_ID)
                .expression_attribute_values(":g", AttributeValue::S(user_partition(user_id)))
                .expression_attribute_values(":prefix", AttributeValue::S(GROUP_PREFIX.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in output.items() {
                // TTL deletion lags by up to days: an expired item is already gone for us.
                let live = number(item, EXPIRES_AT).is_some_and(|at| at > now);
                let group = item
                    .get(CONNECTION_ID)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| sk.strip_prefix(GROUP_PREFIX));
                if let (true, Some(group)) = (live, group) {
                    groups.push(group.to_owned());
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(groups),
            }
        }
    }

    async fn add_to_counter(
        &self,
        group: &str,
        counter: &Counter,
        delta: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                &presence_partition(group),
                &counter_sort(counter),
            )))
            .update_expression("ADD #n :d SET #e = :e")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        output
            .attributes()
            .and_then(|a| number(a, COUNT))
            .ok_or_else(|| StoreError::Unavailable("UpdateItem returned no count".into()))
    }

    async fn counter(&self, group: &str, counter: &Counter) -> Result<i64, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                &presence_partition(group),
                &counter_sort(counter),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output
            .item()
            .and_then(|item| number(item, COUNT))
            .unwrap_or(0))
    }
}

const COUNT: &str = "count";
const GROUP_PREFIX: &str = "group#";

fn user_partition(user_id: &str) -> String {
    format!("user#{user_id}")
}

fn user_group_sort(group: &str) -> String {
    format!("{GROUP_PREFIX}{group}")
}

fn presence_partition(group: &str) -> String {
    format!("{group}#presence")
}

fn counter_sort(counter: &Counter) -> String {
    match counter {
        Counter::UserConnections(user_id) => format!("user#{user_id}"),
        Counter::OnlineUsers => "#online".to_owned(),
    }
}
