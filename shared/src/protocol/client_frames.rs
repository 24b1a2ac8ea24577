//! Client frames in: each text frame is parsed once, into a [`ClientFrame`]
//! (the action it names, with that action's fields typed), or a [`Ping`] for
//! the ping route.

use serde_json::{Map, Value};

use crate::groups::{GroupNameError, validate_group};
use crate::history::Stream;
use crate::history::streams::{GROUP_STREAM_PREFIX, USER_STREAM};
use crate::validate::{self, FieldError};

/// The longest correlation `id` (as a string) a frame may carry: it is echoed in every answer.
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

/// The most streams one `recover` names.
pub const MAX_RECOVER_STREAMS: usize = 16;
/// The messages a `history` without `limit` asks for.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// Why a client frame could not be routed, or a field of it is refused.
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
    /// The `group` of a group action is not a valid group name.
    #[error(transparent)]
    Group(#[from] GroupNameError),
}

impl FrameError {
    /// The error frame a client receives for this error.
    pub fn to_frame(&self) -> super::ServerFrame {
        super::ServerFrame::error(super::ErrorCode::BadRequest, self.to_string())
    }
}

/// A field as parsed with its frame: its value, or why it is refused. The
/// route answers a refusal when it comes to the field (some fields after the
/// connection's own checks), so one parse serves every order of checks.
pub type Checked<T> = Result<T, FrameError>;

/// A client frame: a JSON object with a string `action`, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// An action the actions function serves, and the frame's correlation
    /// `id` (a string or a number, echoed in every answer).
    Action {
        id: Checked<Option<Value>>,
        action: ClientAction,
    },
    /// Any other action (`ping`'s, or one no route serves), as sent.
    Other { action: String },
}

/// The actions function's actions, each with its fields.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientAction {
    Subscribe {
        group: Checked<String>,
        seq: Checked<Option<u64>>,
    },
    Unsubscribe {
        group: Checked<String>,
        seq: Checked<Option<u64>>,
    },
    /// `data` is `None` when the frame has no `data` field (`null` is data).
    Publish {
        group: Checked<String>,
        data: Option<Value>,
    },
    Presence {
        group: Checked<String>,
    },
    /// A client event for the application: its name (the `event` field) and `data`.
    Event {
        name: Checked<String>,
        data: Value,
    },
    /// `batch`: the client takes the answer packed into `batch` frames.
    Recover {
        streams: Checked<Vec<StreamPosition>>,
        batch: Flag,
    },
    History {
        stream: Checked<StreamName>,
        limit: HistoryLimit,
        batch: Flag,
    },
}

impl ClientAction {
    /// The action's name: its route key.
    pub fn name(&self) -> &'static str {
        match self {
            ClientAction::Subscribe { .. } => "subscribe",
            ClientAction::Unsubscribe { .. } => "unsubscribe",
            ClientAction::Publish { .. } => "publish",
            ClientAction::Presence { .. } => "presence",
            ClientAction::Event { .. } => "event",
            ClientAction::Recover { .. } => "recover",
            ClientAction::History { .. } => "history",
        }
    }
}

impl ClientFrame {
    /// Parses a text frame as API Gateway's `$request.body.action` selection sees it.
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let (action, fields) = envelope(body)?;
        let fields = Fields(fields);
        let group = || fields.group();
        let action = match action.as_str() {
            "subscribe" => ClientAction::Subscribe {
                group: group(),
                seq: fields.sequence(),
            },
            "unsubscribe" => ClientAction::Unsubscribe {
                group: group(),
                seq: fields.sequence(),
            },
            "publish" => ClientAction::Publish {
                group: group(),
                data: fields.0.get("data").cloned(),
            },
            "presence" => ClientAction::Presence { group: group() },
            "event" => ClientAction::Event {
                name: fields.event_name(),
                data: fields.0.get("data").cloned().unwrap_or(Value::Null),
            },
            "recover" => ClientAction::Recover {
                streams: fields.recover_streams(),
                batch: fields.flag("batch"),
            },
            "history" => ClientAction::History {
                stream: fields
                    .required_str("stream")
                    .and_then(|name| Ok(StreamName::parse("stream", name)?)),
                limit: fields.history_limit(),
                batch: fields.flag("batch"),
            },
            _ => return Ok(ClientFrame::Other { action }),
        };
        Ok(ClientFrame::Action {
            id: fields.correlation_id(),
            action,
        })
    }

    /// The `action` the frame names, as sent.
    pub fn action(&self) -> &str {
        match self {
            ClientFrame::Action { action, .. } => action.name(),
            ClientFrame::Other { action } => action,
        }
    }
}

/// A `ping` frame: its optional `name`, echoed in the pong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub name: Option<String>,
}

