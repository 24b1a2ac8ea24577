//! Wire formats: client frames, server frames and queue messages.
//!
//! One place parses client frames and one place renders what a client receives,
//! so every route answers malformed input the same way.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// API Gateway's maximum WebSocket message size (128 KB). Data larger than this
/// can never be delivered, so it is rejected before any post.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

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
    #[error("the \"{field}\" field must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
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
            Some(id @ (Value::String(_) | Value::Number(_))) => Ok(Some(id.clone())),
            Some(_) => Err(FrameError::WrongType {
                field: "id",
                expected: "a string or a number",
            }),
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

/// Why a queue message cannot be processed. These are permanent: the message
/// goes back to the queue and, after `maxReceiveCount`, to its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message has no body")]
    NoBody,
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("\"{0}\" must not be empty")]
    EmptyField(&'static str),
    #[error("the message would be {size} bytes, over API Gateway's {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { size: usize },
}

/// A NotifyUser queue message: `{"userId":"1234","data":<any JSON>}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyUser {
    pub user_id: String,
    pub data: Box<RawValue>,
    /// Optional idempotency key: see [`validate_message_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A NotifyConnection queue message: `{"connectionId":"…","data":<any JSON>}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyConnection {
    pub connection_id: String,
    pub data: Box<RawValue>,
    /// Optional idempotency key: see [`validate_message_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The longest message `id` (an idempotency key).
pub const MAX_MESSAGE_ID_BYTES: usize = 128;

/// A message `id` is 1 to 128 bytes of printable ASCII without `#`: a UUID,
/// a ULID or `order-42:shipped` all qualify. A redelivery of a message with an
/// id is not posted twice to the same connection within the idempotency window.
pub fn validate_message_id(id: &str) -> Result<(), MessageError> {
    if id.is_empty() {
        return Err(MessageError::EmptyField("id"));
    }
    if id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(MessageError::Malformed(format!(
            "\"id\" is longer than {MAX_MESSAGE_ID_BYTES} bytes"
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(MessageError::Malformed(
            "\"id\" may hold only printable ASCII other than '#' and space".into(),
        ));
    }
    Ok(())
}

impl NotifyUser {
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        let message: Self = parse_message(body)?;
        if message.user_id.is_empty() {
            return Err(MessageError::EmptyField("userId"));
        }
        if let Some(id) = &message.id {
            validate_message_id(id)?;
        }
        Ok(message)
    }
}

impl NotifyConnection {
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        let message: Self = parse_message(body)?;
        if message.connection_id.is_empty() {
            return Err(MessageError::EmptyField("connectionId"));
        }
        if let Some(id) = &message.id {
            validate_message_id(id)?;
        }
        Ok(message)
    }

    /// The message body for `connection_id` carrying `data` unchanged, and
    /// the idempotency `id` if there is one.
    pub fn body(connection_id: &str, data: &RawValue, id: Option<&str>) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            connection_id: &'a str,
            data: &'a RawValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
        }
        // Strings and an already-valid raw value always serialise.
        serde_json::to_string(&Body {
            connection_id,
            data,
            id,
        })
        .unwrap_or_default()
    }
}

fn parse_message<T: serde::de::DeserializeOwned>(body: Option<&str>) -> Result<T, MessageError> {
    let body = body.ok_or(MessageError::NoBody)?;
    serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))
}

/// What a client receives for `data`: a JSON string as its text, any other
/// value as compact JSON with its keys, order and numbers exactly as sent.
/// Errors when the result exceeds [`MAX_MESSAGE_BYTES`].
pub fn render_data(data: &RawValue) -> Result<String, MessageError> {
    let raw = data.get();
    let text = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|e| MessageError::Malformed(e.to_string()))?
    } else {
        compact_json(raw)
    };
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { size: text.len() });
    }
    Ok(text)
}

/// The frame a server send delivers: `{"type":"message","from":"server","group":…,"data":…}`,
/// with `group` left out for sends that do not go through a group (a user, a
/// connection, a broadcast) and `data` as compact JSON. Errors when it exceeds
/// [`MAX_MESSAGE_BYTES`].
pub fn server_message(group: Option<&str>, data: &RawValue) -> Result<String, MessageError> {
    message_frame("server", group, None, data)
}

/// The frame a group member receives for a server send to the group.
pub fn group_message(group: &str, data: &RawValue) -> Result<String, MessageError> {
    server_message(Some(group), data)
}

