//! The local stack end to end, driven by real WebSocket clients on loopback.

mod support;

use std::time::Duration;

use futures::SinkExt;
use support::*;
use switchboard::auth::{TokenSecret, claims_for, mint};
use switchboard_local::Config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn status_of(error: tokio_tungstenite::tungstenite::Error) -> u16 {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP rejection, got {other}"),
    }
}

#[tokio::test]
async fn the_handshake_is_refused_without_a_valid_token_and_nothing_is_stored() {
    let stack = stack().await;
    assert_eq!(status_of(try_connect(&stack, None).await.unwrap_err()), 401);
    assert_eq!(
        status_of(try_connect(&stack, Some("garbage")).await.unwrap_err()),
        401
    );
    let forged = mint(
        &TokenSecret::new("another-secret-another-secret-another").unwrap(),
        &claims_for("mallory", Duration::from_secs(60), vec![]),
    )
    .unwrap();
    assert_eq!(
        status_of(try_connect(&stack, Some(&forged)).await.unwrap_err()),
        401
    );
    let mut expired = claims_for("mallory", Duration::ZERO, vec![]);
    expired.exp -= 5;
    let expired = mint(stack.secret(), &expired).unwrap();
    assert_eq!(
        status_of(try_connect(&stack, Some(&expired)).await.unwrap_err()),
        401
    );
    assert!(connections_of(&stack, "mallory").await.is_empty());
    assert_eq!(stack.open_connections(), 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn ping_answers_pong_and_unroutable_frames_get_error_frames() {
    let stack = stack().await;
    let mut client = connect(&stack, "alice").await;
    client
        .send(Message::text(r#"{"action":"ping","name":"Stepan"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"pong","name":"Stepan"}"#
    );
    client
        .send(Message::text(r#"{"action":"dance"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"error","code":"unknown_action","message":"unknown action \"dance\"","action":"dance"}"#
    );
    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"error","code":"bad_request","message":"the frame is not valid JSON: expected value at line 1 column 1"}"#
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn notify_user_reaches_every_connection_of_the_user_and_no_other() {
    let stack = stack().await;
    let mut alice = Vec::new();
    for _ in 0..5 {
        alice.push(connect(&stack, "alice").await);
    }
    let mut bob = [connect(&stack, "bob").await, connect(&stack, "bob").await];
    let answer = http(
        &stack,
        "POST",
        "/queues/notify-user",
        r#"{"userId":"alice","data":"hi"}"#,
    )
    .await;
    assert_eq!(answer.status, 202);
    assert!(
        answer.body.starts_with(r#"{"messageId":""#),
        "{}",
        answer.body
    );
    for client in &mut alice {
        assert_eq!(next_text(client).await, "hi");
    }
    let answer = http(
        &stack,
        "POST",
        "/queues/notify-user",
        r#"{"userId":"alice","data": {"b": 1, "a": [true]}}"#,
    )
    .await;
    assert_eq!(answer.status, 202);
    for client in &mut alice {
        assert_eq!(next_text(client).await, r#"{"b":1,"a":[true]}"#);
    }
    for client in &mut bob {
        silent(client, Duration::from_millis(200)).await;
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn notify_connection_to_a_gone_connection_deletes_its_record() {
    let stack = stack().await;
    // A record whose socket is gone, as when $disconnect never ran.
    put_stale_record(&stack, "Zm9yZ290dGVuIQ==", "ghost").await;
    let answer = http(
        &stack,
        "POST",
        "/queues/notify-connection",
        r#"{"connectionId":"Zm9yZ290dGVuIQ==","data":"x"}"#,
    )
    .await;
    assert_eq!(answer.status, 202);
    eventually("the stale record to be deleted", || async {
        connections_of(&stack, "ghost").await.is_empty()
    })
    .await;
    // 410 is final: nothing is retried into the dead letters.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dead = http(&stack, "GET", "/queues/notify-connection/dead-letters", "").await;
    assert_eq!(dead.body, "[]");
    stack.shutdown().await;
}

#[tokio::test]
async fn malformed_queue_messages_land_in_the_dead_letters_after_the_retries() {
    let stack = stack_with_fast_retries().await;
    assert_eq!(
        http(
            &stack,
            "POST",
            "/queues/notify-connection",
            r#"{"connectionId":"x"}"#
        )
        .await
        .status,
        202
    );
    assert_eq!(
        http(
            &stack,
            "POST",
            "/queues/notify-user",
            r#"{"userId":7,"data":1}"#
        )
        .await
        .status,
        202
    );
    for (queue, error) in [
        (
            "notify-connection",
            "malformed message: missing field `data`",
        ),
        (
            "notify-user",
            "malformed message: invalid type: integer `7`, expected a string",
        ),
    ] {
        let path = format!("/queues/{queue}/dead-letters");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let letters = loop {
            let letters: serde_json::Value =
                serde_json::from_str(&http(&stack, "GET", &path, "").await.body).unwrap();
            if letters.as_array().is_some_and(|a| !a.is_empty()) {
                break letters;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no dead letter in {queue}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let letters = letters.as_array().unwrap();
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(
            letters[0]["receiveCount"], 3,
            "after max_receive_count receives"
        );
        assert!(
            letters[0]["lastError"].as_str().unwrap().starts_with(error),
            "{letters:?}"
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_and_nothing_is_enqueued() {
    let stack = stack().await;
    let mut alice = connect(&stack, "alice").await;
    let answer = http(&stack, "POST", "/queues/notify-user", "userId=alice").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        r#"{"error":"the body is not JSON: expected value at line 1 column 1; nothing was enqueued"}"#
    );
    let answer = http(&stack, "POST", "/queues/nope", "{}").await;
    assert_eq!(answer.status, 404);
    silent(&mut alice, Duration::from_millis(200)).await;
    let dead = http(&stack, "GET", "/queues/notify-user/dead-letters", "").await;
    assert_eq!(dead.body, "[]");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_client_close_runs_disconnect() {
    let stack = stack().await;
    let mut client = connect(&stack, "alice").await;
    assert_eq!(connections_of(&stack, "alice").await.len(), 1);
    client
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    eventually("$disconnect", || async {
        connections_of(&stack, "alice").await.is_empty()
    })
    .await;
    assert_eq!(stack.open_connections(), 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_with_1001_and_activity_keeps_them_open() {
    let stack = stack_with(Config {
        idle_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut busy = connect(&stack, "busy").await;
    let mut idle = connect(&stack, "idle").await;
    for _ in 0..6 {
        busy.send(Message::text(r#"{"action":"ping"}"#))
            .await
            .unwrap();
        assert_eq!(next_text(&mut busy).await, r#"{"type":"pong"}"#);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(close_code(&mut idle).await, 1001);
    eventually("the idle record to go", || async {
        connections_of(&stack, "idle").await.is_empty()
    })
    .await;
    assert_eq!(
        connections_of(&stack, "busy").await.len(),
        1,
        "600 ms of pings kept it open"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn the_maximum_duration_closes_even_busy_connections() {
    let stack = stack_with(Config {
        max_duration: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut client = connect(&stack, "alice").await;
    client
        .send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut client).await, r#"{"type":"pong"}"#);
    assert_eq!(close_code(&mut client).await, 1001);
    eventually("$disconnect", || async {
        connections_of(&stack, "alice").await.is_empty()
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test]
async fn the_management_api_gets_posts_and_deletes_connections() {
    let stack = stack().await;
    let mut client = connect(&stack, "alice").await;
    let id = connections_of(&stack, "alice").await.remove(0);
    let path = format!(
        "/local/@connections/{}",
        id.replace('=', "%3D")
            .replace('+', "%2B")
            .replace('/', "%2F")
    );

    let info = http(&stack, "GET", &path, "").await;
    assert_eq!(info.status, 200);
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(info["Identity"]["SourceIp"], "127.0.0.1");
    assert!(info["ConnectedAt"].as_str().unwrap().ends_with('Z'));
    assert!(info["LastActiveAt"].as_str().is_some());

    assert_eq!(http(&stack, "POST", &path, "direct").await.status, 200);
    assert_eq!(next_text(&mut client).await, "direct");

    assert_eq!(http(&stack, "DELETE", &path, "").await.status, 204);
    assert_eq!(close_code(&mut client).await, 1000);
    eventually("$disconnect", || async {
        connections_of(&stack, "alice").await.is_empty()
    })
    .await;

    for method in ["GET", "POST", "DELETE"] {
        let gone = http(&stack, method, &path, "x").await;
        assert_eq!(gone.status, 410, "{method}");
        assert_eq!(gone.header("x-amzn-ErrorType"), Some("GoneException"));
    }
    // Without the stage prefix too.
    assert_eq!(
        http(&stack, "GET", "/@connections/unknown", "")
            .await
            .status,
        410
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn oversize_messages_close_with_1009_and_binary_frames_with_1003() {
    let stack = stack().await;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(None)
        .max_message_size(None);
    let url = format!("{}?token={}", stack.websocket_url(), token(&stack, "big"));
    let (mut big, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .unwrap();
    big.send(Message::text("x".repeat(130 * 1024)))
        .await
        .unwrap();
    assert_eq!(close_code(&mut big).await, 1009);

    let mut binary = connect(&stack, "binary").await;
    binary.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(close_code(&mut binary).await, 1003);

    eventually("both $disconnects", || async {
        connections_of(&stack, "big").await.is_empty()
            && connections_of(&stack, "binary").await.is_empty()
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_and_runs_disconnect() {
    let stack = stack().await;
    let mut a = connect(&stack, "alice").await;
    let mut b = connect(&stack, "bob").await;
    let store = stack.store();
    stack.shutdown().await;
    assert_eq!(close_code(&mut a).await, 1001);
    assert_eq!(close_code(&mut b).await, 1001);
    for user in ["alice", "bob"] {
        assert!(
            store
                .user_connections(user, None)
                .await
                .unwrap()
                .connection_ids
                .is_empty()
        );
    }
}

#[tokio::test]
async fn subscribe_and_unsubscribe_follow_the_token_and_disconnect_leaves_every_group() {
    let stack = stack().await;
    let claims = switchboard::auth::Claims {
        subscribe: vec!["chat:*".into()],
        ..claims_for("alice", Duration::from_secs(300), vec!["news".into()])
    };
    let token = mint(stack.secret(), &claims).unwrap();
    let mut client = try_connect(&stack, Some(&token)).await.unwrap();
    let id = connections_of(&stack, "alice").await.remove(0);
    assert_eq!(
        stack.memberships().connection_groups(&id).await.unwrap(),
        ["news"]
    );

    client
        .send(Message::text(
            r#"{"action":"subscribe","group":"chat:42","id":7}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"ack","id":7,"ok":true}"#
    );
    client
        .send(Message::text(
            r#"{"action":"subscribe","group":"secret","id":8}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"ack","id":8,"ok":false,"error":{"code":"forbidden","message":"the token does not allow you to subscribe to \"secret\""}}"#
    );
    let mut groups = stack.memberships().connection_groups(&id).await.unwrap();
    groups.sort();
    assert_eq!(groups, ["chat:42", "news"]);

    client
        .send(Message::text(
            r#"{"action":"unsubscribe","group":"chat:42","id":9}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"ack","id":9,"ok":true}"#
    );
    client.close(None).await.unwrap();
    eventually("$disconnect to leave every group", || async {
        stack
            .memberships()
            .connection_groups(&id)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    stack.shutdown().await;
}

#[tokio::test]
async fn send_to_group_reaches_members_except_the_excluded_and_no_one_else() {
    let stack = stack_with_fast_retries().await;
    let member = |user: &str| {
        let token = mint(
            stack.secret(),
            &claims_for(user, Duration::from_secs(300), vec!["chat:1".into()]),
        )
        .unwrap();
        let stack = &stack;
        async move { try_connect(stack, Some(&token)).await.unwrap() }
    };
    let mut alice = member("alice").await;
    let mut alice2 = member("alice").await;
    let mut bob = member("bob").await;
    let mut carol = connect(&stack, "carol").await;
    let bob_id = connections_of(&stack, "bob").await.remove(0);
    let command = format!(
        r#"{{"version":1,"type":"sendToGroup","group":"chat:1","data":{{"text": "hi"}},"excludeConnectionIds":["{bob_id}"]}}"#
    );
    let answer = http(&stack, "POST", "/queues/commands", &command).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let frame = r#"{"type":"message","from":"server","group":"chat:1","data":{"text":"hi"}}"#;
    assert_eq!(next_text(&mut alice).await, frame);
    assert_eq!(next_text(&mut alice2).await, frame);
    silent(&mut bob, Duration::from_millis(200)).await;
    silent(&mut carol, Duration::from_millis(50)).await;

    // A bad command ends in the commands dead letters with its reason.
    let answer = http(
        &stack,
        "POST",
        "/queues/commands",
        r#"{"version":9,"type":"sendToGroup"}"#,
    )
    .await;
    assert_eq!(answer.status, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let letters = loop {
        let body = http(&stack, "GET", "/queues/commands/dead-letters", "")
            .await
            .body;
        let letters: serde_json::Value = serde_json::from_str(&body).unwrap();
        if letters.as_array().is_some_and(|a| !a.is_empty()) {
            break letters;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        letters[0]["lastError"],
        "malformed message: unsupported command version 9; this deployment understands version 1"
    );
    assert_eq!(
        http(&stack, "GET", "/queues/deliveries/dead-letters", "")
            .await
            .body,
        "[]"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn commands_add_a_connection_to_a_group_and_close_it() {
    let stack = stack().await;
    let mut client = connect(&stack, "dave").await;
    let id = connections_of(&stack, "dave").await.remove(0);
    let add = format!(
        r#"{{"version":1,"type":"addConnectionToGroup","connectionId":"{id}","group":"vip"}}"#
    );
    assert_eq!(
        http(&stack, "POST", "/queues/commands", &add).await.status,
        202
    );
    eventually("the membership", || async {
        stack.memberships().is_member("vip", &id).await.unwrap()
    })
    .await;
    let send = r#"{"version":1,"type":"sendToGroup","group":"vip","data":1}"#;
    assert_eq!(
        http(&stack, "POST", "/queues/commands", send).await.status,
        202
    );
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"message","from":"server","group":"vip","data":1}"#
    );
    let close =
        format!(r#"{{"version":1,"type":"closeConnection","connectionId":"{id}","reason":"bye"}}"#);
    assert_eq!(
        http(&stack, "POST", "/queues/commands", &close)
            .await
            .status,
        202
    );
    assert_eq!(
        next_text(&mut client).await,
        r#"{"type":"close","reason":"bye"}"#
    );
    assert_eq!(close_code(&mut client).await, 1000);
    eventually("$disconnect", || async {
        connections_of(&stack, "dave").await.is_empty()
            && !stack.memberships().is_member("vip", &id).await.unwrap()
    })
    .await;
    stack.shutdown().await;
}

/// Sends `total` bytes of text as frames of at most `frame` bytes.
async fn send_fragmented(client: &mut Client, total: usize, frame: usize) {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let text = "x".repeat(total);
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

/// A client that sends whatever size it is told to.
async fn unbounded_client(stack: &switchboard_local::RunningStack, user: &str) -> Client {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(None)
        .max_message_size(None);
    let url = format!("{}?token={}", stack.websocket_url(), token(stack, user));
    tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn frames_and_messages_exactly_at_the_limits_are_accepted_and_one_byte_more_is_1009() {
    let stack = stack().await;
    let not_json = r#"{"type":"error","code":"bad_request","message":"the frame is not valid JSON: expected value at line 1 column 1"}"#;

    // A 32,768-byte frame and a 131,072-byte message in 32 KB frames: both routed.
    let mut client = unbounded_client(&stack, "limits").await;
    client
        .send(Message::text("x".repeat(32 * 1024)))
        .await
        .unwrap();
    assert_eq!(next_text(&mut client).await, not_json);
    send_fragmented(&mut client, 128 * 1024, 32 * 1024).await;
    assert_eq!(next_text(&mut client).await, not_json);

    // One byte over either limit closes with 1009.
    let mut frame_over = unbounded_client(&stack, "frame-over").await;
    frame_over
        .send(Message::text("x".repeat(32 * 1024 + 1)))
        .await
        .unwrap();
    assert_eq!(close_code(&mut frame_over).await, 1009);
    let mut message_over = unbounded_client(&stack, "message-over").await;
    send_fragmented(&mut message_over, 128 * 1024 + 1, 32 * 1024).await;
    assert_eq!(close_code(&mut message_over).await, 1009);
    stack.shutdown().await;
}

#[tokio::test]
async fn management_posts_over_128_kb_are_refused_with_413_and_the_socket_stays_open() {
    let stack = stack().await;
    let mut client = connect(&stack, "big-post").await;
    let id = connections_of(&stack, "big-post").await.remove(0);
    let path = |id: &str| {
        let encoded: String = id
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("/local/@connections/{encoded}")
    };
    let over = http(&stack, "POST", &path(&id), &"y".repeat(128 * 1024 + 1)).await;
    assert_eq!(over.status, 413);
    assert_eq!(
        over.header("x-amzn-ErrorType"),
        Some("PayloadTooLargeException")
    );
    let exact = http(&stack, "POST", &path(&id), &"z".repeat(128 * 1024)).await;
    assert_eq!(exact.status, 200);
    assert_eq!(next_text(&mut client).await.len(), 128 * 1024);
    stack.shutdown().await;
}

#[tokio::test]
async fn refused_handshakes_carry_the_exact_reason() {
    let stack = stack().await;
    for (token, message) in [
        (
            None,
            "unauthorized: no token: pass ?token=<jwt> or an Authorization: Bearer <jwt> header",
        ),
        (Some("garbage"), "unauthorized: the token is malformed"),
    ] {
        let url = match token {
            Some(t) => format!("{}?token={t}", stack.websocket_url()),
            None => stack.websocket_url(),
        };
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
            panic!("expected an HTTP refusal, got {err:?}");
        };
        assert_eq!(response.status(), 401);
        let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
        assert_eq!(body, serde_json::json!({ "message": message }).to_string());
    }
    stack.shutdown().await;
}
