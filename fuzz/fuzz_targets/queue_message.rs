//! Queue message bodies, as the SQS-triggered functions receive them. Every
//! input goes to all four parsers: NotifyUser `{"userId","data"}`,
//! NotifyConnection `{"connectionId","data"}`, the Commands queue
//! `{"version":1,"type":…}` and Deliveries batches `{"connectionIds","frame","attempt"}`.
//!
//! Properties checked, beyond "does not panic":
//! - accepted messages hold what the parser promises (non-empty ids, valid
//!   group names, bounded ids, reasons and TTLs, idempotency keys of printable
//!   ASCII without `#`, version 1, frames under 128 KB);
//! - `render_data` gives a JSON string's text, or the same JSON compacted, or
//!   `TooLarge`: it never refuses data the parser accepted;
//! - what one function enqueues for the next reads back unchanged:
//!   NotifyUser -> NotifyConnection bodies, Commands -> message frames ->
//!   Deliveries batches (split in chunks of 100), Deliveries -> retry batches,
//!   each carrying the message's idempotency `id`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard::groups::validate_group;
use switchboard::handlers::deliver::MAX_DELIVERY_ATTEMPTS;
use switchboard::protocol::{
    COMMAND_VERSION, Command, DELIVERY_BATCH, DeliveryBatch, MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ID_BYTES, MAX_REASON_BYTES, MAX_USER_ID_BYTES, MessageError, NotifyConnection,
    NotifyUser, USER_GROUP_MAX_TTL_SECONDS, close_frame, group_message, render_data,
    server_message,
};
use switchboard_fuzz::{assert_json_text, value_of};

fuzz_target!(|data: &[u8]| {
    // SQS message bodies are strings.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    notify_user(body);
    notify_connection(body);
    command(body);
    delivery_batch(body);
});

fn notify_user(body: &str) {
    let Ok(message) = NotifyUser::parse(Some(body)) else {
        return;
    };
    assert!(!message.user_id.is_empty());
    check_message_id(message.id.as_deref());
    check_render(&message.data);
    // notify-user enqueues one NotifyConnection body per connection of the user.
    for connection_id in ["f97yeeMZDoECGqg=", message.user_id.as_str()] {
        let booker = format!("user:{}", message.user_id);
        let out = NotifyConnection::body(
            connection_id,
            &message.data,
            message.id.as_deref(),
            Some(&booker),
        );
        let back = NotifyConnection::parse(Some(&out))
            .unwrap_or_else(|e| panic!("NotifyConnection body {out:?} does not parse: {e}"));
        assert_eq!(back.connection_id, connection_id);
        assert_eq!(back.data.get(), message.data.get());
        assert_eq!(back.id, message.id);
        assert_eq!(back.booker, Some(booker));
    }
}

fn notify_connection(body: &str) {
    let Ok(message) = NotifyConnection::parse(Some(body)) else {
        return;
    };
    assert!(!message.connection_id.is_empty());
    check_message_id(message.id.as_deref());
    check_render(&message.data);
}

/// An accepted idempotency key: 1 to 128 bytes of printable ASCII, no `#`
/// (the idempotency record key joins it to a connection id with `#`).
fn check_message_id(id: Option<&str>) {
    if let Some(id) = id {
        assert!(!id.is_empty() && id.len() <= MAX_MESSAGE_ID_BYTES, "{id:?}");
        assert!(
            id.bytes().all(|b| b.is_ascii_graphic() && b != b'#'),
            "{id:?}"
        );
    }
}

/// What a client receives for `data`: a JSON string's text, else the same JSON compacted.
fn check_render(data: &RawValue) {
    let raw = data.get();
    match render_data(data) {
        Ok(text) => {
            assert!(text.len() <= MAX_MESSAGE_BYTES);
            if raw.starts_with('"') {
                let expected: String =
                    serde_json::from_str(raw).expect("render_data read this string");
                assert_eq!(text, expected);
            } else {
                assert_compacted(raw, &text);
            }
        }
        Err(MessageError::TooLarge { size }) => assert!(size > MAX_MESSAGE_BYTES),
        // A raw value checks an escape's hex digits only, so a string with a lone
        // surrogate (`"\ud800"`) parses and then has no text: refused, not lost.
        Err(MessageError::Malformed(_))
            if raw.starts_with('"') && serde_json::from_str::<String>(raw).is_err() => {}
        Err(e) => panic!("render_data refused parsed data {raw:?}: {e}"),
    }
}

