//! The upstream event builder: the CloudEvents (`connected`, `disconnected`,
//! `message`) built from client strings, their structured JSON (the Upstream
//! queue, EventBridge's `Detail`), their binary-mode `ce-*` headers (the
//! webhook and the event hook) and the HTTP request the production poster
//! builds from them (issue 25, defect 1).
//!
//! The input is split on 0xFF (a byte UTF-8 never holds) into the connection
//! id, user id, event name, client `id` (a number when it reads as one), the
//! `data` JSON, the source IP, user agent, close reason and group names.
//!
//! Properties checked, beyond "does not panic":
//! - the structured JSON parses back to the same event, and the PutEvents
//!   body is JSON whose `Detail` is that event;
//! - `headers()` succeeds exactly when no attribute it carries holds a
//!   control character, and names a header that holds one when it fails;
//! - the request builder never panics, whatever the header values: it
//!   builds every request `headers()` gave, and refuses a value a header
//!   cannot hold with an error;
//! - what the edge accepts can always be sent: a user id `validate::user_id`
//!   accepts, an event name `validate::group` accepts and an `id` the frame
//!   parser accepts always give headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::adapters::eventbridge::put_events_body;
use switchboard::adapters::http::build_request;
use switchboard::protocol::ClientFrame;
use switchboard::upstream::CloudEvent;
use switchboard::upstream::events::{self, Connected, Disconnected};
use switchboard::validate;

fuzz_target!(|data: &[u8]| {
    let mut parts = data
        .split(|b| *b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let connection_id = next();
    let user_id = next();
    let event_name = next();
    let raw_id = next();
    let data = serde_json::from_str::<Value>(&next()).unwrap_or(Value::Null);
    let source_ip = next();
    let user_agent = next();
    let reason = next();
    let groups: Vec<String> = std::iter::from_fn(|| parts.next()).take(8).collect();
    let client_id = match serde_json::from_str::<Value>(&raw_id) {
        Ok(number @ Value::Number(_)) => number,
        _ => Value::String(raw_id.clone()),
    };

    let built = [
        events::connected(&Connected {
            connection_id: &connection_id,
            user_id: &user_id,
            groups: &groups,
            source_ip: Some(&source_ip),
            user_agent: Some(&user_agent),
            connected_at_ms: 0,
        }),
        events::disconnected(&Disconnected {
            connection_id: &connection_id,
            user_id: &user_id,
            status_code: Some(1000),
            reason: Some(&reason),
            connected_at_ms: 0,
            disconnected_at_ms: 1,
        }),
        events::message(
            &connection_id,
            &user_id,
            &event_name,
            &data,
            Some(&client_id),
        ),
        events::message(&connection_id, &user_id, &event_name, &data, None),
    ];
    for event in &built {
        check_event(event);
    }
    let body: Value = serde_json::from_str(&put_events_body("bus", &built)).expect("JSON");
    for (entry, event) in body["Entries"]
        .as_array()
        .expect("entries")
        .iter()
        .zip(&built)
    {
        let detail: CloudEvent =
            serde_json::from_str(entry["Detail"].as_str().expect("a string")).expect("an event");
        assert_eq!(detail, as_parsed(event));
    }

    // What the edge lets through can always be sent. (Connection ids come
    // from API Gateway: printable ASCII.)
    let frame = serde_json::json!({"action":"event","event":event_name,"id":client_id});
    let id_accepted =
        match ClientFrame::parse(Some(&frame.to_string())).expect("an object with an action") {
            ClientFrame::Action { id, .. } => id.is_ok(),
            ClientFrame::Other { action } => panic!("event is an action, not {action}"),
        };
    if id_accepted
        && validate::user_id("sub", &user_id).is_ok()
        && validate::group("event", &event_name).is_ok()
        && connection_id.bytes().all(|b| b.is_ascii_graphic())
    {
        let event = &built[2];
        let headers = event.headers().unwrap_or_else(|e| {
            panic!("an event the edge accepted cannot be sent: {e}: {event:?}")
        });
        build_request("http://127.0.0.1:9/h", &headers, Vec::new())
            .expect("an event the edge accepted builds a request");
    }
});

/// `event` as serde_json reads it back: its parser (without `float_roundtrip`) may land a
/// float of `data` one ulp off the value it printed, so both sides go through it once.
fn as_parsed(event: &CloudEvent) -> CloudEvent {
    let data = serde_json::from_str(&event.data.to_string()).expect("data is JSON");
    CloudEvent {
        data,
        ..event.clone()
    }
}

fn check_event(event: &CloudEvent) {
    let json = event.to_json();
    let back: CloudEvent = serde_json::from_str(&json).expect("the structured form parses");
    assert_eq!(back, as_parsed(event));

    let attributes = [
        ("ce-id", event.id.as_str()),
        ("ce-connectionid", event.connectionid.as_str()),
        ("ce-userid", event.userid.as_str()),
        ("ce-eventname", event.eventname.as_deref().unwrap_or("")),
    ];
    let bad: Vec<&str> = attributes
        .iter()
        .filter(|(_, value)| value.chars().any(char::is_control))
        .map(|(name, _)| *name)
        .collect();
    match event.headers() {
        Ok(headers) => {
            assert!(bad.is_empty(), "{bad:?} hold control characters");
            assert!(
                headers
                    .iter()
                    .all(|(_, v)| !v.chars().any(char::is_control))
            );
            build_request(
                "http://127.0.0.1:9/h",
                &headers,
                event.data_json().into_bytes(),
            )
            .expect("headers() gave values every header holds");
        }
        Err(e) => {
            assert!(
                bad.contains(&e.name),
                "{e} but only {bad:?} hold control characters"
            );
        }
    }
    // The raw values, unchecked, straight into the request builder: an
    // error for a value a header cannot hold, never a panic.
    let raw: Vec<(&str, String)> = attributes
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    let result = build_request("http://127.0.0.1:9/h", &raw, Vec::new());
    let holdable = |v: &str| v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    assert_eq!(
        result.is_ok(),
        raw.iter().all(|(_, v)| holdable(v)),
        "{raw:?}: {:?}",
        result.err()
    );
}
