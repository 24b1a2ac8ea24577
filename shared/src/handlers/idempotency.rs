//! Idempotent posts. A queued message may carry an `id`; a redelivery of it
//! (SQS is at least once, and a handler cut off mid-batch gets its whole batch
//! back) is not posted again to a connection that already got it within the
//! window.
//!
//! The order is check, post, record. A failure between the post and the
//! record costs a duplicate on redelivery, never a loss; so does a store that
//! cannot answer: without an answer the post goes ahead.

use std::collections::HashSet;

use tracing::warn;

use crate::clock::now_seconds;
use crate::config::NotifyConnectionOptions;

/// The record key for message `id` posted to `connection_id` (`#` is in neither).
pub fn sent_key(id: &str, connection_id: &str) -> String {
    format!("{id}#{connection_id}")
}

/// The connections among `connection_ids` that already got message `id`.
/// Empty when the message has no id, idempotency is off, or the store fails.
pub async fn already_posted(
    options: &NotifyConnectionOptions,
    id: Option<&str>,
    connection_ids: &[String],
) -> HashSet<String> {
    let (Some(id), Some((log, _))) = (id, options.idempotency()) else {
        return HashSet::new();
    };
    let keys: Vec<String> = connection_ids.iter().map(|c| sent_key(id, c)).collect();
    match log.posted(&keys, now_seconds()).await {
        Ok(posted) => connection_ids
            .iter()
            .zip(&keys)
            .filter(|(_, key)| posted.contains(*key))
            .map(|(c, _)| c.clone())
            .collect(),
        Err(e) => {
            warn!(message_id = id, error = %e,
                "cannot read idempotency records; posting anyway (a duplicate beats a loss)");
            HashSet::new()
        }
    }
}

/// Records that message `id` reached `connection_ids`.
pub async fn record_posted(
    options: &NotifyConnectionOptions,
    id: Option<&str>,
    connection_ids: &[String],
) {
    let (Some(id), Some((log, window))) = (id, options.idempotency()) else {
        return;
    };
    if connection_ids.is_empty() {
        return;
    }
    let keys: Vec<String> = connection_ids.iter().map(|c| sent_key(id, c)).collect();
    let until = now_seconds() + window.as_secs() as i64;
    if let Err(e) = log.record_posted(&keys, until).await {
        warn!(message_id = id, error = %e,
            "cannot record idempotency records; a redelivery may post again");
    }
}
