//! Issue 25, defect 1: every C0 control byte (0x00–0x1f) and DEL (0x7f) in
//! every client string, through every sink of a stack on loopback (the
//! webhook through the Upstream queue, the connect and event hooks, the logs,
//! the metrics), while other users connect and send events. Each hostile
//! frame or handshake gets its exact refusal, nothing panics, and every other
//! user's event is delivered, none dead-lettered. (The EventBridge body, the
//! one sink this stack cannot reach without an AWS endpoint, is checked in
//! shared/tests/upstream.rs.)

#[path = "support/captured.rs"]
mod captured;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use captured::Captured;
use futures::SinkExt;
use serde_json::{Value, json};
use support::*;
use switchboard::auth::{Claims, claims_for, mint};
use switchboard::history::HistorySettings;
use switchboard::rate::Rate;
use switchboard::services::Limits;
use switchboard::services::Settings;
use switchboard_local::logs::{self, LogFormat};
use switchboard_local::{Config, RunningStack, UpstreamConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing_subscriber::EnvFilter;

const WEBHOOK_SECRET: &str = "control-test-secret-control-test-secret";
/// The other users, connecting while the hostile frames arrive.
const OTHERS: usize = 80;

/// Every byte a client string must not carry: C0 controls and DEL.
fn control_bytes() -> Vec<char> {
    (0u8..0x20).chain([0x7f]).map(char::from).collect()
}

/// What the receiver got: path, headers, body.
type Requests = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

async fn record(State(got): State<Requests>, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
    let path = uri.path().to_owned();
    let answer = if path == "/event" {
        let event = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        json!({"echo": event["data"]}).to_string()
    } else {
        String::new()
    };
    got.lock().unwrap().push((path, headers, body));
    answer
}

async fn receiver() -> (Requests, SocketAddr) {
    let got = Requests::default();
    let app = Router::new()
        .route("/handler", post(record))
        .route("/connect", post(record))
        .route("/event", post(record))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, addr)
}

/// The event (the body) of every request to `path`.
fn events_on(got: &Requests, path: &str) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
        .collect()
}

/// The `userid` of every `switchboard.connected` event to `/handler`.
fn connected_users(got: &Requests) -> BTreeSet<String> {
    events_on(got, "/handler")
        .iter()
        .filter(|event| event["type"] == "switchboard.connected")
        .map(|event| event["userid"].as_str().unwrap().to_owned())
        .collect()
}

async fn stack(upstream: UpstreamConfig) -> RunningStack {
    let lots = Rate::new(100_000, Duration::from_secs(1));
    stack_with(Config {
        visibility_timeout: Duration::from_millis(200),
        upstream: UpstreamConfig {
            secret: Some(WEBHOOK_SECRET.into()),
            delivery: switchboard::upstream::delivery::DeliveryPolicy {
                attempts: 3,
                base_delay: Duration::from_millis(5),
                timeout: Duration::from_secs(3),
            },
            ..upstream
        },
        settings: Settings {
            publish_limit: 100_000,
            limits: Limits {
                connection_actions: lots,
                user_actions: lots,
                presence_changes: lots,
                ..Limits::default()
            },
            history: HistorySettings {
                reads: lots,
                ..HistorySettings::default()
            },
            ..Settings::default()
        },
        ..Config::default()
    })
    .await
}

fn mint_with(stack: &RunningStack, user: &str, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = claims_for(user, Duration::from_secs(300), vec![]);
    let grants = vec!["chat".to_owned(), "chat:*".to_owned()];
    claims.subscribe = grants.clone();
    claims.publish = grants.clone();
    claims.events = grants;
    edit(&mut claims);
    mint(stack.secret(), &claims).unwrap()
}

async fn ask(client: &mut Client, frame: &Value) -> Value {
    client
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    serde_json::from_str(&next_text(client).await).unwrap()
}

fn refusal(id: Option<&str>, message: &str) -> Value {
    let mut ack = json!({"type":"ack","ok":false,"error":{"code":"bad_request","message":message}});
    if let Some(id) = id {
        ack["id"] = json!(id);
    }
    ack
}

