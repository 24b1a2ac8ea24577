//! Client frames in (`ClientFrame`, parsed in one place) and the frames the
//! server sends back: errors, acks, pongs, close and presence frames.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::validate::{self, FieldError};

/// The most bytes of client input an error frame quotes: a longer value is
/// cut at a character boundary at or below this and ends in [`QUOTE_ELLIPSIS`],
/// so an error frame stays small whatever the client sent.
pub const QUOTE_LIMIT_BYTES: usize = 64;

/// Marks a quote that was cut.
pub const QUOTE_ELLIPSIS: &str = "…";

/// The longest correlation `id` (as a string) a frame may carry: it is echoed in every answer.
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

/// Client input as an error message or log may quote it: at most
/// [`QUOTE_LIMIT_BYTES`] bytes, cut on a character boundary, then `…`.
pub fn quote(input: &str) -> Cow<'_, str> {
    if input.len() <= QUOTE_LIMIT_BYTES {
        return Cow::Borrowed(input);
    }
    let mut end = QUOTE_LIMIT_BYTES;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{QUOTE_ELLIPSIS}", &input[..end]))
}

/// Error codes carried by `{"type":"error"}` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object with a string `action`, or a field has the wrong type.
    BadRequest,
    /// The frame names an action that has no route.
    UnknownAction,
    /// The token does not grant this.
    Forbidden,
    /// A backing service failed; trying again later may work.
    Unavailable,
    /// Too many client events; slow down.
    RateLimited,
    /// A limit on what the connection may hold is reached (its groups).
    LimitExceeded,
    /// The application's event hook did not answer (timeout, error status).
    HookFailed,
}

/// Why an acknowledged action failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckError {
    pub code: ErrorCode,
    pub message: String,
}

/// Frames the server sends to a client as a route response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
    /// Sent just before the server closes the connection.
    Close {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The answer to an action that carries an optional correlation `id`.
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<AckError>,
    },
}

impl ServerFrame {
    pub fn ack_ok(id: Option<Value>) -> Self {
        ServerFrame::Ack {
            id,
            ok: true,
            error: None,
        }
    }

    pub fn ack_error(id: Option<Value>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Ack {
            id,
            ok: false,
            error: Some(AckError {
                code,
                message: message.into(),
            }),
        }
    }

    /// The answer to a frame whose `action` has no route; quotes the action with [`quote`].
    pub fn unknown_action(action: &str) -> Self {
        let quoted = quote(action);
        ServerFrame::Error {
            code: ErrorCode::UnknownAction,
            message: format!("unknown action \"{quoted}\""),
            action: Some(quoted.into_owned()),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            action: None,
        }
    }

    /// The frame as the JSON text sent to the client.
    pub fn to_json(&self) -> String {
        // Serialising these plain enums cannot fail: no maps with non-string keys, no custom impls.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"bad_request","message":"internal encoding error"}"#
                .to_owned()
        })
    }
}

/// Why a client frame could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame is empty")]
    Empty,
    #[error("the frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("the frame must be a JSON object")]
    NotObject,
    #[error("the frame has no \"action\" field")]
    MissingAction,
    #[error("the \"action\" field must be a string")]
    ActionNotString,
    #[error("the \"{0}\" field is required")]
    MissingField(&'static str),
    #[error("the \"{field}\" field must be at most {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("the \"{field}\" field must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A field of one entry of a list (`streams[1]`) is refused.
    #[error("{list}[{index}]: {source}")]
    Entry {
        list: &'static str,
        index: usize,
        source: FieldError,
    },
    #[error("the \"{field}\" field holds at most {max} entries")]
    TooManyEntries { field: &'static str, max: usize },
    #[error(transparent)]
    Field(#[from] FieldError),
}

impl FrameError {
    /// The error frame a client receives for this error.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::error(ErrorCode::BadRequest, self.to_string())
    }
}

/// A client frame: a JSON object with a string `action`, and its other fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    pub action: String,
    pub fields: Map<String, Value>,
}

