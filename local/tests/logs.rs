//! Logs: a known token and a known message body go through every route and
//! queue of a stack on loopback, with everything logged at trace level as
//! JSON; neither appears in any line, and the lines carry the spans an
//! operator filters by (route and connection id, queue and message id).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/captured.rs"]
mod captured;
mod support;

use std::time::Duration;

use binary::spawn_listening;
use captured::Captured;
use futures::SinkExt;
use serde_json::Value;
use support::*;
use switchboard::auth::{claims_for, mint};
use switchboard_local::Config;
use switchboard_local::logs::{self, LogFormat};
use tokio_tungstenite::tungstenite::Message;
use tracing_subscriber::EnvFilter;

/// The body every message carries: it must reach the clients and no log line.
const BODY: &str = "BODY-7f3a9c-do-not-log";

/// Whether some line has span `name` with `field` = `value`.
fn has_span(lines: &[Value], name: &str, field: &str, value: &str) -> bool {
    lines.iter().any(|line| {
        line["spans"].as_array().is_some_and(|spans| {
            spans
                .iter()
                .any(|span| span["name"] == name && span[field] == value)
        })
    })
}

#[tokio::test]
async fn no_token_and_no_body_in_any_log_line_at_trace_level() {
    let captured = Captured::default();
    let subscriber = logs::subscriber(LogFormat::Json, EnvFilter::new("trace"), captured.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let stack = stack_with(Config::default()).await;
    let mut claims = claims_for("alice", Duration::from_secs(300), vec![]);
    claims.subscribe = vec!["chat:*".into()];
    claims.publish = vec!["chat:*".into()];
    let token = mint(stack.secret(), &claims).unwrap();
    // A well-formed token signed with another secret: refused, and not logged either.
    let other =
        switchboard::auth::TokenSecret::new("another-secret-another-secret-another").unwrap();
    let forged = mint(&other, &claims).unwrap();
    assert!(try_connect(&stack, Some(&forged)).await.is_err());

    let mut alice = try_connect(&stack, Some(&token)).await.unwrap();
    let mut bob = connect(&stack, "bob").await;
    let bob_id = connections_of(&stack, "bob").await.remove(0);

    // Routes: ping, $default, subscribe, publish (through deliver), presence.
    let frames = [
        format!(r#"{{"action":"ping","name":"{BODY}"}}"#),
        format!(r#"{{"action":"dance","data":"{BODY}"}}"#),
        r#"{"action":"subscribe","group":"chat:1","id":1}"#.to_owned(),
        format!(r#"{{"action":"publish","group":"chat:1","data":"{BODY}","id":2}}"#),
        r#"{"action":"presence","group":"chat:1","id":3}"#.to_owned(),
    ];
    for frame in frames {
        alice.send(Message::Text(frame.into())).await.unwrap();
        let answer = next_text(&mut alice).await;
        assert!(!answer.is_empty());
    }

    // The HTTP API and every queue, each carrying the body to a connection.
    let sends = [
        ("/send", format!(r#"{{"userId":"bob","data":"{BODY}"}}"#)),
        ("/send", format!(r#"{{"group":"chat:1","data":"{BODY}"}}"#)),
        (
            "/queues/notify-user",
            format!(r#"{{"userId":"bob","data":"{BODY}"}}"#),
        ),
        (
            "/queues/notify-connection",
            format!(r#"{{"connectionId":"{bob_id}","data":"{BODY}"}}"#),
        ),
        (
            "/queues/commands",
            format!(r#"{{"version":1,"type":"sendToUser","userId":"bob","data":"{BODY}"}}"#),
        ),
    ];
    for (path, body) in &sends {
        let answer = http(&stack, "POST", path, body).await;
        assert!(
            (200..300).contains(&answer.status),
            "{path}: {}",
            answer.body
        );
    }
    // Each send reached bob: every handler on the way has run.
    for _ in 0..sends.len() - 1 {
        assert!(next_text(&mut bob).await.contains(BODY));
    }
    assert!(next_text(&mut alice).await.contains(BODY), "the group send");
    // A queue message that fails: its error is logged, its body is not.
    let bad = http(
        &stack,
        "POST",
        "/queues/notify-connection",
        &format!(r#"{{"connectionId":"no such id","data":"{BODY}","extra":{{"{BODY}":1}}}}"#),
    )
    .await;
    assert!(
        (200..300).contains(&bad.status) || bad.status == 400,
        "{}",
        bad.body
    );
    // negotiate answers a token: it is not logged.
    let negotiated = http(&stack, "POST", "/negotiate", r#"{"userId":"carol"}"#).await;
    assert_eq!(negotiated.status, 200, "{}", negotiated.body);
    let minted: Value = serde_json::from_str(&negotiated.body).unwrap();
    let minted = minted["token"].as_str().unwrap().to_owned();

    alice.close(None).await.unwrap();
    let alice_gone = || async { connections_of(&stack, "alice").await.is_empty() };
    eventually("alice's $disconnect", alice_gone).await;
    stack.shutdown().await;

    let text = captured.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() > 20, "{} lines", lines.len());
    // The capture does hold the handlers' fields (the user ids they log).
    assert!(text.contains("\"user_id\":\"alice\""));
    for secret in [
        token.as_str(),
        forged.as_str(),
        minted.as_str(),
        BODY,
        SECRET,
    ] {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret:.12}… in {} lines: {:.400}",
            leaks.len(),
            leaks[0]
        );
    }
    // Nor the token's signature on its own (a log could cut a token up).
    let signature = token.rsplit('.').next().unwrap();
    assert!(!text.contains(signature));

    // The spans an operator filters by.
    for route in [
        "$connect",
        "ping",
        "$default",
        "subscribe",
        "publish",
        "presence",
        "$disconnect",
    ] {
        assert!(
            has_span(&lines, "route", "route", route),
            "no line in route {route}"
        );
    }
    assert!(lines.iter().any(|l| {
        l["spans"][0]["name"] == "route"
            && l["spans"][0]["route"] == "$connect"
            && l["spans"][0]["connection_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
    }));
    for queue in ["deliveries", "notify-user", "notify-connection", "commands"] {
        assert!(
            has_span(&lines, "message", "queue", queue),
            "no line in queue {queue}"
        );
    }
    assert!(has_span(&lines, "request", "route", "POST /send"));
    assert!(
        lines.iter().any(|l| l["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "message"
                && s["message_id"].as_str().is_some_and(|id| !id.is_empty()))))
    );
}

/// The first log line the binary writes with `format`: the "listening" line.
async fn first_line(format: &str) -> String {
    let (mut child, line) =
        spawn_listening(&["--addr", "127.0.0.1:0", "--log-format", format]).await;
    child.kill().await.unwrap();
    line
}

#[tokio::test]
async fn log_format_json_writes_json_lines_and_text_is_the_default() {
    let json: Value = serde_json::from_str(&first_line("json").await).unwrap();
    assert_eq!(json["level"], "INFO");
    assert_eq!(json["fields"]["message"], "listening");
    assert!(
        json["fields"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let text = first_line("text").await;
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert!(
        text.contains("INFO") && text.contains("listening"),
        "{text}"
    );
}