/// The frame a client event (`publish`) delivers to the other members:
/// `{"type":"message","from":"client","group":…,"userId":…,"data":…}`.
pub fn client_message(group: &str, user_id: &str, data: &RawValue) -> Result<String, MessageError> {
    message_frame("client", Some(group), Some(user_id), data)
}

fn message_frame(
    from: &'static str,
    group: Option<&str>,
    user_id: Option<&str>,
    data: &RawValue,
) -> Result<String, MessageError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        from: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
        data: &'a RawValue,
    }
    let compact = RawValue::from_string(compact_json(data.get()))
        .map_err(|e| MessageError::Malformed(e.to_string()))?;
    let text = serde_json::to_string(&Frame {
        kind: "message",
        from,
        group,
        user_id,
        data: &compact,
    })
    .map_err(|e| MessageError::Malformed(e.to_string()))?;
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { size: text.len() });
    }
    Ok(text)
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

/// Plain structs of strings and numbers always serialise.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The most user ids a presence answer lists (a frame must stay under 128 KB).
pub const PRESENCE_LIST_LIMIT: usize = 1000;

/// The newest Commands message version this code understands.
pub const COMMAND_VERSION: u32 = 1;

/// A Commands queue message. Every body carries `"version":1` and `"type"`;
/// the README documents each type.
#[derive(Debug)]
pub enum Command {
    // Each send may carry `id`, an idempotency key (see [`validate_message_id`]).
    SendToGroup {
        group: String,
        data: Box<RawValue>,
        exclude_connection_ids: Vec<String>,
        id: Option<String>,
    },
    /// To a user's connections, or only those in `group`.
    SendToUser {
        user_id: String,
        group: Option<String>,
        data: Box<RawValue>,
        id: Option<String>,
    },
    SendToConnection {
        connection_id: String,
        data: Box<RawValue>,
        id: Option<String>,
    },
    Broadcast {
        data: Box<RawValue>,
        exclude_connection_ids: Vec<String>,
        id: Option<String>,
    },
    AddConnectionToGroup {
        connection_id: String,
        group: String,
    },
    RemoveConnectionFromGroup {
        connection_id: String,
        group: String,
    },
    /// A user-level membership: every current connection of the user joins,
    /// and so does every future one until it is removed or expires.
    AddUserToGroup {
        user_id: String,
        group: String,
        ttl_seconds: Option<u64>,
    },
    RemoveUserFromGroup {
        user_id: String,
        group: String,
    },
    CloseConnection {
        connection_id: String,
        reason: Option<String>,
    },
    CloseUserConnections {
        user_id: String,
        reason: Option<String>,
    },
}

/// The command types this code understands, as named in messages.
pub const COMMAND_TYPES: &str = "sendToGroup, sendToUser, sendToConnection, broadcast, \
addConnectionToGroup, removeConnectionFromGroup, addUserToGroup, removeUserFromGroup, \
closeConnection, closeUserConnections";

/// How long a user-level membership lasts when the command names no `ttlSeconds`.
pub const USER_GROUP_DEFAULT_TTL_SECONDS: u64 = 30 * 24 * 3600;
/// The longest `ttlSeconds` a user-level membership may ask for.
pub const USER_GROUP_MAX_TTL_SECONDS: u64 = 365 * 24 * 3600;
/// The longest user id accepted by commands and the HTTP API.
pub const MAX_USER_ID_BYTES: usize = 256;
/// The longest close reason (API Gateway's close frames carry at most 123 bytes).
pub const MAX_REASON_BYTES: usize = 123;

/// The last frame a connection closed by `closeConnection` receives.
pub fn close_frame(reason: Option<&str>) -> String {
    ServerFrame::Close {
        reason: reason.map(str::to_owned),
    }
    .to_json()
}

