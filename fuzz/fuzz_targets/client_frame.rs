//! Client WebSocket frames: the text API Gateway hands to `$default`, `ping`
//! and the group actions, parsed by `ClientFrame::parse` (and `Ping::parse`).
//!
//! Properties checked, beyond "does not panic":
//! - `Empty` is returned exactly for blank text;
//! - a parsed frame names the input's `action`, and the input re-serialised
//!   parses to the same action;
//! - `$default` answers every frame with a JSON error frame: `unknown_action`
//!   naming the action when the frame parses, the parse error's frame otherwise;
//! - `ping` echoes `name` exactly when it is a string, and fails when the frame does;
//! - the correlation `id` is echoed only when it is a number or a string of
//!   1 to 128 bytes of printable ASCII without spaces, and every answer frame
//!   is JSON;
//! - a group action's `group` and an event's name are taken exactly when they
//!   are strings that pass their rule, and `data` is the input's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::groups::validate_group;
use switchboard::handlers::default::default_reply;
use switchboard::handlers::ping::pong;
use switchboard::protocol::{
    Checked, ClientAction, ClientFrame, ErrorCode, FrameError, MAX_CORRELATION_ID_BYTES, Ping,
    QUOTE_ELLIPSIS, QUOTE_LIMIT_BYTES, ServerFrame, quote,
};
use switchboard_fuzz::{assert_json_text, json_same, value_of};

/// What `ServerFrame::to_json` returns if serialising ever failed.
const ENCODING_FALLBACK: &str =
    r#"{"type":"error","code":"bad_request","message":"internal encoding error"}"#;

fuzz_target!(|data: &[u8]| {
    // API Gateway delivers text frames as strings; binary frames never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = ClientFrame::parse(Some(text));
    assert_eq!(
        parsed == Err(FrameError::Empty),
        text.trim().is_empty(),
        "Empty must mean blank text: {text:?} -> {parsed:?}"
    );

    let reply = default_reply(Some(text), false);
    check_server_frame(&reply);
    let pong_reply = pong(Some(text));
    assert_eq!(
        pong_reply.as_ref().err(),
        Ping::parse(Some(text)).as_ref().err()
    );

    match &parsed {
        Ok(frame) => {
            // The parser read the text as a JSON object: so does serde_json here.
            let Some(Value::Object(raw)) = value_of(text) else {
                panic!("a parsed frame is a JSON object: {text:?}");
            };
            assert_eq!(
                raw.get("action"),
                Some(&Value::String(frame.action().into()))
            );
            check_round_trip(&raw, frame);
            // The reply quotes at most QUOTE_LIMIT_BYTES of the action, cut on a
            // character boundary and marked, so a huge action cannot echo back.
            let action = frame.action();
            let quoted = quote(action);
            if action.len() <= QUOTE_LIMIT_BYTES {
                assert_eq!(quoted, action);
            } else {
                let kept = quoted
                    .strip_suffix(QUOTE_ELLIPSIS)
                    .expect("a cut quote ends with the ellipsis");
                assert!(action.starts_with(kept));
                assert!(kept.len() <= QUOTE_LIMIT_BYTES);
                assert!(
                    kept.len() + 4 > QUOTE_LIMIT_BYTES,
                    "cut at most one character short"
                );
            }
            assert_eq!(
                reply,
                ServerFrame::Error {
                    code: ErrorCode::UnknownAction,
                    message: format!("unknown action \"{quoted}\""),
                    action: Some(quoted.into_owned()),
                }
            );
            match (pong_reply, raw.get("name")) {
                (Ok(ServerFrame::Pong { name: None }), None | Some(Value::Null)) => {}
                (Ok(ServerFrame::Pong { name: Some(name) }), Some(Value::String(expected))) => {
                    assert_eq!(&name, expected);
                    check_server_frame(&ServerFrame::Pong { name: Some(name) });
                }
                (
                    Err(FrameError::WrongType {
                        field: "name",
                        expected: "a string",
                    }),
                    Some(_),
                ) => {}
                (got, raw) => panic!("pong {got:?} disagrees with name {raw:?}"),
            }
            if let ClientFrame::Action { id, action } = frame {
                check_correlation_id(&raw, id);
                check_fields(&raw, action);
            }
        }
        Err(e) => {
            assert_eq!(reply, e.to_frame());
            assert_eq!(pong_reply.as_ref().err(), Some(e));
            check_server_frame(&ServerFrame::ack_error(
                None,
                ErrorCode::BadRequest,
                e.to_string(),
            ));
        }
    }
});

