//! [`SentLog`] on DynamoDB: idempotency records in the connections table, read and written in batches.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};

use super::items::{CONNECTION_ID, EXPIRES_AT, Item, number};
use super::{BATCH_GET, DynamoStore, unavailable};
use crate::ports::{SentLog, StoreError};

/// Idempotency records share the connections table: key `sent#{messageId}#{connectionId}`
/// (never an API Gateway connection id, which has no `#`), `expiresAt` for TTL, and
/// no `userId` or `shard`, so they stay out of both indexes.
const SENT_PREFIX: &str = "sent#";
/// BatchWriteItem writes at most 25 items.
const BATCH_WRITE: usize = 25;
/// Rounds for the keys or items a batch call leaves unprocessed (throttling).
const BATCH_ROUNDS: u32 = 4;

#[async_trait]
impl SentLog for DynamoStore {
    async fn posted(&self, keys: &[String], now: i64) -> Result<HashSet<String>, StoreError> {
        let mut posted = HashSet::new();
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
            let request = request.build().map_err(unavailable)?;
            let each = |item: &Item| {
                let live = number(item, EXPIRES_AT).is_some_and(|until| until > now);
                if let (true, Some(AttributeValue::S(key))) = (live, item.get(CONNECTION_ID))
                    && let Some(key) = key.strip_prefix(SENT_PREFIX)
                {
                    posted.insert(key.to_owned());
                }
            };
            self.read_batch(request, each, "keys").await?;
        }
        Ok(posted)
    }

    async fn record_posted(&self, keys: &[String], expires_at: i64) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let requests = chunk
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
            self.write_batch(requests, "items").await?;
        }
        Ok(())
    }
}

/// Sends `request` with `send`, then what each call leaves unprocessed
/// (DynamoDB does this when it throttles; `take` reads the answer and returns
/// what is left), with a growing pause between rounds; after [`BATCH_ROUNDS`]
/// rounds fails with `gave_up`'s message about what is still unprocessed.
pub(super) async fn until_processed<R, O, E, F>(
    request: R,
    send: impl Fn(R) -> F,
    mut take: impl FnMut(O) -> Option<R>,
    gave_up: impl FnOnce(&R) -> String,
) -> Result<(), StoreError>
where
    F: Future<Output = Result<O, E>>,
    E: std::error::Error,
{
    let mut pending = Some(request);
    let mut round = 0;
    while let Some(request) = pending.take() {
        round += 1;
        if round > BATCH_ROUNDS {
            return Err(StoreError::Unavailable(gave_up(&request)));
        }
        pending = take(send(request).await.map_err(unavailable)?);
        if pending.is_some() {
            tokio::time::sleep(Duration::from_millis(25 << round)).await;
        }
    }
    Ok(())
}
