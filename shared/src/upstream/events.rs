//! The upstream events, as CloudEvents 1.0: `switchboard.connected`,
//! `switchboard.disconnected` and `switchboard.message`.
//!
//! Every sink carries the same [`CloudEvent`] in structured mode (one JSON
//! object, attributes and `data`): the Upstream queue holds it, the webhook
//! and the event hook receive it as the body (`application/cloudevents+json`,
//! signed as a whole: see [`crate::webhook`]), EventBridge gets it as the
//! `Detail` of an entry whose detail-type is the short type. No attribute
//! travels in a header, so everything a receiver routes on (type, ids, user)
//! is signed, and no client string has to fit a header.
//! Each event's `id` is fixed when the event is made and travels with it, so
//! every retry of every sink carries the same id; `connected` and
//! `disconnected` ids are derived from the connection id, so a retried
//! `$connect` or `$disconnect` makes the same event again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::rfc3339;

/// The CloudEvents version Switchboard speaks.
pub const SPEC_VERSION: &str = "1.0";

/// The `source` attribute of every event (and EventBridge's `Source`).
pub const SOURCE: &str = "switchboard";

/// The three event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Connected,
    Disconnected,
    Message,
}

impl EventKind {
    /// The short name: EventBridge's detail-type, and the schema file's name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Disconnected => "disconnected",
            EventKind::Message => "message",
        }
    }

    /// The CloudEvents `type`.
    pub fn cloud_event_type(self) -> &'static str {
        match self {
            EventKind::Connected => "switchboard.connected",
            EventKind::Disconnected => "switchboard.disconnected",
            EventKind::Message => "switchboard.message",
        }
    }

    pub fn from_type(kind: &str) -> Option<Self> {
        [
            EventKind::Connected,
            EventKind::Disconnected,
            EventKind::Message,
        ]
        .into_iter()
        .find(|k| k.cloud_event_type() == kind)
    }
}

/// One event in CloudEvents' structured JSON form. The extension attributes
/// `connectionid`, `userid` and (for messages) `eventname` are lower-case, as
/// the spec requires of attribute names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub datacontenttype: String,
    pub connectionid: String,
    pub userid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventname: Option<String>,
    pub data: Value,
}

impl CloudEvent {
    fn new(kind: EventKind, id: String, connection_id: &str, user_id: &str, data: Value) -> Self {
        CloudEvent {
            specversion: SPEC_VERSION.into(),
            id,
            source: SOURCE.into(),
            kind: kind.cloud_event_type().into(),
            time: rfc3339(crate::clock::now_millis()),
            datacontenttype: "application/json".into(),
            connectionid: connection_id.into(),
            userid: user_id.into(),
            eventname: None,
            data,
        }
    }

    /// The event's kind, if its `type` is one of Switchboard's.
    pub fn event_kind(&self) -> Option<EventKind> {
        EventKind::from_type(&self.kind)
    }

    /// The structured JSON form (the Upstream queue's message body).
    pub fn to_json(&self) -> String {
        // Strings and a Value: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The structured-mode body the webhook and hooks POST (the event's JSON).
    pub fn body(&self) -> Vec<u8> {
        self.to_json().into_bytes()
    }
}

/// The content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// The `type` of a connect hook request.
pub const CONNECT_TYPE: &str = "switchboard.connect";

/// The connect hook's request, `switchboard.connect` with id
/// `connect:<connectionId>`: `request` (the verified claims and the
/// connection's details) is its `data`.
pub fn connect(connection_id: &str, user_id: &str, request: Value) -> CloudEvent {
    CloudEvent {
        kind: CONNECT_TYPE.into(),
        ..CloudEvent::new(
            EventKind::Connected,
            format!("connect:{connection_id}"),
            connection_id,
            user_id,
            request,
        )
    }
}

/// What `connected` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected<'a> {
    pub connection_id: &'a str,
    pub user_id: &'a str,
    pub groups: &'a [String],
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub connected_at_ms: i64,
}