impl Ping {
    /// Parses the frame the ping route was given (any `action`: API Gateway
    /// selected the route by it).
    pub fn parse(body: Option<&str>) -> Result<Self, FrameError> {
        let (_, fields) = envelope(body)?;
        let name = Fields(fields).optional_str("name")?.map(str::to_owned);
        Ok(Ping { name })
    }
}

/// Where a client was in a stream, as a `recover` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    pub stream: StreamName,
    pub offset: u64,
    pub epoch: String,
}

/// A stream as a client names it (`user` or `group:<name>`), checked by
/// [`validate::stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamName(String);

impl StreamName {
    /// `name` if it is a stream name (`field` names it in the error).
    pub fn parse(field: &'static str, name: &str) -> Result<Self, FieldError> {
        validate::stream(field, name)?;
        Ok(StreamName(name.to_owned()))
    }

    /// The name as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream it names for a connection of `user_id`.
    pub fn of(&self, user_id: &str) -> Stream {
        match self.0.strip_prefix(GROUP_STREAM_PREFIX) {
            Some(group) => Stream::Group(group.to_owned()),
            None => {
                debug_assert_eq!(self.0, USER_STREAM);
                Stream::User(user_id.to_owned())
            }
        }
    }
}

/// A `true`/`false` field of a frame (absent or `null`: `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Set(bool),
    /// The field (named) holds something else.
    NotABool(&'static str),
}

impl Flag {
    /// The flag, or the frame's error.
    pub fn checked(self) -> Checked<bool> {
        match self {
            Flag::Set(flag) => Ok(flag),
            Flag::NotABool(field) => Err(FrameError::WrongType {
                field,
                expected: "true or false",
            }),
        }
    }
}

/// The `limit` of a `history`, before it is held to the stack's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryLimit {
    /// Absent or `null`: [`DEFAULT_HISTORY_LIMIT`].
    Default,
    Count(u64),
    /// Not a non-negative integer.
    NotACount,
}

impl HistoryLimit {
    /// The limit, 0 to `max` ([`DEFAULT_HISTORY_LIMIT`], at most `max`, if absent).
    pub fn within(self, max: usize) -> Result<usize, FrameError> {
        match self {
            HistoryLimit::Default => Ok(DEFAULT_HISTORY_LIMIT.min(max)),
            HistoryLimit::Count(n) if n <= max as u64 => Ok(n as usize),
            HistoryLimit::Count(_) | HistoryLimit::NotACount => {
                Err(FrameError::Field(FieldError::NotACount {
                    field: "limit",
                    max: max as u64,
                }))
            }
        }
    }
}

/// The object and its string `action` (removed from the fields).
fn envelope(body: Option<&str>) -> Result<(String, Map<String, Value>), FrameError> {
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
        Some(Value::String(action)) => Ok((action, fields)),
        Some(_) => Err(FrameError::ActionNotString),
    }
}

/// A frame's fields other than `action`, read by each field's rule.
struct Fields(Map<String, Value>);

