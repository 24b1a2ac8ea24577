//! Issue 25, defect 6: what an attacker who captured one signed webhook
//! request can do with it. Before, the signature covered only the timestamp
//! and `data`, and the bot routed on `ce-*` headers and kept no seen ids: a
//! replay within 300 s was acted on again, and rewriting `ce-type`,
//! `ce-userid`, `ce-connectionid` or `ce-id` kept it valid. Now the body is
//! the whole CloudEvent, signed with the id and timestamp (Standard
//! Webhooks), and the bot drops an id it has acted on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use switchboard::adapters::http::SdkPoster;
use switchboard::upstream::delivery::signed_request_headers;
use switchboard::upstream::{CloudEvent, HttpPoster, events};

const SECRET: &str = "echo-bot-test-secret-echo-bot-test-secret";

/// A stand-in HTTP API that keeps each `POST /send` body.
async fn stand_in_api() -> (String, Arc<Mutex<Vec<Value>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let kept = sent.clone();
    let app = Router::new().route(
        "/send",
        post(move |body: axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.0);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sent)
}

async fn start_bot(api: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/handler", listener.local_addr().unwrap());
    let bot = echo_bot::Bot::new(SECRET, api).unwrap();
    tokio::spawn(async move { axum::serve(listener, echo_bot::app(bot)).await });
    url
}

type Headers = Vec<(&'static str, String)>;

fn signed(event: &CloudEvent) -> (Headers, Vec<u8>) {
    let body = event.body();
    (
        signed_request_headers(SECRET.as_bytes(), event, &body),
        body,
    )
}

fn timestamp(headers: &Headers) -> i64 {
    let (_, value) = headers
        .iter()
        .find(|(k, _)| *k == "webhook-timestamp")
        .unwrap();
    value.parse().unwrap()
}

fn with(headers: &Headers, name: &'static str, value: &str) -> Headers {
    let mut headers: Headers = headers
        .iter()
        .filter(|(k, _)| *k != name)
        .cloned()
        .collect();
    headers.push((name, value.to_owned()));
    headers
}

async fn post_to(client: &SdkPoster, url: &str, headers: &Headers, body: &[u8]) -> u16 {
    client
        .post(url, headers, body.to_vec(), Duration::from_secs(5))
        .await
        .unwrap()
        .status
}

fn connected(connection_id: &str, user_id: &str) -> CloudEvent {
    events::connected(&events::Connected {
        connection_id,
        user_id,
        groups: &[],
        source_ip: None,
        user_agent: None,
        connected_at_ms: 0,
    })
}

#[tokio::test]
async fn a_captured_request_can_be_neither_replayed_nor_rerouted() {
    let (api, sent) = stand_in_api().await;
    let bot = start_bot(&api).await;
    let client = switchboard::aws::poster(Duration::from_secs(5), None);
    let welcome = |connection: &str, user: &str| json!({"connectionId": connection, "data": {"text": format!("welcome, {user}")}});

    let event = connected("c1", "alice");
    let (headers, body) = signed(&event);
    assert_eq!(post_to(&client, &bot, &headers, &body).await, 204);
    assert_eq!(*sent.lock().unwrap(), [welcome("c1", "alice")]);

    // The same request again: a replay, dropped (2xx, so a sender stops).
    assert_eq!(post_to(&client, &bot, &headers, &body).await, 204);
    // Signed afresh, as Switchboard's retries are: the same id, dropped too.
    let (retry, _) = signed(&event);
    assert_eq!(post_to(&client, &bot, &retry, &body).await, 204);
    // The old attack: routing headers rewritten around a valid signature.
    // Nothing routes on headers any more, and the id is the one already seen.
    let mut rerouted = headers.clone();
    rerouted.extend([
        ("ce-type", "switchboard.connected".to_owned()),
        ("ce-userid", "mallory".to_owned()),
        ("ce-connectionid", "c9".to_owned()),
        ("ce-id", "connected:c9".to_owned()),
    ]);
    assert_eq!(post_to(&client, &bot, &rerouted, &body).await, 204);
    assert_eq!(sent.lock().unwrap().len(), 1, "acted on once");

    // What is routed on is signed: changing it in the body, or changing the
    // id or the timestamp to get past the seen ids, fails the signature.
    let body_text = String::from_utf8(body.clone()).unwrap();
    for (tampered_headers, tampered_body) in [
        (
            headers.clone(),
            body_text.replace("\"userid\":\"alice\"", "\"userid\":\"mallory\""),
        ),
        (
            headers.clone(),
            body_text.replace("\"connectionid\":\"c1\"", "\"connectionid\":\"c9\""),
        ),
        (
            headers.clone(),
            body_text.replace("switchboard.connected", "switchboard.message"),
        ),
        (
            with(&headers, "webhook-id", "connected:c9"),
            body_text.clone(),
        ),
        (
            with(
                &headers,
                "webhook-timestamp",
                &(timestamp(&headers) + 1).to_string(),
            ),
            body_text.clone(),
        ),
    ] {
        assert_eq!(
            post_to(&client, &bot, &tampered_headers, tampered_body.as_bytes()).await,
            401,
            "{tampered_headers:?} {tampered_body}"
        );
    }
    assert_eq!(sent.lock().unwrap().len(), 1, "nothing acted on");

    // Another event (another id) is acted on.
    let message = events::message("c1", "alice", "echo", &json!("hi"), Some(&json!("m1")));
    let (headers, body) = signed(&message);
    assert_eq!(post_to(&client, &bot, &headers, &body).await, 204);
    assert_eq!(
        sent.lock().unwrap().last().unwrap(),
        &json!({"connectionId":"c1","data":{"echo":"hi"}})
    );
    assert_eq!(sent.lock().unwrap().len(), 2);
}
