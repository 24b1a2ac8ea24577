//! The whole chain on DynamoDB and SQS (moto), as on AWS:
//! producer → SQS → notify-user → SQS → notify-connection → Management API → WebSocket.
//!
//! `make test` starts moto and sets `MOTO_ENDPOINT`; plain `cargo test` ignores these.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use switchboard::auth::{claims_for, mint};
use switchboard_local::emulation::{AwsLatency, Latency};
use switchboard_local::{Backend, Config, RunningStack};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "moto-chain-secret-moto-chain-secret!";

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect("set MOTO_ENDPOINT (make test starts moto server)")
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

struct Resources {
    table: String,
    memberships_table: String,
    history_table: String,
    notify_user: String,
    notify_connection: String,
    notify_user_dlq: String,
    commands: String,
    deliveries: String,
    sqs: aws_sdk_sqs::Client,
}

async fn sdk() -> aws_config::SdkConfig {
    switchboard::aws::defaults()
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// The table and queues as template.yaml declares them (with a 1 s visibility timeout and
/// maxReceiveCount 2, so redelivery and dead-lettering happen within the test's bounds).
async fn resources() -> Resources {
    let sdk = sdk().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let table = unique("connections");
    switchboard::adapters::dynamodb::create_table(&dynamo, &table)
        .await
        .unwrap();
    let memberships_table = unique("memberships");
    switchboard::adapters::dynamodb::create_memberships_table(&dynamo, &memberships_table)
        .await
        .unwrap();
    let history_table = unique("history");
    switchboard::adapters::dynamodb::create_history_table(&dynamo, &history_table)
        .await
        .unwrap();
    let mut urls = Vec::new();
    for name in ["notify-user", "notify-connection", "commands", "deliveries"] {
        let dlq = sqs
            .create_queue()
            .queue_name(unique(&format!("{name}-dlq")))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        let url = sqs
            .create_queue()
            .queue_name(unique(name))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "1",
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}"#),
            )
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        urls.push((url, dlq));
    }
    Resources {
        table,
        memberships_table,
        history_table,
        notify_user: urls[0].0.clone(),
        notify_user_dlq: urls[0].1.clone(),
        notify_connection: urls[1].0.clone(),
        commands: urls[2].0.clone(),
        deliveries: urls[3].0.clone(),
        sqs,
    }
}

async fn start(r: &Resources) -> RunningStack {
    start_with(r, AwsLatency::default()).await
}

async fn start_with(r: &Resources, aws_latency: AwsLatency) -> RunningStack {
    switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        backend: Backend::Aws {
            endpoint: Some(endpoint()),
            table: r.table.clone(),
            memberships_table: r.memberships_table.clone(),
            history_table: Some(r.history_table.clone()),
            notify_user_queue_url: r.notify_user.clone(),
            notify_connection_queue_url: r.notify_connection.clone(),
            commands_queue_url: Some(r.commands.clone()),
            deliveries_queue_url: Some(r.deliveries.clone()),
        },
        aws_latency,
        ..Config::default()
    })
    .await
    .unwrap()
}

async fn connect(
    stack: &RunningStack,
    user: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let token = mint(
        stack.secret(),
        &claims_for(user, Duration::from_secs(300), vec![]),
    )
    .unwrap();
    let (socket, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}", stack.websocket_url()))
            .await
            .unwrap();
    socket
}

