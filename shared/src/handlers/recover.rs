//! The `recover` action: a client back from a gap gets what it missed.
//!
//! `{"action":"recover","id":1,"streams":[{"stream":"user","offset":41,"epoch":"…"},
//! {"stream":"group:chat:42","offset":7,"epoch":"…"}]}`: for each stream, in
//! the order given, the missed `message` frames in offset order, then
//! `{"type":"recovered","id":1,"stream":…,"recovered":true,"offset":N,"epoch":…,"more":false}`
//! (`recovered:false` with a `reason` when the epoch changed or the gap is
//! older than what is kept; `more:true` when the request's cap of messages
//! or `HISTORY_READ_BYTES` was reached: recover again from `offset`). Then
//! the route response, an ack. Every stream is checked before anything is
//! sent: one the connection may not read refuses the whole request
//! (`forbidden`), as does one that keeps no history (`bad_request`). The
//! whole answer is read, then booked and posted ([`answer`]): with
//! `"batch":true` packed into `batch` frames; an answer the user's bytes or
//! the stack's post budget has no room for is refused (`rate_limited`, with
//! `retryAfterMs`) with nothing sent.

use serde_json::Value;
use tracing::info;

use crate::history::Stream;
use crate::ports::ConnectionRecord;
use crate::protocol::{ServerFrame, StreamPosition, recovered_frame};
use crate::recorder::Recorder;
use crate::recovery::{
    AnswerError, Budget, ReadError, answer, may_read, recover as recover_stream,
};
use crate::services::Services;

use crate::replies::Refusal;

/// Answers a `recover` of `positions` (checked with the frame) from the
/// connection of `record`.
pub(crate) async fn recover(
    services: &Services,
    record: &ConnectionRecord,
    positions: Vec<StreamPosition>,
    batch: bool,
    id: Option<Value>,
) -> Result<String, Refusal> {
    let connection_id = record.connection_id.as_str();
    let mut streams: Vec<Stream> = Vec::with_capacity(positions.len());
    for position in &positions {
        let stream = position.stream.of(&record.user_id);
        may_read(services, record, &stream)
            .await
            .map_err(|e| read_refusal(connection_id, e))?;
        streams.push(stream);
    }
    let Some(recorder) = Recorder::of(services) else {
        return Err(Refusal::bad_request("no stream keeps history"));
    };
    let settings = &services.settings.history;
    let mut budget = Budget {
        messages: settings.recover_limit,
        // Room for every stream's marker beside the messages.
        bytes: settings.answer_bytes().saturating_sub(MARKER_ROOM),
    };
    let mut frames = Vec::new();
    for (stream, position) in streams.iter().zip(&positions) {
        let recovery = recover_stream(
            &recorder,
            stream,
            position.offset,
            &position.epoch,
            &mut budget,
        )
        .await
        .map_err(|e| Refusal::unavailable(connection_id, "cannot read a stream", e))?;
        info!(
            connection_id,
            stream = position.stream.as_str(),
            sent = recovery.messages.len(),
            recovered = recovery.lost.is_none(),
            more = recovery.more,
            "recover"
        );
        frames.extend(recovery.messages);
        frames.push(recovered_frame(
            id.as_ref(),
            position.stream.as_str(),
            recovery.lost.map(|l| l.as_str()),
            recovery.position.offset,
            &recovery.position.epoch,
            recovery.more,
        ));
    }
    answer(services, connection_id, &record.user_id, frames, batch)
        .await
        .map_err(|e| answer_refusal(connection_id, e))?;
    Ok(ServerFrame::ack_ok(id).to_json())
}

/// What one answer keeps for its markers: a `recovered` frame is at most
/// about 400 bytes (a 128-byte id, a stream name, a 64-byte epoch), and a
/// request names at most 16 streams.
const MARKER_ROOM: usize = 16 * 1024;

/// The refusal for an answer that was not posted (or not all of it).
pub(crate) fn answer_refusal(connection_id: &str, e: AnswerError) -> Refusal {
    match e {
        AnswerError::Bytes(e) => Refusal::limited(connection_id, e),
        AnswerError::Posts { retry_after } => Refusal::limited_for(
            format!("{}; try again later", crate::pacing::BUDGET_BOOKED),
            retry_after,
        ),
        AnswerError::Gateway(e) => Refusal::unavailable(connection_id, "cannot send an answer", e),
    }
}

/// The refusal for a stream the connection may not read.
pub(crate) fn read_refusal(connection_id: &str, e: ReadError) -> Refusal {
    match e {
        ReadError::Forbidden(message) => Refusal::forbidden(message),
        ReadError::NotKept(_) => Refusal::bad_request(e.to_string()),
        ReadError::Store(e) => Refusal::unavailable(connection_id, "cannot check the stream", e),
    }
}
