//! Stream names, epochs and the stamp a message frame carries in a stream.

use serde::Serialize;

use crate::ports::Position;
use crate::validate::{self, FieldError};

/// What a client calls its own user's stream.
pub const USER_STREAM: &str = "user";
/// What a client calls a group's stream: this, then the group name.
pub const GROUP_STREAM_PREFIX: &str = "group:";

/// A stream: the messages to one user, or to one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Everything sent to the user as a whole: NotifyUser, sends to `userId`
    /// without a group (a send within a group reaches only the user's
    /// connections in it, so it is kept in no stream).
    User(String),
    /// Everything sent to the group: server sends and client events.
    Group(String),
}

impl Stream {
    /// The stream a client names (`user` or `group:<name>`, checked by
    /// [`validate::stream`]) as seen by a connection of `user_id`.
    pub fn for_client(field: &'static str, name: &str, user_id: &str) -> Result<Self, FieldError> {
        validate::stream(field, name)?;
        Ok(match name.strip_prefix(GROUP_STREAM_PREFIX) {
            Some(group) => Stream::Group(group.to_owned()),
            None => Stream::User(user_id.to_owned()),
        })
    }

    /// The name clients see in frames: `user` or `group:<name>`.
    pub fn name(&self) -> String {
        match self {
            Stream::User(_) => USER_STREAM.to_owned(),
            Stream::Group(group) => format!("{GROUP_STREAM_PREFIX}{group}"),
        }
    }

    /// The key the history store files it under: `user:<userId>` or
    /// `group:<name>` (the prefixes keep users and groups apart).
    pub fn key(&self) -> String {
        match self {
            Stream::User(user) => format!("user:{user}"),
            Stream::Group(group) => format!("{GROUP_STREAM_PREFIX}{group}"),
        }
    }
}

/// A new epoch: 16 random hex digits.
pub fn new_epoch() -> String {
    let mut bytes = [0u8; 8];
    // The system's random source; should it ever fail, a clock-derived epoch
    // still differs from every earlier one, which is all an epoch must do.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        bytes = (crate::clock::now_millis() as u64 ^ 0x9e37_79b9_7f4a_7c15).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `frame` (a JSON object, as the message functions render it) with
/// `"stream":…,"offset":…,"epoch":…` added at its end. `None` if `frame` is
/// not an object.
pub fn stamp(frame: &str, stream: &str, position: &Position) -> Option<String> {
    #[derive(Serialize)]
    struct Stamp<'a> {
        stream: &'a str,
        offset: u64,
        epoch: &'a str,
    }
    let body = frame.strip_suffix('}')?;
    let fields = serde_json::to_string(&Stamp {
        stream,
        offset: position.offset,
        epoch: &position.epoch,
    })
    .ok()?;
    let fields = fields.strip_prefix('{')?;
    let separator = if body.ends_with('{') { "" } else { "," };
    Some(format!("{body}{separator}{fields}"))
}

/// The most bytes [`stamp`] adds for `stream` (offsets up to 20 digits,
/// epochs up to [`validate::MAX_EPOCH_BYTES`]).
pub fn stamp_overhead(stream: &str) -> usize {
    r#","stream":"","offset":,"epoch":"""#.len() + stream.len() * 6 + 20 + validate::MAX_EPOCH_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_for_clients_and_keyed_apart() {
        let user = Stream::for_client("stream", "user", "alice").unwrap();
        assert_eq!(user, Stream::User("alice".into()));
        assert_eq!(
            (user.name(), user.key()),
            ("user".into(), "user:alice".into())
        );
        let group = Stream::for_client("stream", "group:chat:1", "alice").unwrap();
        assert_eq!(group, Stream::Group("chat:1".into()));
        assert_eq!(group.key(), "group:chat:1");
        assert!(Stream::for_client("stream", "group:a b", "alice").is_err());
    }

    #[test]
    fn stamps_go_at_the_end_of_the_frame() {
        let position = Position {
            offset: 7,
            epoch: "0123456789abcdef".into(),
        };
        let frame = r#"{"type":"message","from":"server","data":{"a":1}}"#;
        let stamped = stamp(frame, "group:chat", &position).unwrap();
        assert_eq!(
            stamped,
            r#"{"type":"message","from":"server","data":{"a":1},"stream":"group:chat","offset":7,"epoch":"0123456789abcdef"}"#
        );
        assert!(stamped.len() <= frame.len() + stamp_overhead("group:chat"));
        assert_eq!(
            stamp("{}", "user", &position).unwrap(),
            r#"{"stream":"user","offset":7,"epoch":"0123456789abcdef"}"#
        );
        assert_eq!(stamp("[1]", "user", &position), None);
    }

    #[test]
    fn epochs_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_epoch(), new_epoch());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(crate::validate::epoch("epoch", &a), Ok(()));
    }
}
