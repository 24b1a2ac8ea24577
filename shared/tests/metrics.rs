//! Metrics: known traffic through the handlers, measured as the Lambda mains
//! measure it, and the EMF lines parsed back: names, units, dimensions, values.

mod common;

use std::sync::{Mutex, Once};

use common::{Harness, connect_event, disconnect_event, message_event, record, sqs_event, token};
use serde_json::{Value, json};
use switchboard::handlers::actions::handle_client_action;
use switchboard::handlers::connect::handle_connect;
use switchboard::handlers::deliver::deliveries_batch;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::metrics::{Invocation, MetricsSink, measure};
use switchboard::ports::GatewayError;

/// Keeps every EMF line an invocation produced.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl MetricsSink for Lines {
    fn export(&self, function: &'static str, invocation: &Invocation) {
        self.0
            .lock()
            .unwrap()
            .extend(invocation.emf_lines(function, 1_800_000_000_000));
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .map(|l| {
                assert!(!l.contains('\n'), "one line: {l}");
                serde_json::from_str(l).unwrap()
            })
            .collect()
    }
}

/// The redrive policy the template passes (read once per process).
fn redrive_policy() {
    static ONCE: Once = Once::new();
    // SAFETY: set once, before any handler of this test binary reads it.
    ONCE.call_once(|| unsafe { std::env::set_var("MAX_RECEIVE_COUNT", "3") });
}

/// The one directive of `line`: its dimension set and `{name: unit}`.
fn directive(line: &Value) -> (Value, Vec<(String, String)>) {
    let aws = &line["_aws"];
    assert_eq!(aws["Timestamp"], 1_800_000_000_000i64);
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1, "{line}");
    assert_eq!(directives[0]["Namespace"], "Switchboard");
    let metrics = directives[0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap().to_owned(),
                m["Unit"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (directives[0]["Dimensions"].clone(), metrics)
}

#[tokio::test]
async fn connects_count_accepted_and_rejected_by_reason() {
    redrive_policy();
    let h = Harness::new();
    let sink = Lines::default();
    let verifier = common::verifier();
    let accepted = connect_event("c-ok", Some(&token("alice")));
    let no_token = connect_event("c-none", None);
    let forged = connect_event("c-bad", Some("eyJhbGciOiJIUzI1NiJ9.e30.forged"));
    for event in [&accepted, &no_token, &forged] {
        measure(
            &sink,
            "connect",
            handle_connect(&h.services, &verifier, event),
        )
        .await;
    }
    let lines = sink.parsed();
    assert_eq!(lines.len(), 3, "one line per invocation: {lines:?}");
    assert_eq!(
        directive(&lines[0]),
        (
            json!([["Function"]]),
            vec![("ConnectsAccepted".into(), "Count".into())]
        )
    );
    assert_eq!(lines[0]["Function"], "connect");
    assert_eq!(lines[0]["ConnectsAccepted"], 1.0);
    for line in &lines[1..] {
        assert_eq!(
            directive(line),
            (
                json!([["Function", "Reason"]]),
                vec![("ConnectsRejected".into(), "Count".into())]
            )
        );
        assert_eq!(line["Reason"], "unauthorized");
        assert_eq!(line["ConnectsRejected"], 1.0);
        // Never a user or connection id.
        let text = line.to_string();
        assert!(
            !text.contains("c-bad") && !text.contains("c-none"),
            "{text}"
        );
    }
    assert!(!lines[0].to_string().contains("alice"));
}

#[tokio::test]
async fn disconnects_count_by_close_code_class() {
    redrive_policy();
    let h = Harness::new();
    h.connection(record("c1", "alice")).await;
    let sink = Lines::default();
    let mut going_away = disconnect_event("c1");
    going_away.request_context.disconnect_status_code = Some(1001);
    measure(
        &sink,
        "disconnect",
        handle_disconnect(&h.services, &going_away),
    )
    .await;
    let lines = sink.parsed();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        directive(&lines[0]),
        (
            json!([["Function", "CloseCode"]]),
            vec![("Disconnects".into(), "Count".into())]
        )
    );
    assert_eq!(lines[0]["CloseCode"], "going_away");
    assert_eq!(lines[0]["Disconnects"], 1.0);
}

