//! Upstream events in memory: the producers (connect, disconnect, the
//! `event` action) never fail the client's route when the Upstream queue
//! refuses, and the webhook sender's per-record outcomes (delivered, retried,
//! dead-lettered with the status) are loss-free.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use switchboard::adapters::memory::MemoryQueue;
use switchboard::handlers::actions::client_action;
use switchboard::handlers::connect::handle_connect;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::handlers::upstream::{WebhookSender, upstream_batch};
use switchboard::ports::{ConnectionStore, QueueError};
use switchboard::services::Services;
use switchboard::upstream::Hook;
use switchboard::upstream::delivery::DeliveryPolicy;
use switchboard::upstream::{
    CloudEvent, HttpAnswer, HttpPoster, PostError, Upstream, WebhookSecret, events,
};

const SECRET: &str = "upstream-unit-secret-upstream-unit-secret";

fn with_queue(h: &Harness, queue: Arc<MemoryQueue>) -> Services {
    let mut upstream = Upstream::default();
    upstream.queue = Some(queue);
    Services {
        upstream: Arc::new(upstream),
        ..h.services.clone()
    }
}

#[tokio::test]
async fn producers_enqueue_one_event_each_with_stable_ids() {
    let h = Harness::new();
    let queue = Arc::new(MemoryQueue::new());
    let services = with_queue(&h, queue.clone());
    let mut claims = switchboard::auth::claims_for("alice", Duration::from_secs(60), vec![]);
    claims.events = vec!["chat".into()];
    let token = token_with(&claims);
    let event = connect_event("c1", Some(&token));
    assert_eq!(
        handle_connect(&services, &verifier(), &event)
            .await
            .status_code,
        200
    );
    // API Gateway may invoke $connect again for the same connection: same id.
    assert_eq!(
        handle_connect(&services, &verifier(), &event)
            .await
            .status_code,
        200
    );
    let answer = client_action(
        &services,
        "c1",
        Some(r#"{"action":"event","event":"chat","data":[1],"id":"x"}"#),
    )
    .await;
    assert_eq!(answer, r#"{"type":"ack","id":"x","ok":true}"#);
    assert_eq!(
        handle_disconnect(&services, &disconnect_event("c1"))
            .await
            .status_code,
        200
    );
    let sent: Vec<CloudEvent> = queue
        .sent()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let ids: Vec<&str> = sent.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "connected:c1",
            "connected:c1",
            "message:c1:sx",
            "disconnected:c1"
        ]
    );
    assert_eq!(sent[3].data["statusCode"], 1000);
    assert_eq!(sent[0].data["sourceIp"], "203.0.113.7");
    assert_eq!(sent[0].data["userAgent"], "websocat/1.14.0");
    assert_eq!(services.upstream.lost(), 0);
}

#[tokio::test]
async fn a_refusing_upstream_queue_never_breaks_the_route_and_is_counted() {
    let h = Harness::new();
    let queue = Arc::new(MemoryQueue::new());
    let services = with_queue(&h, queue.clone());
    let mut claims = switchboard::auth::claims_for("alice", Duration::from_secs(60), vec![]);
    claims.events = vec!["chat".into()];
    queue.fail_call_next(QueueError::Unavailable("SQS is down".into()));
    let response = handle_connect(
        &services,
        &verifier(),
        &connect_event("c1", Some(&token_with(&claims))),
    )
    .await;
    assert_eq!(response.status_code, 200, "the handshake succeeds");
    assert!(
        h.store.get_connection("c1").await.unwrap().is_some(),
        "and the record is written"
    );
    queue.fail_entries_next(&[0], false);
    let answer = client_action(
        &services,
        "c1",
        Some(r#"{"action":"event","event":"chat","id":1}"#),
    )
    .await;
    assert_eq!(answer, r#"{"type":"ack","id":1,"ok":true}"#);
    queue.fail_call_next(QueueError::Unavailable("SQS is down".into()));
    assert_eq!(
        handle_disconnect(&services, &disconnect_event("c1"))
            .await
            .status_code,
        200
    );
    assert!(
        h.store.get_connection("c1").await.unwrap().is_none(),
        "the connection is forgotten"
    );
    assert_eq!(services.upstream.lost(), 3);
    assert!(queue.sent().is_empty());
}

/// One request the scripted receiver got: its headers and body.
type Request = (Vec<(String, String)>, Vec<u8>);

/// A receiver that answers from a script and records what it got.
#[derive(Default)]
struct Scripted {
    answers: Mutex<Vec<Result<u16, PostError>>>,
    got: Mutex<Vec<Request>>,
}

#[async_trait]
impl HttpPoster for Scripted {
    async fn post(
        &self,
        _url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        _timeout: Duration,
    ) -> Result<HttpAnswer, PostError> {
        self.got.lock().unwrap().push((
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            body,
        ));
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        };
        answer.map(|status| HttpAnswer {
            status,
            body: Vec::new(),
        })
    }
}

fn sender(http: Arc<Scripted>, dead: Arc<MemoryQueue>, secret: WebhookSecret) -> WebhookSender {
    WebhookSender {
        http,
        url: "http://127.0.0.1:9/handler".into(),
        secret,
        policy: DeliveryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            timeout: Duration::from_millis(50),
        },
        dead_letters: dead,
        concurrency: 4,
    }
}