/// Every hostile frame a connection with every grant can send, with the
/// exact answer each gets. `c` is the control character, `i` its index.
fn hostile_frames(c: char, i: usize) -> Vec<(Value, Value)> {
    let group_error =
        format!("the group name contains {c:?}; allowed are ASCII letters, digits and : _ - . @ /");
    let id_error = "\"id\" may hold only printable ASCII without spaces";
    vec![
        (
            json!({"action":"event","event":"chat","data":1,"id":format!("p{c}")}),
            refusal(None, id_error),
        ),
        (
            json!({"action":"subscribe","group":"chat","id":format!("{c}")}),
            refusal(None, id_error),
        ),
        (
            json!({"action":"event","event":format!("chat{c}"),"data":1,"id":format!("e{i}")}),
            refusal(Some(&format!("e{i}")), &group_error),
        ),
        (
            json!({"action":"subscribe","group":format!("chat{c}"),"id":format!("s{i}")}),
            refusal(Some(&format!("s{i}")), &group_error),
        ),
        (
            json!({"action":"publish","group":format!("chat{c}"),"data":1,"id":format!("u{i}")}),
            refusal(Some(&format!("u{i}")), &group_error),
        ),
        (
            json!({"action":"presence","group":format!("chat{c}"),"id":format!("q{i}")}),
            refusal(Some(&format!("q{i}")), &group_error),
        ),
        (
            json!({"action":"recover","id":format!("r{i}"),
                "streams":[{"stream":format!("group:chat{c}"),"offset":0,"epoch":"e1"}]}),
            refusal(
                Some(&format!("r{i}")),
                &format!("streams[0]: {group_error}"),
            ),
        ),
        (
            json!({"action":"recover","id":format!("t{i}"),
                "streams":[{"stream":"user","offset":0,"epoch":format!("e{c}")}]}),
            refusal(
                Some(&format!("t{i}")),
                "streams[0]: \"epoch\" may hold only ASCII letters and digits",
            ),
        ),
        // Strings that only travel as JSON come back exactly.
        (
            json!({"action":"ping","name":format!("n{c}")}),
            json!({"type":"pong","name":format!("n{c}")}),
        ),
        (
            json!({"action":format!("x{c}")}),
            json!({"type":"error","code":"unknown_action",
                "message":format!("unknown action \"x{c}\""),"action":format!("x{c}")}),
        ),
    ]
}

/// Connects `OTHERS` users, ten at a time, each sending one valid event.
async fn others_connect(stack: &RunningStack, first: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for wave in 0..OTHERS / 10 {
        let wave = futures::future::join_all((0..10).map(|n| {
            let user = format!("user-{}", first + wave * 10 + n);
            let token = mint_with(stack, &user, |_| {});
            async move {
                let mut client = try_connect(stack, Some(&token)).await.unwrap();
                let frame = json!({"action":"event","event":"chat","data":1,"id":"ok-1"});
                let ack = ask(&mut client, &frame).await;
                assert_eq!(ack["ok"], true, "{user}: {ack}");
                client
            }
        }))
        .await;
        clients.extend(wave);
    }
    clients
}

/// Sends every hostile frame for every control byte: the answers that
/// differ from the expected ones (checked once the other users' events are in).
async fn send_hostile(client: &mut Client) -> Vec<String> {
    let mut wrong = Vec::new();
    for (i, c) in control_bytes().into_iter().enumerate() {
        for (frame, expected) in hostile_frames(c, i) {
            let answer = ask(client, &frame).await;
            if answer != expected {
                wrong.push(format!("{frame} answered {answer}, not {expected}"));
            }
        }
    }
    wrong
}

/// The handshakes a client string can spoil: the token's `sub` and
/// `groups`, and the `envelope` query parameter. Each is refused with its
/// status, and nothing is stored.
async fn hostile_handshakes(stack: &RunningStack) {
    for c in control_bytes() {
        let status = |result: Result<Client, tokio_tungstenite::tungstenite::Error>| match result {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("{e}"),
        };
        let bad_sub = mint_with(stack, &format!("m{c}"), |_| {});
        assert_eq!(status(try_connect(stack, Some(&bad_sub)).await), 401);
        let bad_groups = mint_with(stack, "mallory", |claims| {
            claims.groups = vec![format!("g{c}")];
        });
        assert_eq!(status(try_connect(stack, Some(&bad_groups)).await), 401);
        let token = mint_with(stack, "mallory", |_| {});
        let url = format!(
            "{}?token={token}&envelope=%{:02X}",
            stack.websocket_url(),
            u32::from(c)
        );
        let result = tokio_tungstenite::connect_async(url).await.map(|(s, _)| s);
        assert_eq!(status(result), 400);
    }
}

