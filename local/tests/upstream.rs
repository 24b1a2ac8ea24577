//! Upstream events end to end: the local stack with a real HTTP receiver on
//! 127.0.0.1 (axum), real WebSocket clients, the same handlers as the Lambdas.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::SinkExt;
use serde_json::{Value, json};
use switchboard::auth::{claims_for, mint};
use switchboard::services::Settings;
use switchboard::upstream::delivery::DeliveryPolicy;
use switchboard::webhook::{self, DEFAULT_TOLERANCE, VerifyError};
use switchboard_local::{Config, RunningStack, UpstreamConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use support::*;

const WEBHOOK_SECRET: &str = "upstream-test-secret-upstream-test-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body: the whole CloudEvent (structured mode).
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// One attribute of the event (`type`, `id`, `userid`, …).
    fn attr(&self, name: &str) -> String {
        self.json()[name].as_str().unwrap_or_default().to_owned()
    }

    fn data(&self) -> Value {
        self.json()["data"].clone()
    }

    /// The Standard Webhooks check, now, under the stack's secret.
    fn verify(&self) -> Result<webhook::Verified, VerifyError> {
        webhook::verify(
            &self.headers,
            &self.body,
            WEBHOOK_SECRET.as_bytes(),
            DEFAULT_TOLERANCE,
        )
    }
}

/// What the receiver answers on one path.
#[derive(Debug, Clone)]
enum Answer {
    /// This status, with this JSON body (or none).
    Status(u16, Option<Value>),
    /// Waits this long, then answers 200.
    Stall(Duration),
}

/// Per path: answers used in turn (the last repeats), or every `n`th request fails with 500.
#[derive(Default)]
struct Plan {
    script: HashMap<String, Vec<Answer>>,
    every_nth_fails: Option<usize>,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<Plan>>,
}

impl Receiver {
    fn script(&self, path: &str, answers: Vec<Answer>) {
        self.plan
            .lock()
            .unwrap()
            .script
            .insert(path.to_owned(), answers);
    }