fn scripted(answers: Vec<Result<u16, PostError>>) -> Arc<Scripted> {
    Arc::new(Scripted {
        answers: Mutex::new(answers),
        ..Scripted::default()
    })
}

fn an_event() -> String {
    events::message("c1", "alice", "chat", &serde_json::json!({"n":1}), None).to_json()
}

fn event_id(json: &str) -> String {
    serde_json::from_str::<CloudEvent>(json).unwrap().id
}

/// The value of header `name` in a request's headers.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// The Standard Webhooks check of one request, now, under [`SECRET`].
fn verify_request(
    headers: &[(String, String)],
    body: &[u8],
) -> Result<switchboard::webhook::Verified, switchboard::webhook::VerifyError> {
    switchboard::webhook::verify_values(
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
        body,
        &[SECRET.as_bytes()],
        switchboard::webhook::DEFAULT_TOLERANCE,
        switchboard::clock::now_seconds(),
    )
}

/// Every header value is printable ASCII: no client string is carried raw.
fn assert_printable_ascii(headers: &[(String, String)]) {
    for (name, value) in headers {
        assert!(
            value.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{name}: {value:?} is not printable ASCII"
        );
    }
}

#[tokio::test]
async fn the_sender_retries_then_delivers_with_one_id_and_fresh_signatures() {
    let http = scripted(vec![
        Err(PostError::Timeout(Duration::from_millis(50))),
        Ok(503),
        Ok(200),
    ]);
    let dead = Arc::new(MemoryQueue::new());
    let sender = sender(http.clone(), dead.clone(), WebhookSecret::given(SECRET));
    let body = an_event();
    let report = upstream_batch(&sender, sqs_event(&[&body])).await;
    assert!(report.failures.is_empty(), "{report:?}");
    let got = http.got.lock().unwrap();
    assert_eq!(got.len(), 3);
    let ids: Vec<&str> = got.iter().map(|(h, _)| header(h, "webhook-id")).collect();
    assert_eq!(ids[0], event_id(&body));
    assert!(ids.iter().all(|id| *id == ids[0]));
    for (headers, sent) in got.iter() {
        assert_eq!(sent, body.as_bytes(), "the body is the whole event");
        assert_eq!(
            header(headers, "content-type"),
            "application/cloudevents+json; charset=utf-8"
        );
        let verified = verify_request(headers, sent).unwrap();
        assert_eq!(verified.id, ids[0]);
    }
    assert!(dead.sent().is_empty());
}

