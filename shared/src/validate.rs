//! The validation kit: each rule for a field from an untrusted source (client
//! frames, queue bodies, HTTP bodies and paths, token claims), written once.
//!
//! A rule takes the field's name as the surface spells it (`userId` in a body,
//! `sub` in a token) and returns a [`FieldError`], so the same bad value is
//! refused with the same words everywhere. Surfaces only frame the error: a
//! queue message prefixes "malformed message: " (see
//! [`crate::protocol::MessageError`]), an HTTP answer puts the field in its own
//! slot, a token refusal prefixes "the token's claims are invalid: ".

use serde_json::Value;

use crate::groups::{GroupNameError, PatternError, validate_group};

/// The longest user id accepted: a token's `sub`, a command's or an HTTP request's `userId`.
pub const MAX_USER_ID_BYTES: usize = 256;
/// The longest connection id a command or an HTTP request may name.
pub const MAX_CONNECTION_ID_BYTES: usize = 256;
/// The longest message `id` (an idempotency key).
pub const MAX_MESSAGE_ID_BYTES: usize = 128;
/// The longest close reason (API Gateway's close frames carry at most 123 bytes).
pub const MAX_REASON_BYTES: usize = 123;
/// The most entries a list of groups or patterns may hold (a token's `groups`,
/// `subscribe` and `publish`).
pub const MAX_GROUPS: usize = 100;

/// Why a field's value is refused. `Display` is the message every surface shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("\"{0}\" must not be empty")]
    Empty(&'static str),
    #[error("\"{field}\" is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("\"{0}\" contains control characters")]
    ControlCharacters(&'static str),
    #[error("\"{0}\" may hold only printable ASCII other than '#' and space")]
    NotPrintableAscii(&'static str),
    /// A typed integer (a queue body's `ttlSeconds`) out of its bounds.
    #[error("\"{field}\" must be between 1 and {max}")]
    OutOfRange { field: &'static str, max: u64 },
    /// Untyped JSON (an HTTP body's `ttlSeconds`) that is not an integer in bounds.
    #[error("\"{field}\" must be an integer from 1 to {max}")]
    NotAnIntegerInRange { field: &'static str, max: u64 },
    /// The message is the group rule's own ("the group name ...").
    #[error("{source}")]
    Group {
        field: &'static str,
        source: GroupNameError,
    },
    #[error("at most {max} entries")]
    TooManyEntries { field: &'static str, max: usize },
    #[error("{value:?}: {source}")]
    GroupEntry {
        field: &'static str,
        value: String,
        source: GroupNameError,
    },
    #[error("{value:?}: {source}")]
    PatternEntry {
        field: &'static str,
        value: String,
        source: PatternError,
    },
}

impl FieldError {
    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            FieldError::Empty(field)
            | FieldError::ControlCharacters(field)
            | FieldError::NotPrintableAscii(field)
            | FieldError::TooLong { field, .. }
            | FieldError::OutOfRange { field, .. }
            | FieldError::NotAnIntegerInRange { field, .. }
            | FieldError::Group { field, .. }
            | FieldError::TooManyEntries { field, .. }
            | FieldError::GroupEntry { field, .. }
            | FieldError::PatternEntry { field, .. } => field,
        }
    }

    /// The message, naming the field where it does not already: for surfaces
    /// with no separate slot for the field (queue messages, token claims).
    pub fn named(&self) -> String {
        match self {
            FieldError::Group { field, .. }
            | FieldError::TooManyEntries { field, .. }
            | FieldError::GroupEntry { field, .. }
            | FieldError::PatternEntry { field, .. } => format!("\"{field}\": {self}"),
            _ => self.to_string(),
        }
    }
}

fn not_empty(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::Empty(field));
    }
    Ok(())
}

fn at_most(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        return Err(FieldError::TooLong { field, max });
    }
    Ok(())
}

/// A user id is 1 to [`MAX_USER_ID_BYTES`] bytes without control characters:
/// what `$connect` accepts as a token's `sub`, and so what every other surface
/// accepts as a user id.
pub fn user_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    not_empty(field, value)?;
    at_most(field, value, MAX_USER_ID_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err(FieldError::ControlCharacters(field));
    }
    Ok(())
}

/// A connection id is 1 to [`MAX_CONNECTION_ID_BYTES`] bytes.
pub fn connection_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    not_empty(field, value)?;
    at_most(field, value, MAX_CONNECTION_ID_BYTES)
}

