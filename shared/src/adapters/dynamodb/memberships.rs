//! [`MembershipStore`] on DynamoDB: memberships, user-level memberships and presence counters in one table.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, ReturnValue, WriteRequest,
};
use futures::StreamExt;

use super::items::{CONNECTION_ID, EXPIRES_AT, GROUP_NAME, Item, USER_ID, number, string};
use super::{BATCH_GET, CONNECTION_INDEX, DynamoMemberships, unavailable};
use crate::ports::{
    Counter, MEMBERSHIP_DELETE_BATCH, MemberPage, Membership, MembershipStore, MembershipWrite,
    StoreError,
};

const COUNT: &str = "count";
const GROUP_PREFIX: &str = "group#";
/// The sequence of the client frame that last wrote a membership item.
const SEQ: &str = "seq";
/// Present (true) on a tombstone: the connection left the group.
const LEFT: &str = "left";
/// Only a frame with a newer sequence, or an item without one, may write.
const NEWER: &str = "attribute_not_exists(#s) OR #s < :s";
/// Batch calls of one `delete_memberships` in flight at once.
const DELETE_CONCURRENCY: usize = 4;

impl DynamoMemberships {
    fn key(group: &str, connection_id: &str) -> Item {
        Item::from([
            (GROUP_NAME.to_owned(), AttributeValue::S(group.to_owned())),
            (
                CONNECTION_ID.to_owned(),
                AttributeValue::S(connection_id.to_owned()),
            ),
        ])
    }

    /// The key of one of `group`'s presence counters.
    fn counter_key(group: &str, counter: &Counter) -> Item {
        Self::key(&presence_partition(group), &counter_sort(counter))
    }

    /// Writes `item`; true if no item had its key before.
    async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes().is_none_or(|old| old.is_empty()))
    }

    /// Deletes the item at `key`; the item if there was one.
    async fn delete(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes.filter(|old| !old.is_empty()))
    }

    /// A Query of this table.
    fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// An UpdateItem of the membership item, returning the old item; with
    /// `seq`, it writes the sequence and applies only if it is newer.
    fn ordered_update(
        &self,
        group: &str,
        connection_id: &str,
        seq: Option<u64>,
        set: &str,
    ) -> UpdateItemFluentBuilder {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(group, connection_id)))
            .return_values(ReturnValue::AllOld);
        match seq {
            Some(seq) => update
                .update_expression(set.replace("SET ", "SET #s = :s, "))
                .condition_expression(NEWER)
                .expression_attribute_names("#s", SEQ)
                .expression_attribute_values(":s", AttributeValue::N(seq.to_string())),
            None => update.update_expression(set),
        }
    }

    /// One BatchWriteItem of up to 25 membership deletes, retrying what it leaves unprocessed.
    async fn delete_chunk(
        &self,
        connection_id: &str,
        chunk: Vec<String>,
    ) -> Result<(), StoreError> {
        let requests = chunk
            .iter()
            .map(|group| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(Self::key(group, connection_id)))
                    .build()
                    .map_err(unavailable)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write_batch(requests, "memberships").await
    }

    /// The key of the connection's group-slot counter: its own partition, so
    /// it is no membership and stays out of every group's members.
    fn slots_key(connection_id: &str) -> Item {
        Self::key(
            &format!("connection#{connection_id}"),
            &format!("groups#{connection_id}"),
        )
    }
}