#[tokio::test]
async fn out_of_attempts_is_a_batch_item_failure_and_a_4xx_is_dead_lettered_with_its_status() {
    let dead = Arc::new(MemoryQueue::new());
    let body = an_event();
    let failing = sender(
        scripted(vec![Ok(500)]),
        dead.clone(),
        WebhookSecret::given(SECRET),
    );
    let report = upstream_batch(&failing, sqs_event(&[&body])).await;
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].message_id, "m0");
    assert_eq!(
        report.failures[0].error,
        "3 attempts: the receiver answered 500"
    );
    assert!(
        dead.sent().is_empty(),
        "a retryable failure stays on the queue"
    );

    for status in [400, 404, 410] {
        let http = scripted(vec![Ok(status)]);
        let refused = sender(http.clone(), dead.clone(), WebhookSecret::given(SECRET));
        let report = upstream_batch(&refused, sqs_event(&[&body])).await;
        assert!(report.failures.is_empty());
        assert_eq!(
            http.got.lock().unwrap().len(),
            1,
            "{status} is final: one attempt"
        );
        let buried: serde_json::Value = serde_json::from_str(&dead.drain()[0]).unwrap();
        assert_eq!(buried["status"], status);
        assert_eq!(buried["event"]["type"], "switchboard.message");
    }
    for status in [408, 429] {
        let http = scripted(vec![Ok(status)]);
        let retried = sender(http.clone(), dead.clone(), WebhookSecret::given(SECRET));
        let report = upstream_batch(&retried, sqs_event(&[&body])).await;
        assert_eq!(report.failures.len(), 1, "{status} is retried");
        assert_eq!(http.got.lock().unwrap().len(), 3);
    }
    assert!(dead.sent().is_empty());

    // The dead-letter queue refusing: the message stays (nothing is lost).
    dead.fail_call_next(QueueError::Unavailable("down".into()));
    let refused = sender(
        scripted(vec![Ok(400)]),
        dead.clone(),
        WebhookSecret::given(SECRET),
    );
    let report = upstream_batch(&refused, sqs_event(&[&body])).await;
    assert_eq!(report.failures.len(), 1);

    // Not a CloudEvent: straight to the dead letters, status 0, nothing posted.
    let http = scripted(vec![Ok(200)]);
    let garbage = sender(http.clone(), dead.clone(), WebhookSecret::given(SECRET));
    let report = upstream_batch(&garbage, sqs_event(&["not json"])).await;
    assert!(report.failures.is_empty());
    assert!(http.got.lock().unwrap().is_empty());
    let buried: serde_json::Value = serde_json::from_str(&dead.drain()[0]).unwrap();
    assert_eq!(buried, serde_json::json!({"status":0,"event":"not json"}));
}

#[tokio::test]
async fn without_a_secret_nothing_is_sent_and_the_event_stays_queued() {
    let http = scripted(vec![Ok(200)]);
    let dead = Arc::new(MemoryQueue::new());
    let unsigned = sender(http.clone(), dead.clone(), WebhookSecret::default());
    let report = upstream_batch(&unsigned, sqs_event(&[&an_event()])).await;
    assert_eq!(report.failures.len(), 1);
    assert!(
        http.got.lock().unwrap().is_empty(),
        "nothing is sent unsigned"
    );
    assert!(dead.sent().is_empty());
}

/// The schemas in schemas/upstream/ describe exactly what the code emits: the
/// same attributes and data fields, the constants they fix, nothing more.
#[test]
fn every_event_matches_its_schema() {
    let connected = events::connected(&events::Connected {
        connection_id: "c1",
        user_id: "alice",
        groups: &["room:1".to_owned()],
        source_ip: Some("203.0.113.7"),
        user_agent: None,
        connected_at_ms: 1_700_000_000_000,
    });
    let disconnected = events::disconnected(&events::Disconnected {
        connection_id: "c1",
        user_id: "alice",
        status_code: Some(1001),
        reason: None,
        connected_at_ms: 1_700_000_000_000,
        disconnected_at_ms: 1_700_000_001_000,
    });
    let message = events::message("c1", "alice", "chat", &serde_json::json!(null), None);
    for (schema, event) in [
        (
            include_str!("../../schemas/upstream/connected.json"),
            connected,
        ),
        (
            include_str!("../../schemas/upstream/disconnected.json"),
            disconnected,
        ),
        (include_str!("../../schemas/upstream/message.json"), message),
    ] {
        let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
        let event: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let mut required: Vec<String> = serde_json::from_value(schema["required"].clone()).unwrap();
        required.sort();
        assert_eq!(keys(&event), required, "{}", schema["title"]);
        assert_eq!(
            keys(&event),
            keys(&schema["properties"]),
            "{}",
            schema["title"]
        );
        for (name, property) in schema["properties"].as_object().unwrap() {
            if let Some(constant) = property.get("const") {
                assert_eq!(&event[name], constant, "{name}");
            }
        }
        let data = &schema["properties"]["data"];
        assert_eq!(
            keys(&event["data"]),
            keys(&data["properties"]),
            "{}",
            schema["title"]
        );
        let mut data_required: Vec<String> =
            serde_json::from_value(data["required"].clone()).unwrap();
        data_required.sort();
        assert_eq!(keys(&event["data"]), data_required);
    }
}

