//! Client WebSocket frames: the text API Gateway hands to `$default`, `ping`
//! and the group actions, parsed by `ClientFrame::parse`.
//!
//! Properties checked, beyond "does not panic":
//! - `Empty` is returned exactly for blank text;
//! - a parsed frame re-serialises (with its `action`) to JSON that parses back
//!   to the same frame, and agrees with the input read as plain JSON;
//! - `$default` answers every frame with a JSON error frame: `unknown_action`
//!   naming the action when the frame parses, the parse error's frame otherwise;
//! - `ping` echoes `name` exactly when it is a string, and fails when the frame does;
//! - the correlation `id` is echoed only when it is a number or a string of
//!   1 to 128 bytes of printable ASCII without spaces, and every answer frame
//!   is JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::handlers::default::default_reply;
use switchboard::handlers::ping::pong;
use switchboard::protocol::{
    ClientFrame, ErrorCode, FrameError, MAX_CORRELATION_ID_BYTES, QUOTE_ELLIPSIS,
    QUOTE_LIMIT_BYTES, ServerFrame, quote,
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

    match &parsed {
        Ok(frame) => {
            assert!(!frame.fields.contains_key("action"));
            check_round_trip(text, frame);
            // The reply quotes at most QUOTE_LIMIT_BYTES of the action, cut on a
            // character boundary and marked, so a huge action cannot echo back.
            let quoted = quote(&frame.action);
            if frame.action.len() <= QUOTE_LIMIT_BYTES {
                assert_eq!(quoted, frame.action.as_str());
            } else {
                let kept = quoted
                    .strip_suffix(QUOTE_ELLIPSIS)
                    .expect("a cut quote ends with the ellipsis");
                assert!(frame.action.starts_with(kept));
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
            check_correlation_id(frame);
            match (pong_reply, frame.optional_str("name")) {
                (Ok(ServerFrame::Pong { name }), Ok(expected)) => {
                    assert_eq!(name.as_deref(), expected);
                    check_server_frame(&ServerFrame::Pong { name });
                }
                (Err(e), Err(expected)) => assert_eq!(e, expected),
                (got, expected) => panic!("pong {got:?} disagrees with name {expected:?}"),
            }
            for field in ["group", "name", "data"] {
                match (frame.optional_str(field), frame.required_str(field)) {
                    (Ok(Some(a)), Ok(b)) => assert_eq!(a, b),
                    (Ok(None), Err(FrameError::MissingField(f))) => assert_eq!(f, field),
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("optional_str {a:?} and required_str {b:?} disagree"),
                }
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

/// The frame, with its `action` put back, is JSON that parses to the same frame.
fn check_round_trip(text: &str, frame: &ClientFrame) {
    let mut object = frame.fields.clone();
    object.insert("action".into(), Value::String(frame.action.clone()));
    let object = Value::Object(object);
    let again_text = serde_json::to_string(&object).expect("a parsed frame re-serialises");
    let again = ClientFrame::parse(Some(&again_text))
        .unwrap_or_else(|e| panic!("re-serialised frame {again_text:?} does not parse: {e}"));
    assert_eq!(again.action, frame.action);
    assert!(
        json_same(
            &Value::Object(again.fields.clone()),
            &Value::Object(frame.fields.clone())
        ),
        "round trip changed the fields: {text:?} -> {again_text:?}"
    );
    // The input read as plain JSON holds the same action and fields.
    if let Some(Value::Object(original)) = value_of(text) {
        assert!(json_same(&Value::Object(original), &object));
    }
}

fn check_correlation_id(frame: &ClientFrame) {
    let raw = frame.fields.get("id");
    match frame.correlation_id() {
        Ok(Some(id)) => {
            assert!(id.is_string() || id.is_number());
            assert!(id.as_str().is_none_or(|s| {
                s.len() <= MAX_CORRELATION_ID_BYTES
                    && !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_graphic())
            }));
            assert_eq!(Some(&id), raw);
            let ack = ServerFrame::ack_ok(Some(id.clone()));
            check_server_frame(&ack);
            let echoed = value_of(&ack.to_json()).expect("an ack is shallow");
            assert!(json_same(&echoed["id"], &id), "ack did not echo {id}");
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

/// A frame the server sends: JSON, with a `type`, never the encoding fallback.
fn check_server_frame(frame: &ServerFrame) {
    let text = frame.to_json();
    assert_ne!(text, ENCODING_FALLBACK, "{frame:?} fell back");
    assert_json_text(&text, "a server frame");
    let value = value_of(&text).expect("server frames are shallow");
    assert!(value["type"].is_string(), "{text}");
}
