//! Issue 25, defect 6: Switchboard's webhook requests checked by a real
//! Standard Webhooks verifier, the reference Python library
//! (`standardwebhooks` from PyPI, in the project's .venv through
//! requirements-dev.txt), with the secret in both forms Switchboard takes:
//! raw bytes and `whsec_<base64>`. The library accepts every request as
//! sent, and refuses each with its id, timestamp or routing data (in the
//! body) changed, or signed outside its 5-minute tolerance. Before, the
//! signature was `Switchboard-Signature: t=…,v1=<hex>` over `t.body` alone,
//! which no such library reads.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use switchboard::upstream::delivery::signed_request_headers;
use switchboard::upstream::events;
use switchboard::webhook::{self, header_id, key_from_secret, signed_headers_at};

const RAW_SECRET: &str = "standard-webhooks-oracle-secret-0123456789";

/// The library's verdict on each request: "ok" or the exception's name.
const VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
verdicts = []
for case in json.load(sys.stdin):
    secret = case["secret"]
    hook = Webhook(secret.encode() if case["raw"] else secret)
    try:
        hook.verify(case["body"].encode(), case["headers"])
        verdicts.append("ok")
    except Exception as e:
        verdicts.append(type(e).__name__ + ": " + str(e))
print(json.dumps(verdicts))
"#;

fn python_verdicts(cases: &Value) -> Vec<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{python} with standardwebhooks (make tools installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn headers_json(headers: &[(&str, String)]) -> Value {
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn with(
    headers: &[(&'static str, String)],
    name: &str,
    value: String,
) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .map(|(k, v)| (*k, if *k == name { value.clone() } else { v.clone() }))
        .collect()
}

#[test]
#[ignore = "needs python3 with the standardwebhooks package (requirements-dev.txt): make test-all"]
fn the_reference_library_verifies_every_request_and_refuses_each_tampering() {
    let whsec = webhook::whsec(b"a key of the spec's own form, 32 b");
    let message = events::message(
        "c1=",
        "zoë",
        "chat:typing",
        &json!({"text":"ünïcode \" % \u{0}"}),
        Some(&json!("e 50%")),
    );
    let connected = events::connected(&events::Connected {
        connection_id: "c2=",
        user_id: "alice",
        groups: &["room:1".into()],
        source_ip: Some("203.0.113.7"),
        user_agent: Some("test"),
        connected_at_ms: 0,
    });
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (secret, raw) in [(RAW_SECRET.to_owned(), true), (whsec, false)] {
        let key = key_from_secret(secret.as_bytes()).unwrap();
        let mut case = |headers: &[(&str, String)], body: &[u8], verdict: &str| {
            cases.push(json!({
                "secret": secret, "raw": raw,
                "headers": headers_json(headers),
                "body": String::from_utf8(body.to_vec()).unwrap(),
            }));
            expected.push(verdict.to_owned());
        };
        for event in [&message, &connected] {
            let body = event.body();
            let headers = signed_request_headers(&key, event, &body);
            case(&headers, &body, "ok");
            let text = String::from_utf8(body.clone()).unwrap();
            let mismatch = "WebhookVerificationError: No matching signature found";
            let rerouted = text
                .replace(r#""userid":"zoë""#, r#""userid":"mallory""#)
                .replace(r#""userid":"alice""#, r#""userid":"mallory""#);
            case(&headers, rerouted.as_bytes(), mismatch);
            let retyped = text.replace("switchboard.", "switchboard.x");
            case(&headers, retyped.as_bytes(), mismatch);
            let renamed = with(&headers, "webhook-id", format!("{}x", header_id(&event.id)));
            case(&renamed, &body, mismatch);
            let t: i64 = headers[2].1.parse().unwrap();
            case(
                &with(&headers, "webhook-timestamp", (t - 1).to_string()),
                &body,
                mismatch,
            );
            // Correctly signed, but six minutes ago: a replay past the window.
            let stale = signed_headers_at(&key, &header_id(&event.id), t - 360, &body);
            let mut stale_headers = vec![headers[0].clone()];
            stale_headers.extend(stale);
            case(
                &stale_headers,
                &body,
                "WebhookVerificationError: Message timestamp too old",
            );
        }
    }
    assert_eq!(python_verdicts(&Value::from(cases)), expected);
    assert_eq!(header_id(&message.id), "message:c1=:se%2050%25");
}
