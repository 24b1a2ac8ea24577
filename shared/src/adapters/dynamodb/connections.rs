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
//!
//! Booking tokens ahead ([`ConnectionStore::reserve_allowance`], the stack's
//! budget of posts) is the same pair of forms with a step of `tokens ×
//! interval` and, in place of `latest`, the last `tat` that keeps the booking
//! within its horizon; the busy form returns the new `tat`
//! (`ReturnValues: UPDATED_NEW`), which says how long to wait.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::items::{
    CONNECTION_ID, ENVELOPE_USER, EXPIRES_AT, Item, SHARD, USER_ID, from_item, number, string,
    to_item,
};
use super::{DynamoStore, ENVELOPE_INDEX, SHARD_INDEX, USER_INDEX, unavailable};
use crate::ports::{
    Allowance, Booking, ConnectionPage, ConnectionRecord, ConnectionStore, Rate, StoreError,
};
use crate::rate::{Reserved, micros, ready_by, reserve};

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
            let mut update = self.bucket_update(&key, attribute, now);
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

    async fn reserve_allowance(
        &self,
        allowance: &Allowance,
        tokens: u32,
        now_ms: i64,
        rate: Rate,
        horizon: Duration,
    ) -> Result<Booking, StoreError> {
        let now = micros(now_ms);
        let horizon_us = i64::try_from(horizon.as_micros()).unwrap_or(i64::MAX);
        // What an idle bucket would answer: a refusal here (no limit, or more
        // tokens than the bucket and the horizon hold) is a refusal anywhere.
        let idle = reserve(None, now, rate, tokens, horizon_us);
        let Reserved::After { tat: idle_tat, .. } = idle else {
            return Ok(Booking::from_reserved(idle));
        };
        let Some(key) = allowance.key() else {
            return Err(StoreError::Unavailable(
                "a connection's own bucket cannot be booked ahead".into(),
            ));
        };
        let step = idle_tat - now;
        let ready = ready_by(now, rate);
        // The last `tat` a booking may start from and stay within the horizon.
        let latest_start = ready.saturating_add(horizon_us) - step;
        let expires_at =
            (now_ms + horizon.as_millis() as i64 + rate.window.as_millis() as i64) / 1000 + 60;
        let wait = |tat: i64| Booking::After(Duration::from_micros((tat - ready).max(0) as u64));
        let mut busy = true;
        for _ in 0..TAKE_ATTEMPTS {
            let mut update = self
                .bucket_update(&key, TAT, now)
                .expression_attribute_names("#e", EXPIRES_AT)
                .expression_attribute_values(":e", number_value(expires_at));
            update = if busy {
                update
                    .expression_attribute_values(":step", number_value(step))
                    .expression_attribute_values(":latest", number_value(latest_start))
                    .condition_expression("#t > :now AND #t <= :latest")
                    .update_expression("SET #t = #t + :step, #e = :e")
                    .return_values(ReturnValue::UpdatedNew)
            } else {
                update
                    .expression_attribute_values(":next", number_value(idle_tat))
                    .condition_expression("attribute_not_exists(#t) OR #t <= :now")
                    .update_expression("SET #t = :next, #e = :e")
            };
            let old = match update.send().await {
                Ok(done) if busy => {
                    let tat = done
                        .attributes
                        .as_ref()
                        .and_then(|item| number(item, TAT))
                        .ok_or_else(|| StoreError::Corrupt {
                            connection_id: key.clone(),
                            reason: "no tat after booking".into(),
                        })?;
                    return Ok(wait(tat));
                }
                Ok(_) => return Ok(wait(idle_tat)),
                Err(e) => match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item,
                    other => return Err(unavailable(other)),
                },
            };
            match old.as_ref().and_then(|item| number(item, TAT)) {
                // Booked past the horizon.
                Some(tat) if tat > latest_start => {
                    return Ok(Booking::Full {
                        retry_after: Duration::from_micros((tat - latest_start) as u64),
                    });
                }
                Some(tat) if tat > now => busy = true,
                _ => busy = false,
            }
        }
        // Three lost races in a row: a bucket this contended is busy.
        Ok(Booking::Full {
            retry_after: Duration::from_micros(rate.interval_us().max(1000) as u64),
        })
    }
}

fn number_value(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

impl DynamoStore {
    /// An UpdateItem on the bucket `#t` (`attribute`) of item `key`, with
    /// `:now`, that returns the item as it was when its condition fails.
    fn bucket_update(&self, key: &str, attribute: &str, now: i64) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(CONNECTION_ID, AttributeValue::S(key.to_owned()))
            .expression_attribute_names("#t", attribute)
            .expression_attribute_values(":now", number_value(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

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