/// Counts `PutEvents` calls and the events in them.
#[derive(Default)]
struct CountingBus {
    calls: Mutex<usize>,
    events: Mutex<Vec<String>>,
}

#[async_trait]
impl switchboard::upstream::EventBus for CountingBus {
    async fn put_events(
        &self,
        events: &[CloudEvent],
    ) -> Result<(), switchboard::upstream::BusError> {
        *self.calls.lock().unwrap() += 1;
        self.events
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.id.clone()));
        Ok(())
    }
}

/// BENCHMARKS.md's "AWS requests per event, by sink": one queue send and one
/// PutEvents per event on the producer side, one POST per delivered event.
#[tokio::test]
async fn aws_requests_per_event_by_sink() {
    let h = Harness::new();
    let queue = Arc::new(MemoryQueue::new());
    let bus = Arc::new(CountingBus::default());
    let mut upstream = Upstream::default();
    upstream.queue = Some(queue.clone());
    upstream.bus = Some(bus.clone());
    let services = Services {
        upstream: Arc::new(upstream),
        ..h.services.clone()
    };
    let mut claims = switchboard::auth::claims_for("alice", Duration::from_secs(60), vec![]);
    claims.events = vec!["chat".into()];
    let token = token_with(&claims);
    handle_connect(&services, &verifier(), &connect_event("c1", Some(&token))).await;
    client_action(
        &services,
        "c1",
        Some(r#"{"action":"event","event":"chat"}"#),
    )
    .await;
    handle_disconnect(&services, &disconnect_event("c1")).await;
    assert_eq!(queue.calls(), 3, "one SendMessageBatch per event");
    assert_eq!(queue.sent().len(), 3);
    assert_eq!(*bus.calls.lock().unwrap(), 3, "one PutEvents per event");
    assert_eq!(bus.events.lock().unwrap().len(), 3);

    let http = scripted(vec![Ok(204)]);
    let dead = Arc::new(MemoryQueue::new());
    let sender = sender(http.clone(), dead, WebhookSecret::given(SECRET));
    let bodies = queue.sent();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let report = upstream_batch(&sender, sqs_event(&bodies)).await;
    assert!(report.failures.is_empty());
    assert_eq!(
        http.got.lock().unwrap().len(),
        3,
        "one POST per delivered event"
    );
}

/// connect, disconnect and actions are wired with `NoGateway` (they never
/// post: every send goes through the Deliveries queue); a post would be a bug
/// and fails instead of reaching a connection.
#[tokio::test]
async fn the_producers_gateway_refuses_to_post() {
    use switchboard::ports::{Gateway, GatewayError};
    let gateway = switchboard::adapters::no_gateway::NoGateway;
    assert_eq!(
        gateway.post_to_connection("c1", b"x").await,
        Err(GatewayError::Forbidden(
            "this function does not post to connections".into()
        ))
    );
    assert!(gateway.delete_connection("c1").await.is_err());
}

/// A hook that never answers: each request waits out the timeout it is given,
/// which it records.
#[derive(Default)]
struct Silent {
    timeouts: Mutex<Vec<Duration>>,
}

#[async_trait]
impl HttpPoster for Silent {
    async fn post(
        &self,
        _url: &str,
        _headers: &[(&str, String)],
        _body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpAnswer, PostError> {
        self.timeouts.lock().unwrap().push(timeout);
        tokio::time::sleep(timeout).await;
        Err(PostError::Timeout(timeout))
    }
}

/// A hook's timeout longer than what is left of the invocation is cut to end
/// `HOOK_RESERVE` before its deadline (issue 23, defect 5), so `$connect`
/// still answers - here, fail open, lets the connection in - instead of Lambda
/// killing the invocation while it waits.
#[tokio::test]
async fn a_hook_waits_no_longer_than_the_invocation_allows() {
    use switchboard::retry::with_deadline;
    use switchboard::upstream::hooks::HOOK_RESERVE;
    let h = Harness::new();
    let silent = Arc::new(Silent::default());
    let mut upstream = Upstream::default();
    upstream.connect_hook = Some(Hook {
        url: "http://127.0.0.1:9/connect".into(),
        timeout: Duration::from_secs(4),
        fail_open: true,
    });
    upstream.http = Some(silent.clone());
    upstream.secret = WebhookSecret::given(SECRET);
    let services = Services {
        upstream: Arc::new(upstream),
        ..h.services.clone()
    };
    let token = token("alice");
    let event = connect_event("c1", Some(&token));
    let started = tokio::time::Instant::now();
    let left = HOOK_RESERVE + Duration::from_millis(500);
    let response = with_deadline(
        started + left,
        handle_connect(&services, &verifier(), &event),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        response.status_code, 200,
        "fail open lets the connection in"
    );
    let asked = silent.timeouts.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0] <= Duration::from_millis(500),
        "the hook was given {:?} of the 500 ms left before the reserve",
        asked[0]
    );
    assert!(took < left, "answered after {took:?}, past the deadline");
    assert!(h.store.get_connection("c1").await.unwrap().is_some());
}

