//! Queue message bodies (NotifyUser, NotifyConnection, Deliveries batches) and
//! the rendering of the message frames they carry to clients.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::validate::{self, FieldError};

/// API Gateway's maximum WebSocket message size (128 KB). Data larger than this
/// can never be delivered, so it is rejected before any post.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

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
    /// Whom the post is for, as the post budget's fair share counts it
    /// (`user:{id}`; see `crate::pacing`); none: not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booker: Option<String>,
}

impl From<FieldError> for MessageError {
    /// A refused field: an empty one keeps its own variant, any other is malformed.
    fn from(e: FieldError) -> Self {
        match e {
            FieldError::Empty(field) => MessageError::EmptyField(field),
            e => MessageError::Malformed(e.named()),
        }
    }
}

/// A message `id` (an idempotency key): see [`validate::message_id`]. A
/// redelivery of a message with an id is not posted twice to the same
/// connection within the idempotency window.
pub fn validate_message_id(id: &str) -> Result<(), MessageError> {
    Ok(validate::message_id("id", id)?)
}

/// Checks the optional message `id`.
fn check_message_id(id: Option<&str>) -> Result<(), MessageError> {
    id.map_or(Ok(()), validate_message_id)
}

impl NotifyUser {
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        let message: Self = parse_message(body)?;
        validate::user_id("userId", &message.user_id)?;
        check_message_id(message.id.as_deref())?;
        Ok(message)
    }
}

impl NotifyConnection {
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        let message: Self = parse_message(body)?;
        validate::connection_id("connectionId", &message.connection_id)?;
        check_message_id(message.id.as_deref())?;
        Ok(message)
    }

    /// The message body for `connection_id` carrying `data` unchanged, the
    /// idempotency `id` and the `booker` if there are.
    pub fn body(
        connection_id: &str,
        data: &RawValue,
        id: Option<&str>,
        booker: Option<&str>,
    ) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            connection_id: &'a str,
            data: &'a RawValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            booker: Option<&'a str>,
        }
        // Strings and an already-valid raw value always serialise.
        serde_json::to_string(&Body {
            connection_id,
            data,
            id,
            booker,
        })
        .unwrap_or_default()
    }
}

pub(super) fn parse_message<T: serde::de::DeserializeOwned>(
    body: Option<&str>,
) -> Result<T, MessageError> {
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
    /// How many times these connections came back only because the
    /// Management API throttled them: counted apart from `attempt`, so a busy
    /// quota does not spend the attempts that guard against poison.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled: u32,
    /// Whom the frame is for, as the post budget's fair share counts it
    /// (`user:{id}` or `group:{name}`; see `crate::pacing`); none: not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booker: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
        booker: Option<&str>,
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
                    throttled: 0,
                    booker: booker.map(str::to_owned),
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
        let body = NotifyConnection::body("c1", &raw(r#"{"b": 2, "a": 1}"#), None, None);
        assert_eq!(body, r#"{"connectionId":"c1","data":{"b": 2, "a": 1}}"#);
        let parsed = NotifyConnection::parse(Some(&body)).unwrap();
        assert_eq!(parsed.connection_id, "c1");
        assert_eq!(parsed.data.get(), r#"{"b": 2, "a": 1}"#);
        assert_eq!(parsed.booker, None);
        let body = NotifyConnection::body("c1", &raw("1"), Some("m"), Some("user:bo"));
        assert_eq!(
            body,
            r#"{"connectionId":"c1","data":1,"id":"m","booker":"user:bo"}"#
        );
        let parsed = NotifyConnection::parse(Some(&body)).unwrap();
        assert_eq!(parsed.booker.as_deref(), Some("user:bo"));
    }

    #[test]
    fn deliveries_batches_carry_their_booker() {
        let ids = vec!["c1".to_owned()];
        let bodies = DeliveryBatch::bodies(r#"{"a":1}"#, &ids, None, Some("group:g")).unwrap();
        assert_eq!(
            bodies,
            [r#"{"connectionIds":["c1"],"frame":{"a":1},"attempt":1,"booker":"group:g"}"#]
        );
        let batch = DeliveryBatch::parse(Some(&bodies[0])).unwrap();
        assert_eq!(batch.booker.as_deref(), Some("group:g"));
        let plain = DeliveryBatch::bodies(r#"{"a":1}"#, &ids, None, None).unwrap();
        assert_eq!(
            plain,
            [r#"{"connectionIds":["c1"],"frame":{"a":1},"attempt":1}"#]
        );
    }
}