/// The value of sample `key` (`name{labels}` as written) in a scrape, 0 if absent.
async fn metric(stack: &RunningStack, key: &str) -> f64 {
    let text = http(stack, "GET", "/metrics", "").await.body;
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_every_client_string_lose_no_one_elses_events() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let captured = Captured::default();
    let subscriber = logs::subscriber(LogFormat::Json, EnvFilter::new("debug"), captured.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let (got, addr) = receiver().await;

    // 1. The webhook (the issue's case): client events go through the
    // Upstream queue, while 80 other users connect and send events.
    let webhook = stack(UpstreamConfig {
        webhook: Some(format!("http://{addr}/handler")),
        ..UpstreamConfig::default()
    })
    .await;
    let mut mallory = try_connect(&webhook, Some(&mint_with(&webhook, "mallory", |_| {})))
        .await
        .unwrap();
    let (others, wrong) = tokio::join!(others_connect(&webhook, 0), send_hostile(&mut mallory));
    hostile_handshakes(&webhook).await;
    // A user agent with a tab (the one control character HTTP lets through)
    // travels only in JSON: the connected event's data.
    let token = mint_with(&webhook, "agent", |_| {});
    let mut request = format!("{}?token={token}", webhook.websocket_url())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("user-agent", "ua\tx".parse().unwrap());
    let _agent = tokio_tungstenite::connect_async(request).await.unwrap();

    let mut expected: BTreeSet<String> = (0..OTHERS).map(|n| format!("user-{n}")).collect();
    expected.extend(["mallory".to_owned(), "agent".to_owned()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while connected_users(&got) != expected {
        if tokio::time::Instant::now() >= deadline {
            let missing = expected.difference(&connected_users(&got)).count();
            panic!(
                "{missing} of {} connected events not delivered within 20 s; {} panics",
                expected.len(),
                panics.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = || {
        events_on(&got, "/handler")
            .iter()
            .filter(|event| event["type"] == "switchboard.message")
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while messages() < OTHERS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {OTHERS} events",
            messages()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agent = events_on(&got, "/handler")
        .into_iter()
        .find(|event| event["userid"] == "agent")
        .unwrap();
    assert_eq!(agent["data"]["userAgent"], "ua\tx");
    // No header carries a client string: every value is printable ASCII.
    for (_, headers, _) in got.lock().unwrap().iter() {
        for (name, value) in headers {
            assert!(
                value.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)),
                "{name}: {value:?}"
            );
        }
    }
    assert_eq!(
        wrong,
        Vec::<String>::new(),
        "every hostile frame's exact answer"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(), OTHERS, "no hostile event went upstream");
    assert_eq!(
        webhook.dead_letters("upstream").unwrap_or_default().len(),
        0,
        "no dead letters"
    );
    assert_eq!(webhook.upstream_lost(), 0);
    assert_eq!(webhook.handler_timeouts(), 0);
    let refused = metric(
        &webhook,
        r#"switchboard_client_actions_total{function="actions",action="event",outcome="bad_request"}"#,
    )
    .await;
    assert_eq!(refused, 2.0 * control_bytes().len() as f64);
    drop(others);
    webhook.shutdown().await;

    // 2. The hooks: the connect hook sees every handshake, the event hook
    // every client event; the hostile ones never reach it.
    got.lock().unwrap().clear();
    let hooks = stack(UpstreamConfig {
        connect_hook: Some(format!("http://{addr}/connect")),
        event_hook: Some(format!("http://{addr}/event")),
        hook_timeout: Some(Duration::from_secs(3)),
        ..UpstreamConfig::default()
    })
    .await;
    let mut mallory = try_connect(&hooks, Some(&mint_with(&hooks, "mallory", |_| {})))
        .await
        .unwrap();
    let mut bob = try_connect(&hooks, Some(&mint_with(&hooks, "bob", |_| {})))
        .await
        .unwrap();
    let bob_id = connections_of(&hooks, "bob").await.remove(0);
    for (i, c) in control_bytes().into_iter().enumerate() {
        for (frame, expected) in hostile_frames(c, i) {
            assert_eq!(ask(&mut mallory, &frame).await, expected, "{frame}");
            let fine = json!({"action":"event","event":"chat","data":i,"id":format!("b{i}")});
            assert_eq!(
                ask(&mut bob, &fine).await,
                json!({"type":"ack","id":format!("b{i}"),"ok":true,"data":{"echo":{
                    "connectionId":bob_id,
                    "userId":"bob","event":"chat","data":i}}})
            );
        }
    }
    let (_others, _) = tokio::join!(others_connect(&hooks, 1000), hostile_handshakes(&hooks));
    let events = events_on(&got, "/event");
    assert_eq!(
        events.len(),
        control_bytes().len() * hostile_frames('\0', 0).len() + OTHERS
    );
    assert!(
        events
            .iter()
            .all(|event| event["userid"] != "mallory" && event["type"] == "switchboard.message"),
        "mallory's hostile events never reached the event hook"
    );
    hooks.shutdown().await;

    // 3. The logs: one JSON object per line, no raw control byte in any.
    let text = String::from_utf8(captured.bytes()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 100, "{} lines", lines.len());
    for line in &lines {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "a raw control character in {line:?}"
        );
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(
        !text.contains("panicked"),
        "{}",
        lines.iter().find(|l| l.contains("panicked")).unwrap()
    );
    assert_eq!(panics.load(Ordering::SeqCst), 0, "nothing panicked");
}