/// A message `id` (an idempotency key) is 1 to [`MAX_MESSAGE_ID_BYTES`] bytes
/// of printable ASCII without `#`: a UUID, a ULID or `order-42:shipped` all
/// qualify. (`#` joins it to a connection id in the idempotency record's key.)
pub fn message_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    not_empty(field, value)?;
    at_most(field, value, MAX_MESSAGE_ID_BYTES)?;
    if !value.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(FieldError::NotPrintableAscii(field));
    }
    Ok(())
}

/// A group name: the rule is [`validate_group`]'s.
pub fn group(field: &'static str, name: &str) -> Result<(), FieldError> {
    validate_group(name).map_err(|source| FieldError::Group { field, source })
}

/// A close reason is at most [`MAX_REASON_BYTES`] bytes.
pub fn reason(field: &'static str, value: &str) -> Result<(), FieldError> {
    at_most(field, value, MAX_REASON_BYTES)
}

/// A lifetime in seconds, from 1 to `max`.
pub fn ttl_seconds(field: &'static str, ttl: u64, max: u64) -> Result<u64, FieldError> {
    if (1..=max).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(FieldError::OutOfRange { field, max })
    }
}

/// [`ttl_seconds`] for a value of unknown JSON type.
pub fn ttl_value(field: &'static str, value: &Value, max: u64) -> Result<u64, FieldError> {
    value
        .as_u64()
        .and_then(|ttl| ttl_seconds(field, ttl, max).ok())
        .ok_or(FieldError::NotAnIntegerInRange { field, max })
}

fn at_most_entries<T>(field: &'static str, list: &[T]) -> Result<(), FieldError> {
    if list.len() > MAX_GROUPS {
        return Err(FieldError::TooManyEntries {
            field,
            max: MAX_GROUPS,
        });
    }
    Ok(())
}

/// At most [`MAX_GROUPS`] group names, each valid.
pub fn group_list<S: AsRef<str>>(field: &'static str, groups: &[S]) -> Result<(), FieldError> {
    at_most_entries(field, groups)?;
    for value in groups.iter().map(AsRef::as_ref) {
        validate_group(value).map_err(|source| FieldError::GroupEntry {
            field,
            value: value.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// At most [`MAX_GROUPS`] permission patterns, each valid (see [`crate::groups::Pattern`]).
pub fn pattern_list<S: AsRef<str>>(field: &'static str, patterns: &[S]) -> Result<(), FieldError> {
    at_most_entries(field, patterns)?;
    for value in patterns.iter().map(AsRef::as_ref) {
        crate::groups::Pattern::parse(value).map_err(|source| FieldError::PatternEntry {
            field,
            value: value.to_owned(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_connect_rule() {
        assert_eq!(user_id("userId", "alice"), Ok(()));
        assert_eq!(user_id("userId", ""), Err(FieldError::Empty("userId")));
        assert_eq!(user_id("sub", &"u".repeat(MAX_USER_ID_BYTES)), Ok(()));
        assert_eq!(
            user_id("sub", &"u".repeat(MAX_USER_ID_BYTES + 1))
                .unwrap_err()
                .to_string(),
            "\"sub\" is longer than 256 bytes"
        );
        assert_eq!(
            user_id("userId", "a\nb").unwrap_err().to_string(),
            "\"userId\" contains control characters"
        );
    }

    #[test]
    fn list_errors_name_the_entry_and_the_field_when_asked() {
        let err = group_list("groups", &["ok", "a b"]).unwrap_err();
        assert_eq!(err.field(), "groups");
        assert_eq!(
            err.named(),
            "\"groups\": \"a b\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /"
        );
        let many = vec!["g"; MAX_GROUPS + 1];
        assert_eq!(
            pattern_list("publish", &many).unwrap_err().to_string(),
            "at most 100 entries"
        );
        assert_eq!(pattern_list("publish", &["chat:*", "*"]), Ok(()));
    }

    #[test]
    fn ttls_are_bounded_whatever_their_type() {
        assert_eq!(ttl_seconds("ttlSeconds", 1, 10), Ok(1));
        assert_eq!(
            ttl_seconds("ttlSeconds", 0, 10),
            Err(FieldError::OutOfRange {
                field: "ttlSeconds",
                max: 10
            })
        );
        assert_eq!(ttl_value("ttlSeconds", &Value::from(10), 10), Ok(10));
        for bad in [Value::from(-1), Value::from(11), Value::from("5")] {
            assert_eq!(
                ttl_value("ttlSeconds", &bad, 10).unwrap_err().to_string(),
                "\"ttlSeconds\" must be an integer from 1 to 10"
            );
        }
    }
}