async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("no message within 15 s")
            .expect("socket ended")
            .expect("socket error");
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn notify_user_travels_through_sqs_and_dynamodb_to_the_socket() {
    let r = resources().await;
    let stack = start(&r).await;
    let mut alice1 = connect(&stack, "alice").await;
    let mut alice2 = connect(&stack, "alice").await;
    let mut bob = connect(&stack, "bob").await;
    // The records are in DynamoDB, found through the byUser index.
    let page = stack.store().user_connections("alice", None).await.unwrap();
    assert_eq!(page.connection_ids.len(), 2);

    // A producer writes straight to the SQS queue, as an application on AWS would.
    r.sqs
        .send_message()
        .queue_url(&r.notify_user)
        .message_body(r#"{"userId":"alice","data":{"download":"ready"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(next_text(&mut alice1).await, r#"{"download":"ready"}"#);
    assert_eq!(next_text(&mut alice2).await, r#"{"download":"ready"}"#);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), bob.next())
            .await
            .is_err(),
        "bob must receive nothing"
    );

    // A client close runs $disconnect against DynamoDB.
    alice2.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ids = stack
            .store()
            .user_connections("alice", None)
            .await
            .unwrap()
            .connection_ids;
        if ids.len() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "record not deleted: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(bob);
    stack.shutdown().await;
    assert!(stack_is_empty(&r).await);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn aws_latency_slows_the_dynamodb_calls_and_the_sqs_hops_on_moto() {
    let r = resources().await;
    let ms = |n| Latency::Fixed(Duration::from_millis(n));
    let stack = start_with(
        &r,
        AwsLatency {
            queue: ms(150),
            store: ms(40),
            post: ms(10),
            ..AwsLatency::default()
        },
    )
    .await;
    let mut alice = connect(&stack, "alice").await;
    // A DynamoDB call through the stack's store waits its latency first.
    let start = std::time::Instant::now();
    let page = stack.store().user_connections("alice", None).await.unwrap();
    assert_eq!(page.connection_ids.len(), 1);
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "{:?}",
        start.elapsed()
    );

    // Both SQS hops, at least one DynamoDB query and the post, end to end.
    let start = std::time::Instant::now();
    r.sqs
        .send_message()
        .queue_url(&r.notify_user)
        .message_body(r#"{"userId":"alice","data":"late"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(next_text(&mut alice).await, "late");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2 * 150 + 40 + 10),
        "two SQS hops, a query and a post: {elapsed:?}"
    );
    drop(alice);
    stack.shutdown().await;
}

/// No connection record is left behind: what remains are only users' rate-limit
/// buckets (`limit#…` items), each with an `expiresAt` so DynamoDB's TTL removes it.
async fn stack_is_empty(r: &Resources) -> bool {
    let sdk = sdk().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    // Test-only check of the whole table; production code never scans.
    let items = dynamo.scan().table_name(&r.table).send().await.unwrap();
    items.items().iter().all(|item| {
        let key = item
            .get("connectionId")
            .and_then(|v| v.as_s().ok())
            .map_or("", String::as_str);
        key.starts_with("limit#") && item.contains_key("expiresAt")
    })
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn malformed_messages_reach_the_sqs_dead_letter_queue() {
    let r = resources().await;
    let stack = start(&r).await;
    r.sqs
        .send_message()
        .queue_url(&r.notify_user)
        .message_body(r#"{"userId":7,"data":1}"#)
        .send()
        .await
        .unwrap();
    // maxReceiveCount 2 with a 1 s visibility timeout: in the DLQ after about 2 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let out = r
            .sqs
            .receive_message()
            .queue_url(&r.notify_user_dlq)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = out.messages().first() {
            break message.body().unwrap_or_default().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing reached the DLQ"
        );
    };
    assert_eq!(body, r#"{"userId":7,"data":1}"#);
    stack.shutdown().await;
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn send_to_group_travels_through_the_commands_and_deliveries_queues() {
    let r = resources().await;
    let stack = start(&r).await;
    let token = mint(
        stack.secret(),
        &claims_for("alice", Duration::from_secs(300), vec!["chat:1".into()]),
    )
    .unwrap();
    let (mut member, _) =
        tokio_tungstenite::connect_async(format!("{}?token={token}", stack.websocket_url()))
            .await
            .unwrap();
    let mut outsider = connect(&stack, "bob").await;
    r.sqs
        .send_message()
        .queue_url(&r.commands)
        .message_body(r#"{"version":1,"type":"sendToGroup","group":"chat:1","data":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut member).await,
        r#"{"type":"message","from":"server","group":"chat:1","data":"hi"}"#
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), outsider.next())
            .await
            .is_err()
    );
    stack.shutdown().await;
}

/// One HTTP/1.1 request to the stack's HTTP API.
async fn http(stack: &RunningStack, method: &str, path: &str, body: &str) -> (u16, String) {
    let json = "Content-Type: application/json\r\n";
    exchange(&stack.addr().to_string(), method, path, json, body).await
}

/// One HTTP/1.1 request (`headers`: extra header lines, each ending in CRLF)
/// to `host`; the status and the body.
async fn exchange(
    host: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_string(&mut raw))
        .await
        .expect("no HTTP answer within 15 s")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn presence_publish_broadcast_and_user_groups_run_on_dynamodb_and_sqs() {
    let r = resources().await;
    let stack = start(&r).await;
    let socket = |user: &str| {
        let mut claims = claims_for(user, Duration::from_secs(300), vec!["presence:room".into()]);
        claims.publish = vec!["presence:room".into()];
        let url = format!(
            "{}?token={}",
            stack.websocket_url(),
            mint(stack.secret(), &claims).unwrap()
        );
        async move { tokio_tungstenite::connect_async(url).await.unwrap().0 }
    };
    let join = |user: &str, online: u32| {
        format!(
            r#"{{"type":"presence","event":"join","userId":"{user}","group":"presence:room","online":{online}}}"#
        )
    };
    // Each join reaches the others (a connection cannot receive before $connect returns).
    let mut alice = socket("alice").await;
    let mut bob = socket("bob").await;
    assert_eq!(next_text(&mut alice).await, join("bob", 2));

    // A client event through the Deliveries queue, limited by a conditional update.
    alice
        .send(Message::text(
            r#"{"action":"publish","group":"presence:room","data":"typing","id":1}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"ack","id":1,"ok":true}"#
    );
    assert_eq!(
        next_text(&mut bob).await,
        r#"{"type":"message","from":"client","group":"presence:room","userId":"alice","data":"typing"}"#
    );

    // Broadcast through the byShard index.
    let (status, body) = http(&stack, "POST", "/send", r#"{"all":true,"data":"everyone"}"#).await;
    assert_eq!((status, body.as_str()), (202, r#"{"addressed":2}"#));
    for socket in [&mut alice, &mut bob] {
        assert_eq!(
            next_text(socket).await,
            r#"{"type":"message","from":"server","data":"everyone"}"#
        );
    }

    // A user-level membership reaches bob's next connection at $connect.
    let (status, _) = http(&stack, "PUT", "/groups/vip/users/bob", "").await;
    assert_eq!(status, 200);
    let mut bob2 = socket("bob").await;
    let (_, group) = http(&stack, "GET", "/groups/vip", "").await;
    assert_eq!(
        group,
        r#"{"connections":2,"exists":true,"group":"vip","users":1}"#
    );

    // Alice leaves: bob's connections each hear it once.
    alice.close(None).await.unwrap();
    let leave = r#"{"type":"presence","event":"leave","userId":"alice","group":"presence:room","online":1}"#;
    assert_eq!(next_text(&mut bob).await, leave);
    assert_eq!(next_text(&mut bob2).await, leave);
    stack.shutdown().await;
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn a_user_message_sent_during_a_reconnect_is_recovered_from_dynamodb() {
    let r = resources().await;
    let stack = start(&r).await;
    let token = mint(
        stack.secret(),
        &claims_for("dana", Duration::from_secs(300), vec![]),
    )
    .unwrap();
    let url = format!("{}?token={token}&envelope=1", stack.websocket_url());
    let (mut dana, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let send = |data: &'static str| {
        r.sqs
            .send_message()
            .queue_url(&r.notify_user)
            .message_body(format!(r#"{{"userId":"dana","data":"{data}"}}"#))
            .send()
    };
    send("first").await.unwrap();
    let first: serde_json::Value = serde_json::from_str(&next_text(&mut dana).await).unwrap();
    assert_eq!(
        (first["offset"].as_u64(), first["data"].as_str()),
        (Some(1), Some("first"))
    );
    let epoch = first["epoch"].as_str().unwrap().to_owned();
    dana.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stack
        .store()
        .user_connections("dana", None)
        .await
        .unwrap()
        .connection_ids
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "record not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send("your download is ready").await.unwrap();
    // Kept in the DynamoDB history table before the (empty) fan-out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let history = switchboard::adapters::dynamodb::DynamoHistory::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        r.history_table.clone(),
    );
    loop {
        use switchboard::ports::History;
        if history
            .read("user:dana", &epoch, 2, 2, 0)
            .await
            .unwrap()
            .len()
            == 1
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut dana, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    dana.send(Message::text(
        serde_json::json!({"action":"recover","id":1,"streams":[{"stream":"user","offset":1,"epoch":epoch}]})
            .to_string(),
    ))
    .await
    .unwrap();
    let missed: serde_json::Value = serde_json::from_str(&next_text(&mut dana).await).unwrap();
    assert_eq!(
        missed,
        serde_json::json!({"type":"message","from":"server","data":"your download is ready",
            "stream":"user","offset":2,"epoch":epoch})
    );
    let done: serde_json::Value = serde_json::from_str(&next_text(&mut dana).await).unwrap();
    assert_eq!(
        (done["type"].as_str(), done["recovered"].as_bool()),
        (Some("recovered"), Some(true))
    );
    drop(dana);
    stack.shutdown().await;
}

/// One EventBridge call to moto (AWS JSON 1.1; moto does not check the signature).
async fn eventbridge(operation: &str, body: serde_json::Value) -> serde_json::Value {
    let endpoint = endpoint();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let headers = format!(
        "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AWSEvents.{operation}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=0\r\n"
    );
    let (status, answer) = exchange(host, "POST", "/", &headers, &body.to_string()).await;
    assert_eq!(status, 200, "{operation}: {answer}");
    serde_json::from_str(&answer).unwrap_or(serde_json::Value::Null)
}

/// `--event-bus` with `--aws-endpoint`: the local stack puts its upstream
/// events on an EventBridge bus as on AWS; a rule on the bus (docs/upstream-events.md's
/// example pattern) delivers them to an SQS queue.
#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn event_bus_events_reach_a_queue_through_a_rule() {
    let r = resources().await;
    let queue = r
        .sqs
        .create_queue()
        .queue_name(unique("bus-target"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = r
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let bus = unique("bus");
    eventbridge("CreateEventBus", serde_json::json!({ "Name": bus })).await;
    eventbridge(
        "PutRule",
        serde_json::json!({ "Name": "all", "EventBusName": bus,
            "EventPattern": r#"{"source":["switchboard"]}"# }),
    )
    .await;
    eventbridge(
        "PutTargets",
        serde_json::json!({ "Rule": "all", "EventBusName": bus,
            "Targets": [{ "Id": "queue", "Arn": queue_arn }] }),
    )
    .await;

    let mut config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        token_secret: Some(SECRET.into()),
        backend: Backend::Aws {
            endpoint: Some(endpoint()),
            table: r.table.clone(),
            memberships_table: r.memberships_table.clone(),
            history_table: None,
            notify_user_queue_url: r.notify_user.clone(),
            notify_connection_queue_url: r.notify_connection.clone(),
            commands_queue_url: Some(r.commands.clone()),
            deliveries_queue_url: Some(r.deliveries.clone()),
        },
        ..Config::default()
    };
    config.upstream.event_bus = Some(bus.clone());
    let stack = switchboard_local::start(config).await.unwrap();
    let mut socket = connect(&stack, "ivy").await;
    socket.close(None).await.unwrap();

    // connected and disconnected (a standard queue: either order), each the
    // CloudEvent as the detail, typed.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        let received = r
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages.unwrap_or_default() {
            let event: serde_json::Value =
                serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
            seen.push(event);
        }
    }
    let mut kinds: Vec<&str> = seen
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or(""))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["connected", "disconnected"], "{seen:?}");
    for event in &seen {
        assert_eq!(event["source"], "switchboard");
        assert_eq!(event["detail"]["data"]["userId"], "ivy", "{event}");
        assert!(
            event["detail"]["id"]
                .as_str()
                .unwrap()
                .ends_with(event["detail"]["data"]["connectionId"].as_str().unwrap())
        );
    }
    stack.shutdown().await;
}