/// `compact` is `raw` without insignificant whitespace: valid JSON, the same value.
fn assert_compacted(raw: &str, compact: &str) {
    assert_json_text(compact, "compacted data");
    assert!(compact.len() <= raw.len());
    // Compacting text keeps numbers as written, so values compare exactly.
    match (value_of(raw), value_of(compact)) {
        (Some(a), Some(b)) => assert_eq!(a, b, "compacting changed {raw:?} into {compact:?}"),
        (None, None) => {}
        _ => panic!("compacting changed the depth of {raw:?}"),
    }
}

fn command(body: &str) {
    let Ok(command) = Command::parse(Some(body)) else {
        return;
    };
    if let Some(Value::Object(fields)) = value_of(body) {
        assert_eq!(fields.get("version"), Some(&Value::from(COMMAND_VERSION)));
        assert!(fields.get("type").is_some_and(Value::is_string));
    }
    let id = |id: &str| {
        assert!(!id.is_empty() && id.len() <= MAX_USER_ID_BYTES, "{id:?}");
    };
    let group = |group: &str| {
        validate_group(group).unwrap_or_else(|e| panic!("accepted group {group:?}: {e}"));
    };
    let reason = |reason: Option<&str>| {
        if let Some(r) = reason {
            assert!(r.len() <= MAX_REASON_BYTES);
        }
        let frame = close_frame(reason);
        let value = value_of(&frame).expect("a close frame is shallow");
        assert_eq!(value["type"], "close");
        assert_eq!(value.get("reason").and_then(Value::as_str), reason);
    };
    // The frames commands hand to the deliver workers, as `execute` builds them.
    match command {
        Command::SendToGroup {
            group: g,
            data,
            exclude_connection_ids,
            id: message_id,
        } => {
            group(&g);
            let frame = group_message(&g, &data);
            check_frame(frame, Some(&g), &data, &exclude_connection_ids, message_id);
        }
        Command::SendToUser {
            user_id,
            group: g,
            data,
            id: message_id,
        } => {
            id(&user_id);
            if let Some(g) = &g {
                group(g);
            }
            let ids = vec![user_id.clone(); 3];
            let frame = server_message(g.as_deref(), &data);
            check_frame(frame, g.as_deref(), &data, &ids, message_id);
        }
        Command::SendToConnection {
            connection_id,
            data,
            id: message_id,
        } => {
            id(&connection_id);
            let frame = server_message(None, &data);
            check_frame(frame, None, &data, &[connection_id], message_id);
        }
        Command::Broadcast {
            data,
            exclude_connection_ids,
            id: message_id,
        } => {
            let frame = server_message(None, &data);
            check_frame(frame, None, &data, &exclude_connection_ids, message_id);
        }
        Command::AddConnectionToGroup {
            connection_id,
            group: g,
        }
        | Command::RemoveConnectionFromGroup {
            connection_id,
            group: g,
        } => {
            id(&connection_id);
            group(&g);
        }
        Command::AddUserToGroup {
            user_id,
            group: g,
            ttl_seconds,
        } => {
            id(&user_id);
            group(&g);
            if let Some(ttl) = ttl_seconds {
                assert!((1..=USER_GROUP_MAX_TTL_SECONDS).contains(&ttl));
            }
        }
        Command::RemoveUserFromGroup { user_id, group: g } => {
            id(&user_id);
            group(&g);
        }
        Command::CloseConnection {
            connection_id: who,
            reason: r,
        }
        | Command::CloseUserConnections {
            user_id: who,
            reason: r,
        } => {
            id(&who);
            reason(r.as_deref());
        }
    }
}