/// `switchboard.connected`, id `connected:<connectionId>`.
pub fn connected(c: &Connected<'_>) -> CloudEvent {
    let data = serde_json::json!({
        "connectionId": c.connection_id,
        "userId": c.user_id,
        "groups": c.groups,
        "sourceIp": c.source_ip,
        "userAgent": c.user_agent,
        "connectedAt": rfc3339(c.connected_at_ms),
    });
    CloudEvent::new(
        EventKind::Connected,
        format!("connected:{}", c.connection_id),
        c.connection_id,
        c.user_id,
        data,
    )
}

/// What `disconnected` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnected<'a> {
    pub connection_id: &'a str,
    pub user_id: &'a str,
    /// The close code and reason as `$disconnect` reports them.
    pub status_code: Option<i64>,
    pub reason: Option<&'a str>,
    pub connected_at_ms: i64,
    pub disconnected_at_ms: i64,
}

/// `switchboard.disconnected`, id `disconnected:<connectionId>`.
pub fn disconnected(d: &Disconnected<'_>) -> CloudEvent {
    let data = serde_json::json!({
        "connectionId": d.connection_id,
        "userId": d.user_id,
        "statusCode": d.status_code,
        "reason": d.reason.unwrap_or(""),
        "connectedAt": rfc3339(d.connected_at_ms),
        "durationMs": (d.disconnected_at_ms - d.connected_at_ms).max(0),
    });
    CloudEvent::new(
        EventKind::Disconnected,
        format!("disconnected:{}", d.connection_id),
        d.connection_id,
        d.user_id,
        data,
    )
}

/// `switchboard.message`: client event `event` with `data`. Its id is
/// `message:<connectionId>:<client id>` when the client gave an `id` (so a
/// client resending the same frame makes the same event), otherwise
/// `message:<connectionId>:<random>`.
pub fn message(
    connection_id: &str,
    user_id: &str,
    event: &str,
    data: &Value,
    client_id: Option<&Value>,
) -> CloudEvent {
    let suffix = match client_id {
        Some(Value::String(id)) => format!("s{id}"),
        Some(other) => format!("n{other}"),
        None => format!("r{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
    };
    let mut event_out = CloudEvent::new(
        EventKind::Message,
        format!("message:{connection_id}:{suffix}"),
        connection_id,
        user_id,
        serde_json::json!({
            "connectionId": connection_id,
            "userId": user_id,
            "event": event,
            "data": data,
        }),
    );
    event_out.eventname = Some(event.to_owned());
    event_out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_for_the_same_connection_and_client_id() {
        let c = Connected {
            connection_id: "c1",
            user_id: "u1",
            groups: &[],
            source_ip: None,
            user_agent: None,
            connected_at_ms: 0,
        };
        assert_eq!(connected(&c).id, connected(&c).id);
        assert_eq!(connected(&c).id, "connected:c1");
        let id = Value::from("7");
        let data = Value::Null;
        assert_eq!(
            message("c1", "u1", "chat", &data, Some(&id)).id,
            message("c1", "u1", "chat", &data, Some(&id)).id
        );
        assert_ne!(
            message("c1", "u1", "chat", &data, Some(&Value::from(7))).id,
            message("c1", "u1", "chat", &data, Some(&id)).id,
            "the number 7 and the string \"7\" are different ids"
        );
        assert_ne!(
            message("c1", "u1", "chat", &data, None).id,
            message("c1", "u1", "chat", &data, None).id
        );
    }

    #[test]
    fn the_structured_form_round_trips_and_holds_what_receivers_route_on() {
        let event = message("c1", "zoë", "chat", &serde_json::json!({"x":1}), None);
        let back: CloudEvent = serde_json::from_slice(&event.body()).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.event_kind(), Some(EventKind::Message));
        let json: Value = serde_json::from_slice(&event.body()).unwrap();
        assert_eq!(json["type"], "switchboard.message");
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["eventname"], "chat");
        assert_eq!(json["userid"], "zoë");
        assert_eq!(json["connectionid"], "c1");
        let connect = connect("c1", "u1", serde_json::json!({"userId":"u1"}));
        assert_eq!(
            (
                connect.kind.as_str(),
                connect.id.as_str(),
                connect.event_kind()
            ),
            ("switchboard.connect", "connect:c1", None)
        );
    }
}