impl ClientFrame {
    /// Parses a text frame as API Gateway's `$request.body.action` selection sees it.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let body = body
            .filter(|b| !b.trim().is_empty())
            .ok_or(FrameError::Empty)?;
        let value: Value =
            serde_json::from_str(body).map_err(|e| FrameError::NotJson(e.to_string()))?;
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotObject);
        };
        match fields.remove("action") {
            None => Err(FrameError::MissingAction),
            Some(Value::String(action)) => Ok(ClientFrame { action, fields }),
            Some(_) => Err(FrameError::ActionNotString),
        }
    }

    /// A required string field.
    pub fn required_str(&self, field: &'static str) -> Result<&str, FrameError> {
        self.optional_str(field)?
            .ok_or(FrameError::MissingField(field))
    }

    /// The optional correlation `id`: a string or a number, echoed in acks.
    pub fn correlation_id(&self) -> Result<Option<Value>, FrameError> {
        match self.fields.get("id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) if id.len() > MAX_CORRELATION_ID_BYTES => {
                Err(FrameError::TooLong {
                    field: "id",
                    max: MAX_CORRELATION_ID_BYTES,
                })
            }
            Some(id @ Value::String(s)) => validate::client_id("id", s)
                .map(|()| Some(id.clone()))
                .map_err(FrameError::from),
            Some(id @ Value::Number(_)) => Ok(Some(id.clone())),
            Some(_) => Err(FrameError::WrongType {
                field: "id",
                expected: "a string or a number",
            }),
        }
    }

    /// The optional `seq`: the frame's place in the connection's order of
    /// membership changes, a non-negative integer below 2^53.
    pub fn sequence(&self) -> Result<Option<u64>, FrameError> {
        match self.fields.get("seq") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(seq) if seq < 1 << 53 => Ok(Some(seq)),
                _ => Err(Self::bad_sequence()),
            },
            Some(_) => Err(Self::bad_sequence()),
        }
    }

    fn bad_sequence() -> FrameError {
        FrameError::WrongType {
            field: "seq",
            expected: "a non-negative integer below 2^53",
        }
    }

    /// The `streams` of a `recover`: 1 to [`MAX_RECOVER_STREAMS`] objects
    /// `{"stream":…,"offset":…,"epoch":…}`, each field checked by its
    /// [`validate`] rule, no stream named twice.
    pub fn recover_streams(&self) -> Result<Vec<StreamPosition>, FrameError> {
        let list = match self.fields.get("streams") {
            None | Some(Value::Null) => return Err(FrameError::MissingField("streams")),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(FrameError::WrongType {
                    field: "streams",
                    expected: "a list of {\"stream\",\"offset\",\"epoch\"} objects",
                });
            }
        };
        if list.is_empty() {
            return Err(FrameError::Field(FieldError::Empty("streams")));
        }
        if list.len() > MAX_RECOVER_STREAMS {
            return Err(FrameError::TooManyEntries {
                field: "streams",
                max: MAX_RECOVER_STREAMS,
            });
        }
        let mut positions: Vec<StreamPosition> = Vec::with_capacity(list.len());
        for (index, entry) in list.iter().enumerate() {
            let at = |source| FrameError::Entry {
                list: "streams",
                index,
                source,
            };
            // A missing or non-string value fails the field's own rule.
            let text = |field: &'static str| match entry.get(field) {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            let stream = text("stream");
            validate::stream("stream", stream).map_err(at)?;
            let offset = validate::offset("offset", entry.get("offset").unwrap_or(&Value::Null))
                .map_err(at)?;
            let epoch = text("epoch");
            validate::epoch("epoch", epoch).map_err(at)?;
            if positions.iter().any(|p| p.stream == stream) {
                return Err(at(FieldError::Duplicate("stream")));
            }
            positions.push(StreamPosition {
                stream: stream.to_owned(),
                offset,
                epoch: epoch.to_owned(),
            });
        }
        Ok(positions)
    }

    /// The `limit` of a `history`: 0 to `max`, [`DEFAULT_HISTORY_LIMIT`] (at
    /// most `max`) if absent.
    pub fn history_limit(&self, max: usize) -> Result<usize, FrameError> {
        match self.fields.get("limit") {
            None | Some(Value::Null) => Ok(DEFAULT_HISTORY_LIMIT.min(max)),
            Some(value) => value
                .as_u64()
                .filter(|n| *n <= max as u64)
                .map(|n| n as usize)
                .ok_or(FrameError::Field(FieldError::NotACount {
                    field: "limit",
                    max: max as u64,
                })),
        }
    }

    /// An optional string field: absent or `null` is `None`, any other non-string is an error.
    pub fn optional_str(&self, field: &'static str) -> Result<Option<&str>, FrameError> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FrameError::WrongType {
                field,
                expected: "a string",
            }),
        }
    }
}

