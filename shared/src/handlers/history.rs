//! The `history` action: the latest messages of a stream, for a fresh page.
//!
//! `{"action":"history","id":2,"stream":"group:chat:42","limit":50}` (limit 0
//! to `HISTORY_RECOVER_LIMIT`, default 50; 0 asks only for the position)
//! sends the stream's latest `limit` kept messages as `message` frames in
//! offset order, then `{"type":"history","id":2,"stream":…,"offset":N,
//! "epoch":…,"count":n}` (`offset` is the stream's latest: recover from it
//! later; `"more":true` when older kept messages were left out to stay within
//! `HISTORY_READ_BYTES`), then the route response, an ack. The same
//! permissions, budgets, `batch` and refusals as `recover`.

use serde_json::Value;
use tracing::info;

use crate::ports::ConnectionRecord;
use crate::protocol::{ServerFrame, StreamName, history_frame};
use crate::recorder::Recorder;
use crate::recovery::{answer, latest, may_read};
use crate::services::Services;

use super::recover::{answer_refusal, read_refusal};
use crate::replies::Refusal;

/// Answers a `history` of the stream `name`, its latest `limit` messages
/// (both checked with the frame), from the connection of `record`.
pub(crate) async fn history(
    services: &Services,
    record: &ConnectionRecord,
    name: StreamName,
    limit: usize,
    batch: bool,
    id: Option<Value>,
) -> Result<String, Refusal> {
    let connection_id = record.connection_id.as_str();
    let stream = name.of(&record.user_id);
    let name = name.as_str();
    may_read(services, record, &stream)
        .await
        .map_err(|e| read_refusal(connection_id, e))?;
    let Some(recorder) = Recorder::of(services) else {
        return Err(Refusal::bad_request("no stream keeps history"));
    };
    // Room for the marker beside the messages.
    let max_bytes = services
        .settings
        .history
        .answer_bytes()
        .saturating_sub(1024);
    let latest = latest(&recorder, &stream, limit, max_bytes)
        .await
        .map_err(|e| Refusal::unavailable(connection_id, "cannot read a stream", e))?;
    let mut frames = latest.messages;
    let count = frames.len();
    frames.push(history_frame(
        id.as_ref(),
        name,
        latest.position.offset,
        &latest.position.epoch,
        count,
        latest.more,
    ));
    let posted = answer(services, connection_id, &record.user_id, frames, batch)
        .await
        .map_err(|e| answer_refusal(connection_id, e))?;
    info!(
        connection_id,
        stream = name,
        count,
        more = latest.more,
        posts = posted.posts,
        bytes = posted.bytes,
        "history"
    );
    Ok(ServerFrame::ack_ok(id).to_json())
}