/// Every byte a client string must not carry into a header: C0 controls and DEL.
fn control_bytes() -> impl Iterator<Item = char> {
    (0u8..0x20).chain([0x7f]).map(char::from)
}

/// Issue 25, defect 1: a control character in a frame's `id` (which becomes
/// part of the event's id, and so of the `webhook-id` header) is refused at the edge with the exact error, takes
/// nothing from the sender's buckets, and sends nothing upstream; another
/// user's events go on flowing between the refusals, and so do the sender's
/// own valid ones.
#[tokio::test]
async fn control_characters_in_a_client_id_are_refused_with_the_exact_error_and_nothing_is_sent() {
    use switchboard::services::{Limits, Settings};
    let lots = switchboard::rate::Rate::new(10_000, Duration::from_secs(1));
    let h = Harness::with_settings(Settings {
        publish_limit: 10_000,
        limits: Limits {
            connection_actions: lots,
            user_actions: lots,
            ..Limits::default()
        },
        ..Settings::default()
    });
    let queue = Arc::new(MemoryQueue::new());
    let services = with_queue(&h, queue.clone());
    for (connection, user) in [("c1", "mallory"), ("c2", "bob")] {
        let mut claims = switchboard::auth::claims_for(user, Duration::from_secs(60), vec![]);
        claims.events = vec!["chat".into()];
        let event = connect_event(connection, Some(&token_with(&claims)));
        let response = handle_connect(&services, &verifier(), &event).await;
        assert_eq!(response.status_code, 200);
    }
    let refused_id = r#"{"type":"ack","ok":false,"error":{"code":"bad_request","message":"\"id\" may hold only printable ASCII without spaces"}}"#;
    let mut hostile: Vec<String> = control_bytes().map(|c| format!("p{c}")).collect();
    hostile.extend([" p".into(), "p q".into(), "p\u{85}".into(), "é".into()]);
    for (i, id) in hostile.iter().enumerate() {
        let frame = serde_json::json!({"action":"event","event":"chat","data":1,"id":id});
        let answer = client_action(&services, "c1", Some(&frame.to_string())).await;
        assert_eq!(answer, refused_id, "id {id:?}");
        let ok = client_action(
            &services,
            "c2",
            Some(&format!(
                r#"{{"action":"event","event":"chat","data":1,"id":"b{i}"}}"#
            )),
        )
        .await;
        assert_eq!(ok, format!(r#"{{"type":"ack","id":"b{i}","ok":true}}"#));
    }
    let empty = client_action(
        &services,
        "c1",
        Some(r#"{"action":"event","event":"chat","id":""}"#),
    )
    .await;
    assert_eq!(
        empty,
        r#"{"type":"ack","ok":false,"error":{"code":"bad_request","message":"\"id\" must not be empty"}}"#
    );
    // The same refusal for every action that reads an id.
    for action in ["subscribe", "publish", "presence", "history", "recover"] {
        let frame = serde_json::json!({"action":action,"group":"chat","id":"p\n"});
        let answer = client_action(&services, "c1", Some(&frame.to_string())).await;
        assert_eq!(answer, refused_id, "{action}");
    }
    // Every printable ASCII character other than space stays a valid id.
    let printable: String = (0x21u8..=0x7e).map(char::from).collect();
    for id in printable.as_bytes().chunks(64) {
        let id = std::str::from_utf8(id).unwrap();
        let frame = serde_json::json!({"action":"event","event":"chat","data":1,"id":id});
        let answer = client_action(&services, "c1", Some(&frame.to_string())).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&answer).unwrap(),
            serde_json::json!({"type":"ack","id":id,"ok":true})
        );
    }
    let sent: Vec<CloudEvent> = queue
        .sent()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let ids: Vec<&str> = sent.iter().map(|e| e.id.as_str()).collect();
    let mut expected = vec!["connected:c1".to_owned(), "connected:c2".to_owned()];
    expected.extend((0..hostile.len()).map(|i| format!("message:c2:sb{i}")));
    expected.extend(
        printable
            .as_bytes()
            .chunks(64)
            .map(|id| format!("message:c1:s{}", std::str::from_utf8(id).unwrap())),
    );
    assert_eq!(ids, expected);
    assert_eq!(services.upstream.lost(), 0);
}

/// Answers 200 to every request through the production poster
/// ([`SdkPoster`]), and keeps each request's headers and body.
type Sent = Arc<Mutex<Vec<Request>>>;

#[derive(Debug, Clone, Default)]
struct Answers200(Sent);

impl aws_smithy_runtime_api::client::http::HttpConnector for Answers200 {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        self.0.lock().unwrap().push((headers, body));
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Ok(
            aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                200.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            ),
        ))
    }
}