impl Command {
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        #[derive(Deserialize)]
        struct Envelope {
            version: u32,
            #[serde(rename = "type")]
            kind: String,
        }
        /// Every field any command has; each type checks the ones it needs.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            group: Option<String>,
            user_id: Option<String>,
            connection_id: Option<String>,
            // `"data": null` is data (JSON null), not a missing field.
            #[serde(default, deserialize_with = "present")]
            data: Option<Box<RawValue>>,
            #[serde(default)]
            exclude_connection_ids: Vec<String>,
            reason: Option<String>,
            ttl_seconds: Option<u64>,
            id: Option<String>,
        }
        let envelope: Envelope = parse_message(body)?;
        if envelope.version != COMMAND_VERSION {
            return Err(MessageError::Malformed(format!(
                "unsupported command version {}; this deployment understands version {COMMAND_VERSION}",
                envelope.version
            )));
        }
        let f: Fields = parse_message(body)?;
        let kind = envelope.kind.as_str();
        let missing =
            |field: &'static str| MessageError::Malformed(format!("{kind} needs \"{field}\""));
        let group = |g: Option<String>| -> Result<String, MessageError> {
            let g = g.ok_or_else(|| missing("group"))?;
            crate::groups::validate_group(&g)
                .map_err(|e| MessageError::Malformed(format!("\"group\": {e}")))?;
            Ok(g)
        };
        let id = |value: Option<String>, field: &'static str| -> Result<String, MessageError> {
            let value = value.ok_or_else(|| missing(field))?;
            if value.is_empty() {
                return Err(MessageError::EmptyField(field));
            }
            if value.len() > MAX_USER_ID_BYTES {
                return Err(MessageError::Malformed(format!(
                    "\"{field}\" is longer than {MAX_USER_ID_BYTES} bytes"
                )));
            }
            Ok(value)
        };
        let data = |d: Option<Box<RawValue>>| d.ok_or_else(|| missing("data"));
        let message_id = f.id.clone();
        if let Some(message_id) = &message_id {
            validate_message_id(message_id)?;
        }
        let reason = |r: Option<String>| -> Result<Option<String>, MessageError> {
            match r {
                Some(r) if r.len() > MAX_REASON_BYTES => Err(MessageError::Malformed(format!(
                    "\"reason\" is longer than {MAX_REASON_BYTES} bytes"
                ))),
                r => Ok(r),
            }
        };
        Ok(match kind {
            "sendToGroup" => Command::SendToGroup {
                group: group(f.group)?,
                data: data(f.data)?,
                exclude_connection_ids: f.exclude_connection_ids,
                id: message_id,
            },
            "sendToUser" => Command::SendToUser {
                user_id: id(f.user_id, "userId")?,
                group: f.group.map(|g| group(Some(g))).transpose()?,
                data: data(f.data)?,
                id: message_id,
            },
            "sendToConnection" => Command::SendToConnection {
                connection_id: id(f.connection_id, "connectionId")?,
                data: data(f.data)?,
                id: message_id,
            },
            "broadcast" => Command::Broadcast {
                data: data(f.data)?,
                exclude_connection_ids: f.exclude_connection_ids,
                id: message_id,
            },
            "addConnectionToGroup" => Command::AddConnectionToGroup {
                connection_id: id(f.connection_id, "connectionId")?,
                group: group(f.group)?,
            },
            "removeConnectionFromGroup" => Command::RemoveConnectionFromGroup {
                connection_id: id(f.connection_id, "connectionId")?,
                group: group(f.group)?,
            },
            "addUserToGroup" => {
                if let Some(ttl) = f.ttl_seconds
                    && !(1..=USER_GROUP_MAX_TTL_SECONDS).contains(&ttl)
                {
                    return Err(MessageError::Malformed(format!(
                        "\"ttlSeconds\" must be between 1 and {USER_GROUP_MAX_TTL_SECONDS}"
                    )));
                }
                Command::AddUserToGroup {
                    user_id: id(f.user_id, "userId")?,
                    group: group(f.group)?,
                    ttl_seconds: f.ttl_seconds,
                }
            }
            "removeUserFromGroup" => Command::RemoveUserFromGroup {
                user_id: id(f.user_id, "userId")?,
                group: group(f.group)?,
            },
            "closeConnection" => Command::CloseConnection {
                connection_id: id(f.connection_id, "connectionId")?,
                reason: reason(f.reason)?,
            },
            "closeUserConnections" => Command::CloseUserConnections {
                user_id: id(f.user_id, "userId")?,
                reason: reason(f.reason)?,
            },
            other => {
                return Err(MessageError::Malformed(format!(
                    "unknown command type \"{other}\"; known: {COMMAND_TYPES}"
                )));
            }
        })
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// A Deliveries queue message (internal): one finished frame for up to
/// [`DELIVERY_BATCH`] connections, so fan-out to a large group costs one
/// message per batch, not one per connection. `frame` is the JSON frame every
/// connection receives, embedded as JSON (not as an escaped string).
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBatch {
    pub connection_ids: Vec<String>,
    pub frame: Box<RawValue>,
    /// 1 for the first try; a retry of the connections that failed carries the next number.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The idempotency key of the message this frame came from, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// Connections per Deliveries message.
pub const DELIVERY_BATCH: usize = 100;

impl DeliveryBatch {
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        let batch: Self = parse_message(body)?;
        if batch.frame.get().len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge {
                size: batch.frame.get().len(),
            });
        }
        Ok(batch)
    }

    /// Batches of `frame` (a JSON frame from this module) for `connection_ids`.
    pub fn bodies(
        frame: &str,
        connection_ids: &[String],
        id: Option<&str>,
    ) -> Result<Vec<String>, MessageError> {
        let frame = RawValue::from_string(frame.to_owned())
            .map_err(|e| MessageError::Malformed(e.to_string()))?;
        Ok(connection_ids
            .chunks(DELIVERY_BATCH)
            .map(|chunk| {
                DeliveryBatch {
                    connection_ids: chunk.to_vec(),
                    frame: frame.clone(),
                    attempt: 1,
                    id: id.map(str::to_owned),
                }
                .body()
            })
            .collect())
    }

    pub fn body(&self) -> String {
        // Strings, numbers and an already-valid raw value always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Removes insignificant whitespace from valid JSON text. Working on the text,
/// rather than through `serde_json::Value`, keeps key order and number precision.
fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

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

    #[test]
    fn data_strings_are_delivered_as_their_text() {
        assert_eq!(render_data(&raw(r#""cokoliv""#)).unwrap(), "cokoliv");
        assert_eq!(
            render_data(&raw(r#""line\nbreak \"q\" \u00e9""#)).unwrap(),
            "line\nbreak \"q\" é"
        );
    }

    #[test]
    fn other_data_is_compact_json_with_order_and_precision_kept() {
        let data = raw(
            "{ \"z\" : 1,\n \"a\": [ 1 , 2.50 , 123456789012345678901234567890 ],\t\"s\": \"keep  spaces \\\" here\" }",
        );
        assert_eq!(
            render_data(&data).unwrap(),
            r#"{"z":1,"a":[1,2.50,123456789012345678901234567890],"s":"keep  spaces \" here"}"#
        );
        assert_eq!(render_data(&raw("null")).unwrap(), "null");
        assert_eq!(render_data(&raw(" 42 ")).unwrap(), "42");
    }

    #[test]
    fn data_over_the_message_limit_is_rejected() {
        let exact = format!("\"{}\"", "x".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(render_data(&raw(&exact)).unwrap().len(), MAX_MESSAGE_BYTES);
        let over = format!("\"{}\"", "x".repeat(MAX_MESSAGE_BYTES + 1));
        assert_eq!(
            render_data(&raw(&over)),
            Err(MessageError::TooLarge {
                size: MAX_MESSAGE_BYTES + 1
            })
        );
    }

    #[test]
    fn queue_messages_parse_and_reject_bad_shapes() {
        let m = NotifyUser::parse(Some(r#"{"userId":"1234","data":"cokoliv"}"#)).unwrap();
        assert_eq!(m.user_id, "1234");
        assert_eq!(m.data.get(), r#""cokoliv""#);
        assert_eq!(NotifyUser::parse(None).unwrap_err(), MessageError::NoBody);
        assert_eq!(
            NotifyUser::parse(Some(r#"{"userId":"","data":1}"#)).unwrap_err(),
            MessageError::EmptyField("userId")
        );
        let err = NotifyUser::parse(Some(r#"{"userId":1234,"data":1}"#)).unwrap_err();
        assert!(
            matches!(&err, MessageError::Malformed(m) if m.contains("invalid type: integer `1234`, expected a string")),
            "{err}"
        );
        let err = NotifyConnection::parse(Some(r#"{"connectionId":"abc"}"#)).unwrap_err();
        assert!(
            matches!(&err, MessageError::Malformed(m) if m.contains("missing field `data`")),
            "{err}"
        );
        assert!(matches!(
            NotifyConnection::parse(Some("not json")),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn notify_connection_body_carries_data_unchanged() {
        let body = NotifyConnection::body("c1", &raw(r#"{"b": 2, "a": 1}"#), None);
        assert_eq!(body, r#"{"connectionId":"c1","data":{"b": 2, "a": 1}}"#);
        let parsed = NotifyConnection::parse(Some(&body)).unwrap();
        assert_eq!(parsed.connection_id, "c1");
        assert_eq!(parsed.data.get(), r#"{"b": 2, "a": 1}"#);
    }
}