impl Fields {
    /// An optional string field: absent or `null` is `None`, any other non-string is an error.
    fn optional_str(&self, field: &'static str) -> Result<Option<&str>, FrameError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FrameError::WrongType {
                field,
                expected: "a string",
            }),
        }
    }

    /// A required string field.
    fn required_str(&self, field: &'static str) -> Result<&str, FrameError> {
        self.optional_str(field)?
            .ok_or(FrameError::MissingField(field))
    }

    /// A `true`/`false` field; absent or `null` is `false`.
    fn flag(&self, field: &'static str) -> Flag {
        match self.0.get(field) {
            None | Some(Value::Null) => Flag::Set(false),
            Some(Value::Bool(flag)) => Flag::Set(*flag),
            Some(_) => Flag::NotABool(field),
        }
    }

    /// The `group` of a group action: a valid group name.
    fn group(&self) -> Checked<String> {
        let group = self.required_str("group")?;
        validate_group(group)?;
        Ok(group.to_owned())
    }

    /// The `event` of a client event: named as a group is.
    fn event_name(&self) -> Checked<String> {
        let name = self.required_str("event")?;
        validate::group("event", name)?;
        Ok(name.to_owned())
    }

    /// The optional correlation `id`: a string or a number.
    fn correlation_id(&self) -> Checked<Option<Value>> {
        match self.0.get("id") {
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
    fn sequence(&self) -> Checked<Option<u64>> {
        let bad = || FrameError::WrongType {
            field: "seq",
            expected: "a non-negative integer below 2^53",
        };
        match self.0.get("seq") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(seq) if seq < 1 << 53 => Ok(Some(seq)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
        }
    }

    /// The `streams` of a `recover`: 1 to [`MAX_RECOVER_STREAMS`] objects
    /// `{"stream":…,"offset":…,"epoch":…}`, each field checked by its
    /// [`validate`] rule, no stream named twice.
    fn recover_streams(&self) -> Checked<Vec<StreamPosition>> {
        let list = match self.0.get("streams") {
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
            let stream = StreamName::parse("stream", text("stream")).map_err(at)?;
            let offset = validate::offset("offset", entry.get("offset").unwrap_or(&Value::Null))
                .map_err(at)?;
            let epoch = text("epoch");
            validate::epoch("epoch", epoch).map_err(at)?;
            if positions.iter().any(|p| p.stream == stream) {
                return Err(at(FieldError::Duplicate("stream")));
            }
            positions.push(StreamPosition {
                stream,
                offset,
                epoch: epoch.to_owned(),
            });
        }
        Ok(positions)
    }

    /// The `limit` of a `history`.
    fn history_limit(&self) -> HistoryLimit {
        match self.0.get("limit") {
            None | Some(Value::Null) => HistoryLimit::Default,
            Some(value) => value
                .as_u64()
                .map_or(HistoryLimit::NotACount, HistoryLimit::Count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_and_history_may_ask_for_batches() {
        let batch = |text: &str| match ClientFrame::parse(Some(text)) {
            Ok(ClientFrame::Action {
                action: ClientAction::Recover { batch, .. } | ClientAction::History { batch, .. },
                ..
            }) => batch.checked(),
            other => panic!("{other:?}"),
        };
        let history = r#"{"action":"history","stream":"user""#;
        assert_eq!(batch(&format!("{history}}}")), Ok(false));
        assert_eq!(batch(&format!(r#"{history},"batch":null}}"#)), Ok(false));
        assert_eq!(batch(&format!(r#"{history},"batch":false}}"#)), Ok(false));
        assert_eq!(batch(&format!(r#"{history},"batch":true}}"#)), Ok(true));
        let refused = batch(r#"{"action":"recover","streams":[],"batch":1}"#).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the \"batch\" field must be true or false"
        );
    }

    #[test]
    fn parses_a_frame_into_its_action() {
        let frame = ClientFrame::parse(Some(r#"{"action":"subscribe","group":"g","id":7}"#));
        assert_eq!(
            frame,
            Ok(ClientFrame::Action {
                id: Ok(Some(Value::from(7))),
                action: ClientAction::Subscribe {
                    group: Ok("g".into()),
                    seq: Ok(None)
                }
            })
        );
        let ping = ClientFrame::parse(Some(r#"{"action":"ping","name":"Stepan"}"#)).unwrap();
        assert_eq!(ping.action(), "ping");
        assert_eq!(
            Ping::parse(Some(r#"{"action":"ping","name":"Stepan"}"#)),
            Ok(Ping {
                name: Some("Stepan".into())
            })
        );
        assert_eq!(
            Ping::parse(Some(r#"{"action":"ping"}"#)),
            Ok(Ping { name: None })
        );
    }

    #[test]
    fn every_route_of_the_actions_function_is_an_action() {
        use crate::routes::{RouteFunction, action_route};
        for key in [
            "subscribe",
            "unsubscribe",
            "publish",
            "presence",
            "event",
            "recover",
            "history",
            "ping",
            "dance",
        ] {
            let frame = ClientFrame::parse(Some(&format!(r#"{{"action":"{key}"}}"#))).unwrap();
            let served = action_route(key).is_some_and(|r| r.function == RouteFunction::Actions);
            assert_eq!(matches!(frame, ClientFrame::Action { .. }), served, "{key}");
            assert_eq!(frame.action(), key);
        }
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
        assert_eq!(
            Ping::parse(Some(r#"{"action":"ping","name":5}"#)),
            Err(FrameError::WrongType {
                field: "name",
                expected: "a string"
            })
        );
    }

    #[test]
    fn long_correlation_ids_are_refused_not_echoed() {
        let long = format!(
            r#"{{"action":"subscribe","id":"{}"}}"#,
            "i".repeat(MAX_CORRELATION_ID_BYTES + 1)
        );
        let Ok(ClientFrame::Action { id, .. }) = ClientFrame::parse(Some(&long)) else {
            panic!("a subscribe frame");
        };
        assert_eq!(
            id,
            Err(FrameError::TooLong {
                field: "id",
                max: MAX_CORRELATION_ID_BYTES
            })
        );
    }

    #[test]
    fn stream_names_are_checked_once_and_bound_to_the_user() {
        let user = StreamName::parse("stream", "user").unwrap();
        assert_eq!(user.of("alice"), Stream::User("alice".into()));
        let group = StreamName::parse("stream", "group:chat:1").unwrap();
        assert_eq!(group.of("alice"), Stream::Group("chat:1".into()));
        assert_eq!(group.as_str(), "group:chat:1");
        assert!(StreamName::parse("stream", "group:a b").is_err());
        assert!(StreamName::parse("stream", "users").is_err());
    }
}
