//! The server HTTP API over in-memory adapters: every route, every bad request
//! (400 naming the field), negotiate.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::json;
use switchboard::auth::{SecretError, TokenSecret, TokenVerifier, claims_for};
use switchboard::config::NegotiateSettings;
use switchboard::handlers::connect::handle_connect;
use switchboard::handlers::http_api::{HttpAnswer, route};
use switchboard::ports::{Membership, MembershipStore};

fn config() -> NegotiateSettings {
    NegotiateSettings {
        websocket_url: "wss://example.test/prod".into(),
        secret: Ok(secret()).into(),
        policy: Default::default(),
        default_ttl: Duration::from_secs(300),
        max_ttl: Duration::from_secs(3600),
    }
}

async fn call(h: &Harness, method: &str, path: &str, body: Option<&str>) -> HttpAnswer {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (
            path,
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        None => (path, HashMap::new()),
    };
    route(&h.services, &config(), method, path, &query, body).await
}

/// alice: a1, a2; bob: b1. a1 and b1 are in chat:1.
async fn harness() -> Harness {
    let h = Harness::new();
    for (id, user) in [("a1", "alice"), ("a2", "alice"), ("b1", "bob")] {
        h.connection(record(id, user)).await;
    }
    for (id, user) in [("a1", "alice"), ("b1", "bob")] {
        h.memberships
            .join(&Membership {
                group: "chat:1".into(),
                connection_id: id.into(),
                user_id: user.into(),
                expires_at: 0,
            })
            .await
            .unwrap();
    }
    h
}

fn bad(field: &str, message: &str) -> HttpAnswer {
    HttpAnswer {
        status: 400,
        body: json!({ "error": { "code": "bad_request", "field": field, "message": message } }),
    }
}

fn accepted(addressed: usize) -> HttpAnswer {
    HttpAnswer {
        status: 202,
        body: json!({ "addressed": addressed }),
    }
}

const GROUP_MESSAGE: &str = r#"{"type":"message","from":"server","group":"chat:1","data":{"t":1}}"#;
const PLAIN_MESSAGE: &str = r#"{"type":"message","from":"server","data":{"t":1}}"#;

#[tokio::test]
async fn send_reaches_each_kind_of_target() {
    // (request body, connections addressed, (connection, frame) received)
    type Case<'a> = (&'a str, usize, &'a [(&'a str, &'a str)]);
    let cases: [Case; 6] = [
        (
            r#"{"connectionId":"a2","data":{"t":1}}"#,
            1,
            &[("a2", PLAIN_MESSAGE)],
        ),
        (
            r#"{"userId":"alice","data":{"t":1}}"#,
            2,
            &[("a1", PLAIN_MESSAGE), ("a2", PLAIN_MESSAGE)],
        ),
        (
            r#"{"userId":"alice","group":"chat:1","data":{"t":1}}"#,
            1,
            &[("a1", GROUP_MESSAGE)],
        ),
        (
            r#"{"group":"chat:1","data":{"t":1}}"#,
            2,
            &[("a1", GROUP_MESSAGE), ("b1", GROUP_MESSAGE)],
        ),
        (
            r#"{"group":"chat:1","data":{"t":1},"excludeConnectionIds":["b1"]}"#,
            1,
            &[("a1", GROUP_MESSAGE)],
        ),
        (
            r#"{"all":true,"data":{"t":1},"excludeConnectionIds":["a1"]}"#,
            2,
            &[("a2", PLAIN_MESSAGE), ("b1", PLAIN_MESSAGE)],
        ),
    ];
    for (body, addressed, expected) in cases {
        let h = harness().await;
        assert_eq!(
            call(&h, "POST", "/send", Some(body)).await,
            accepted(addressed),
            "{body}"
        );
        h.pump().await;
        for id in ["a1", "a2", "b1"] {
            let want: Vec<&str> = expected
                .iter()
                .filter(|(who, _)| *who == id)
                .map(|(_, frame)| *frame)
                .collect();
            assert_eq!(h.received(id), want, "{body} -> {id}");
        }
    }
}