/// The most streams one `recover` names.
pub const MAX_RECOVER_STREAMS: usize = 16;
/// The messages a `history` without `limit` asks for.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// Where a client was in a stream, as a `recover` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// `user` or `group:<name>`.
    pub stream: String,
    pub offset: u64,
    pub epoch: String,
}

/// `{"type":"recovered","id":…,"stream":…,"recovered":true|false,"offset":N,
/// "epoch":…,"more":false}`, with `"reason":…` when not recovered: sent after
/// a stream's missed messages.
pub fn recovered_frame(
    id: Option<&Value>,
    stream: &str,
    reason: Option<&'static str>,
    offset: u64,
    epoch: &str,
    more: bool,
) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        stream: &'a str,
        recovered: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
        offset: u64,
        epoch: &'a str,
        more: bool,
    }
    to_json(&Frame {
        kind: "recovered",
        id,
        stream,
        recovered: reason.is_none(),
        reason,
        offset,
        epoch,
        more,
    })
}

/// `{"type":"history","id":…,"stream":…,"offset":N,"epoch":…,"count":n}`:
/// sent after the `count` messages a `history` asked for; `offset` is the
/// stream's latest.
pub fn history_frame(
    id: Option<&Value>,
    stream: &str,
    offset: u64,
    epoch: &str,
    count: usize,
) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        stream: &'a str,
        offset: u64,
        epoch: &'a str,
        count: usize,
    }
    to_json(&Frame {
        kind: "history",
        id,
        stream,
        offset,
        epoch,
        count,
    })
}

/// The last frame a connection closed by `closeConnection` receives.
pub fn close_frame(reason: Option<&str>) -> String {
    ServerFrame::Close {
        reason: reason.map(str::to_owned),
    }
    .to_json()
}

/// A presence change in a presence-enabled group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    /// The user's first connection joined the group.
    Join,
    /// The user's last connection left the group.
    Leave,
}

/// `{"type":"presence","event":"join"|"leave","userId":…,"group":…,"online":N}`:
/// `online` is the number of distinct users in the group after the change.
pub fn presence_frame(event: PresenceEvent, user_id: &str, group: &str, online: i64) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        event: PresenceEvent,
        user_id: &'a str,
        group: &'a str,
        online: i64,
    }
    to_json(&Frame {
        kind: "presence",
        event,
        user_id,
        group,
        online,
    })
}

/// The answer to a `presence` query: the group's distinct users (at most
/// [`PRESENCE_LIST_LIMIT`] listed) and its connection count.
pub fn presence_answer(
    id: Option<Value>,
    group: &str,
    users: &[String],
    user_count: usize,
    connections: usize,
) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        group: &'a str,
        user_ids: &'a [String],
        users: usize,
        connections: usize,
        truncated: bool,
    }
    to_json(&Answer {
        kind: "presence",
        id,
        group,
        user_ids: users,
        users: user_count,
        connections,
        truncated: user_count > users.len(),
    })
}

/// The answer to an `event` the application's event hook answered:
/// `{"type":"ack","id":…,"ok":true,"data":<the hook's answer>}`.
pub fn event_answer(id: Option<Value>, data: &Value) -> String {
    #[derive(Serialize)]
    struct Answer<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        ok: bool,
        data: &'a Value,
    }
    to_json(&Answer {
        kind: "ack",
        id,
        ok: true,
        data,
    })
}

/// `{"type":"ack","id":…,"ok":true,"stream":…,"offset":N,"epoch":…}`: the
/// ack of a `publish` to a group that keeps history. The live fan-out skips
/// the sender, so this is how the sender learns the offset its own event took
/// and sees no gap in the group's stream.
pub fn published_ack(id: Option<Value>, stream: &str, offset: u64, epoch: &str) -> String {
    #[derive(Serialize)]
    struct Ack<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        ok: bool,
        stream: &'a str,
        offset: u64,
        epoch: &'a str,
    }
    to_json(&Ack {
        kind: "ack",
        id,
        ok: true,
        stream,
        offset,
        epoch,
    })
}

