//! The local stack end to end: each test starts its own stack on a free
//! loopback port, drives it with real WebSocket clients and plain HTTP, and
//! shuts it down. Every wait is bounded.

use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard::auth::{TokenSecret, claims_for, mint};
use switchboard::ports::ConnectionRecord;
use switchboard_local::{Config, RunningStack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &str = "switchboard-e2e-secret-0123456789abcdef";
const VISIBILITY_TIMEOUT: Duration = Duration::from_millis(50);
const MAX_RECEIVE_COUNT: u32 = 3;
/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// The stack and its clients
// ---------------------------------------------------------------------------

/// A stack on a free loopback port with a fixed secret and fast queue retries;
/// `config` supplies the rest (timeouts).
async fn start_with(config: Config) -> RunningStack {
    switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        visibility_timeout: VISIBILITY_TIMEOUT,
        max_receive_count: MAX_RECEIVE_COUNT,
        ..config
    })
    .await
    .expect("the stack starts")
}

async fn start() -> RunningStack {
    start_with(Config::default()).await
}

fn token_for(stack: &RunningStack, user: &str) -> String {
    mint(
        stack.secret(),
        &claims_for(user, Duration::from_secs(300), vec![]),
    )
    .unwrap()
}

fn url_with_token(stack: &RunningStack, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{}?token={token}", stack.websocket_url()),
        None => stack.websocket_url(),
    }
}

async fn try_connect(
    stack: &RunningStack,
    token: Option<&str>,
) -> Result<Client, tungstenite::Error> {
    timeout(
        WAIT,
        tokio_tungstenite::connect_async(url_with_token(stack, token)),
    )
    .await
    .expect("no handshake answer in time")
    .map(|(client, _)| client)
}

async fn connect_as(stack: &RunningStack, user: &str) -> Client {
    try_connect(stack, Some(&token_for(stack, user)))
        .await
        .unwrap_or_else(|e| panic!("{user} cannot connect: {e}"))
}

/// Connects `user`, who must have no other connection, and returns the client and its connection id.
async fn connect_with_id(stack: &RunningStack, user: &str) -> (Client, String) {
    let client = connect_as(stack, user).await;
    let ids = connection_ids(stack, user).await;
    assert_eq!(ids.len(), 1, "{user} has exactly one connection: {ids:?}");
    (client, ids.into_iter().next().unwrap())
}

async fn connection_ids(stack: &RunningStack, user: &str) -> Vec<String> {
    stack
        .store()
        .user_connections(user, None)
        .await
        .unwrap()
        .connection_ids
}

async fn send_text(client: &mut Client, text: &str) {
    timeout(WAIT, client.send(Message::text(text)))
        .await
        .expect("send timed out")
        .expect("send failed");
}

