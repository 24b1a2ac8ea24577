//! The `history` action: the latest messages of a stream, for a fresh page.
//!
//! `{"action":"history","id":2,"stream":"group:chat:42","limit":50}` (limit 0
//! to `HISTORY_RECOVER_LIMIT`, default 50; 0 asks only for the position)
//! sends the stream's latest `limit` kept messages as `message` frames in
//! offset order, then `{"type":"history","id":2,"stream":…,"offset":N,
//! "epoch":…,"count":n}` (`offset` is the stream's latest: recover from it
//! later), then the route response, an ack. The same permissions as `recover`.

use serde_json::Value;
use tracing::info;

use crate::ports::ConnectionRecord;
use crate::protocol::{ServerFrame, StreamName, history_frame};
use crate::recorder::Recorder;
use crate::recovery::{latest, may_read, send_in_order};
use crate::services::Services;

use super::recover::read_refusal;
use crate::replies::Refusal;

/// Answers a `history` of the stream `name`, its latest `limit` messages
/// (both checked with the frame), from the connection of `record`.
pub(crate) async fn history(
    services: &Services,
    record: &ConnectionRecord,
    name: StreamName,
    limit: usize,
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
    let (position, mut frames) = latest(&recorder, &stream, limit)
        .await
        .map_err(|e| Refusal::unavailable(connection_id, "cannot read a stream", e))?;
    let count = frames.len();
    frames.push(history_frame(
        id.as_ref(),
        name,
        position.offset,
        &position.epoch,
        count,
    ));
    send_in_order(services, connection_id, &frames)
        .await
        .map_err(|e| Refusal::unavailable(connection_id, "cannot send a history", e))?;
    info!(connection_id, stream = name, count, "history");
    Ok(ServerFrame::ack_ok(id).to_json())
}