/// Plain structs of strings and numbers always serialise.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The most user ids a presence answer lists (a frame must stay under 128 KB).
pub const PRESENCE_LIST_LIMIT: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_frame_with_an_action() {
        let frame = ClientFrame::parse(Some(r#"{"action":"ping","name":"Stepan"}"#)).unwrap();
        assert_eq!(frame.action, "ping");
        assert_eq!(frame.optional_str("name").unwrap(), Some("Stepan"));
        assert_eq!(frame.optional_str("other").unwrap(), None);
    }

    #[test]
    fn rejects_frames_that_cannot_be_routed() {
        assert_eq!(ClientFrame::parse(None), Err(FrameError::Empty));
        assert_eq!(ClientFrame::parse(Some("  ")), Err(FrameError::Empty));
        assert!(matches!(
            ClientFrame::parse(Some("hello")),
            Err(FrameError::NotJson(_))
        ));
        assert_eq!(
            ClientFrame::parse(Some("[1,2]")),
            Err(FrameError::NotObject)
        );
        assert_eq!(
            ClientFrame::parse(Some("\"ping\"")),
            Err(FrameError::NotObject)
        );
        assert_eq!(
            ClientFrame::parse(Some("{}")),
            Err(FrameError::MissingAction)
        );
        assert_eq!(
            ClientFrame::parse(Some(r#"{"action":7}"#)),
            Err(FrameError::ActionNotString)
        );
        assert_eq!(
            ClientFrame::parse(Some(r#"{"action":null}"#)),
            Err(FrameError::ActionNotString)
        );
    }

    #[test]
    fn a_non_string_field_is_a_type_error() {
        let frame = ClientFrame::parse(Some(r#"{"action":"ping","name":5}"#)).unwrap();
        assert_eq!(
            frame.optional_str("name"),
            Err(FrameError::WrongType {
                field: "name",
                expected: "a string"
            })
        );
    }

    #[test]
    fn quotes_are_cut_on_a_character_boundary() {
        assert_eq!(quote("dance"), "dance");
        let exact = "a".repeat(QUOTE_LIMIT_BYTES);
        assert_eq!(quote(&exact), exact);
        assert_eq!(
            quote(&"b".repeat(QUOTE_LIMIT_BYTES + 1)),
            format!("{}…", "b".repeat(QUOTE_LIMIT_BYTES))
        );
        // 63 ASCII bytes, then a 3-byte character straddling the limit: cut before it.
        let straddling = format!("{}€€", "c".repeat(QUOTE_LIMIT_BYTES - 1));
        assert_eq!(
            quote(&straddling),
            format!("{}…", "c".repeat(QUOTE_LIMIT_BYTES - 1))
        );
    }

    #[test]
    fn long_correlation_ids_are_refused_not_echoed() {
        let long = format!(
            r#"{{"action":"subscribe","id":"{}"}}"#,
            "i".repeat(MAX_CORRELATION_ID_BYTES + 1)
        );
        let frame = ClientFrame::parse(Some(&long)).unwrap();
        assert_eq!(
            frame.correlation_id(),
            Err(FrameError::TooLong {
                field: "id",
                max: MAX_CORRELATION_ID_BYTES
            })
        );
    }

    #[test]
    fn publish_acks_in_a_history_group_carry_the_offset() {
        assert_eq!(
            published_ack(Some(Value::from(3)), "group:chat:1", 17, "ab12"),
            r#"{"type":"ack","id":3,"ok":true,"stream":"group:chat:1","offset":17,"epoch":"ab12"}"#
        );
        assert_eq!(
            published_ack(None, "group:g", 1, "e"),
            r#"{"type":"ack","ok":true,"stream":"group:g","offset":1,"epoch":"e"}"#
        );
    }

    #[test]
    fn event_answers_carry_the_hooks_data() {
        assert_eq!(
            event_answer(Some(Value::from("7")), &serde_json::json!({"echo":[1,2]})),
            r#"{"type":"ack","id":"7","ok":true,"data":{"echo":[1,2]}}"#
        );
        assert_eq!(
            event_answer(None, &Value::Null),
            r#"{"type":"ack","ok":true,"data":null}"#
        );
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        assert_eq!(
            ServerFrame::Pong {
                name: Some("Stepan".into())
            }
            .to_json(),
            r#"{"type":"pong","name":"Stepan"}"#
        );
        assert_eq!(
            ServerFrame::Pong { name: None }.to_json(),
            r#"{"type":"pong"}"#
        );
        assert_eq!(
            ServerFrame::Error {
                code: ErrorCode::UnknownAction,
                message: "m".into(),
                action: Some("x".into())
            }
            .to_json(),
            r#"{"type":"error","code":"unknown_action","message":"m","action":"x"}"#
        );
    }
}