/// The frame's object re-serialised parses to the same action.
fn check_round_trip(raw: &serde_json::Map<String, Value>, frame: &ClientFrame) {
    let again_text =
        serde_json::to_string(&Value::Object(raw.clone())).expect("a parsed frame re-serialises");
    let again = ClientFrame::parse(Some(&again_text))
        .unwrap_or_else(|e| panic!("re-serialised frame {again_text:?} does not parse: {e}"));
    assert_eq!(again.action(), frame.action());
    assert_eq!(
        std::mem::discriminant(&again),
        std::mem::discriminant(frame)
    );
}

fn check_correlation_id(raw: &serde_json::Map<String, Value>, id: &Checked<Option<Value>>) {
    let raw = raw.get("id");
    match id {
        Ok(Some(id)) => {
            assert!(id.is_string() || id.is_number());
            assert!(id.as_str().is_none_or(|s| {
                s.len() <= MAX_CORRELATION_ID_BYTES
                    && !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_graphic())
            }));
            assert_eq!(Some(id), raw);
            let ack = ServerFrame::ack_ok(Some(id.clone()));
            check_server_frame(&ack);
            let echoed = value_of(&ack.to_json()).expect("an ack is shallow");
            assert!(json_same(&echoed["id"], id), "ack did not echo {id}");
        }
        Ok(None) => assert!(matches!(raw, None | Some(Value::Null))),
        Err(e) => {
            // Refused: a type other than string or number, or a string id too
            // long to echo back, empty, or with a byte other than printable
            // ASCII (it becomes the upstream event's `ce-id` header).
            assert!(match raw {
                Some(Value::Bool(_) | Value::Array(_) | Value::Object(_)) => true,
                Some(Value::String(id)) =>
                    id.len() > MAX_CORRELATION_ID_BYTES
                        || id.is_empty()
                        || !id.bytes().all(|b| b.is_ascii_graphic()),
                _ => false,
            });
            check_server_frame(&ServerFrame::ack_error(
                None,
                ErrorCode::BadRequest,
                e.to_string(),
            ));
        }
    }
}

/// A group action's `group`, an event's name and their `data` are the input's.
fn check_fields(raw: &serde_json::Map<String, Value>, action: &ClientAction) {
    match action {
        ClientAction::Subscribe { group, .. }
        | ClientAction::Unsubscribe { group, .. }
        | ClientAction::Presence { group } => check_name(raw, "group", group),
        ClientAction::Publish { group, data } => {
            check_name(raw, "group", group);
            assert_eq!(data.as_ref(), raw.get("data"));
        }
        ClientAction::Event { name, data } => {
            check_name(raw, "event", name);
            assert_eq!(data, raw.get("data").unwrap_or(&Value::Null));
        }
        ClientAction::Recover { .. } | ClientAction::History { .. } => {}
    }
}

/// `field` parsed as a required string named by the group rule.
fn check_name(raw: &serde_json::Map<String, Value>, field: &'static str, parsed: &Checked<String>) {
    match (parsed, raw.get(field)) {
        (Ok(name), Some(Value::String(expected))) => {
            assert_eq!(name, expected);
            assert!(validate_group(name).is_ok());
        }
        (Err(FrameError::MissingField(f)), None | Some(Value::Null)) => assert_eq!(*f, field),
        (Err(FrameError::WrongType { field: f, .. }), Some(value)) => {
            assert_eq!(*f, field);
            assert!(!value.is_string() && !value.is_null());
        }
        (Err(FrameError::Group(_) | FrameError::Field(_)), Some(Value::String(name))) => {
            assert!(validate_group(name).is_err());
        }
        (got, raw) => panic!("{field}: parsed {got:?} disagrees with {raw:?}"),
    }
}

/// A frame the server sends: JSON, with a `type`, never the encoding fallback.
fn check_server_frame(frame: &ServerFrame) {
    let text = frame.to_json();
    assert_ne!(text, ENCODING_FALLBACK, "{frame:?} fell back");
    assert_json_text(&text, "a server frame");
    let value = value_of(&text).expect("server frames are shallow");
    assert!(value["type"].is_string(), "{text}");
}
