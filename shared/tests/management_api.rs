//! The Management API adapter against a loopback server that answers as API
//! Gateway does: 200, 410 GoneException, 429 LimitExceededException, 403
//! ForbiddenException, 413 PayloadTooLargeException, 5xx, and a stall.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard::adapters::management_api::ManagementApi;
use switchboard::adapters::memory::{MemoryQueue, MemoryStore};
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::ports::{ConnectionStore, Gateway, GatewayError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Vec<u8>,
    signed: bool,
}

/// A minimal HTTP/1.1 server on 127.0.0.1 whose answer depends on the connection id in the path.
struct FakeApiGateway {
    endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn answer(connection_id: &str) -> Option<String> {
    let (status, headers, body) = match connection_id {
        "ok" => ("200 OK", "", String::new()),
        // API Gateway sends GoneException with no JSON body; the error type is in the header.
        "gone" => (
            "410 Gone",
            "x-amzn-ErrorType: GoneException\r\n",
            String::new(),
        ),
        "gone-json" => (
            "410 Gone",
            "x-amzn-ErrorType: GoneException\r\n",
            r#"{"message":null}"#.into(),
        ),
        "throttled" => (
            "429 Too Many Requests",
            "x-amzn-ErrorType: LimitExceededException\r\n",
            r#"{"message":"Rate exceeded"}"#.into(),
        ),
        "forbidden" => (
            "403 Forbidden",
            "x-amzn-ErrorType: ForbiddenException\r\n",
            r#"{"message":"Forbidden"}"#.into(),
        ),
        "too-large" => (
            "413 Payload Too Large",
            "x-amzn-ErrorType: PayloadTooLargeException\r\n",
            r#"{"message":"Message too long"}"#.into(),
        ),
        "bad-id" => (
            "400 Bad Request",
            "x-amzn-ErrorType: BadRequestException\r\n",
            r#"{"message":"Invalid connectionId: bad-id"}"#.into(),
        ),
        "broken" => (
            "500 Internal Server Error",
            "x-amzn-ErrorType: InternalServerErrorException\r\n",
            r#"{"message":"Internal server error"}"#.into(),
        ),
        "bad-gateway" => (
            "502 Bad Gateway",
            "content-type: text/html\r\n",
            "<html>bad gateway</html>".into(),
        ),
        "stall" => return None,
        _ => (
            "410 Gone",
            "x-amzn-ErrorType: GoneException\r\n",
            String::new(),
        ),
    };
    Some(format!(
        "HTTP/1.1 {status}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nx-amzn-RequestId: 7a9c1f3e-0000-4000-8000-000000000000\r\n\r\n{body}",
        body.len()
    ))
}

impl FakeApiGateway {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/prod", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut reader = BufReader::new(read);
                    // Keep-alive: serve requests on this socket until the client closes it.
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = HashMap::new();
                        loop {
                            let mut line = String::new();
                            reader.read_line(&mut line).await.unwrap();
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = line.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                            }
                        }
                        let length: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).await.unwrap();
                        let mut parts = request_line.split_whitespace();
                        let method = parts.next().unwrap_or_default().to_owned();
                        let path = parts.next().unwrap_or_default().to_owned();
                        let id = path.rsplit('/').next().unwrap_or_default().to_owned();
                        log.lock().unwrap().push(Seen {
                            method,
                            path,
                            body,
                            signed: headers
                                .get("authorization")
                                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")),
                        });
                        match answer(&id) {
                            Some(response) => write.write_all(response.as_bytes()).await.unwrap(),
                            None => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        FakeApiGateway { endpoint, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn gateway(server: &FakeApiGateway, attempts: u32) -> ManagementApi {
    let sdk = common::test_sdk_config(None).await;
    ManagementApi::new(switchboard::aws::management_api(
        &sdk,
        &server.endpoint,
        &switchboard::posting::PostingPolicy {
            post_timeout: Duration::from_millis(300),
            post_attempts: attempts,
            ..Default::default()
        },
    ))
}

#[tokio::test]
async fn posts_the_bytes_signed_to_the_stage_path() {
    let server = FakeApiGateway::start().await;
    let api = gateway(&server, 1).await;
    api.post_to_connection("ok", b"{\"hello\":1}")
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/prod/@connections/ok");
    assert_eq!(seen[0].body, b"{\"hello\":1}");
    assert!(seen[0].signed, "requests carry a SigV4 signature");
}

#[tokio::test]
async fn maps_api_gateway_errors() {
    let server = FakeApiGateway::start().await;
    let api = gateway(&server, 1).await;
    let post = |id: &'static str| {
        let api = api.clone();
        async move { api.post_to_connection(id, b"x").await.unwrap_err() }
    };
    assert_eq!(post("gone").await, GatewayError::Gone);
    assert_eq!(post("gone-json").await, GatewayError::Gone);
    assert_eq!(
        post("throttled").await,
        GatewayError::Throttled("Rate exceeded".into())
    );
    assert_eq!(
        post("forbidden").await,
        GatewayError::Forbidden("Forbidden".into())
    );
    assert_eq!(
        post("too-large").await,
        GatewayError::PayloadTooLarge("Message too long".into())
    );
    assert_eq!(
        post("bad-id").await,
        GatewayError::Rejected {
            status: 400,
            message: "BadRequestException: Invalid connectionId: bad-id".into()
        }
    );
    assert_eq!(
        post("broken").await,
        GatewayError::Server {
            status: 500,
            message: "Internal server error".into()
        }
    );
    assert!(matches!(
        post("bad-gateway").await,
        GatewayError::Server { status: 502, .. }
    ));
    assert_eq!(post("stall").await, GatewayError::Timeout);
}

#[tokio::test]
async fn delete_maps_gone() {
    let server = FakeApiGateway::start().await;
    let api = gateway(&server, 1).await;
    api.delete_connection("ok").await.unwrap();
    assert_eq!(api.delete_connection("gone").await, Err(GatewayError::Gone));
    assert_eq!(server.seen()[0].method, "DELETE");
}

#[tokio::test]
async fn the_sdk_retries_throttling_within_its_attempts() {
    let server = FakeApiGateway::start().await;
    let api = gateway(&server, 3).await;
    assert!(matches!(
        api.post_to_connection("throttled", b"x").await,
        Err(GatewayError::Throttled(_))
    ));
    assert_eq!(server.seen().len(), 3);
    // 410 is final: never retried.
    api.post_to_connection("gone", b"x").await.unwrap_err();
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn notify_connection_over_the_real_adapter() {
    let server = FakeApiGateway::start().await;
    let api = Arc::new(gateway(&server, 1).await);
    let store = Arc::new(MemoryStore::new());
    for id in ["ok", "gone", "throttled", "forbidden"] {
        store
            .put_connection(&common::record(id, "u"))
            .await
            .unwrap();
    }
    let event = common::sqs_event(&[
        r#"{"connectionId":"ok","data":"hi"}"#,
        r#"{"connectionId":"gone","data":"hi"}"#,
        r#"{"connectionId":"throttled","data":"hi"}"#,
        r#"{"connectionId":"forbidden","data":"hi"}"#,
    ]);
    let queue = Arc::new(MemoryQueue::new());
    let settings = switchboard::services::Settings::default();
    let services = common::queue_services(store.clone(), api, queue.clone(), settings);
    let response = handle_notify_connection(&services, &common::instance_limit(), event).await;
    let mut failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    // Still throttled: handed back to its queue with a delay (done, not failed).
    assert_eq!(failed, ["m3"]);
    let later = queue.sent_later();
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].body, r#"{"connectionId":"throttled","data":"hi"}"#);
    assert!(store.get_connection("gone").await.unwrap().is_none());
    assert!(store.get_connection("ok").await.unwrap().is_some());
    assert!(store.get_connection("throttled").await.unwrap().is_some());
}

/// Counts how often the chain is asked; its keys expire `lifetime` from now.
#[derive(Debug)]
struct CountingCredentials {
    asked: Arc<std::sync::atomic::AtomicUsize>,
    lifetime: Duration,
}

impl aws_credential_types::provider::ProvideCredentials for CountingCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        aws_credential_types::provider::future::ProvideCredentials::ready(Ok(
            aws_credential_types::Credentials::new(
                "ASIATEST",
                "secret",
                Some("session".into()),
                Some(std::time::SystemTime::now() + self.lifetime),
                "counting",
            ),
        ))
    }
}

/// Credentials are asked once while they are fresh, and again before each
/// request once they are within minutes of expiring (the role's keys rotate).
#[tokio::test]
async fn credentials_are_cached_until_they_near_expiry() {
    let server = FakeApiGateway::start().await;
    for (lifetime, expected) in [(Duration::from_secs(3600), 1), (Duration::from_secs(60), 3)] {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sdk = switchboard::aws::defaults()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    CountingCredentials {
                        asked: asked.clone(),
                        lifetime,
                    },
                ),
            )
            .load()
            .await;
        let api = ManagementApi::new(switchboard::aws::management_api(
            &sdk,
            &server.endpoint,
            &switchboard::posting::PostingPolicy::default(),
        ));
        for _ in 0..3 {
            api.post_to_connection("ok", b"x").await.unwrap();
        }
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            expected,
            "{lifetime:?}"
        );
    }
    assert!(server.seen().iter().all(|s| s.signed));
}