/// Whether an UpdateItem failed on its condition.
fn is_condition_failure(
    e: &aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    matches!(
        e.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

/// Whether `old` (an ALL_OLD answer) was a membership, not a tombstone or nothing.
fn was_member(old: Option<&Item>) -> bool {
    old.is_some_and(|old| !old.is_empty() && !old.contains_key(LEFT))
}

/// Runs `query` page after page, handing every item it matches to `each`.
async fn for_every_item(
    query: QueryFluentBuilder,
    mut each: impl FnMut(&Item) + Send,
) -> Result<(), StoreError> {
    let mut start: Option<Item> = None;
    loop {
        let output = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        output.items().iter().for_each(&mut each);
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(()),
        }
    }
}

#[async_trait]
impl MembershipStore for DynamoMemberships {
    async fn join_in_order(
        &self,
        membership: &Membership,
        seq: Option<u64>,
    ) -> Result<MembershipWrite<()>, StoreError> {
        let result = self
            .ordered_update(
                &membership.group,
                &membership.connection_id,
                seq,
                "SET #u = :u, #e = :e REMOVE #l",
            )
            .expression_attribute_names("#u", USER_ID)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_names("#l", LEFT)
            .expression_attribute_values(":u", AttributeValue::S(membership.user_id.clone()))
            .expression_attribute_values(":e", AttributeValue::N(membership.expires_at.to_string()))
            .send()
            .await;
        match result {
            Ok(output) if was_member(output.attributes()) => Ok(MembershipWrite::Unchanged),
            Ok(_) => Ok(MembershipWrite::Changed(())),
            Err(e) if is_condition_failure(&e) => Ok(MembershipWrite::Stale),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn leave_in_order(
        &self,
        group: &str,
        connection_id: &str,
        seq: Option<u64>,
        expires_at: i64,
    ) -> Result<MembershipWrite<String>, StoreError> {
        let update = match seq {
            // A tombstone even where there was nothing: an older subscribe
            // arriving later must find the newer sequence.
            Some(_) => self
                .ordered_update(
                    group,
                    connection_id,
                    seq,
                    "SET #l = :t, #e = if_not_exists(#e, :e)",
                )
                .expression_attribute_names("#e", EXPIRES_AT)
                .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string())),
            // Without a sequence only a membership becomes a tombstone (keeping its sequence).
            None => self
                .ordered_update(group, connection_id, None, "SET #l = :t")
                .condition_expression("attribute_exists(#c) AND attribute_not_exists(#l)")
                .expression_attribute_names("#c", CONNECTION_ID),
        };
        let result = update
            .expression_attribute_names("#l", LEFT)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(output) if was_member(output.attributes()) => Ok(MembershipWrite::Changed(
                output
                    .attributes()
                    .and_then(|old| string(old, USER_ID))
                    .unwrap_or_default(),
            )),
            Ok(_) => Ok(MembershipWrite::Unchanged),
            Err(e) if is_condition_failure(&e) => Ok(match seq {
                Some(_) => MembershipWrite::Stale,
                None => MembershipWrite::Unchanged,
            }),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(group, connection_id)))
            .projection_expression("#c, #l")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#l", LEFT)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(was_member(output.item()))
    }

    async fn group_members(
        &self,
        group: &str,
        after: Option<&str>,
    ) -> Result<MemberPage, StoreError> {
        let output = self
            .query()
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", GROUP_NAME)
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()))
            .projection_expression("#c, #u")
            .filter_expression("attribute_not_exists(#l)")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#u", USER_ID)
            .expression_attribute_names("#l", LEFT)
            .set_exclusive_start_key(after.map(|id| Self::key(group, id)))
            .set_limit(self.page_limit)
            .send()
            .await
            .map_err(unavailable)?;
        let members = output
            .items()
            .iter()
            .filter_map(|item| Some((string(item, CONNECTION_ID)?, string(item, USER_ID)?)))
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|key| string(key, CONNECTION_ID));
        Ok(MemberPage { members, next })
    }

    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        // The index holds keys only: tombstones are told apart on the table,
        // 100 keys per BatchGetItem.
        let mut groups = Vec::new();
        for chunk in self
            .connection_items(connection_id)
            .await?
            .chunks(BATCH_GET)
        {
            let mut request = KeysAndAttributes::builder()
                .projection_expression("#g, #l")
                .expression_attribute_names("#g", GROUP_NAME)
                .expression_attribute_names("#l", LEFT)
                .consistent_read(true);
            for group in chunk {
                request = request.keys(Self::key(group, connection_id));
            }
            let request = request.build().map_err(unavailable)?;
            let each = |item: &Item| {
                if was_member(Some(item)) {
                    groups.extend(string(item, GROUP_NAME));
                }
            };
            self.read_batch(request, each, "memberships").await?;
        }
        groups.sort();
        Ok(groups)
    }

    async fn connection_items(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        let mut groups = Vec::new();
        // Follow pages, bounded by the data (keys only: about 5,000 per page).
        let query = self
            .query()
            .index_name(CONNECTION_INDEX)
            .key_condition_expression("#c = :c")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_values(":c", AttributeValue::S(connection_id.to_owned()));
        for_every_item(query, |item| groups.extend(string(item, GROUP_NAME))).await?;
        Ok(groups)
    }

    async fn delete_memberships(
        &self,
        connection_id: &str,
        groups: &[String],
    ) -> Result<usize, StoreError> {
        let calls: Vec<_> = groups
            .chunks(MEMBERSHIP_DELETE_BATCH)
            .map(|chunk| self.delete_chunk(connection_id, chunk.to_vec()))
            .collect();
        let mut results = futures::stream::iter(calls).buffer_unordered(DELETE_CONCURRENCY);
        let mut first_error = None;
        while let Some(result) = results.next().await {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(groups.len().div_ceil(MEMBERSHIP_DELETE_BATCH)),
        }
    }

    async fn take_group_slot(
        &self,
        connection_id: &str,
        limit: u32,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::slots_key(connection_id)))
            .update_expression("ADD #n :one SET #e = :e")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release_group_slot(&self, connection_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::slots_key(connection_id)))
            .update_expression("ADD #n :minus")
            // Never below zero (and never creating the item).
            .condition_expression("#n > :zero")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn forget_group_slots(&self, connection_id: &str) -> Result<(), StoreError> {
        self.delete(Self::slots_key(connection_id)).await.map(drop)
    }

    async fn add_user_group(
        &self,
        user_id: &str,
        group: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut item = Self::key(&user_partition(user_id), &user_group_sort(group));
        item.insert(EXPIRES_AT.into(), AttributeValue::N(expires_at.to_string()));
        self.put_new(item).await
    }

    async fn remove_user_group(&self, user_id: &str, group: &str) -> Result<bool, StoreError> {
        let key = Self::key(&user_partition(user_id), &user_group_sort(group));
        Ok(self.delete(key).await?.is_some())
    }

    async fn user_groups(&self, user_id: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let mut groups = Vec::new();
        let query = self
            .query()
            .key_condition_expression("#g = :g AND begins_with(#c, :prefix)")
            .expression_attribute_names("#g", GROUP_NAME)
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_values(":g", AttributeValue::S(user_partition(user_id)))
            .expression_attribute_values(":prefix", AttributeValue::S(GROUP_PREFIX.into()))
            .consistent_read(true);
        for_every_item(query, |item| {
            // TTL deletion lags by up to days: an expired item is already gone for us.
            let live = number(item, EXPIRES_AT).is_some_and(|at| at > now);
            let group = item
                .get(CONNECTION_ID)
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix(GROUP_PREFIX));
            if let (true, Some(group)) = (live, group) {
                groups.push(group.to_owned());
            }
        })
        .await?;
        Ok(groups)
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
            .set_key(Some(Self::counter_key(group, counter)))
            .update_expression("ADD #n :d SET #e = :e")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .return_values(ReturnValue::UpdatedNew)
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
            .set_key(Some(Self::counter_key(group, counter)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output
            .item()
            .and_then(|item| number(item, COUNT))
            .unwrap_or(0))
    }

    async fn swap_counter(
        &self,
        group: &str,
        counter: &Counter,
        from: i64,
        to: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        // A counter that does not exist holds 0.
        let condition = if from == 0 {
            "attribute_not_exists(#n) OR #n = :from"
        } else {
            "#n = :from"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::counter_key(group, counter)))
            .update_expression("SET #n = :to, #e = :e")
            .condition_expression(condition)
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
            .expression_attribute_values(":to", AttributeValue::N(to.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(false),
                other => Err(unavailable(other)),
            },
        }
    }
}

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
        Counter::Unannounced(user_id) => format!("unannounced#{user_id}"),
    }
}
