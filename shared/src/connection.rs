//! Connection lifetime rules: how long a record outlives its connection, and
//! how long after `$connect` a 410 means "not open yet" rather than "gone".

use std::time::Duration;

use crate::ports::ConnectionRecord;

/// How long a record outlives its connection at most: API Gateway's 2-hour
/// connection limit plus a margin, after which DynamoDB's TTL removes records
/// whose `$disconnect` never ran.
pub const RECORD_TTL: Duration = Duration::from_secs(2 * 3600 + 15 * 60);

/// How long after `$connect` a 410 may mean "not open yet" rather than "gone":
/// API Gateway refuses posts until `$connect` returns (at most its 29 s
/// integration timeout), while the record and memberships exist from the start.
pub const CONNECT_GRACE_MS: i64 = 60_000;

/// The `$connect` query parameter by which a client opts into enveloped user
/// messages (`?envelope=1`): see [`ConnectionRecord::envelope`].
pub const ENVELOPE_PARAMETER: &str = "envelope";

/// An `envelope` query parameter that is neither `1`/`true` nor `0`/`false`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the \"envelope\" query parameter must be 1, true, 0 or false")]
pub struct BadEnvelope;

/// What the `envelope` query parameter asks for (absent: no).
pub fn wants_envelope(value: Option<&str>) -> Result<bool, BadEnvelope> {
    match value {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(BadEnvelope),
    }
}

/// Whether a record connected so recently that a 410 for it means "not open yet".
pub fn is_opening(record: &ConnectionRecord, now_ms: i64) -> bool {
    now_ms - record.connected_at_ms < CONNECT_GRACE_MS
}