#[tokio::test]
async fn client_actions_count_by_action_and_outcome() {
    redrive_policy();
    let h = Harness::new();
    let mut member = record("conn-1", "alice");
    member.subscribe = vec!["chat:*".into()];
    h.connection(member).await;
    let sink = Lines::default();
    let frames = [
        ("subscribe", r#"{"action":"subscribe","group":"chat:1"}"#),
        ("subscribe", r#"{"action":"subscribe","group":"news"}"#),
        ("presence", r#"{"action":"presence","group":"other:2"}"#),
        ("subscribe", "not json"),
    ];
    for (route, body) in frames {
        let event = message_event(route, Some(body));
        measure(&sink, "actions", handle_client_action(&h.services, &event)).await;
    }
    let seen: Vec<(Value, Value, Value)> = sink
        .parsed()
        .iter()
        .map(|line| {
            assert_eq!(
                directive(line),
                (
                    json!([["Function", "Action", "Outcome"]]),
                    vec![("ClientActions".into(), "Count".into())]
                )
            );
            (
                line["Action"].clone(),
                line["Outcome"].clone(),
                line["ClientActions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("subscribe"), json!("ok"), json!(1)),
            (json!("subscribe"), json!("forbidden"), json!(1)),
            (json!("presence"), json!("forbidden"), json!(1)),
            (json!("invalid"), json!("bad_request"), json!(1)),
        ]
    );
}

#[tokio::test]
async fn posts_count_by_outcome_with_fanout_latency_in_one_line() {
    redrive_policy();
    let h = Harness::new();
    for id in ["open", "throttled", "failing"] {
        h.gateway.open(id);
    }
    h.gateway
        .fail_next("throttled", GatewayError::Throttled("slow down".into()));
    h.gateway.fail_next(
        "failing",
        GatewayError::Server {
            status: 500,
            message: "boom".into(),
        },
    );
    let body = json!({
        "connectionIds": ["open", "gone", "throttled", "failing"],
        "frame": {"type": "message", "data": "hi"},
    })
    .to_string();
    let mut event = sqs_event(&[&body]);
    let sent = switchboard::clock::now_millis() - 1500;
    event.records[0]
        .attributes
        .insert("SentTimestamp".into(), sent.to_string());
    let sink = Lines::default();
    let report = measure(&sink, "deliver", deliveries_batch(&h.services, event)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let lines = sink.parsed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let (dimensions, mut metrics) = directive(line);
    metrics.sort();
    assert_eq!(dimensions, json!([["Function"]]));
    assert_eq!(
        metrics,
        [
            ("FanoutLatency".to_owned(), "Milliseconds".to_owned()),
            ("PostsDelivered".into(), "Count".into()),
            ("PostsFailed".into(), "Count".into()),
            ("PostsGone".into(), "Count".into()),
            ("PostsRetried".into(), "Count".into()),
            ("PostsThrottled".into(), "Count".into()),
        ]
    );
    assert_eq!(line["Function"], "deliver");
    // The throttled and the failing post are posted again inside the invocation.
    for (name, count) in [
        ("PostsDelivered", 3.0),
        ("PostsGone", 1.0),
        ("PostsThrottled", 1.0),
        ("PostsFailed", 1.0),
        ("PostsRetried", 2.0),
    ] {
        assert_eq!(line[name], count, "{name}: {line}");
    }
    let latency = line["FanoutLatency"].as_array().unwrap();
    assert_eq!(latency.len(), 1);
    let ms = latency[0].as_f64().unwrap();
    assert!((1500.0..60_000.0).contains(&ms), "{ms}");
}

#[tokio::test]
async fn the_receive_that_exhausts_the_redrive_policy_counts_as_dead_lettered() {
    redrive_policy();
    let h = Harness::new();
    // Past every delivery attempt: refused on every receive.
    let body =
        json!({"connectionIds": ["c1"], "frame": {"type":"message"}, "attempt": 99}).to_string();
    let sink = Lines::default();
    for receive in ["2", "3"] {
        let mut event = sqs_event(&[&body]);
        event.records[0]
            .attributes
            .insert("ApproximateReceiveCount".into(), receive.into());
        let report = measure(&sink, "deliver", deliveries_batch(&h.services, event)).await;
        assert_eq!(report.failures.len(), 1);
    }
    let lines = sink.parsed();
    assert_eq!(
        lines.len(),
        1,
        "only the last receive goes to the DLQ: {lines:?}"
    );
    assert_eq!(
        directive(&lines[0]),
        (
            json!([["Function", "Queue"]]),
            vec![("DeadLettered".into(), "Count".into())]
        )
    );
    assert_eq!(lines[0]["Queue"], "deliveries");
    assert_eq!(lines[0]["DeadLettered"], 1.0);
}

#[tokio::test]
async fn outside_an_invocation_nothing_is_recorded() {
    redrive_policy();
    let h = Harness::new();
    let verifier = common::verifier();
    // No measure(): must not panic, and a later invocation starts empty.
    handle_connect(&h.services, &verifier, &connect_event("c0", None)).await;
    let sink = Lines::default();
    measure(&sink, "connect", async {}).await;
    assert!(sink.parsed().is_empty());
}
