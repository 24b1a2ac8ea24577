//! Every file in `events/` runs through its handler, so the fixtures cannot rot.
//! A new fixture without an expectation here fails the suite.

mod common;

use std::path::PathBuf;

use common::{Harness, body_text};
use switchboard::adapters::memory::{MemoryGateway, MemoryQueue, MemoryStore};
use switchboard::auth::{TokenPolicy, TokenSecret, TokenVerifier};
use switchboard::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest,
};
use switchboard::aws_lambda_events::encodings::Body;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::NegotiateSettings;
use switchboard::handlers::http_api::handle_http;
use switchboard::handlers::{
    actions, commands, connect, default, deliver, disconnect, notify_connection, notify_user, ping,
    upstream,
};
use switchboard::ports::{ConnectionRecord, ConnectionStore, Membership, MembershipStore};
use switchboard::services::Settings;

/// The development secret the fixtures' token is signed with (see docs/testing.md).
const DEV_SECRET: &str = "switchboard-local-dev-secret-0123456789";
const CONNECTION: &str = "f97yeeMZDoECGqg=";

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

async fn store_with_user_1234() -> MemoryStore {
    let store = MemoryStore::new();
    for id in [CONNECTION, "second-connection"] {
        store
            .put_connection(&common::record(id, "1234"))
            .await
            .unwrap();
    }
    store
}

/// Both fixture connections of user 1234, with sockets, in group chat:42.
async fn harness_with_chat_42() -> Harness {
    let harness = Harness::new();
    for id in [CONNECTION, "second-connection"] {
        harness
            .connection(ConnectionRecord {
                subscribe: vec!["chat:*".into()],
                publish: vec!["chat:*".into()],
                ..common::record(id, "1234")
            })
            .await;
        harness
            .memberships
            .join(&Membership {
                group: "chat:42".into(),
                connection_id: id.into(),
                user_id: "1234".into(),
                expires_at: 0,
            })
            .await
            .unwrap();
    }
    harness
}

fn http_config() -> NegotiateSettings {
    NegotiateSettings {
        websocket_url: "wss://abc123defg.execute-api.eu-central-1.amazonaws.com/prod".into(),
        secret: TokenSecret::new(DEV_SECRET).into(),
        policy: Default::default(),
        default_ttl: std::time::Duration::from_secs(300),
        max_ttl: std::time::Duration::from_secs(3600),
    }
}

fn http_body(body: &Option<Body>) -> &str {
    match body {
        Some(Body::Text(text)) => text,
        other => panic!("not a text body: {other:?}"),
    }
}

