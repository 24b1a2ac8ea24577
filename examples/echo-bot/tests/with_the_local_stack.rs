//! The echo bot against the local stack, as docs/upstream-events.md runs it: a welcome
//! through `/send` on connect, the event hook's echo back to the client, a
//! refused connect hook for mallory, and unsigned requests refused.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use switchboard::auth::{claims_for, mint};
use switchboard_local::{Config, UpstreamConfig};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "echo-bot-test-secret-echo-bot-test-secret";

async fn next_text(
    client: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("no frame within 5 s")
            .expect("socket ended")
            .expect("socket error");
        if let Message::Text(text) = frame {
            return text.to_string();
        }
    }
}

#[tokio::test]
async fn the_bot_greets_echoes_and_guards_the_door() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bot_addr = listener.local_addr().unwrap();
    let stack = switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        upstream: UpstreamConfig {
            webhook: Some(format!("http://{bot_addr}/handler")),
            event_hook: Some(format!("http://{bot_addr}/event")),
            connect_hook: Some(format!("http://{bot_addr}/connect")),
            secret: Some(SECRET.into()),
            ..UpstreamConfig::default()
        },
        ..Config::default()
    })
    .await
    .unwrap();
    let bot = echo_bot::Bot::new(SECRET, stack.http_url()).unwrap();
    tokio::spawn(async move { axum::serve(listener, echo_bot::app(bot)).await });

    let token = |user: &str| {
        let mut claims = claims_for(user, Duration::from_secs(60), vec![]);
        claims.events = vec!["echo".into()];
        mint(stack.secret(), &claims).unwrap()
    };
    let url = |user: &str| format!("{}?token={}", stack.websocket_url(), token(user));
    let (mut alice, _) = tokio_tungstenite::connect_async(url("alice"))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"message","from":"server","data":{"text":"welcome, alice"}}"#
    );
    alice
        .send(Message::Text(
            r#"{"action":"event","event":"echo","data":"hi","id":1}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"ack","id":1,"ok":true,"data":{"echo":"hi"}}"#
    );

    let refused = tokio_tungstenite::connect_async(url("mallory")).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("mallory got in");
    };
    assert_eq!(response.status(), 403);

    // Unsigned: 401, whatever the body says.
    let mut socket = tokio::net::TcpStream::connect(bot_addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    socket
        .write_all(
            b"POST /event HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    stack.shutdown().await;
}
