//! [`History`] on DynamoDB (the table's layout: [`super::Histories`]).
//!
//! An append is an UpdateItem on the stream's counter (`ADD top 1`, the epoch
//! set if the counter is new: one atomic call gives the offset and the epoch)
//! and a PutItem of the message. With an idempotency key, a consistent
//! GetItem of the key's item first (a redelivery reuses its offset), and a
//! conditional PutItem of it after the counter: a concurrent twin that loses
//! that race leaves an empty placeholder at its offset, so offsets stay
//! contiguous and a reader never mistakes the gap for a lost message.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::items::{EXPIRES_AT, Item, number, string};
use super::{DynamoHistory, unavailable};
use crate::clock::now_seconds;
use crate::history::new_epoch;
use crate::ports::{History, Kept, Position, StoreError};

pub(super) const STREAM: &str = "stream";
pub(super) const OFFSET: &str = "offset";
const TOP: &str = "top";
const EPOCH: &str = "epoch";
const FRAME: &str = "frame";
/// The key item's offset of the first append.
const AT: &str = "at";
/// Query pages one read may take (each up to 1 MB).
const MAX_READ_PAGES: usize = 200;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The partition of an idempotency key's item: the stream's length keeps
/// `(stream, key)` pairs apart whatever characters they hold.
fn key_partition(stream: &str, key: &str) -> String {
    format!("key#{}#{stream}{key}", stream.len())
}

fn corrupt(stream: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        connection_id: stream.to_owned(),
        reason: reason.to_owned(),
    }
}

fn offset_of(item: &Item, name: &str) -> Option<u64> {
    number(item, name).and_then(|n| u64::try_from(n).ok())
}

impl DynamoHistory {
    fn item(&self, stream: &str, offset: u64) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (STREAM.to_owned(), s(stream)),
            (OFFSET.to_owned(), n(offset)),
        ])
    }

    async fn put_message(
        &self,
        stream: &str,
        position: &Position,
        frame: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut item = self.item(stream, position.offset);
        item.insert(FRAME.into(), s(frame));
        item.insert(EPOCH.into(), s(&position.epoch));
        item.insert(EXPIRES_AT.into(), n(expires_at));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// One UpdateItem of `stream`'s counter: `expression` over `#t` (top),
    /// `#e` (epoch) and `#x` (expiry), with `:epoch` a new epoch, `:x`
    /// `counter_expires_at` and `operand` (its placeholder and value); returns
    /// the counter's position after the update.
    async fn update_counter(
        &self,
        stream: &str,
        expression: &str,
        operand: (&str, i64),
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.item(stream, 0)))
            .update_expression(expression)
            .expression_attribute_names("#t", TOP)
            .expression_attribute_names("#e", EPOCH)
            .expression_attribute_names("#x", EXPIRES_AT)
            .expression_attribute_values(operand.0, n(operand.1))
            .expression_attribute_values(":epoch", s(&new_epoch()))
            .expression_attribute_values(":x", n(counter_expires_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(unavailable)?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        Ok(Position {
            offset: offset_of(&attributes, TOP).ok_or_else(|| corrupt(stream, "top"))?,
            epoch: string(&attributes, EPOCH).ok_or_else(|| corrupt(stream, "epoch"))?,
        })
    }

    /// The first append's position under `key`, if it is still kept.
    async fn keyed(&self, partition: &str, now: i64) -> Result<Option<Position>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.item(partition, 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().and_then(|item| position_of_key(item, now)))
    }
}

fn position_of_key(item: &Item, now: i64) -> Option<Position> {
    if number(item, EXPIRES_AT).is_some_and(|until| until <= now) {
        return None;
    }
    Some(Position {
        offset: offset_of(item, AT)?,
        epoch: string(item, EPOCH)?,
    })
}

#[async_trait]
impl History for DynamoHistory {
    async fn append(
        &self,
        stream: &str,
        key: Option<&str>,
        frame: &str,
        expires_at: i64,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        let now = now_seconds();
        let partition = key.map(|key| key_partition(stream, key));
        if let Some(partition) = &partition
            && let Some(first) = self.keyed(partition, now).await?
        {
            // A redelivery: the first attempt may have stopped before its
            // message was written, so write it (the same item) again.
            self.put_message(stream, &first, frame, expires_at).await?;
            return Ok(first);
        }
        let position = self
            .update_counter(
                stream,
                "ADD #t :one SET #e = if_not_exists(#e, :epoch), #x = :x",
                (":one", 1),
                counter_expires_at,
            )
            .await?;
        if let Some(partition) = &partition {
            let mut item = self.item(partition, 0);
            item.insert(AT.into(), n(position.offset));
            item.insert(EPOCH.into(), s(&position.epoch));
            item.insert(EXPIRES_AT.into(), n(expires_at));
            let claim = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#s) OR #x <= :now")
                .expression_attribute_names("#s", STREAM)
                .expression_attribute_names("#x", EXPIRES_AT)
                .expression_attribute_values(":now", n(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            if let Err(e) = claim {
                let PutItemError::ConditionalCheckFailedException(failed) = e.into_service_error()
                else {
                    return Err(StoreError::Unavailable(
                        "could not record the append's idempotency key".into(),
                    ));
                };
                // A twin appended first: leave a placeholder at our offset.
                self.put_message(stream, &position, "", expires_at).await?;
                return failed
                    .item
                    .as_ref()
                    .and_then(|item| position_of_key(item, now))
                    .ok_or_else(|| corrupt(stream, "idempotency key item"));
            }
        }
        self.put_message(stream, &position, frame, expires_at)
            .await?;
        Ok(position)
    }

    async fn position(
        &self,
        stream: &str,
        counter_expires_at: i64,
    ) -> Result<Position, StoreError> {
        self.update_counter(
            stream,
            "SET #t = if_not_exists(#t, :zero), #e = if_not_exists(#e, :epoch), \
             #x = if_not_exists(#x, :x)",
            (":zero", 0),
            counter_expires_at,
        )
        .await
    }

    async fn read(
        &self,
        stream: &str,
        epoch: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<Vec<Kept>, StoreError> {
        if from > to || from == 0 {
            return Ok(Vec::new());
        }
        let mut kept = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..MAX_READ_PAGES {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#s = :s AND #o BETWEEN :from AND :to")
                .filter_expression("#e = :e AND #x > :now")
                .expression_attribute_names("#s", STREAM)
                .expression_attribute_names("#o", OFFSET)
                .expression_attribute_names("#e", EPOCH)
                .expression_attribute_names("#x", EXPIRES_AT)
                .expression_attribute_values(":s", s(stream))
                .expression_attribute_values(":from", n(from))
                .expression_attribute_values(":to", n(to))
                .expression_attribute_values(":e", s(epoch))
                .expression_attribute_values(":now", n(now))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in output.items() {
                if let (Some(offset), Some(frame)) = (offset_of(item, OFFSET), string(item, FRAME))
                {
                    kept.push(Kept { offset, frame });
                }
            }
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(kept),
            }
        }
        Err(StoreError::Unavailable(format!(
            "reading {stream} took more than {MAX_READ_PAGES} pages"
        )))
    }
}