#[tokio::test]
async fn bad_sends_name_the_field_and_send_nothing() {
    let h = harness().await;
    let big = format!(r#"{{"all":true,"data":"{}"}}"#, "x".repeat(131_072));
    let cases: Vec<(String, HttpAnswer)> = vec![
        (
            "nope".into(),
            bad(
                "body",
                "the body is not valid JSON: expected ident at line 1 column 2",
            ),
        ),
        ("[1]".into(), bad("body", "the body must be a JSON object")),
        (
            r#"{"data":1}"#.into(),
            bad(
                "target",
                "name one target: connectionId, userId, group, userId and group, or all",
            ),
        ),
        (
            r#"{"connectionId":"a1","group":"chat:1","data":1}"#.into(),
            bad(
                "target",
                "name exactly one target: connectionId, userId, group, userId and group, or all",
            ),
        ),
        (
            r#"{"all":true,"userId":"alice","data":1}"#.into(),
            bad(
                "target",
                "name exactly one target: connectionId, userId, group, userId and group, or all",
            ),
        ),
        (
            r#"{"group":"chat:1"}"#.into(),
            bad("data", "\"data\" is required"),
        ),
        (
            r#"{"connectionId":7,"data":1}"#.into(),
            bad("connectionId", "\"connectionId\" must be a string"),
        ),
        (
            r#"{"userId":"","data":1}"#.into(),
            bad("userId", "\"userId\" must not be empty"),
        ),
        (
            r#"{"group":"chat 1","data":1}"#.into(),
            bad(
                "group",
                "the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /",
            ),
        ),
        (
            r#"{"all":"yes","data":1}"#.into(),
            bad("all", "\"all\" must be true or false"),
        ),
        (
            r#"{"userId":"alice","data":1,"excludeConnectionIds":["a1"]}"#.into(),
            bad(
                "excludeConnectionIds",
                "\"excludeConnectionIds\" applies to group and all sends only",
            ),
        ),
        (
            r#"{"all":true,"data":1,"excludeConnectionIds":"a1"}"#.into(),
            bad(
                "excludeConnectionIds",
                "\"excludeConnectionIds\" must be an array of strings",
            ),
        ),
        (
            big,
            bad(
                "data",
                "the message would be 131116 bytes, over API Gateway's 131072-byte limit",
            ),
        ),
    ];
    for (body, expected) in cases {
        let shown = &body[..body.len().min(80)];
        assert_eq!(
            call(&h, "POST", "/send", Some(&body)).await,
            expected,
            "{shown}"
        );
    }
    assert_eq!(h.deliveries.calls(), 0);
}

#[tokio::test]
async fn notify_takes_seed_004s_shape() {
    let h = Harness::new();
    h.connection(record("c1", "1589")).await;
    h.connection(record("c2", "1589")).await;
    h.memberships
        .join(&Membership {
            group: "notification:test".into(),
            connection_id: "c1".into(),
            user_id: "1589".into(),
            expires_at: 0,
        })
        .await
        .unwrap();
    let body = r#"{"user_id":1589,"event_name":"notification:test","message":{"text":"ready"}}"#;
    assert_eq!(call(&h, "POST", "/notify", Some(body)).await, accepted(1));
    h.pump().await;
    assert_eq!(
        h.received("c1"),
        [
            r#"{"type":"message","from":"server","group":"notification:test","data":{"text":"ready"}}"#
        ]
    );
    assert!(h.received("c2").is_empty(), "not in the group");
    for (body, expected) in [
        (
            r#"{"event_name":"g","message":1}"#,
            bad(
                "user_id",
                "\"user_id\" is required: a number or a non-empty string",
            ),
        ),
        (
            r#"{"user_id":true,"event_name":"g","message":1}"#,
            bad(
                "user_id",
                "\"user_id\" is required: a number or a non-empty string",
            ),
        ),
        (
            r#"{"user_id":1589,"message":1}"#,
            bad("event_name", "\"event_name\" is required"),
        ),
        (
            r#"{"user_id":1589,"event_name":"a b","message":1}"#,
            bad(
                "event_name",
                "the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /",
            ),
        ),
        (
            r#"{"user_id":"1589","event_name":"g"}"#,
            bad("message", "\"message\" is required"),
        ),
    ] {
        assert_eq!(
            call(&h, "POST", "/notify", Some(body)).await,
            expected,
            "{body}"
        );
    }
}

#[tokio::test]
async fn group_management_mirrors_the_commands() {
    let h = harness().await;
    let answer = call(&h, "PUT", "/groups/vip/connections/a2", None).await;
    assert_eq!(
        answer,
        HttpAnswer {
            status: 200,
            body: json!({"group":"vip","connectionId":"a2","member":true,"changed":true})
        }
    );
    assert!(h.memberships.is_member("vip", "a2").await.unwrap());
    assert_eq!(
        call(&h, "PUT", "/groups/vip/connections/ghost", None)
            .await
            .status,
        404
    );
    let removed = call(&h, "DELETE", "/groups/vip/connections/a2", None).await;
    assert_eq!(removed.body["changed"], json!(true));
    let again = call(&h, "DELETE", "/groups/vip/connections/a2", None).await;
    assert_eq!(
        (again.status, again.body["changed"].clone()),
        (200, json!(false))
    );

    let added = call(
        &h,
        "PUT",
        "/groups/vip/users/alice",
        Some(r#"{"ttlSeconds":600}"#),
    )
    .await;
    assert_eq!(
        added,
        HttpAnswer {
            status: 200,
            body: json!({"group":"vip","userId":"alice","member":true,"connections":2})
        }
    );
    assert_eq!(
        h.memberships.user_groups("alice", 0).await.unwrap(),
        ["vip"]
    );
    assert_eq!(
        call(
            &h,
            "PUT",
            "/groups/vip/users/alice",
            Some(r#"{"ttlSeconds":-1}"#)
        )
        .await,
        bad(
            "ttlSeconds",
            "\"ttlSeconds\" must be an integer from 1 to 31536000"
        )
    );
    assert_eq!(
        call(&h, "PUT", "/groups/bad%20name/users/alice", None).await,
        bad(
            "group",
            "the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /"
        )
    );
    let removed = call(&h, "DELETE", "/groups/vip/users/alice", None).await;
    assert_eq!(removed.body["connections"], json!(2));
    assert!(h.memberships.all().iter().all(|m| m.group != "vip"));
}

#[tokio::test]
async fn close_routes_send_the_close_frame_then_close() {
    let h = harness().await;
    let answer = call(&h, "DELETE", "/connections/a1?reason=bye", None).await;
    assert_eq!(
        answer,
        HttpAnswer {
            status: 200,
            body: json!({"connectionId":"a1","closed":true})
        }
    );
    assert_eq!(h.received("a1"), [r#"{"type":"close","reason":"bye"}"#]);
    assert!(!h.gateway.is_open("a1"));
    let answer = call(&h, "DELETE", "/users/alice/connections", None).await;
    assert_eq!(answer.body, json!({"userId":"alice","closed":2}));
    assert_eq!(h.received("a2"), [r#"{"type":"close"}"#]);
    assert!(h.gateway.is_open("b1"));
    let long = format!("/connections/b1?reason={}", "r".repeat(124));
    assert_eq!(
        call(&h, "DELETE", &long, None).await,
        bad("reason", "\"reason\" is longer than 123 bytes")
    );
    assert!(h.gateway.is_open("b1"));
}

#[tokio::test]
async fn existence_checks_answer_with_counts_and_404_when_absent() {
    let h = harness().await;
    h.connection(record("x/y+z=", "carol")).await;
    let connection = call(&h, "GET", "/connections/a1", None).await;
    assert_eq!(
        connection,
        HttpAnswer {
            status: 200,
            body: json!({"connectionId":"a1","exists":true,"userId":"alice","connectedAt":1_795_381_200_000_i64,"groups":["chat:1"]})
        }
    );
    let encoded = call(&h, "GET", "/connections/x%2Fy%2Bz%3D", None).await;
    assert_eq!(
        encoded.body["userId"],
        json!("carol"),
        "path segments are percent-decoded"
    );
    assert_eq!(
        call(&h, "GET", "/connections/ghost", None).await,
        HttpAnswer {
            status: 404,
            body: json!({"connectionId":"ghost","exists":false})
        }
    );
    assert_eq!(
        call(&h, "GET", "/users/alice", None).await,
        HttpAnswer {
            status: 200,
            body: json!({"userId":"alice","exists":true,"connections":2,"groups":[]})
        }
    );
    assert_eq!(call(&h, "GET", "/users/nobody", None).await.status, 404);
    assert_eq!(
        call(&h, "GET", "/groups/chat:1", None).await,
        HttpAnswer {
            status: 200,
            body: json!({"group":"chat:1","exists":true,"connections":2,"users":2})
        }
    );
    assert_eq!(
        call(&h, "GET", "/groups/empty", None).await,
        HttpAnswer {
            status: 404,
            body: json!({"group":"empty","exists":false,"connections":0,"users":0})
        }
    );
}

#[tokio::test]
async fn negotiate_hands_out_a_short_lived_token_in_a_url() {
    let h = Harness::new();
    let body =
        r#"{"userId":"alice","groups":["chat:1"],"subscribe":["chat:*"],"publish":["chat:1"]}"#;
    let answer = call(&h, "POST", "/negotiate", Some(body)).await;
    assert_eq!(answer.status, 200);
    let token = answer.body["token"].as_str().unwrap();
    assert_eq!(
        answer.body["url"],
        json!(format!("wss://example.test/prod?token={token}"))
    );
    let claims = TokenVerifier::new(&secret()).verify(token).unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.groups, ["chat:1"]);
    assert_eq!(claims.subscribe, ["chat:*"]);
    assert_eq!(claims.publish, ["chat:1"]);
    assert_eq!(answer.body["expiresAt"], json!(claims.exp));
    assert_eq!(claims.exp - claims.iat.unwrap(), 300, "the short default");

    let answer = call(
        &h,
        "POST",
        "/negotiate",
        Some(r#"{"userId":"a","ttlSeconds":3600}"#),
    )
    .await;
    let claims = TokenVerifier::new(&secret())
        .verify(answer.body["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.exp - claims.iat.unwrap(), 3600);

    let too_many: Vec<String> = (0..101).map(|i| format!("g{i}")).collect();
    let too_many = json!({"userId":"a","groups":too_many}).to_string();
    for (body, expected) in [
        (
            r#"{"groups":[]}"#.to_string(),
            bad("userId", "\"userId\" is required"),
        ),
        (
            r#"{"userId":"a","ttlSeconds":3601}"#.into(),
            bad(
                "ttlSeconds",
                "\"ttlSeconds\" must be an integer from 1 to 3600",
            ),
        ),
        (
            r#"{"userId":"a","ttlSeconds":0}"#.into(),
            bad(
                "ttlSeconds",
                "\"ttlSeconds\" must be an integer from 1 to 3600",
            ),
        ),
        (
            r#"{"userId":"a","groups":["a b"]}"#.into(),
            bad(
                "groups",
                "\"a b\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /",
            ),
        ),
        (
            r#"{"userId":"a","subscribe":["chat*"]}"#.into(),
            bad(
                "subscribe",
                "\"chat*\": \"*\" may only end a pattern, after a \":\" (\"prefix:*\") or stand alone (\"*\")",
            ),
        ),
        (
            r#"{"userId":"a","publish":"chat:1"}"#.into(),
            bad("publish", "\"publish\" must be an array of strings"),
        ),
        (too_many, bad("groups", "at most 100 entries")),
    ] {
        assert_eq!(
            call(&h, "POST", "/negotiate", Some(&body)).await,
            expected,
            "{body}"
        );
    }
}

/// Negotiate holds `userId` to the rule `$connect` holds `sub` to, so it never
/// mints a token that `$connect` refuses (it once answered 200 for "a\nb").
#[tokio::test]
async fn negotiate_refuses_every_user_id_connect_refuses() {
    let h = Harness::new();
    let long = "u".repeat(257);
    // (user id, negotiate's message, $connect's message for a token with that `sub`)
    let cases = [
        (
            "a\nb",
            "\"userId\" contains control characters",
            "\\\"sub\\\" contains control characters",
        ),
        (
            "tab\there",
            "\"userId\" contains control characters",
            "\\\"sub\\\" contains control characters",
        ),
        (
            long.as_str(),
            "\"userId\" is longer than 256 bytes",
            "\\\"sub\\\" is longer than 256 bytes",
        ),
        ("", "\"userId\" must not be empty", "\\\"sub\\\" is empty"),
        // Invisible format characters (Cf): one user id must not pass for another.
        (
            "alice\u{202E}",
            "\"userId\" contains the invisible format character U+202E",
            "\\\"sub\\\" contains the invisible format character U+202E",
        ),
        (
            "al\u{200B}ice",
            "\"userId\" contains the invisible format character U+200B",
            "\\\"sub\\\" contains the invisible format character U+200B",
        ),
        (
            "\u{FEFF}alice",
            "\"userId\" contains the invisible format character U+FEFF",
            "\\\"sub\\\" contains the invisible format character U+FEFF",
        ),
    ];
    for (user_id, negotiate_message, connect_message) in cases {
        let body = json!({ "userId": user_id }).to_string();
        assert_eq!(
            call(&h, "POST", "/negotiate", Some(&body)).await,
            bad("userId", negotiate_message),
            "{user_id:?}"
        );
        let token = mint_token(user_id);
        let response =
            handle_connect(&h.services, &verifier(), &connect_event("c1", Some(&token))).await;
        assert_eq!(response.status_code, 401, "{user_id:?}");
        assert_eq!(
            body_text(&response),
            Some(
                format!(
                    r#"{{"message":"unauthorized: the token's claims are invalid: {connect_message}"}}"#
                )
                .as_str()
            ),
            "{user_id:?}"
        );
    }
    assert!(h.store.is_empty());
}

/// The same rule on the queues and the other HTTP routes that name a user.
#[tokio::test]
async fn every_surface_refuses_user_ids_with_format_characters() {
    use switchboard::protocol::NotifyUser;
    let h = Harness::new();
    let message = "\"userId\" contains the invisible format character U+202E";
    assert_eq!(
        NotifyUser::parse(Some(r#"{"userId":"alice\u202e","data":"x"}"#))
            .unwrap_err()
            .to_string(),
        format!("malformed message: {message}")
    );
    let body = json!({ "userId": "alice\u{202E}", "data": "x" }).to_string();
    assert_eq!(
        call(&h, "POST", "/send", Some(&body)).await,
        bad("userId", message)
    );
    assert_eq!(
        call(&h, "PUT", "/groups/g/users/alice%E2%80%AE", None).await,
        bad("userId", message)
    );
    assert!(h.store.is_empty());
}

fn mint_token(user_id: &str) -> String {
    token_with(&claims_for(user_id, Duration::from_secs(300), vec![]))
}

#[tokio::test]
async fn negotiate_fails_closed_without_a_secret() {
    let h = Harness::new();
    let config = NegotiateSettings {
        secret: Err::<TokenSecret, _>(SecretError::Missing).into(),
        ..config()
    };
    let answer = route(
        &h.services,
        &config,
        "POST",
        "/negotiate",
        &HashMap::new(),
        Some(r#"{"userId":"a"}"#),
    )
    .await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body["error"]["code"], json!("misconfigured"));
    assert!(answer.body.get("token").is_none());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_refused() {
    let h = Harness::new();
    let answer = call(&h, "GET", "/nope", None).await;
    assert_eq!(
        answer,
        HttpAnswer {
            status: 404,
            body: json!({"error":{"code":"not_found","message":"no route for GET /nope"}})
        }
    );
    assert_eq!(call(&h, "GET", "/send", None).await.status, 405);
    assert_eq!(
        call(&h, "PATCH", "/groups/g/users/u", None).await.status,
        404
    );
}

fn not_found(message: &str) -> HttpAnswer {
    HttpAnswer {
        status: 404,
        body: json!({ "error": { "code": "not_found", "message": message } }),
    }
}

#[tokio::test]
async fn every_verb_answers_a_missing_connection_or_user_with_404() {
    let h = harness().await;
    let missing = not_found("connection \"ghost\" does not exist");
    assert_eq!(
        call(&h, "DELETE", "/connections/ghost", None).await,
        missing
    );
    assert_eq!(
        call(&h, "PUT", "/groups/vip/connections/ghost", None).await,
        missing
    );
    assert_eq!(
        call(&h, "DELETE", "/groups/chat:1/connections/ghost", None).await,
        missing
    );
    assert_eq!(
        call(&h, "DELETE", "/users/nobody/connections", None).await,
        not_found("user \"nobody\" has no connection")
    );
    assert_eq!(
        call(&h, "GET", "/connections/ghost", None).await.status,
        404
    );
    assert_eq!(call(&h, "GET", "/users/nobody", None).await.status, 404);
    // Nothing was closed or removed on the way.
    for id in ["a1", "a2", "b1"] {
        assert!(h.gateway.is_open(id), "{id}");
        assert!(h.received(id).is_empty(), "{id}");
    }
    assert!(h.memberships.is_member("chat:1", "a1").await.unwrap());
}

#[tokio::test]
async fn every_verb_holds_a_path_id_to_the_same_rule() {
    let h = harness().await;
    let long_user = "u".repeat(300);
    let long_connection = "c".repeat(300);
    let user_error = bad("userId", "\"userId\" is longer than 256 bytes");
    let connection_error = bad("connectionId", "\"connectionId\" is longer than 256 bytes");
    for (method, path) in [
        ("GET", format!("/users/{long_user}")),
        ("DELETE", format!("/users/{long_user}/connections")),
        ("PUT", format!("/groups/vip/users/{long_user}")),
        ("DELETE", format!("/groups/vip/users/{long_user}")),
    ] {
        assert_eq!(
            call(&h, method, &path, None).await,
            user_error,
            "{method} {path}"
        );
    }
    for (method, path) in [
        ("GET", format!("/connections/{long_connection}")),
        ("DELETE", format!("/connections/{long_connection}")),
        ("PUT", format!("/groups/vip/connections/{long_connection}")),
        (
            "DELETE",
            format!("/groups/vip/connections/{long_connection}"),
        ),
    ] {
        assert_eq!(
            call(&h, method, &path, None).await,
            connection_error,
            "{method} {path}"
        );
    }
}