/// The next data or close frame, skipping protocol pings and pongs.
async fn next_message(client: &mut Client) -> Message {
    loop {
        let message = timeout(WAIT, client.next())
            .await
            .expect("no frame in time")
            .expect("the socket ended")
            .expect("socket error");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

async fn next_text(client: &mut Client) -> String {
    match next_message(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next frame must be a close frame: its code and reason.
async fn next_close(client: &mut Client) -> (u16, String) {
    match next_message(client).await {
        Message::Close(Some(frame)) => (frame.code.into(), frame.reason.to_string()),
        Message::Close(None) => (1005, String::new()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// After a close frame, the server ends the TCP connection.
async fn assert_ended(client: &mut Client) {
    match timeout(WAIT, client.next()).await {
        Ok(None) | Ok(Some(Err(_))) => {}
        Ok(Some(Ok(message))) => panic!("expected the socket to end, got {message:?}"),
        Err(_) => panic!("the socket is still open"),
    }
}

/// Nothing arrives within `wait`.
async fn assert_silent(client: &mut Client, wait: Duration) {
    if let Ok(frame) = timeout(wait, client.next()).await {
        panic!("expected no frame, got {frame:?}");
    }
}

/// Polls `check` every 10 ms until it holds; fails after [`WAIT`].
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn status_of(result: Result<Client, tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(other) => panic!("expected an HTTP rejection, got {other}"),
        Ok(_) => panic!("expected the handshake to be refused, but it succeeded"),
    }
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {:?}", self.body))
    }
}

/// One request with `Connection: close`; reads the answer to the end.
async fn http(stack: &RunningStack, method: &str, path: &str, body: &str) -> HttpResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(stack.addr()).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            stack.addr(),
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} in time"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a complete HTTP head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (key, value) = line.split_once(':').expect("a header line");
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    assert!(
        response.header("transfer-encoding").is_none(),
        "this helper reads Content-Length bodies only"
    );
    let length: usize = response
        .header("content-length")
        .map_or(rest.len(), |l| l.parse().expect("a numeric Content-Length"));
    assert_eq!(rest.len(), length, "the body has its Content-Length");
    HttpResponse {
        body: rest.to_owned(),
        ..response
    }
}

/// `POST /queues/{queue}`; must be accepted. Returns the message id.
async fn enqueue(stack: &RunningStack, queue: &str, body: &str) -> String {
    let answer = http(stack, "POST", &format!("/queues/{queue}"), body).await;
    assert_eq!(answer.status, 202, "{queue}: {}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json = answer.json();
    let id = json["messageId"].as_str().expect("a messageId").to_owned();
    assert_eq!(json, serde_json::json!({ "messageId": id }));
    assert!(
        id.len() == 36
            && id.split('-').map(str::len).eq([8, 4, 4, 4, 12])
            && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "a UUID-shaped message id: {id}"
    );
    id
}

async fn dead_letters(stack: &RunningStack, queue: &str) -> Vec<Value> {
    let answer = http(stack, "GET", &format!("/queues/{queue}/dead-letters"), "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    match answer.json() {
        Value::Array(letters) => letters,
        other => panic!("expected an array of dead letters, got {other}"),
    }
}

/// Waits until `queue` holds at least `count` dead letters, and returns them.
async fn wait_for_dead_letters(stack: &RunningStack, queue: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let letters = dead_letters(stack, queue).await;
        if letters.len() >= count {
            return letters;
        }
        assert!(
            Instant::now() < deadline,
            "{queue} holds {} dead letters, expected {count}",
            letters.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A message that fails on every receive: once it is dead, every message
/// enqueued before it on `queue` has had its retries too.
async fn dead_letter_barrier(stack: &RunningStack, queue: &str, body: &str) {
    let id = enqueue(stack, queue, body).await;
    let deadline = Instant::now() + WAIT;
    while !dead_letters(stack, queue)
        .await
        .iter()
        .any(|letter| letter["messageId"] == id.as_str())
    {
        assert!(
            Instant::now() < deadline,
            "the barrier never died on {queue}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The Management API path of a connection: ids are base64 (`+`, `/`, `=`).
fn management_path(id: &str) -> String {
    let mut encoded = String::new();
    for c in id.chars() {
        match c {
            '+' => encoded.push_str("%2B"),
            '/' => encoded.push_str("%2F"),
            '=' => encoded.push_str("%3D"),
            c => encoded.push(c),
        }
    }
    format!("/local/@connections/{encoded}")
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`; panics on any other shape.
fn parse_iso_ms(text: &str) -> i64 {
    let b = text.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "not an ISO 8601 UTC time with milliseconds: {text:?}"
    );
    let n = |from: usize, to: usize| text[from..to].parse::<i64>().unwrap();
    let (year, month, day) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn stale_record(connection_id: &str, user_id: &str) -> ConnectionRecord {
    ConnectionRecord {
        connection_id: connection_id.into(),
        user_id: user_id.into(),
        connected_at_ms: now_ms(),
        expires_at: now_ms() / 1000 + 3600,
        source_ip: Some("127.0.0.1".into()),
        user_agent: None,
        groups: vec![],
        subscribe: vec![],
        publish: vec![],
    }
}

// ---------------------------------------------------------------------------
// 1. The handshake
// ---------------------------------------------------------------------------

#[tokio::test]
async fn handshake_without_a_valid_token_is_refused_with_401_and_stores_nothing() {
    let stack = start().await;

    let wrong_secret = TokenSecret::new("another-secret-another-secret-0123456789").unwrap();
    let forged = mint(
        &wrong_secret,
        &claims_for("mallory", Duration::from_secs(300), vec![]),
    )
    .unwrap();
    let mut expired = claims_for("mallory", Duration::ZERO, vec![]);
    expired.exp -= 10;
    expired.iat = Some(expired.exp - 300);
    let expired = mint(stack.secret(), &expired).unwrap();

    let cases = [
        (
            None,
            "no token: pass ?token=<jwt> or an Authorization: Bearer <jwt> header",
        ),
        (Some("garbage"), "the token is malformed"),
        (Some(forged.as_str()), "the token's signature is invalid"),
        (Some(expired.as_str()), "the token has expired"),
    ];
    for (token, reason) in cases {
        let (status, body) = status_of(try_connect(&stack, token).await);
        assert_eq!(status, 401, "token {token:?}");
        assert_eq!(
            body,
            serde_json::json!({ "message": format!("unauthorized: {reason}") }).to_string(),
            "token {token:?}"
        );
    }
    assert!(connection_ids(&stack, "mallory").await.is_empty());
    assert_eq!(stack.open_connections(), 0);

    // The same request with a valid token is accepted: the refusals above were about the token.
    let _client = connect_as(&stack, "mallory").await;
    assert_eq!(connection_ids(&stack, "mallory").await.len(), 1);
    assert_eq!(stack.open_connections(), 1);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 2. Routes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ping_answers_pong_and_unknown_or_invalid_frames_answer_error_frames() {
    let stack = start().await;
    let mut client = connect_as(&stack, "alice").await;

    send_text(&mut client, r#"{"action":"ping","name":"Stepan"}"#).await;
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"pong","name":"Stepan"}"#
    );
    send_text(&mut client, r#"{"action":"dance"}"#).await;
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"error","code":"unknown_action","message":"unknown action \"dance\"","action":"dance"}"#
    );
    send_text(&mut client, "hello").await;
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"error","code":"bad_request","message":"the frame is not valid JSON: expected value at line 1 column 1"}"#
    );
    // Error frames do not end the connection.
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await, r#"{"type":"pong"}"#);
    assert_eq!(stack.open_connections(), 1);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. notify-user
// ---------------------------------------------------------------------------

#[tokio::test]
async fn notify_user_reaches_every_connection_of_the_user_and_none_of_another_user() {
    let stack = start().await;
    let mut alice = Vec::new();
    for _ in 0..5 {
        alice.push(connect_as(&stack, "alice").await);
    }
    let mut bob = vec![
        connect_as(&stack, "bob").await,
        connect_as(&stack, "bob").await,
    ];
    assert_eq!(connection_ids(&stack, "alice").await.len(), 5);
    assert_eq!(connection_ids(&stack, "bob").await.len(), 2);

    enqueue(&stack, "notify-user", r#"{"userId":"alice","data":"hi"}"#).await;
    for client in &mut alice {
        assert_eq!(next_text(client).await, "hi");
    }
    // An object arrives as compact JSON, keys in the order sent.
    enqueue(
        &stack,
        "notify-user",
        r#"{"userId":"alice","data": {"b": 1, "a": [true, null], "s": "x y"}}"#,
    )
    .await;
    for client in &mut alice {
        assert_eq!(
            next_text(client).await,
            r#"{"b":1,"a":[true,null],"s":"x y"}"#
        );
    }
    // A JSON string arrives as its text, escapes resolved.
    enqueue(
        &stack,
        "notify-user",
        r#"{"userId":"alice","data":"two\nlines \"q\""}"#,
    )
    .await;
    for client in &mut alice {
        assert_eq!(next_text(client).await, "two\nlines \"q\"");
    }

    for client in &mut bob {
        assert_silent(client, Duration::from_millis(100)).await;
    }
    // Bob's own message is the first thing either of his sockets receives.
    enqueue(
        &stack,
        "notify-user",
        r#"{"userId":"bob","data":"for bob"}"#,
    )
    .await;
    for client in &mut bob {
        assert_eq!(next_text(client).await, "for bob");
    }
    for client in &mut alice {
        assert_silent(client, Duration::from_millis(50)).await;
    }
    assert!(dead_letters(&stack, "notify-user").await.is_empty());
    assert!(dead_letters(&stack, "notify-connection").await.is_empty());
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 4. notify-connection to connections that are gone
// ---------------------------------------------------------------------------

#[tokio::test]
async fn notify_connection_to_a_closed_connection_is_dropped_without_dead_letters() {
    let stack = start().await;
    let (mut client, id) = connect_with_id(&stack, "carol").await;
    // Reachable while open.
    enqueue(
        &stack,
        "notify-connection",
        &serde_json::json!({ "connectionId": id, "data": "before" }).to_string(),
    )
    .await;
    assert_eq!(next_text(&mut client).await, "before");

    client.close(None).await.unwrap();
    wait_until("$disconnect to delete the record", || async {
        stack.store().get_connection(&id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(stack.open_connections(), 0);

    enqueue(
        &stack,
        "notify-connection",
        &serde_json::json!({ "connectionId": id, "data": "after" }).to_string(),
    )
    .await;
    dead_letter_barrier(&stack, "notify-connection", r#"{"connectionId":"barrier"}"#).await;
    let letters = dead_letters(&stack, "notify-connection").await;
    assert_eq!(letters.len(), 1, "only the barrier died: {letters:?}");
    assert_eq!(letters[0]["body"], r#"{"connectionId":"barrier"}"#);
    assert!(stack.store().get_connection(&id).await.unwrap().is_none());
    stack.shutdown().await;
}

#[tokio::test]
async fn notify_connection_to_a_stale_record_deletes_the_record_and_dead_letters_nothing() {
    let stack = start().await;
    // Records whose sockets do not exist, as when $disconnect never ran. The
    // second id holds every character of base64 that a URL path must escape.
    let stale_ids = ["U3RhbGVSZWNvcmQ=", "a+b/c+d/e+f/g+h="];
    for id in stale_ids {
        stack
            .store()
            .put_connection(&stale_record(id, "ghost"))
            .await
            .unwrap();
    }
    // A live connection of the same user stays untouched.
    let (mut live, live_id) = {
        let client = connect_as(&stack, "ghost").await;
        let ids = connection_ids(&stack, "ghost").await;
        let live_id = ids
            .into_iter()
            .find(|id| !stale_ids.contains(&id.as_str()))
            .expect("the live connection's record");
        (client, live_id)
    };
    assert_eq!(connection_ids(&stack, "ghost").await.len(), 3);

    for id in stale_ids {
        enqueue(
            &stack,
            "notify-connection",
            &serde_json::json!({ "connectionId": id, "data": "x" }).to_string(),
        )
        .await;
    }
    wait_until("notify-connection to delete the stale records", || async {
        connection_ids(&stack, "ghost").await == [live_id.clone()]
    })
    .await;
    for id in stale_ids {
        assert!(
            stack.store().get_connection(id).await.unwrap().is_none(),
            "{id}"
        );
    }
    dead_letter_barrier(&stack, "notify-connection", r#"{"connectionId":"barrier"}"#).await;
    let letters = dead_letters(&stack, "notify-connection").await;
    assert_eq!(
        letters.len(),
        1,
        "a 410 is final, never retried: {letters:?}"
    );
    assert_eq!(letters[0]["body"], r#"{"connectionId":"barrier"}"#);
    assert_silent(&mut live, Duration::from_millis(50)).await;
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5. Malformed queue messages
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_queue_messages_land_in_the_dead_letters_after_max_receive_count_receives() {
    let stack = start().await;
    let cases = [
        (
            "notify-connection",
            r#"{"connectionId":"x"}"#,
            "malformed message: missing field `data` at line 1 column 20",
        ),
        (
            "notify-user",
            r#"{"userId":7,"data":1}"#,
            "malformed message: invalid type: integer `7`, expected a string at line 1 column 11",
        ),
    ];
    let mut sent = Vec::new();
    for (queue, body, _) in cases {
        let before = now_ms();
        sent.push((enqueue(&stack, queue, body).await, before));
    }
    for ((queue, body, error), (message_id, before)) in cases.into_iter().zip(sent) {
        let letters = wait_for_dead_letters(&stack, queue, 1).await;
        assert_eq!(letters.len(), 1, "{queue}: {letters:?}");
        let letter = &letters[0];
        let mut keys: Vec<&str> = letter
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "body",
                "deadAt",
                "lastError",
                "messageId",
                "receiveCount",
                "sentAt"
            ],
            "{queue}"
        );
        assert_eq!(letter["messageId"], message_id.as_str(), "{queue}");
        assert_eq!(letter["body"], body, "{queue}");
        assert_eq!(letter["receiveCount"], MAX_RECEIVE_COUNT, "{queue}");
        assert_eq!(letter["lastError"], error, "{queue}");
        let sent_at = parse_iso_ms(letter["sentAt"].as_str().unwrap());
        let dead_at = parse_iso_ms(letter["deadAt"].as_str().unwrap());
        assert!(
            (before..=now_ms()).contains(&sent_at),
            "{queue}: sentAt is when it was posted"
        );
        // Each failed receive hides the message for the visibility timeout.
        let retries = i64::from(MAX_RECEIVE_COUNT - 1) * VISIBILITY_TIMEOUT.as_millis() as i64;
        assert!(
            dead_at - sent_at >= retries,
            "{queue}: died after {} ms, before {retries} ms of redeliveries",
            dead_at - sent_at
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_with_400_and_nothing_is_enqueued() {
    let stack = start().await;
    let mut alice = connect_as(&stack, "alice").await;
    for queue in ["notify-user", "notify-connection"] {
        let answer = http(&stack, "POST", &format!("/queues/{queue}"), "userId=alice").await;
        assert_eq!(answer.status, 400, "{queue}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.body,
            r#"{"error":"the body is not JSON: expected value at line 1 column 1; nothing was enqueued"}"#,
            "{queue}"
        );
    }
    // Had the refused bodies been enqueued, they would die before these barriers.
    dead_letter_barrier(&stack, "notify-user", r#"{"userId":7,"data":1}"#).await;
    dead_letter_barrier(&stack, "notify-connection", r#"{"connectionId":"x"}"#).await;
    assert_eq!(dead_letters(&stack, "notify-user").await.len(), 1);
    assert_eq!(dead_letters(&stack, "notify-connection").await.len(), 1);
    assert_silent(&mut alice, Duration::from_millis(50)).await;
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 6. Client close
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_client_close_frame_runs_disconnect() {
    let stack = start().await;
    let (mut leaving, id) = connect_with_id(&stack, "alice").await;
    let _staying = connect_as(&stack, "bob").await;
    assert_eq!(stack.open_connections(), 2);

    leaving
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    // The server answers the close handshake, then ends the connection.
    assert_eq!(next_close(&mut leaving).await.0, 1000);
    assert_ended(&mut leaving).await;

    wait_until("$disconnect to delete alice's record", || async {
        stack.store().get_connection(&id).await.unwrap().is_none()
    })
    .await;
    assert!(connection_ids(&stack, "alice").await.is_empty());
    wait_until("the open connections to drop to 1", || async {
        stack.open_connections() == 1
    })
    .await;
    assert_eq!(connection_ids(&stack, "bob").await.len(), 1);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 7. Idle timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_connection_is_closed_with_1001_and_a_pinging_one_stays_open() {
    let idle_timeout = Duration::from_millis(300);
    let stack = start_with(Config {
        idle_timeout,
        ..Config::default()
    })
    .await;
    let (mut busy, busy_id) = connect_with_id(&stack, "busy").await;
    let (mut idle, idle_id) = connect_with_id(&stack, "idle").await;
    let started = Instant::now();

    let idle_side = async {
        let close = next_close(&mut idle).await;
        let elapsed = started.elapsed();
        assert_ended(&mut idle).await;
        (close, elapsed)
    };
    let busy_side = async {
        while started.elapsed() < Duration::from_millis(600) {
            send_text(&mut busy, r#"{"action":"ping"}"#).await;
            assert_eq!(next_text(&mut busy).await, r#"{"type":"pong"}"#);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (((code, reason), elapsed), ()) = tokio::join!(idle_side, busy_side);
    assert_eq!((code, reason.as_str()), (1001, "Going away"));
    assert!(
        elapsed >= idle_timeout - Duration::from_millis(50) && elapsed < Duration::from_secs(2),
        "closed after {elapsed:?}"
    );
    wait_until("$disconnect to delete the idle record", || async {
        stack
            .store()
            .get_connection(&idle_id)
            .await
            .unwrap()
            .is_none()
    })
    .await;

    // 600 ms of pings, twice the idle timeout, kept the busy connection open.
    assert!(
        stack
            .store()
            .get_connection(&busy_id)
            .await
            .unwrap()
            .is_some()
    );
    send_text(&mut busy, r#"{"action":"ping","name":"still here"}"#).await;
    assert_eq!(
        next_text(&mut busy).await,
        r#"{"type":"pong","name":"still here"}"#
    );
    assert_eq!(stack.open_connections(), 1);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 8. The Management API
// ---------------------------------------------------------------------------

#[tokio::test]
async fn management_api_gets_posts_and_deletes_a_connection_and_answers_410_for_unknown_ids() {
    let stack = start().await;
    let mut request = url_with_token(&stack, Some(&token_for(&stack, "alice")))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("user-agent", HeaderValue::from_static("e2e-client/1.0"));
    let before = now_ms();
    let (mut client, _) = timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap();
    let id = connection_ids(&stack, "alice").await.remove(0);
    let path = management_path(&id);

    let info = http(&stack, "GET", &path, "").await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.header("content-type"), Some("application/json"));
    let info = info.json();
    let connected_at = parse_iso_ms(info["ConnectedAt"].as_str().unwrap());
    assert!((before - 1..=now_ms()).contains(&connected_at), "{info}");
    assert_eq!(
        info["Identity"],
        serde_json::json!({ "SourceIp": "127.0.0.1", "UserAgent": "e2e-client/1.0" })
    );
    assert_eq!(info["LastActiveAt"], info["ConnectedAt"], "no message yet");

    // A message moves LastActiveAt on.
    tokio::time::sleep(Duration::from_millis(20)).await;
    send_text(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await, r#"{"type":"pong"}"#);
    let info = http(&stack, "GET", &path, "").await.json();
    assert_eq!(
        parse_iso_ms(info["ConnectedAt"].as_str().unwrap()),
        connected_at
    );
    let last_active = parse_iso_ms(info["LastActiveAt"].as_str().unwrap());
    assert!(last_active >= connected_at + 20, "{info}");

    let post = http(&stack, "POST", &path, "direct").await;
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(next_text(&mut client).await, "direct");

    let delete = http(&stack, "DELETE", &path, "").await;
    assert_eq!(delete.status, 204, "{}", delete.body);
    assert_eq!(next_close(&mut client).await.0, 1000);
    assert_ended(&mut client).await;
    wait_until("$disconnect to delete the record", || async {
        stack.store().get_connection(&id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(stack.open_connections(), 0);

    for gone_path in [
        path.as_str(),
        "/local/@connections/bm90LWEtY29ubmVjdGlvbg%3D%3D",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let gone = http(&stack, method, gone_path, "x").await;
            assert_eq!(gone.status, 410, "{method} {gone_path}");
            assert_eq!(
                gone.header("x-amzn-ErrorType"),
                Some("GoneException"),
                "{method} {gone_path}"
            );
        }
    }
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 9. Limits
// ---------------------------------------------------------------------------

/// A client without size limits of its own, so only the server's apply.
async fn connect_unlimited(stack: &RunningStack, user: &str) -> Client {
    let config = WebSocketConfig::default()
        .max_frame_size(None)
        .max_message_size(None);
    let url = url_with_token(stack, Some(&token_for(stack, user)));
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
    timeout(WAIT, connecting).await.unwrap().unwrap().0
}

/// Sends `text` as one message split into `parts` frames.
async fn send_fragmented(client: &mut Client, text: &str, parts: usize) {
    let size = text.len().div_ceil(parts);
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(chunk.to_vec(), opcode, i + 1 == chunks.len());
        client.send(Message::Frame(frame)).await.unwrap();
    }
}

#[tokio::test]
async fn a_text_message_over_128_kib_closes_with_1009_and_runs_disconnect() {
    let stack = start().await;
    let (mut big, id) = connect_with_id(&stack, "big").await;
    let _other = connect_as(&stack, "other").await;
    send_text(&mut big, &"x".repeat(130 * 1024)).await;
    assert_eq!(next_close(&mut big).await.0, 1009);
    assert_ended(&mut big).await;
    wait_until("$disconnect to delete the record", || async {
        stack.store().get_connection(&id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(stack.open_connections(), 1);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_message_within_128_kib_in_frames_within_32_kib_is_accepted() {
    let stack = start().await;
    let mut client = connect_unlimited(&stack, "alice").await;
    let name = "n".repeat(100 * 1024);
    let ping = format!(r#"{{"action":"ping","name":"{name}"}}"#);
    send_fragmented(&mut client, &ping, 4).await;
    assert_eq!(
        next_text(&mut client).await,
        format!(r#"{{"type":"pong","name":"{name}"}}"#)
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_32_kib_or_a_fragmented_message_over_128_kib_closes_with_1009() {
    let stack = start().await;
    // One 33 KiB frame: within the message limit, over the frame limit.
    let (mut wide, wide_id) = {
        let client = connect_unlimited(&stack, "wide").await;
        (client, connection_ids(&stack, "wide").await.remove(0))
    };
    send_text(&mut wide, &"x".repeat(33 * 1024)).await;
    assert_eq!(next_close(&mut wide).await.0, 1009);
    assert_ended(&mut wide).await;

    // 130 KiB in five frames of 26 KiB: every frame is small, the message is not.
    let (mut long, long_id) = {
        let client = connect_unlimited(&stack, "long").await;
        (client, connection_ids(&stack, "long").await.remove(0))
    };
    send_fragmented(&mut long, &"y".repeat(130 * 1024), 5).await;
    assert_eq!(next_close(&mut long).await.0, 1009);
    assert_ended(&mut long).await;

    wait_until("both $disconnects", || async {
        stack
            .store()
            .get_connection(&wide_id)
            .await
            .unwrap()
            .is_none()
            && stack
                .store()
                .get_connection(&long_id)
                .await
                .unwrap()
                .is_none()
    })
    .await;
    assert_eq!(stack.open_connections(), 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003_and_runs_disconnect() {
    let stack = start().await;
    let (mut client, id) = connect_with_id(&stack, "binary").await;
    client.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(
        next_close(&mut client).await,
        (1003, "Binary frames are not supported".to_owned())
    );
    assert_ended(&mut client).await;
    wait_until("$disconnect to delete the record", || async {
        stack.store().get_connection(&id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(stack.open_connections(), 0);
    stack.shutdown().await;
}

// ---------------------------------------------------------------------------
// 10. Shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_leaves_no_records() {
    let stack = start().await;
    let (mut a, a_id) = connect_with_id(&stack, "alice").await;
    let (mut b, b_id) = connect_with_id(&stack, "bob").await;
    assert_eq!(stack.open_connections(), 2);
    let store = stack.store();
    let addr = stack.addr();

    timeout(Duration::from_secs(6), stack.shutdown())
        .await
        .expect("shutdown is bounded");

    for client in [&mut a, &mut b] {
        assert_eq!(next_close(client).await, (1001, "Going away".to_owned()));
        assert_ended(client).await;
    }
    for (user, id) in [("alice", &a_id), ("bob", &b_id)] {
        assert!(store.get_connection(id).await.unwrap().is_none(), "{user}");
        assert!(
            store
                .user_connections(user, None)
                .await
                .unwrap()
                .connection_ids
                .is_empty(),
            "{user}"
        );
    }
    // The port is closed.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting on {addr}"
    );
}