    fn on(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests to `/handler` of CloudEvents type `kind`.
    fn events(&self, kind: &str) -> Vec<Received> {
        self.on("/handler")
            .into_iter()
            .filter(|r| r.attr("type") == kind)
            .collect()
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let count = {
        let mut received = receiver.received.lock().unwrap();
        received.push(Received {
            path: path.clone(),
            headers,
            body,
        });
        received.iter().filter(|r| r.path == path).count()
    };
    let answer = {
        let mut plan = receiver.plan.lock().unwrap();
        if let Some(n) = plan.every_nth_fails {
            if count % n == 0 {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
        match plan.script.get_mut(&path) {
            Some(answers) if answers.len() > 1 => Some(answers.remove(0)),
            Some(answers) => answers.first().cloned(),
            None => None,
        }
    };
    match answer {
        None => StatusCode::OK.into_response(),
        Some(Answer::Stall(wait)) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK.into_response()
        }
        Some(Answer::Status(status, body)) => {
            let status = StatusCode::from_u16(status).unwrap();
            match body {
                Some(body) => (status, body.to_string()).into_response(),
                None => status.into_response(),
            }
        }
    }
}

/// A receiver on a free loopback port: `/handler`, `/connect`, `/event`.
async fn receiver() -> (Receiver, SocketAddr) {
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/handler", post(receive))
        .route("/connect", post(receive))
        .route("/event", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, addr)
}

fn fast_delivery() -> DeliveryPolicy {
    DeliveryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(5),
        timeout: Duration::from_millis(300),
    }
}

/// A stack sending events to `addr/handler`, with `configure` applied to its upstream settings.
async fn stack_to(addr: SocketAddr, configure: impl FnOnce(&mut UpstreamConfig)) -> RunningStack {
    let mut upstream = UpstreamConfig {
        webhook: Some(format!("http://{addr}/handler")),
        secret: Some(WEBHOOK_SECRET.into()),
        delivery: fast_delivery(),
        ..UpstreamConfig::default()
    };
    configure(&mut upstream);
    stack_with(Config {
        visibility_timeout: Duration::from_millis(50),
        upstream,
        ..Config::default()
    })
    .await
}

fn token_with(
    stack: &RunningStack,
    user: &str,
    edit: impl FnOnce(&mut switchboard::auth::Claims),
) -> String {
    let mut claims = claims_for(user, Duration::from_secs(300), vec![]);
    edit(&mut claims);
    mint(stack.secret(), &claims).unwrap()
}

async fn connect_with(stack: &RunningStack, token: &str) -> Client {
    try_connect(stack, Some(token)).await.unwrap()
}

async fn handshake_status(stack: &RunningStack, token: &str) -> u16 {
    match try_connect(stack, Some(token)).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake failed without a status: {e}"),
    }
}

async fn send(client: &mut Client, frame: Value) {
    client
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

async fn answer(client: &mut Client, frame: Value) -> Value {
    send(client, frame).await;
    serde_json::from_str(&next_text(client).await).unwrap()
}

/// Waits (at most 10 s) until `check` holds on the receiver.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn each_event_type_arrives_signed_in_cloudevents_binary_mode() {
    let (receiver, addr) = receiver().await;
    let stack = stack_to(addr, |_| {}).await;
    let token = token_with(&stack, "alice", |c| {
        c.groups = vec!["room:1".into()];
        c.events = vec!["chat:*".into()];
    });
    let mut client = connect_with(&stack, &token).await;
    let connection_id = connections_of(&stack, "alice").await.remove(0);

    until("connected", || {
        receiver.events("switchboard.connected").len() == 1
    })
    .await;
    let connected = &receiver.events("switchboard.connected")[0];
    assert_eq!(
        connected.header("content-type"),
        "application/cloudevents+json; charset=utf-8"
    );
    for (name, value) in [
        ("specversion", "1.0"),
        ("source", "switchboard"),
        ("userid", "alice"),
        ("datacontenttype", "application/json"),
    ] {
        assert_eq!(connected.attr(name), value, "{name}");
    }
    assert_eq!(connected.attr("id"), format!("connected:{connection_id}"));
    assert_eq!(connected.header("webhook-id"), connected.attr("id"));
    assert_eq!(connected.attr("connectionid"), connection_id);
    assert!(connected.attr("time").ends_with('Z'));
    assert!(
        connected
            .headers
            .keys()
            .all(|name| !name.as_str().starts_with("ce-")),
        "no attribute in a header"
    );
    let data = connected.data();
    assert_eq!(data["connectionId"], connection_id.as_str());
    assert_eq!(data["userId"], "alice");
    assert_eq!(data["groups"], json!(["room:1"]));
    assert_eq!(data["sourceIp"], "127.0.0.1");
    assert!(data["connectedAt"].as_str().unwrap().ends_with('Z'));

    // message: a client event for the application; a plain ack without an event hook.
    let ack = answer(
        &mut client,
        json!({"action":"event","event":"chat:typing","data":{"on":true},"id":"e1"}),
    )
    .await;
    assert_eq!(ack, json!({"type":"ack","id":"e1","ok":true}));
    until("message", || {
        receiver.events("switchboard.message").len() == 1
    })
    .await;
    let message = &receiver.events("switchboard.message")[0];
    assert_eq!(message.attr("eventname"), "chat:typing");
    assert_eq!(message.attr("id"), format!("message:{connection_id}:se1"));
    assert_eq!(
        message.data(),
        json!({"connectionId":connection_id,"userId":"alice","event":"chat:typing","data":{"on":true}})
    );

    client
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    until("disconnected", || {
        receiver.events("switchboard.disconnected").len() == 1
    })
    .await;
    let disconnected = &receiver.events("switchboard.disconnected")[0];
    assert_eq!(
        disconnected.attr("id"),
        format!("disconnected:{connection_id}")
    );
    let data = disconnected.data();
    assert_eq!(data["userId"], "alice");
    assert_eq!(data["statusCode"], 1000);
    assert_eq!(data["reason"], "bye");
    assert!(data["durationMs"].as_i64().unwrap() >= 0);

    // Every request verifies; tampering with the body, the id, the timestamp
    // or the secret does not.
    for request in receiver.on("/handler") {
        let secret = WEBHOOK_SECRET.as_bytes();
        assert_eq!(
            request.verify().map(|v| v.id),
            Ok(request.header("webhook-id").to_owned())
        );
        let mut tampered = request.body.to_vec();
        tampered.push(b' ');
        assert_eq!(
            webhook::verify(&request.headers, &tampered, secret, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            webhook::verify(
                &request.headers,
                &request.body,
                b"a-different-secret-a-different-secret",
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Mismatch)
        );
        let t: i64 = request.header("webhook-timestamp").parse().unwrap();
        let mut moved = request.headers.clone();
        moved.insert("webhook-timestamp", (t + 1).to_string().parse().unwrap());
        let mut renamed = request.headers.clone();
        renamed.insert("webhook-id", "connected:another".parse().unwrap());
        for headers in [moved, renamed] {
            assert_eq!(
                webhook::verify(&headers, &request.body, secret, DEFAULT_TOLERANCE),
                Err(VerifyError::Mismatch)
            );
        }
    }
    assert_eq!(stack.upstream_lost(), 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_failing_or_stalling_receiver_is_retried_with_the_same_id_then_delivered() {
    let (receiver, addr) = receiver().await;
    receiver.script(
        "/handler",
        vec![
            Answer::Status(500, None),
            Answer::Stall(Duration::from_millis(800)),
            Answer::Status(503, None),
            Answer::Status(429, None),
            Answer::Status(200, None),
        ],
    );
    let stack = stack_to(addr, |_| {}).await;
    let _client = connect(&stack, "alice").await;
    until("delivered", || receiver.on("/handler").len() >= 5).await;
    let attempts = receiver.on("/handler");
    let ids: Vec<&str> = attempts.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one event, one id: {ids:?}"
    );
    assert!(ids[0].starts_with("connected:"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.on("/handler").len(),
        5,
        "delivered once the receiver said 200"
    );
    let dead = http(&stack, "GET", "/queues/upstream/dead-letters", "").await;
    assert_eq!(dead.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&dead.body).unwrap(),
        json!([])
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_400_goes_to_the_dead_letters_with_its_status_and_is_not_retried() {
    let (receiver, addr) = receiver().await;
    receiver.script("/handler", vec![Answer::Status(400, None)]);
    let stack = stack_to(addr, |_| {}).await;
    let _client = connect(&stack, "alice").await;
    let mut dead = Value::Null;
    for _ in 0..500 {
        dead = serde_json::from_str(
            &http(&stack, "GET", "/queues/upstream/dead-letters", "")
                .await
                .body,
        )
        .unwrap();
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dead = dead.as_array().expect("dead letters").clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["lastError"], "the receiver answered 400");
    let body: Value = serde_json::from_str(dead[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], 400);
    assert_eq!(body["event"]["type"], "switchboard.connected");
    assert_eq!(body["event"]["userid"], "alice");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.on("/handler").len(),
        1,
        "a 400 is final: one attempt"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_thousand_connects_and_disconnects_with_a_fifth_of_requests_failing_lose_nothing() {
    let (receiver, addr) = receiver().await;
    receiver.plan.lock().unwrap().every_nth_fails = Some(5);
    // A loaded machine (2 shared cores) can stall a POST past a short timeout:
    // generous timeouts and receive counts, so only a real loss fails the test.
    let stack = switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        visibility_timeout: Duration::from_millis(50),
        max_receive_count: 50,
        upstream: UpstreamConfig {
            webhook: Some(format!("http://{addr}/handler")),
            secret: Some(WEBHOOK_SECRET.into()),
            delivery: DeliveryPolicy {
                attempts: 3,
                base_delay: Duration::from_millis(5),
                timeout: Duration::from_secs(3),
            },
            ..UpstreamConfig::default()
        },
        ..Config::default()
    })
    .await
    .unwrap();
    const N: usize = 1000;
    let started = std::time::Instant::now();
    for wave in 0..N / 50 {
        let clients = futures::future::join_all((0..50).map(|i| {
            let stack = &stack;
            async move { connect(stack, &format!("user-{}", wave * 50 + i)).await }
        }))
        .await;
        for mut client in clients {
            client.close(None).await.unwrap();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let distinct = || {
        receiver
            .on("/handler")
            .iter()
            .filter(|r| r.verify().is_ok())
            .map(|r| r.header("webhook-id").to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // Delivered = answered 200: every 5th request failed, so count successes per id.
    let delivered = || {
        let received = receiver.on("/handler");
        let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
        for (index, request) in received.iter().enumerate() {
            if (index + 1) % 5 != 0 {
                *per_id
                    .entry(request.header("webhook-id").to_owned())
                    .or_default() += 1;
            }
        }
        per_id
    };
    while delivered().len() < 2 * N {
        if tokio::time::Instant::now() >= deadline {
            let dead = http(&stack, "GET", "/queues/upstream/dead-letters", "").await;
            panic!(
                "only {} of {} events delivered; dead letters: {}",
                delivered().len(),
                2 * N,
                dead.body
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = delivered();
    assert_eq!(distinct().len(), 2 * N);
    assert!(
        delivered
            .keys()
            .all(|id| id.starts_with("connected:") || id.starts_with("disconnected:"))
    );
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    let requests = receiver.on("/handler").len();
    println!(
        "{N} connects + {N} disconnects: {} events delivered at least once, none lost; \
         {requests} requests ({} failed by the receiver), {duplicates} duplicate deliveries; {:?}",
        delivered.len(),
        requests / 5,
        started.elapsed()
    );
    let dead = http(&stack, "GET", "/queues/upstream/dead-letters", "").await;
    assert_eq!(dead.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&dead.body).unwrap(),
        json!([])
    );
    assert_eq!(stack.upstream_lost(), 0);
    stack.shutdown().await;
}

async fn hook_stack(addr: SocketAddr, fail_open: bool) -> RunningStack {
    stack_to(addr, |u| {
        u.connect_hook = Some(format!("http://{addr}/connect"));
        u.event_hook = Some(format!("http://{addr}/event"));
        u.hook_timeout = Some(Duration::from_millis(300));
        u.connect_hook_fail_open = fail_open;
    })
    .await
}

#[tokio::test]
async fn the_connect_hook_accepts_and_sees_the_verified_claims() {
    let (receiver, addr) = receiver().await;
    let stack = hook_stack(addr, false).await;
    let token = token_with(&stack, "alice", |c| c.subscribe = vec!["chat:*".into()]);
    let _client = connect_with(&stack, &token).await;
    let asked = receiver.on("/connect");
    assert_eq!(asked.len(), 1);
    let request = &asked[0];
    assert!(request.verify().is_ok());
    assert_eq!(request.attr("type"), "switchboard.connect");
    assert_eq!(request.attr("userid"), "alice");
    let body = request.data();
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["subscribe"], json!(["chat:*"]));
    assert_eq!(connections_of(&stack, "alice").await.len(), 1);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_connect_hook_narrows_grants_and_sets_the_user() {
    let (receiver, addr) = receiver().await;
    receiver.script(
        "/connect",
        vec![Answer::Status(
            200,
            Some(json!({"userId":"bob","subscribe":["chat:1"],"groups":[]})),
        )],
    );
    let stack = hook_stack(addr, false).await;
    let token = token_with(&stack, "alice", |c| {
        c.subscribe = vec!["chat:*".into()];
        c.groups = vec!["room:1".into()];
    });
    let mut client = connect_with(&stack, &token).await;
    assert!(connections_of(&stack, "alice").await.is_empty());
    let ids = connections_of(&stack, "bob").await;
    assert_eq!(ids.len(), 1);
    let record = stack
        .store()
        .get_connection(&ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.subscribe, ["chat:1"]);
    assert!(record.groups.is_empty());
    let ok = answer(
        &mut client,
        json!({"action":"subscribe","group":"chat:1","id":1}),
    )
    .await;
    assert_eq!(ok, json!({"type":"ack","id":1,"ok":true}));
    let refused = answer(
        &mut client,
        json!({"action":"subscribe","group":"chat:2","id":2}),
    )
    .await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    stack.shutdown().await;
}

#[tokio::test]
async fn an_invalid_hook_answer_refuses_the_handshake() {
    let (receiver, addr) = receiver().await;
    receiver.script(
        "/connect",
        vec![Answer::Status(200, Some(json!({"subscribe":["bad*name"]})))],
    );
    let stack = hook_stack(addr, true).await;
    let token = token(&stack, "alice");
    assert_eq!(handshake_status(&stack, &token).await, 502);
    assert!(connections_of(&stack, "alice").await.is_empty());
    stack.shutdown().await;
}

#[tokio::test]
async fn the_connect_hook_rejects_with_401_or_403_and_nothing_is_written() {
    for status in [401, 403] {
        let (receiver, addr) = receiver().await;
        receiver.script("/connect", vec![Answer::Status(status, None)]);
        let stack = hook_stack(addr, true).await;
        let token = token(&stack, "alice");
        assert_eq!(handshake_status(&stack, &token).await, status);
        assert!(connections_of(&stack, "alice").await.is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            receiver.events("switchboard.connected").is_empty(),
            "{status}: no connected event"
        );
        stack.shutdown().await;
    }
}

#[tokio::test]
async fn a_connect_hook_timeout_fails_closed_by_default_and_open_when_configured() {
    for (fail_open, expected) in [(false, 502), (true, 101)] {
        let (receiver, addr) = receiver().await;
        receiver.script("/connect", vec![Answer::Stall(Duration::from_secs(2))]);
        let stack = hook_stack(addr, fail_open).await;
        let token = token(&stack, "alice");
        assert_eq!(
            handshake_status(&stack, &token).await,
            expected,
            "fail_open {fail_open}"
        );
        let stored = connections_of(&stack, "alice").await.len();
        assert_eq!(stored, usize::from(fail_open));
        stack.shutdown().await;
    }
    // A 5xx is a failure too.
    let (receiver, addr) = receiver().await;
    receiver.script("/connect", vec![Answer::Status(500, None)]);
    let stack = hook_stack(addr, false).await;
    assert_eq!(handshake_status(&stack, &token(&stack, "alice")).await, 502);
    assert!(connections_of(&stack, "alice").await.is_empty());
    stack.shutdown().await;
}

/// Fail-open means "the hook could not answer". A 3xx or a 4xx is an answer: with fail-open
/// on, a hook answering 404, 400 or 302 still refuses the handshake (it let it in before), and
/// a 503 still lets it in.
#[tokio::test]
async fn fail_open_lets_in_only_what_the_hook_could_not_answer() {
    for (status, expected) in [(404, 502), (400, 502), (302, 502), (409, 502), (503, 101)] {
        let (receiver, addr) = receiver().await;
        receiver.script("/connect", vec![Answer::Status(status, None)]);
        let stack = hook_stack(addr, true).await;
        assert_eq!(
            handshake_status(&stack, &token(&stack, "alice")).await,
            expected,
            "the hook answered {status}"
        );
        assert_eq!(
            connections_of(&stack, "alice").await.len(),
            usize::from(expected == 101),
            "{status}"
        );
        stack.shutdown().await;
    }
}

/// The user a connect hook names is the one the per-user caps count: 15 handshakes of
/// different tokens the hook maps to bob leave bob at the cap (10), not 15.
#[tokio::test]
async fn the_connect_hooks_user_is_held_to_the_per_user_cap() {
    let (receiver, addr) = receiver().await;
    receiver.script(
        "/connect",
        vec![Answer::Status(200, Some(json!({"userId":"bob"})))],
    );
    let stack = hook_stack(addr, false).await;
    let mut statuses = Vec::new();
    let mut clients = Vec::new(); // open: each holds its place under the cap
    for i in 0..15 {
        let token = token(&stack, &format!("visitor-{i}"));
        match try_connect(&stack, Some(&token)).await {
            Ok(client) => {
                clients.push(client);
                statuses.push(101);
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                statuses.push(response.status().as_u16())
            }
            Err(e) => panic!("handshake failed without a status: {e}"),
        }
    }
    assert_eq!(
        connections_of(&stack, "bob").await.len(),
        10,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    for i in 0..15 {
        assert!(
            connections_of(&stack, &format!("visitor-{i}"))
                .await
                .is_empty()
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_event_hook_answers_that_client_only() {
    let (receiver, addr) = receiver().await;
    receiver.script(
        "/event",
        vec![Answer::Status(200, Some(json!({"echo":"hi"})))],
    );
    let stack = hook_stack(addr, false).await;
    let grants = |c: &mut switchboard::auth::Claims| {
        c.groups = vec!["room:1".into()];
        c.events = vec!["echo".into()];
    };
    let mut alice = connect_with(&stack, &token_with(&stack, "alice", grants)).await;
    let mut bob = connect_with(&stack, &token_with(&stack, "bob", grants)).await;
    let reply = answer(
        &mut alice,
        json!({"action":"event","event":"echo","data":"hi","id":7}),
    )
    .await;
    assert_eq!(
        reply,
        json!({"type":"ack","id":7,"ok":true,"data":{"echo":"hi"}})
    );
    silent(&mut bob, Duration::from_millis(200)).await;
    let asked = receiver.on("/event");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].attr("type"), "switchboard.message");
    assert_eq!(asked[0].attr("userid"), "alice");
    assert!(asked[0].verify().is_ok());
    // With an event hook, the event does not also go to the webhook.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.events("switchboard.message").is_empty());

    // A failing hook: ok:false with a code, and the hook's address is not shown.
    receiver.script("/event", vec![Answer::Status(500, None)]);
    let failed = answer(&mut alice, json!({"action":"event","event":"echo","id":8})).await;
    assert_eq!(
        failed,
        json!({"type":"ack","id":8,"ok":false,"error":{"code":"hook_failed","message":"the event hook answered 500"}})
    );
    receiver.script("/event", vec![Answer::Stall(Duration::from_secs(1))]);
    let stalled = answer(&mut alice, json!({"action":"event","event":"echo","id":9})).await;
    assert_eq!(
        stalled,
        json!({"type":"ack","id":9,"ok":false,"error":{"code":"hook_failed","message":"the event hook did not answer"}})
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn events_need_a_grant_and_are_rate_limited() {
    let (receiver, addr) = receiver().await;
    let stack = stack_with(Config {
        upstream: UpstreamConfig {
            webhook: Some(format!("http://{addr}/handler")),
            secret: Some(WEBHOOK_SECRET.into()),
            delivery: fast_delivery(),
            ..UpstreamConfig::default()
        },
        settings: Settings {
            publish_limit: 3,
            publish_window: Duration::from_secs(60),
            ..Settings::default()
        },
        ..Config::default()
    })
    .await;
    // No events claim: forbidden, nothing sent.
    let mut plain = connect(&stack, "alice").await;
    let refused = answer(&mut plain, json!({"action":"event","event":"chat","id":1})).await;
    assert_eq!(
        refused,
        json!({"type":"ack","id":1,"ok":false,"error":{"code":"forbidden","message":"the token does not allow you to send the event \"chat\""}})
    );
    // A grant for chat:* does not cover admin.
    let mut granted = connect_with(
        &stack,
        &token_with(&stack, "bob", |c| c.events = vec!["chat:*".into()]),
    )
    .await;
    let other = answer(
        &mut granted,
        json!({"action":"event","event":"admin","id":2}),
    )
    .await;
    assert_eq!(other["error"]["code"], "forbidden");
    let bad = answer(
        &mut granted,
        json!({"action":"event","event":"bad name","id":3}),
    )
    .await;
    assert_eq!(bad["error"]["code"], "bad_request");
    for i in 0..3 {
        let ok = answer(
            &mut granted,
            json!({"action":"event","event":"chat:x","id":10 + i}),
        )
        .await;
        assert_eq!(ok["ok"], true, "{ok}");
    }
    let limited = answer(
        &mut granted,
        json!({"action":"event","event":"chat:x","id":20}),
    )
    .await;
    assert_eq!(limited["error"]["code"], "rate_limited", "{limited}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.events("switchboard.message").len(),
        3,
        "only the allowed events went upstream"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_hook_without_a_secret_refuses_to_start() {
    let result = switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        upstream: UpstreamConfig {
            webhook: Some("http://127.0.0.1:9/handler".into()),
            ..UpstreamConfig::default()
        },
        ..Config::default()
    })
    .await;
    let Err(e) = result else {
        panic!("started without a webhook secret")
    };
    assert!(
        matches!(e, switchboard_local::StartError::NoWebhookSecret),
        "{e}"
    );
}