fn sdk_poster(connector: &Answers200) -> Arc<switchboard::adapters::http::SdkPoster> {
    Arc::new(switchboard::adapters::http::SdkPoster::new(
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(connector.clone()),
    ))
}

/// Issue 25, defects 1 and 9: client strings (user ids, event names, ids)
/// holding control characters or non-ASCII travel only in the signed JSON
/// body, exactly; the one header made from them, `webhook-id`, is
/// percent-encoded by CloudEvents' rule. So every such event is delivered
/// (before: a control character dead-lettered it with status 0, and a
/// non-ASCII user id went out raw in `ce-userid`). Through the production
/// poster.
#[tokio::test]
async fn client_strings_travel_only_in_the_signed_body_and_every_event_is_delivered() {
    let connector = Answers200::default();
    let dead = Arc::new(MemoryQueue::new());
    let sender = WebhookSender {
        http: sdk_poster(&connector),
        url: "http://127.0.0.1:9/handler".into(),
        secret: WebhookSecret::given(SECRET),
        policy: DeliveryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            timeout: Duration::from_millis(500),
        },
        dead_letters: dead.clone(),
        concurrency: 1,
    };
    let data = serde_json::json!(1);
    let mut sent = Vec::new();
    for c in control_bytes().chain(['é', '%', '"', ' ', '\u{85}']) {
        let id = serde_json::Value::from(format!("p{c}"));
        sent.push(events::message(
            "c1",
            &format!("zoë{c}"),
            &format!("e{c}"),
            &data,
            Some(&id),
        ));
    }
    let bodies: Vec<String> = sent.iter().map(CloudEvent::to_json).collect();
    for chunk in bodies.chunks(10) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let report = upstream_batch(&sender, sqs_event(&chunk)).await;
        assert_eq!(report.failures, [], "no record of the batch is retried");
    }
    assert!(dead.drain().is_empty(), "nothing dead-lettered");
    let delivered = connector.0.lock().unwrap().clone();
    assert_eq!(delivered.len(), sent.len());
    for ((headers, body), event) in delivered.iter().zip(&sent) {
        assert_printable_ascii(headers);
        verify_request(headers, body).unwrap();
        let got: CloudEvent = serde_json::from_slice(body).unwrap();
        assert_eq!(&got, event, "every string exactly as sent");
        assert_eq!(
            header(headers, "webhook-id"),
            switchboard::webhook::header_id(&event.id)
        );
        assert!(
            headers.iter().all(|(k, _)| !k.starts_with("ce-")),
            "no attribute in a header: {headers:?}"
        );
    }
    let ids: Vec<&str> = delivered
        .iter()
        .map(|(h, _)| header(h, "webhook-id"))
        .collect();
    assert_eq!(ids[0], "message:c1:sp%00");
    assert_eq!(ids[10], "message:c1:sp%0A");
    assert_eq!(ids[33], "message:c1:sp%C3%A9");
    assert_eq!(ids[34], "message:c1:sp%25");
}