async fn check(name: &str) {
    // The fixture's token lives until 2100 (so it keeps working): far past the
    // default maximum lifetime, which `scripts/local-aws.py` raises the same way.
    let policy = TokenPolicy {
        max_lifetime: std::time::Duration::from_secs(3_000_000_000),
        ..TokenPolicy::default()
    };
    let verifier = Ok(TokenVerifier::with_keys(
        &TokenSecret::new(DEV_SECRET).unwrap().into(),
        &policy,
    ));
    match name {
        "connect.json" => {
            let harness = Harness::new();
            let event: ApiGatewayWebsocketProxyRequest = load(name);
            let response = connect::handle_connect(&harness.services, &verifier, &event).await;
            assert_eq!(response.status_code, 200);
            let record = harness
                .store
                .get_connection(CONNECTION)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(record.user_id, "1234");
            assert_eq!(record.groups, ["notification:test"]);
            assert_eq!(record.subscribe, ["chat:*"]);
            assert_eq!(record.source_ip.as_deref(), Some("203.0.113.7"));
        }
        "connect-no-token.json" => {
            let harness = Harness::new();
            let event: ApiGatewayWebsocketProxyRequest = load(name);
            let response = connect::handle_connect(&harness.services, &verifier, &event).await;
            assert_eq!(response.status_code, 401);
            assert!(harness.store.is_empty());
        }
        "disconnect.json" => {
            let harness = harness_with_chat_42().await;
            let event: ApiGatewayWebsocketProxyRequest = load(name);
            let response = disconnect::handle_disconnect(&harness.services, &event).await;
            assert_eq!(response.status_code, 200);
            assert_eq!(
                harness.store.get_connection(CONNECTION).await.unwrap(),
                None
            );
            assert_eq!(harness.store.len(), 1);
            assert_eq!(
                harness
                    .memberships
                    .connection_groups(CONNECTION)
                    .await
                    .unwrap(),
                Vec::<String>::new()
            );
        }
        "ping.json" => {
            let response = ping::handle_ping(&load(name));
            assert_eq!(
                body_text(&response),
                Some(r#"{"type":"pong","name":"Stepan"}"#)
            );
        }
        "default-garbage.json" => {
            let response = default::handle_default(&load(name));
            assert_eq!(
                body_text(&response),
                Some(
                    r#"{"type":"error","code":"bad_request","message":"the frame is not valid JSON: expected value at line 1 column 1"}"#
                )
            );
        }
        "default-unknown-action.json" => {
            let response = default::handle_default(&load(name));
            assert_eq!(
                body_text(&response),
                Some(
                    r#"{"type":"error","code":"unknown_action","message":"unknown action \"dance\"","action":"dance"}"#
                )
            );
        }
        "subscribe.json" => {
            let harness = Harness::new();
            harness
                .connection(ConnectionRecord {
                    subscribe: vec!["chat:*".into()],
                    ..common::record(CONNECTION, "1234")
                })
                .await;
            let response = actions::handle_client_action(&harness.services, &load(name)).await;
            assert_eq!(
                body_text(&response),
                Some(r#"{"type":"ack","id":7,"ok":true}"#)
            );
            assert_eq!(harness.memberships.all().len(), 1);
        }
        "publish.json" => {
            let harness = harness_with_chat_42().await;
            let response = actions::handle_client_action(&harness.services, &load(name)).await;
            assert_eq!(
                body_text(&response),
                Some(r#"{"type":"ack","id":8,"ok":true}"#)
            );
            harness.pump().await;
            assert!(harness.received(CONNECTION).is_empty(), "not to the sender");
            assert_eq!(
                harness.received("second-connection"),
                [
                    r#"{"type":"message","from":"client","group":"chat:42","userId":"1234","data":{"typing":true}}"#
                ]
            );
        }
        "presence.json" => {
            let harness = harness_with_chat_42().await;
            let response = actions::handle_client_action(&harness.services, &load(name)).await;
            assert_eq!(
                body_text(&response),
                Some(
                    r#"{"type":"presence","id":9,"group":"chat:42","userIds":["1234"],"users":1,"connections":2,"truncated":false}"#
                )
            );
        }
        "commands.json" => {
            let harness = harness_with_chat_42().await;
            let event: SqsEvent = load(name);
            let response = commands::handle_commands(&harness.services, event).await;
            assert!(response.batch_item_failures.is_empty());
            let sent = harness.deliveries.sent();
            assert_eq!(sent.len(), 1);
            assert!(
                sent[0].starts_with(&format!(r#"{{"connectionIds":["{CONNECTION}"]"#)),
                "{}",
                sent[0]
            );
        }
        "deliver.json" => {
            let harness = Harness::new();
            harness.connection(common::record(CONNECTION, "1234")).await;
            // A record without a socket: the post answers 410.
            harness
                .store
                .put_connection(&common::record("second-connection", "1234"))
                .await
                .unwrap();
            let event: SqsEvent = load(name);
            let response = deliver::handle_deliveries(&harness.services, event).await;
            assert!(response.batch_item_failures.is_empty());
            assert_eq!(
                harness.received(CONNECTION),
                [r#"{"type":"message","from":"server","group":"chat:42","data":{"text":"hello"}}"#]
            );
            // "second-connection" has no socket: 410, so its record is forgotten.
            assert!(
                harness
                    .store
                    .get_connection("second-connection")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(harness.deliveries.sent().is_empty());
        }
        "http-send.json" => {
            let harness = harness_with_chat_42().await;
            let event: ApiGatewayV2httpRequest = load(name);
            let response = handle_http(&harness.services, &http_config(), event).await;
            assert_eq!(response.status_code, 202);
            assert_eq!(http_body(&response.body), r#"{"addressed":2}"#);
            harness.pump().await;
            assert_eq!(
                harness.received(CONNECTION),
                [r#"{"type":"message","from":"server","group":"chat:42","data":{"text":"hello"}}"#]
            );
        }
        "http-notify.json" => {
            let harness = harness_with_chat_42().await;
            harness
                .memberships
                .join(&Membership {
                    group: "notification:test".into(),
                    connection_id: CONNECTION.into(),
                    user_id: "1234".into(),
                    expires_at: 0,
                })
                .await
                .unwrap();
            let event: ApiGatewayV2httpRequest = load(name);
            let response = handle_http(&harness.services, &http_config(), event).await;
            assert_eq!(response.status_code, 202);
            assert_eq!(http_body(&response.body), r#"{"addressed":1}"#);
            harness.pump().await;
            assert_eq!(
                harness.received(CONNECTION),
                [
                    r#"{"type":"message","from":"server","group":"notification:test","data":{"download":"report.pdf"}}"#
                ]
            );
            assert!(harness.received("second-connection").is_empty());
        }
        "http-get-group.json" => {
            let harness = harness_with_chat_42().await;
            let event: ApiGatewayV2httpRequest = load(name);
            let response = handle_http(&harness.services, &http_config(), event).await;
            assert_eq!(response.status_code, 200);
            assert_eq!(
                http_body(&response.body),
                r#"{"connections":2,"exists":true,"group":"chat:42","users":1}"#
            );
        }
        "notify-user.json" => {
            let store = std::sync::Arc::new(store_with_user_1234().await);
            let queue = std::sync::Arc::new(MemoryQueue::new());
            let event: SqsEvent = load(name);
            let gateway = std::sync::Arc::new(MemoryGateway::new());
            let services =
                common::queue_services(store, gateway, queue.clone(), Settings::default());
            let response = notify_user::notify_user_batch(&services, event)
                .await
                .into_response();
            assert!(response.batch_item_failures.is_empty());
            assert_eq!(queue.sent().len(), 2);
        }
        "notify-connection.json" => {
            let store = std::sync::Arc::new(store_with_user_1234().await);
            let gateway = std::sync::Arc::new(MemoryGateway::new());
            gateway.open(CONNECTION);
            let event: SqsEvent = load(name);
            let malformed = event.records[2].message_id.clone().unwrap();
            let queue = std::sync::Arc::new(MemoryQueue::new());
            let services =
                common::queue_services(store, gateway.clone(), queue, Settings::default());
            let response = notify_connection::handle_notify_connection(
                &services,
                &common::instance_limit(),
                event,
            )
            .await;
            let failed: Vec<_> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            assert_eq!(failed, [malformed]);
            let mut delivered = gateway.delivered(CONNECTION);
            delivered.sort();
            assert_eq!(
                delivered,
                ["cokoliv", r#"{"download":"report.pdf","ready":true}"#]
            );
        }
        "upstream.json" => {
            // A receiver answering 204 to everything, recording the headers.
            #[derive(Default)]
            struct Receiver(std::sync::Mutex<Vec<Vec<(String, String)>>>);
            #[async_trait::async_trait]
            impl switchboard::upstream::HttpPoster for Receiver {
                async fn post(
                    &self,
                    _url: &str,
                    headers: &[(&str, String)],
                    _body: Vec<u8>,
                    _timeout: std::time::Duration,
                ) -> Result<switchboard::upstream::HttpAnswer, switchboard::upstream::PostError>
                {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect();
                    self.0.lock().unwrap().push(headers);
                    Ok(switchboard::upstream::HttpAnswer {
                        status: 204,
                        body: Vec::new(),
                    })
                }
            }
            let receiver = std::sync::Arc::new(Receiver::default());
            let sender = upstream::WebhookSender {
                http: receiver.clone(),
                url: "http://127.0.0.1:9/handler".into(),
                secret: switchboard::upstream::WebhookSecret::given(
                    "switchboard-local-dev-webhook-secret-0123456789",
                ),
                policy: Default::default(),
                dead_letters: std::sync::Arc::new(MemoryQueue::new()),
                concurrency: 1,
            };
            let response = upstream::handle_upstream(&sender, load(name)).await;
            assert!(response.batch_item_failures.is_empty());
            let posts = receiver.0.lock().unwrap();
            assert_eq!(posts.len(), 1);
            let header = |name: &str| {
                posts[0]
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(
                header("webhook-id").as_deref(),
                Some("connected:f97yeeMZDoECGqg=")
            );
            assert_eq!(
                header("content-type").as_deref(),
                Some("application/cloudevents+json; charset=utf-8")
            );
            assert!(header("webhook-timestamp").is_some());
            assert!(header("webhook-signature").is_some_and(|s| s.starts_with("v1,")));
        }
        other => panic!("events/{other} has no expectation in shared/tests/events.rs"),
    }
}

#[tokio::test]
async fn every_fixture_runs_through_its_handler() {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "fixtures missing: {names:?}");
    for name in &names {
        check(name).await;
    }
}
