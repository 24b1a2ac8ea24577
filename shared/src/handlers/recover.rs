//! The `recover` action: a client back from a gap gets what it missed.
//!
//! `{"action":"recover","id":1,"streams":[{"stream":"user","offset":41,"epoch":"…"},
//! {"stream":"group:chat:42","offset":7,"epoch":"…"}]}`: for each stream, in
//! the order given, the missed `message` frames in offset order, then
//! `{"type":"recovered","id":1,"stream":…,"recovered":true,"offset":N,"epoch":…,"more":false}`
//! (`recovered:false` with a `reason` when the epoch changed or the gap is
//! older than what is kept; `more:true` when the request's cap of messages
//! was reached: recover again from `offset`). Then the route response, an
//! ack. Every stream is checked before anything is sent: one the connection
//! may not read refuses the whole request (`forbidden`), as does one that
//! keeps no history (`bad_request`).

use serde_json::Value;
use tracing::info;

use crate::history::Stream;
use crate::ports::ConnectionRecord;
use crate::protocol::{ServerFrame, StreamPosition, recovered_frame};
use crate::recorder::Recorder;
use crate::recovery::{ReadError, may_read, recover as recover_stream, send_in_order};
use crate::services::Services;

use crate::replies::Refusal;

/// Answers a `recover` of `positions` (checked with the frame) from the
/// connection of `record`.
pub(crate) async fn recover(
    services: &Services,
    record: &ConnectionRecord,
    positions: Vec<StreamPosition>,
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
    let mut budget = services.settings.history.recover_limit;
    for (stream, position) in streams.iter().zip(&positions) {
        let recovery = recover_stream(&recorder, stream, position.offset, &position.epoch, budget)
            .await
            .map_err(|e| Refusal::unavailable(connection_id, "cannot read a stream", e))?;
        budget = budget.saturating_sub(recovery.messages.len());
        let mut frames = recovery.messages;
        let sent = frames.len();
        frames.push(recovered_frame(
            id.as_ref(),
            position.stream.as_str(),
            recovery.lost.map(|l| l.as_str()),
            recovery.position.offset,
            &recovery.position.epoch,
            recovery.more,
        ));
        send_in_order(services, connection_id, &frames)
            .await
            .map_err(|e| Refusal::unavailable(connection_id, "cannot send a recovery", e))?;
        info!(
            connection_id,
            stream = position.stream.as_str(),
            sent,
            recovered = recovery.lost.is_none(),
            more = recovery.more,
            "recover"
        );
    }
    Ok(ServerFrame::ack_ok(id).to_json())
}

/// The refusal for a stream the connection may not read.
pub(crate) fn read_refusal(connection_id: &str, e: ReadError) -> Refusal {
    match e {
        ReadError::Forbidden(message) => Refusal::forbidden(message),
        ReadError::NotKept(_) => Refusal::bad_request(e.to_string()),
        ReadError::Store(e) => Refusal::unavailable(connection_id, "cannot check the stream", e),
    }
}
