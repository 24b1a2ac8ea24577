//! Helpers for the local stack's end-to-end tests: a stack on a free loopback
//! port, WebSocket clients, a tiny HTTP client, bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use switchboard::auth::{claims_for, mint};
use switchboard_local::{Config, RunningStack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const SECRET: &str = "e2e-test-secret-e2e-test-secret-e2e!";

pub async fn stack_with(config: Config) -> RunningStack {
    switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        max_receive_count: 3,
        ..config
    })
    .await
    .unwrap()
}

/// A stack with the default 2 s visibility timeout: a handler slowed by a
/// loaded machine is not raced by a redelivery, so delivery counts are exact.
pub async fn stack() -> RunningStack {
    stack_with(Config::default()).await
}

/// A stack whose failed queue messages come back after 50 ms, for tests that
/// wait for dead letters (where a redelivery is harmless).
pub async fn stack_with_fast_retries() -> RunningStack {
    stack_with(Config {
        visibility_timeout: Duration::from_millis(50),
        ..Config::default()
    })
    .await
}

pub fn token(stack: &RunningStack, user: &str) -> String {
    mint(
        stack.secret(),
        &claims_for(user, Duration::from_secs(300), vec![]),
    )
    .unwrap()
}

pub async fn try_connect(
    stack: &RunningStack,
    token: Option<&str>,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let url = match token {
        Some(token) => format!("{}?token={token}", stack.websocket_url()),
        None => stack.websocket_url(),
    };
    tokio_tungstenite::connect_async(url)
        .await
        .map(|(socket, _)| socket)
}

pub async fn connect(stack: &RunningStack, user: &str) -> Client {
    try_connect(stack, Some(&token(stack, user))).await.unwrap()
}

/// The next frame, within 5 s.
pub async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("no frame within 5 s")
        .expect("socket ended")
        .expect("socket error")
}

/// The next text frame, within 5 s.
pub async fn next_text(client: &mut Client) -> String {
    loop {
        match next(client).await {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The close frame's code, within 5 s.
pub async fn close_code(client: &mut Client) -> u16 {
    loop {
        match next(client).await {
            Message::Close(Some(frame)) => return frame.code.into(),
            Message::Close(None) => return 1005,
            _ => continue,
        }
    }
}

/// Asserts nothing arrives within `wait`.
pub async fn silent(client: &mut Client, wait: Duration) {
    if let Ok(frame) = tokio::time::timeout(wait, client.next()).await {
        panic!("expected silence, got {frame:?}");
    }
}

/// Polls `check` every 10 ms until it holds, for at most 5 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The connection ids of `user`, from the stack's store.
pub async fn connections_of(stack: &RunningStack, user: &str) -> Vec<String> {
    stack
        .store()
        .user_connections(user, None)
        .await
        .unwrap()
        .connection_ids
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to the stack, `Connection: close`.
pub async fn http(stack: &RunningStack, method: &str, path: &str, body: &str) -> HttpResponse {
    http_to(stack.addr(), method, path, &[], body).await
}

/// One HTTP/1.1 request to `addr` with extra `headers`, `Connection: close`.
/// A body the server refuses early may not be read in full: the answer counts.
pub async fn http_to(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // `Host` and `Content-Type` default to the stack's address and JSON; `headers` may set others.
    let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    if !given("host") {
        extra.push_str(&format!("Host: {addr}\r\n"));
    }
    if !given("content-type") {
        extra.push_str("Content-Type: application/json\r\n");
    }
    let request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // The server may answer (413, 401) and close before reading a large body.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    // A reset after the answer (unread body) still leaves the answer in `raw`.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("no HTTP answer within 5 s");
    if raw.is_empty() {
        read.unwrap();
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Stores a record for `connection_id` with no socket behind it, connected
/// long ago: a connection that went away without `$disconnect` reaching us.
pub async fn put_stale_record(stack: &RunningStack, connection_id: &str, user_id: &str) {
    stack
        .store()
        .put_connection(&switchboard::ports::ConnectionRecord {
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            connected_at_ms: 0,
            expires_at: i64::MAX,
            source_ip: None,
            user_agent: None,
            groups: vec![],
            subscribe: vec![],
            publish: vec![],
            envelope: false,
            events: vec![],
        })
        .await
        .unwrap();
}

/// Sends `text` as one message in frames of at most `frame` bytes (API
/// Gateway takes 32 KB frames, 128 KB messages).
pub async fn send_text_in_frames(client: &mut Client, text: &str, frame: usize) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(frame).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let last = i + 1 == chunks.len();
        client
            .send(Message::Frame(Frame::message(chunk.to_vec(), opcode, last)))
            .await
            .unwrap();
    }
}

/// Percent-encodes a connection id for a path segment (API Gateway ids may hold `/`, `+` and `=`).
pub fn urlencode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
