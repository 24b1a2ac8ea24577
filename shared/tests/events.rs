//! Every file in `events/` runs through its handler, so the fixtures cannot rot.
//! A new fixture without an expectation here fails the suite.

mod common;

use std::path::PathBuf;

use common::body_text;
use switchboard::adapters::memory::{MemoryGateway, MemoryMemberships, MemoryQueue, MemoryStore};
use switchboard::auth::{TokenSecret, TokenVerifier};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::{NotifyConnectionOptions, NotifyUserOptions};
use switchboard::handlers::{
    commands, connect, default, deliver, disconnect, notify_connection, notify_user, ping,
    subscribe,
};
use switchboard::ports::{ConnectionStore, MembershipStore};

/// The development secret the fixtures' token is signed with (see README).
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

async fn check(name: &str) {
    let verifier = Ok(TokenVerifier::new(&TokenSecret::new(DEV_SECRET).unwrap()));
    match name {
        "connect.json" => {
            let store = MemoryStore::new();
            let event: ApiGatewayWebsocketProxyRequest = load(name);
            let response =
                connect::handle_connect(&store, &MemoryMemberships::new(), &verifier, &event).await;
            assert_eq!(response.status_code, 200);
            let record = store.get_connection(CONNECTION).await.unwrap().unwrap();
            assert_eq!(record.user_id, "1234");
            assert_eq!(record.groups, ["notification:test"]);
            assert_eq!(record.subscribe, ["chat:*"]);
            assert_eq!(record.source_ip.as_deref(), Some("203.0.113.7"));
        }
        "connect-no-token.json" => {
            let store = MemoryStore::new();
            let event: ApiGatewayWebsocketProxyRequest = load(name);
            let response =
                connect::handle_connect(&store, &MemoryMemberships::new(), &verifier, &event).await;
            assert_eq!(response.status_code, 401);
            assert!(store.is_empty());
        }
        "disconnect.json" => {
            let store = store_with_user_1234().await;
            let event: ApiGatewayWebsocketProxyRequest = load(name);
            let response =
                disconnect::handle_disconnect(&store, &MemoryMemberships::new(), &event).await;
            assert_eq!(response.status_code, 200);
            assert_eq!(store.get_connection(CONNECTION).await.unwrap(), None);
            assert_eq!(store.len(), 1);
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
            let store = MemoryStore::new();
            store
                .put_connection(&switchboard::ports::ConnectionRecord {
                    subscribe: vec!["chat:*".into()],
                    ..common::record(CONNECTION, "1234")
                })
                .await
                .unwrap();
            let memberships = MemoryMemberships::new();
            let response = subscribe::handle_subscription(&store, &memberships, &load(name)).await;
            assert_eq!(
                body_text(&response),
                Some(r#"{"type":"ack","id":7,"ok":true}"#)
            );
            assert_eq!(memberships.all().len(), 1);
        }
        "commands.json" => {
            let memberships = MemoryMemberships::new();
            for id in [CONNECTION, "second-connection"] {
                memberships
                    .join(&switchboard::ports::Membership {
                        group: "chat:42".into(),
                        connection_id: id.into(),
                        user_id: "1234".into(),
                        expires_at: 0,
                    })
                    .await
                    .unwrap();
            }
            let deliveries = MemoryQueue::new();
            let ports = switchboard::handlers::FanoutPorts {
                store: &MemoryStore::new(),
                memberships: &memberships,
                gateway: &MemoryGateway::new(),
                deliveries: &deliveries,
            };
            let event: SqsEvent = load(name);
            let response =
                commands::handle_commands(&ports, &NotifyUserOptions::default(), event).await;
            assert!(response.batch_item_failures.is_empty());
            let sent = deliveries.sent();
            assert_eq!(sent.len(), 1);
            assert!(
                sent[0].starts_with(&format!(r#"{{"connectionIds":["{CONNECTION}"]"#)),
                "{}",
                sent[0]
            );
        }
        "deliver.json" => {
            let store = store_with_user_1234().await;
            let memberships = MemoryMemberships::new();
            let gateway = MemoryGateway::new();
            gateway.open(CONNECTION);
            let retries = MemoryQueue::new();
            let ports = switchboard::handlers::FanoutPorts {
                store: &store,
                memberships: &memberships,
                gateway: &gateway,
                deliveries: &retries,
            };
            let event: SqsEvent = load(name);
            let response = deliver::handle_deliveries(
                &ports,
                &NotifyConnectionOptions::default(),
                &NotifyUserOptions::default(),
                event,
            )
            .await;
            assert!(response.batch_item_failures.is_empty());
            assert_eq!(
                gateway.delivered(CONNECTION),
                [r#"{"type":"message","from":"server","group":"chat:42","data":{"text":"hello"}}"#]
            );
            // "second-connection" has no socket: 410, so its record is forgotten.
            assert!(
                store
                    .get_connection("second-connection")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(retries.sent().is_empty());
        }
        "notify-user.json" => {
            let store = store_with_user_1234().await;
            let queue = MemoryQueue::new();
            let event: SqsEvent = load(name);
            let response = notify_user::handle_notify_user(
                &store,
                &queue,
                &NotifyUserOptions::default(),
                event,
            )
            .await;
            assert!(response.batch_item_failures.is_empty());
            assert_eq!(queue.sent().len(), 2);
        }
        "notify-connection.json" => {
            let store = store_with_user_1234().await;
            let gateway = MemoryGateway::new();
            gateway.open(CONNECTION);
            let event: SqsEvent = load(name);
            let malformed = event.records[2].message_id.clone().unwrap();
            let response = notify_connection::handle_notify_connection(
                &store,
                &gateway,
                &NotifyConnectionOptions::default(),
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
