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
/// The longest correlation `id` a client frame may carry (as a string).
pub const MAX_CLIENT_ID_BYTES: usize = 128;
/// The longest stream epoch a client may send back.
pub const MAX_EPOCH_BYTES: usize = 64;
/// The largest stream offset a client may send: 2^53 - 1, the largest
/// integer a JavaScript number holds exactly.
pub const MAX_OFFSET: u64 = (1 << 53) - 1;
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
    /// An invisible format character (Unicode general category Cf: bidi
    /// overrides and isolates, zero-width spaces and joiners, the BOM, …).
    #[error("\"{field}\" contains the invisible format character U+{code:04X}")]
    FormatCharacter { field: &'static str, code: u32 },
    #[error("\"{0}\" may hold only printable ASCII other than '#' and space")]
    NotPrintableAscii(&'static str),
    #[error("\"{0}\" may hold only printable ASCII without spaces")]
    NotVisibleAscii(&'static str),
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
    /// A stream offset that is not an integer from 0 to [`MAX_OFFSET`].
    #[error("\"{0}\" must be an integer from 0 to {MAX_OFFSET}")]
    NotAnOffset(&'static str),
    #[error("\"{0}\" may hold only ASCII letters and digits")]
    NotAlphanumeric(&'static str),
    /// A stream name that is neither `user` nor `group:<group name>`.
    #[error("\"{field}\" must be \"user\" or \"group:<group name>\"")]
    NotAStream { field: &'static str },
    /// A count that may be 0 (a `history`'s `limit`) out of its bounds.
    #[error("\"{field}\" must be an integer from 0 to {max}")]
    NotACount { field: &'static str, max: u64 },
    #[error("\"{0}\" names the same value twice")]
    Duplicate(&'static str),
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
            | FieldError::FormatCharacter { field, .. }
            | FieldError::NotPrintableAscii(field)
            | FieldError::NotVisibleAscii(field)
            | FieldError::TooLong { field, .. }
            | FieldError::OutOfRange { field, .. }
            | FieldError::NotAnIntegerInRange { field, .. }
            | FieldError::NotAnOffset(field)
            | FieldError::NotAlphanumeric(field)
            | FieldError::NotAStream { field }
            | FieldError::Duplicate(field)
            | FieldError::NotACount { field, .. }
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

/// A user id is 1 to [`MAX_USER_ID_BYTES`] bytes without control characters
/// (Cc) or invisible format characters (Cf, see [`is_format`]): what `$connect`
/// accepts as a token's `sub`, and so what every other surface accepts as a
/// user id. Without the second rule `"alice\u{200B}"` or a right-to-left
/// override would be another user who looks like `alice` in every log and UI.
pub fn user_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    not_empty(field, value)?;
    at_most(field, value, MAX_USER_ID_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err(FieldError::ControlCharacters(field));
    }
    if let Some(c) = value.chars().find(|&c| is_format(c)) {
        return Err(FieldError::FormatCharacter {
            field,
            code: u32::from(c),
        });
    }
    Ok(())
}

/// Unicode general category Cf (format characters), as of Unicode 16.0: the
/// soft hyphen, Arabic and Syriac marks, the Mongolian vowel separator,
/// zero-width space/non-joiner/joiner, left-to-right and right-to-left marks,
/// bidi embeddings, overrides and isolates, word joiner and invisible
/// operators, the BOM (zero-width no-break space), interlinear annotation,
/// Egyptian and shorthand format controls, musical formatting and tags. A
/// table rather than a crate: the whole rule is these ranges (a test checks
/// them against `unicode-properties` for every code point).
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a format character (general category Cf).
pub fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
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

/// A client frame's correlation `id`, when a string: 1 to
/// [`MAX_CLIENT_ID_BYTES`] bytes of printable ASCII (0x21 to 0x7e), so a
/// UUID, a counter or `req-42:retry` qualify. It is echoed in every answer and
/// becomes part of an upstream event's id, which travels as the `ce-id`
/// header, goes into log lines and into the event hook's request: a control
/// character there would make a header that cannot be built (issue 25), a
/// space one that HTTP trims.
pub fn client_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    not_empty(field, value)?;
    at_most(field, value, MAX_CLIENT_ID_BYTES)?;
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::NotVisibleAscii(field));
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

/// A stream offset: an integer from 0 to [`MAX_OFFSET`], of any JSON type
/// (`41`, never `41.0`, `"41"` or `-1`).
pub fn offset(field: &'static str, value: &Value) -> Result<u64, FieldError> {
    value
        .as_u64()
        .filter(|o| *o <= MAX_OFFSET)
        .ok_or(FieldError::NotAnOffset(field))
}

/// A stream epoch as a client sends it back: 1 to [`MAX_EPOCH_BYTES`] ASCII
/// letters and digits (the server's epochs are 16 hex digits).
pub fn epoch(field: &'static str, value: &str) -> Result<(), FieldError> {
    not_empty(field, value)?;
    at_most(field, value, MAX_EPOCH_BYTES)?;
    if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FieldError::NotAlphanumeric(field));
    }
    Ok(())
}

/// A stream name: `user` (the connection's own user) or `group:` and a
/// valid group name.
pub fn stream(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value == "user" {
        return Ok(());
    }
    match value.strip_prefix("group:") {
        Some(name) => group(field, name),
        None => Err(FieldError::NotAStream { field }),
    }
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
    fn stream_fields_follow_their_rules() {
        use serde_json::json;
        assert_eq!(offset("offset", &json!(0)), Ok(0));
        assert_eq!(offset("offset", &json!(MAX_OFFSET)), Ok(MAX_OFFSET));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("4"),
            json!(null),
            json!(MAX_OFFSET + 1),
        ] {
            assert_eq!(
                offset("offset", &bad).unwrap_err().to_string(),
                "\"offset\" must be an integer from 0 to 9007199254740991"
            );
        }
        assert_eq!(epoch("epoch", "0a1B"), Ok(()));
        assert_eq!(epoch("epoch", ""), Err(FieldError::Empty("epoch")));
        assert_eq!(
            epoch("epoch", "ab-c"),
            Err(FieldError::NotAlphanumeric("epoch"))
        );
        assert_eq!(
            epoch("epoch", &"e".repeat(MAX_EPOCH_BYTES + 1)),
            Err(FieldError::TooLong {
                field: "epoch",
                max: MAX_EPOCH_BYTES
            })
        );
        assert_eq!(stream("stream", "user"), Ok(()));
        assert_eq!(stream("stream", "group:chat:1"), Ok(()));
        assert_eq!(
            stream("stream", "users").unwrap_err().to_string(),
            "\"stream\" must be \"user\" or \"group:<group name>\""
        );
        assert!(matches!(
            stream("stream", "group:"),
            Err(FieldError::Group { .. })
        ));
    }

    #[test]
    fn client_ids_are_printable_ascii_without_spaces() {
        let printable: String = (0x21u8..=0x7e).map(char::from).collect();
        for id in [&printable[..64], &printable[64..], "7", "req-42:retry"] {
            assert_eq!(client_id("id", id), Ok(()), "{id:?}");
        }
        let bytes = (0u8..0x20).chain([0x7f]).map(char::from);
        for bad in bytes.map(|c| format!("p{c}")).chain([
            " p".into(),
            "p q".into(),
            "\u{85}".into(),
            "é".into(),
            "a\u{200B}".into(),
        ]) {
            assert_eq!(
                client_id("id", &bad).map_err(|e| e.to_string()),
                Err("\"id\" may hold only printable ASCII without spaces".into()),
                "{bad:?}"
            );
        }
        assert_eq!(client_id("id", ""), Err(FieldError::Empty("id")));
        assert_eq!(
            client_id("id", &"i".repeat(MAX_CLIENT_ID_BYTES + 1)),
            Err(FieldError::TooLong {
                field: "id",
                max: MAX_CLIENT_ID_BYTES
            })
        );
    }

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
    fn user_ids_refuse_invisible_format_characters() {
        for (id, code) in [
            ("alice\u{202E}", 0x202E),   // right-to-left override
            ("al\u{200B}ice", 0x200B),   // zero-width space
            ("\u{200D}alice", 0x200D),   // zero-width joiner
            ("alice\u{2066}x", 0x2066),  // left-to-right isolate
            ("\u{FEFF}alice", 0xFEFF),   // BOM
            ("alice\u{E0041}", 0xE0041), // tag letter A
        ] {
            assert_eq!(
                user_id("sub", id),
                Err(FieldError::FormatCharacter { field: "sub", code }),
                "{id:?}"
            );
        }
        assert_eq!(
            user_id("userId", "alice\u{202E}").unwrap_err().to_string(),
            "\"userId\" contains the invisible format character U+202E"
        );
        // Visible non-ASCII stays allowed.
        assert_eq!(user_id("sub", "zoë-東京-🙂"), Ok(()));
    }

    #[test]
    fn the_format_table_is_unicode_general_category_cf() {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            assert_eq!(
                is_format(c),
                c.general_category() == GeneralCategory::Format,
                "U+{:04X}",
                u32::from(c)
            );
        }
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