/// The event hook's request carries the event whole in its signed body, and
/// every request is sent whatever the client strings hold (before: a
/// control character in the id failed the hook with `the ce-id header cannot
/// hold its value`). Through the production poster.
#[tokio::test]
async fn every_event_hook_request_is_sent_with_the_event_in_its_signed_body() {
    use switchboard::upstream::hooks::ask_event_hook;
    let connector = Answers200::default();
    let mut upstream = Upstream::default();
    upstream.http = Some(sdk_poster(&connector));
    upstream.secret = WebhookSecret::given(SECRET);
    let hook = Hook {
        url: "http://127.0.0.1:9/event".into(),
        timeout: Duration::from_secs(1),
        fail_open: false,
    };
    let data = serde_json::json!(1);
    for c in control_bytes() {
        let id = serde_json::Value::from(format!("p{c}"));
        let event = events::message("c1", &format!("m{c}é"), "chat", &data, Some(&id));
        assert_eq!(
            ask_event_hook(&upstream, &hook, &event).await,
            Ok(serde_json::Value::Null)
        );
    }
    let sent = connector.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 33, "every event");
    for (headers, body) in &sent {
        assert_printable_ascii(headers);
        let verified = verify_request(headers, body).unwrap();
        let event: CloudEvent = serde_json::from_slice(body).unwrap();
        assert_eq!(verified.id, switchboard::webhook::header_id(&event.id));
        assert_eq!(event.kind, "switchboard.message");
        assert!(event.userid.starts_with('m') && event.userid.ends_with('é'));
    }
}

/// EventBridge carries the event as JSON (`Detail`): whatever a client string
/// holds, the PutEvents body is JSON and gives back every string exactly.
#[test]
fn every_client_string_reaches_the_event_bus_exactly_as_json() {
    use switchboard::adapters::eventbridge::put_events_body;
    let data = serde_json::json!({"text": "a\u{0}b\u{7f}\n"});
    let events: Vec<CloudEvent> = control_bytes()
        .map(|c| {
            let id = serde_json::Value::from(format!("p{c}"));
            events::message(
                &format!("c{c}"),
                &format!("u{c}"),
                &format!("e{c}"),
                &data,
                Some(&id),
            )
        })
        .collect();
    for chunk in events.chunks(10) {
        let body: serde_json::Value =
            serde_json::from_str(&put_events_body("bus", chunk)).expect("JSON");
        let entries = body["Entries"].as_array().unwrap();
        assert_eq!(entries.len(), chunk.len());
        for (entry, event) in entries.iter().zip(chunk) {
            assert_eq!(entry["DetailType"], "message");
            let detail: CloudEvent =
                serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
            assert_eq!(&detail, event);
        }
    }
}
