//! The upstream event builder: the CloudEvents (`connected`, `disconnected`,
//! `message`) built from client strings, their structured JSON (the Upstream
//! queue, EventBridge's `Detail`, and the body of every webhook and hook
//! request), the signed request's headers (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) and the HTTP request the production poster builds
//! from them (issue 25, defects 1, 6 and 9).
//!
//! The input is split on 0xFF (a byte UTF-8 never holds) into the connection
//! id, user id, event name, client `id` (a number when it reads as one), the
//! `data` JSON, the source IP, user agent, close reason and group names.
//!
//! Properties checked, beyond "does not panic":
//! - the structured JSON parses back to the same event, and the PutEvents
//!   body is JSON whose `Detail` is that event;
//! - every event can be sent, whatever its strings hold: the signed
//!   request's header values are printable ASCII (the id percent-encoded,
//!   and decoding it gives the id back), the production request builder
//!   builds it, and the request verifies, with the event exactly as made in
//!   its body;
//! - the request builder never panics, whatever the header values: it
//!   refuses a value a header cannot hold with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::adapters::eventbridge::put_events_body;
use switchboard::adapters::http::build_request;
use switchboard::upstream::CloudEvent;
use switchboard::upstream::delivery::signed_request_headers;
use switchboard::upstream::events::{self, Connected, Disconnected};
use switchboard::webhook;

const KEY: &[u8] = b"fuzz-webhook-key-fuzz-webhook-key-fuzz";

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

    // The signed request: headers of printable ASCII, built, verified, and
    // the event whole in the body.
    let body = event.body();
    let headers = signed_request_headers(KEY, event, &body);
    assert!(
        headers
            .iter()
            .all(|(_, v)| v.bytes().all(|b| (0x20..0x7f).contains(&b))),
        "{headers:?}"
    );
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .expect("the header is there")
    };
    let id = value(webhook::ID_HEADER);
    assert_eq!(
        percent_decode(id),
        event.id.as_bytes(),
        "the webhook-id decodes to the event id"
    );
    let timestamp = value(webhook::TIMESTAMP_HEADER);
    let verified = webhook::verify_values(
        id,
        timestamp,
        value(webhook::SIGNATURE_HEADER),
        &body,
        &[KEY],
        webhook::DEFAULT_TOLERANCE,
        timestamp.parse().expect("a number"),
    )
    .expect("the request verifies");
    assert_eq!(verified.id, id);
    build_request("http://127.0.0.1:9/h", &headers, body.clone())
        .expect("every signed request builds");

    // The raw strings, unchecked, straight into the request builder: an
    // error for a value a header cannot hold, never a panic.
    let raw: Vec<(&str, String)> = [
        ("x-id", event.id.as_str()),
        ("x-connectionid", event.connectionid.as_str()),
        ("x-userid", event.userid.as_str()),
        ("x-eventname", event.eventname.as_deref().unwrap_or("")),
    ]
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

/// `%XX` decoded (the inverse of [`webhook::header_id`]).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}