/// A server message frame: JSON under 128 KB carrying `data` compacted, that
/// travels through Deliveries batches unchanged.
fn check_frame(
    frame: Result<String, MessageError>,
    group: Option<&str>,
    data: &RawValue,
    ids: &[String],
    message_id: Option<String>,
) {
    check_message_id(message_id.as_deref());
    let frame = match frame {
        Ok(frame) => frame,
        Err(MessageError::TooLarge { size }) => {
            assert!(size > MAX_MESSAGE_BYTES);
            return;
        }
        Err(e) => panic!("no frame for accepted data {:?}: {e}", data.get()),
    };
    assert!(frame.len() <= MAX_MESSAGE_BYTES);
    assert_json_text(&frame, "a message frame");
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        from: &'a str,
        group: Option<String>,
        #[serde(borrow)]
        data: &'a RawValue,
    }
    let parsed: Frame = serde_json::from_str(&frame).expect("a message frame has its fields");
    assert_eq!((parsed.kind, parsed.from), ("message", "server"));
    assert_eq!(parsed.group.as_deref(), group);
    assert_compacted(data.get(), parsed.data.get());

    // Many ids, so batches split.
    let mut ids = ids.to_vec();
    while !ids.is_empty() && ids.len() <= DELIVERY_BATCH {
        ids.extend_from_within(..);
    }
    let bodies = DeliveryBatch::bodies(&frame, &ids, message_id.as_deref(), None)
        .expect("a message frame makes batches");
    assert_eq!(bodies.len(), ids.len().div_ceil(DELIVERY_BATCH));
    let mut seen = Vec::new();
    for body in &bodies {
        let batch = DeliveryBatch::parse(Some(body))
            .unwrap_or_else(|e| panic!("a Deliveries body does not parse: {e}"));
        assert_eq!(batch.frame.get(), frame);
        assert_eq!(batch.attempt, 1);
        assert_eq!(batch.id, message_id);
        assert!(!batch.connection_ids.is_empty() && batch.connection_ids.len() <= DELIVERY_BATCH);
        seen.extend(batch.connection_ids);
    }
    assert_eq!(seen, ids);
}

fn delivery_batch(body: &str) {
    let Ok(batch) = DeliveryBatch::parse(Some(body)) else {
        return;
    };
    assert!(batch.frame.get().len() <= MAX_MESSAGE_BYTES);
    let again = DeliveryBatch::parse(Some(&batch.body()))
        .unwrap_or_else(|e| panic!("a parsed batch does not re-serialise: {e}"));
    assert_eq!(again.connection_ids, batch.connection_ids);
    assert_eq!(again.frame.get(), batch.frame.get());
    assert_eq!(again.attempt, batch.attempt);
    assert_eq!(again.id, batch.id);
    assert_eq!(again.throttled, batch.throttled);
    // deliver hands failed connections back with the next attempt number,
    // throttled ones with the same attempt and one more `throttled`.
    if batch.attempt <= MAX_DELIVERY_ATTEMPTS {
        let retry = DeliveryBatch {
            connection_ids: batch.connection_ids.clone(),
            frame: batch.frame.clone(),
            attempt: batch.attempt + 1,
            id: batch.id.clone(),
            throttled: batch.throttled,
            booker: batch.booker.clone(),
        };
        let back = DeliveryBatch::parse(Some(&retry.body())).expect("a retry batch parses");
        assert_eq!(back.attempt, batch.attempt + 1);
        assert_eq!(back.throttled, batch.throttled);
        assert_eq!(back.booker, batch.booker);
        let throttled = DeliveryBatch {
            throttled: batch.throttled.saturating_add(1),
            attempt: batch.attempt,
            ..retry
        };
        let back = DeliveryBatch::parse(Some(&throttled.body())).expect("a throttled batch parses");
        assert_eq!(back.attempt, batch.attempt);
        assert_eq!(back.throttled, batch.throttled.saturating_add(1));
        assert_eq!(back.connection_ids, batch.connection_ids);
        assert_eq!(back.frame.get(), batch.frame.get());
        assert_eq!(back.id, batch.id);
    }
}
