//! The client-facing routes ($connect, $disconnect, ping, $default) over in-memory adapters.

mod common;

use std::time::Duration;

use common::*;
use switchboard::auth::{Claims, SecretError, TokenSecret, claims_for, mint};
use switchboard::connection::RECORD_TTL;
use switchboard::handlers::connect::handle_connect;
use switchboard::handlers::default::handle_default;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::handlers::ping::handle_ping;
use switchboard::ports::{ConnectionStore, StoreError};

async fn refused(h: &Harness, token: Option<&str>, expected_message: &str) {
    let response = handle_connect(&h.services, &verifier(), &connect_event("c1", token)).await;
    assert_eq!(response.status_code, 401, "token {token:?}");
    assert_eq!(
        body_text(&response),
        Some(format!(r#"{{"message":"unauthorized: {expected_message}"}}"#).as_str())
    );
    assert!(
        h.store.is_empty(),
        "a refused connection must write nothing"
    );
}

#[tokio::test]
async fn connect_with_a_valid_query_token_stores_the_record() {
    let h = Harness::new();
    let claims = claims_for("user-7", Duration::from_secs(60), vec!["room:1".into()]);
    let response = handle_connect(
        &h.services,
        &verifier(),
        &connect_event("c1", Some(&token_with(&claims))),
    )
    .await;
    assert_eq!(response.status_code, 200);
    let record = h.store.get_connection("c1").await.unwrap().unwrap();
    assert_eq!(record.user_id, "user-7");
    assert_eq!(record.connected_at_ms, 1_795_381_200_000);
    assert_eq!(
        record.expires_at,
        1_795_381_200 + RECORD_TTL.as_secs() as i64
    );
    assert!(RECORD_TTL > Duration::from_secs(2 * 3600));
    assert_eq!(record.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(record.user_agent.as_deref(), Some("websocat/1.14.0"));
    assert_eq!(record.groups, ["room:1"]);
}

#[tokio::test]
async fn connect_accepts_a_bearer_header() {
    let h = Harness::new();
    let mut event = connect_event("c1", None);
    event.headers.insert(
        "authorization",
        format!("Bearer {}", token("user-8")).parse().unwrap(),
    );
    let response = handle_connect(&h.services, &verifier(), &event).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(h.store.records()[0].user_id, "user-8");
}

#[tokio::test]
async fn connect_refuses_missing_and_bad_tokens_and_writes_nothing() {
    let h = Harness::new();
    refused(
        &h,
        None,
        "no token: pass ?token=<jwt> or an Authorization: Bearer <jwt> header",
    )
    .await;
    refused(&h, Some("garbage"), "the token is malformed").await;

    let mut expired = claims_for("u", Duration::ZERO, vec![]);
    expired.exp -= 10;
    refused(&h, Some(&token_with(&expired)), "the token has expired").await;

    let other = TokenSecret::new("some-other-secret-some-other-secret").unwrap();
    let forged = mint(&other, &claims_for("u", Duration::from_secs(60), vec![])).unwrap();
    refused(&h, Some(&forged), "the token's signature is invalid").await;

    let real = token("u");
    let (_, rest) = real.split_once('.').unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{rest}");
    refused(&h, Some(&none), "the token's algorithm is not HS256").await;

    let empty_sub = Claims {
        sub: String::new(),
        ..claims_for("u", Duration::from_secs(60), vec![])
    };
    refused(
        &h,
        Some(&token_with(&empty_sub)),
        "the token's claims are invalid: \\\"sub\\\" is empty",
    )
    .await;
}

#[tokio::test]
async fn connect_fails_closed_without_a_secret() {
    let h = Harness::new();
    let response = handle_connect(
        &h.services,
        &Err(SecretError::Missing),
        &connect_event("c1", Some(&token("u"))),
    )
    .await;
    assert_eq!(response.status_code, 500);
    assert!(h.store.is_empty());
}

#[tokio::test]
async fn connect_reports_a_store_failure_as_500() {
    let h = Harness::new();
    h.store.fail_next(StoreError::Unavailable("down".into()));
    let response = handle_connect(
        &h.services,
        &verifier(),
        &connect_event("c1", Some(&token("u"))),
    )
    .await;
    assert_eq!(response.status_code, 500);
    assert!(h.store.is_empty());
}

#[tokio::test]
async fn connect_without_a_connection_id_is_a_bad_request() {
    let h = Harness::new();
    let mut event = connect_event("c1", Some(&token("u")));
    event.request_context.connection_id = None;
    assert_eq!(
        handle_connect(&h.services, &verifier(), &event)
            .await
            .status_code,
        400
    );
    assert!(h.store.is_empty());
}

#[tokio::test]
async fn disconnect_deletes_the_record_and_is_idempotent() {
    let h = Harness::new();
    h.store.put_connection(&record("c1", "u")).await.unwrap();
    h.store.put_connection(&record("c2", "u")).await.unwrap();
    assert_eq!(
        handle_disconnect(&h.services, &disconnect_event("c1"))
            .await
            .status_code,
        200
    );
    assert_eq!(
        handle_disconnect(&h.services, &disconnect_event("c1"))
            .await
            .status_code,
        200
    );
    assert_eq!(
        handle_disconnect(&h.services, &disconnect_event("unknown"))
            .await
            .status_code,
        200
    );
    assert_eq!(h.store.records(), [record("c2", "u")]);
}

#[tokio::test]
async fn disconnect_reports_a_store_failure_and_keeps_the_record() {
    let h = Harness::new();
    h.store.put_connection(&record("c1", "u")).await.unwrap();
    h.store.fail_next(StoreError::Unavailable("down".into()));
    assert_eq!(
        handle_disconnect(&h.services, &disconnect_event("c1"))
            .await
            .status_code,
        500
    );
    assert_eq!(h.store.len(), 1);
}

fn reply(response: switchboard::aws_lambda_events::apigw::ApiGatewayProxyResponse) -> String {
    assert_eq!(response.status_code, 200);
    body_text(&response).unwrap().to_owned()
}

#[test]
fn ping_answers_pong_and_echoes_the_name() {
    assert_eq!(
        reply(handle_ping(&message_event(
            "ping",
            Some(r#"{"action":"ping","name":"Stepan"}"#)
        ))),
        r#"{"type":"pong","name":"Stepan"}"#
    );
    assert_eq!(
        reply(handle_ping(&message_event(
            "ping",
            Some(r#"{"action":"ping"}"#)
        ))),
        r#"{"type":"pong"}"#
    );
}

#[test]
fn ping_with_a_non_string_name_is_a_bad_request() {
    assert_eq!(
        reply(handle_ping(&message_event(
            "ping",
            Some(r#"{"action":"ping","name":["x"]}"#)
        ))),
        r#"{"type":"error","code":"bad_request","message":"the \"name\" field must be a string"}"#
    );
}

#[test]
fn default_names_the_unknown_action() {
    assert_eq!(
        reply(handle_default(&message_event(
            "$default",
            Some(r#"{"action":"dance","x":1}"#)
        ))),
        r#"{"type":"error","code":"unknown_action","message":"unknown action \"dance\"","action":"dance"}"#
    );
}

#[test]
fn default_answers_unroutable_frames_with_bad_request() {
    let cases = [
        (
            Some("hello"),
            "the frame is not valid JSON: expected value at line 1 column 1",
        ),
        (Some("[1]"), "the frame must be a JSON object"),
        (Some("42"), "the frame must be a JSON object"),
        (
            Some(r#"{"name":"x"}"#),
            "the frame has no \\\"action\\\" field",
        ),
        (
            Some(r#"{"action":7}"#),
            "the \\\"action\\\" field must be a string",
        ),
        (
            Some(r#"{"action":{"a":1}}"#),
            "the \\\"action\\\" field must be a string",
        ),
        (Some(""), "the frame is empty"),
        (None, "the frame is empty"),
    ];
    for (body, message) in cases {
        assert_eq!(
            reply(handle_default(&message_event("$default", body))),
            format!(r#"{{"type":"error","code":"bad_request","message":"{message}"}}"#),
            "body {body:?}"
        );
    }
}

#[test]
fn default_refuses_binary_frames() {
    let mut event = message_event("$default", Some("AAEC"));
    event.is_base64_encoded = true;
    assert_eq!(
        reply(handle_default(&event)),
        r#"{"type":"error","code":"bad_request","message":"binary frames are not supported; send JSON text frames"}"#
    );
}

#[test]
fn default_quotes_at_most_64_bytes_of_a_100_kb_action() {
    let action = "a".repeat(100 * 1024);
    let body = format!(r#"{{"action":"{action}"}}"#);
    let quoted = format!("{}…", "a".repeat(64));
    let expected = format!(
        r#"{{"type":"error","code":"unknown_action","message":"unknown action \"{quoted}\"","action":"{quoted}"}}"#
    );
    assert_eq!(
        reply(handle_default(&message_event("$default", Some(&body)))),
        expected
    );
    assert_eq!(expected.len(), 218, "was 200,084 bytes before the cut");
}
