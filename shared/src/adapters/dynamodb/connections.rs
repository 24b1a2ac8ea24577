//! [`ConnectionStore`] on DynamoDB: connection records, the keys-only index pages and the rate-limit buckets.
//!
//! A bucket is one number, its theoretical arrival time (see [`crate::rate`]):
//! the `actionsTat` attribute of a connection record, or the `tat` attribute
//! of a `limit#…` item (with `expiresAt`, so idle buckets expire). Taking a
//! token is a conditional UpdateItem, never a read:
//!
//! - busy bucket (`now < tat <= latest`): `SET tat = tat + interval`, a plain
//!   increment, so concurrent takers never conflict;
//! - idle or new bucket (`tat <= now` or absent): `SET tat = now + interval`.
//!
//! The busy form is tried first; when its condition fails, DynamoDB returns
//! the item as it was (`ReturnValuesOnConditionCheckFailure`), which says
//! whether the bucket is over (refused, one call) or idle (the idle form
//! next). `tat` only grows, so a taker whose idle form lost a race finds a
//! busy bucket: at most three calls.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::items::{
    CONNECTION_ID, ENVELOPE_USER, EXPIRES_AT, Item, SHARD, USER_ID, from_item, number, string,
    to_item,
};
use super::{DynamoStore, ENVELOPE_INDEX, SHARD_INDEX, USER_INDEX, unavailable};
use crate::ports::{
    Allowance, ConnectionPage, ConnectionRecord, ConnectionStore, Rate, StoreError,
};
use crate::rate::micros;

/// A connection's action bucket, on its record.
const ACTIONS_TAT: &str = "actionsTat";
/// The bucket of a `limit#…` item.
const TAT: &str = "tat";
/// Calls one take may make (see the module's documentation).
const TAKE_ATTEMPTS: usize = 3;

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

    async fn user_envelope_connections(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        let user = AttributeValue::S(user_id.to_owned());
        self.index_page(ENVELOPE_INDEX, ENVELOPE_USER, user, after)
            .await
    }

    async fn shard_connections(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> Result<ConnectionPage, StoreError> {
        let shard = AttributeValue::N(shard.to_string());
        self.index_page(SHARD_INDEX, SHARD, shard, after).await
    }

    async fn take_allowance(
        &self,
        allowance: &Allowance,
        now_ms: i64,
        rate: Rate,
    ) -> Result<bool, StoreError> {
        if rate.limit == 0 {
            return Ok(false);
        }
        let now = micros(now_ms);
        let (key, attribute) = match allowance {
            Allowance::ConnectionActions(id) => (id.clone(), ACTIONS_TAT),
            other => (other.key().unwrap_or_default(), TAT),
        };
        let on_record = matches!(allowance, Allowance::ConnectionActions(_));
        // A `limit#…` item outlives its bucket's refill, then expires.
        let expires_at = (now_ms + rate.window.as_millis() as i64) / 1000 + 60;
        let mut busy = true;
        for _ in 0..TAKE_ATTEMPTS {
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(CONNECTION_ID, AttributeValue::S(key.clone()))
                .expression_attribute_names("#t", attribute)
                .expression_attribute_values(":now", number_value(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let mut set = if busy {
                update = update
                    .expression_attribute_values(":step", number_value(rate.interval_us()))
                    .expression_attribute_values(":latest", number_value(rate.latest_tat(now)))
                    .condition_expression("#t > :now AND #t <= :latest");
                "SET #t = #t + :step".to_owned()
            } else {
                let condition = if on_record {
                    update = update.expression_attribute_names("#c", CONNECTION_ID);
                    "attribute_exists(#c) AND (attribute_not_exists(#t) OR #t <= :now)"
                } else {
                    "attribute_not_exists(#t) OR #t <= :now"
                };
                update = update
                    .expression_attribute_values(
                        ":next",
                        number_value(now.saturating_add(rate.interval_us())),
                    )
                    .condition_expression(condition);
                "SET #t = :next".to_owned()
            };
            if !on_record {
                update = update
                    .expression_attribute_names("#e", EXPIRES_AT)
                    .expression_attribute_values(":e", number_value(expires_at));
                set.push_str(", #e = :e");
            }
            let old = match update.update_expression(set).send().await {
                Ok(_) => return Ok(true),
                Err(e) => match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item,
                    other => return Err(unavailable(other)),
                },
            };
            if on_record && old.is_none() {
                return Ok(false); // no such connection
            }
            match old.as_ref().and_then(|item| number(item, attribute)) {
                // Over: the busy form's condition failed on a full bucket.
                Some(tat) if tat > rate.latest_tat(now) => return Ok(false),
                // Busy now (another taker restarted it first): increment.
                Some(tat) if tat > now => busy = true,
                // Idle or new: restart it.
                _ => busy = false,
            }
        }
        Ok(false)
    }
}

fn number_value(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
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
}
