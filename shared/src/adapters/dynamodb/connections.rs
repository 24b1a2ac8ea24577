//! [`ConnectionStore`] on DynamoDB: connection records, the keys-only index pages and the publish allowance.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{CONNECTION_ID, Item, SHARD, USER_ID, from_item, string, to_item};
use super::{DynamoStore, SHARD_INDEX, USER_INDEX, unavailable};
use crate::ports::{ConnectionPage, ConnectionRecord, ConnectionStore, StoreError, publish_window};

const WINDOW: &str = "publishWindow";
const WINDOW_COUNT: &str = "publishCount";

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
        let user = AttributeValue::S(user_id.to_owned());
        self.index_page(USER_INDEX, USER_ID, user, after).await
    }

    async fn shard_connections(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        let shard = AttributeValue::N(shard.to_string());
        self.index_page(SHARD_INDEX, SHARD, shard, after).await
    }

    async fn take_publish_allowance(
        &self,
        connection_id: &str,
        now_ms: i64,
        window_ms: i64,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let window = publish_window(now_ms, window_ms);
        // One write in the common case: count within the current window.
        if self.count_in_window(connection_id, window, limit).await? || limit == 0 {
            return Ok(limit > 0);
        }
        // Start a new window, only if the stored one is older (or absent).
        let started = self
            .window_update(connection_id, window)
            .update_expression("SET #w = :w, #n = :one")
            .condition_expression("attribute_exists(#c) AND (attribute_not_exists(#w) OR #w < :w)")
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
    /// One page of the connection ids under `partition` in a keys-only index
    /// whose partition key is `key` and sort key is `connectionId`.
    async fn index_page(
        &self,
        index: &str,
        key: &str,
        partition: AttributeValue,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        // On a keys-only index the cursor is the table key plus the index key.
        let start = after.map(|id| {
            Item::from([
                (key.to_owned(), partition.clone()),
                (CONNECTION_ID.to_owned(), AttributeValue::S(id.to_owned())),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":k", partition)
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
            .filter_map(|item| string(item, CONNECTION_ID))
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|last| string(last, CONNECTION_ID));
        Ok(ConnectionPage {
            connection_ids,
            next,
        })
    }

    /// An UpdateItem of the connection's allowance counter in `window`:
    /// `#c` the key, `#w` the window, `#n` its count, `:w` the window, `:one` 1.
    fn window_update(&self, connection_id: &str, window: i64) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, AttributeValue::S(connection_id.to_owned()))
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#w", WINDOW)
            .expression_attribute_names("#n", WINDOW_COUNT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":w", AttributeValue::N(window.to_string()))
    }

    /// Counts one event in `window` if the stored window is `window` and not full.
    async fn count_in_window(
        &self,
        connection_id: &str,
        window: i64,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let counted = self
            .window_update(connection_id, window)
            .update_expression("ADD #n :one")
            .condition_expression("attribute_exists(#c) AND #w = :w AND #n < :limit")
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
