//! Builders shared by the integration tests.
#![allow(dead_code)]

pub mod template;

use std::time::Duration;

use switchboard::auth::{Claims, TokenSecret, TokenVerifier, claims_for, mint};
use switchboard::aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use switchboard::aws_lambda_events::encodings::Body;
use switchboard::aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use switchboard::ports::ConnectionRecord;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

pub fn secret() -> TokenSecret {
    TokenSecret::new(SECRET).unwrap()
}

pub fn verifier() -> Result<TokenVerifier, switchboard::auth::SecretError> {
    Ok(TokenVerifier::new(&secret()))
}

pub fn token(user: &str) -> String {
    mint(
        &secret(),
        &claims_for(user, Duration::from_secs(300), vec![]),
    )
    .unwrap()
}

pub fn token_with(claims: &Claims) -> String {
    mint(&secret(), claims).unwrap()
}

/// A `$connect` event as API Gateway sends it.
pub fn connect_event(
    connection_id: &str,
    query_token: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.connection_id = Some(connection_id.to_owned());
    event.request_context.route_key = Some("$connect".into());
    event.request_context.event_type = Some("CONNECT".into());
    event.request_context.connected_at = 1_795_381_200_000;
    event.request_context.request_time_epoch = 1_795_381_200_000;
    event.request_context.identity.source_ip = Some("203.0.113.7".into());
    event
        .headers
        .insert("user-agent", "websocat/1.14.0".parse().unwrap());
    if let Some(token) = query_token {
        event.query_string_parameters =
            std::collections::HashMap::from([("token".to_string(), token.to_string())]).into();
    }
    event
}

/// A message event on `route` carrying `body`.
pub fn message_event(route: &str, body: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.connection_id = Some("conn-1".into());
    event.request_context.route_key = Some(route.to_owned());
    event.request_context.event_type = Some("MESSAGE".into());
    event.body = body.map(str::to_owned);
    event
}

pub fn disconnect_event(connection_id: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.connection_id = Some(connection_id.to_owned());
    event.request_context.route_key = Some("$disconnect".into());
    event.request_context.event_type = Some("DISCONNECT".into());
    event.request_context.disconnect_status_code = Some(1000);
    event
}

/// An SQS event with one record per body, ids `m0`, `m1`, …
pub fn sqs_event(bodies: &[&str]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("m{i}"));
            record.body = Some((*body).to_owned());
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), "1".into());
            record
        })
        .collect();
    event
}

pub fn body_text(response: &ApiGatewayProxyResponse) -> Option<&str> {
    match &response.body {
        Some(Body::Text(text)) => Some(text),
        _ => None,
    }
}

pub fn record(connection_id: &str, user_id: &str) -> ConnectionRecord {
    ConnectionRecord {
        connection_id: connection_id.into(),
        user_id: user_id.into(),
        connected_at_ms: 1_795_381_200_000,
        expires_at: 1_795_389_300,
        source_ip: None,
        user_agent: None,
        groups: vec![],
        subscribe: vec![],
        publish: vec![],
        envelope: false,
        events: vec![],
    }
}

/// SDK configuration for loopback tests: fixed region and dummy credentials,
/// so requests are signed exactly as in production but nothing leaves 127.0.0.1.
pub async fn test_sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = switchboard::aws::defaults()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

use std::sync::Arc;

use switchboard::adapters::memory::{MemoryGateway, MemoryMemberships, MemoryQueue, MemoryStore};
use switchboard::handlers::deliver::deliveries_batch;
use switchboard::services::Services;
use switchboard::services::Settings;

/// [`Services`] for a queue handler's test: these ports and settings, no
/// sent log or history, the memberships in memory.
pub fn queue_services(
    store: Arc<dyn switchboard::ports::ConnectionStore>,
    gateway: Arc<dyn switchboard::ports::Gateway>,
    queue: Arc<dyn switchboard::ports::MessageQueue>,
    settings: Settings,
) -> Services {
    Services {
        store,
        memberships: Arc::new(MemoryMemberships::new()),
        gateway,
        deliveries: queue,
        sent_log: None,
        history: None,
        settings: Arc::new(settings),
        upstream: Default::default(),
    }
}

/// An instance's limit on posts in flight, as a Lambda main holds one
/// (the default posting policy's ceiling).
pub fn instance_limit() -> switchboard::retry::AdaptiveLimit {
    switchboard::retry::AdaptiveLimit::new(
        switchboard::posting::PostingPolicy::default().concurrency,
    )
}

/// In-memory ports wired into [`Services`], kept at hand for assertions.
pub struct Harness {
    pub store: Arc<MemoryStore>,
    pub memberships: Arc<MemoryMemberships>,
    pub gateway: Arc<MemoryGateway>,
    pub deliveries: Arc<MemoryQueue>,
    pub services: Services,
    pumped: std::sync::Mutex<usize>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_settings(Settings::default())
    }

    pub fn with_settings(settings: Settings) -> Self {
        Self::with_parts(
            MemoryStore::new(),
            MemoryMemberships::new(),
            MemoryGateway::new(),
            settings,
        )
    }

    pub fn with_parts(
        store: MemoryStore,
        memberships: MemoryMemberships,
        gateway: MemoryGateway,
        settings: Settings,
    ) -> Self {
        let (store, memberships, gateway) =
            (Arc::new(store), Arc::new(memberships), Arc::new(gateway));
        let deliveries = Arc::new(MemoryQueue::new());
        let services = Services {
            store: store.clone(),
            memberships: memberships.clone(),
            gateway: gateway.clone(),
            deliveries: deliveries.clone(),
            sent_log: None,
            history: None,
            settings: Arc::new(settings),
            upstream: Default::default(),
        };
        Harness {
            store,
            memberships,
            gateway,
            deliveries,
            services,
            pumped: std::sync::Mutex::new(0),
        }
    }

    /// Registers a connection: a record and an open socket.
    pub async fn connection(&self, record: ConnectionRecord) {
        use switchboard::ports::ConnectionStore;
        self.gateway.open(&record.connection_id);
        self.store.put_connection(&record).await.unwrap();
    }

    /// Runs every Deliveries message enqueued since the last pump through the
    /// deliver worker, until none are left (retries included; bounded).
    pub async fn pump(&self) {
        for _ in 0..50 {
            let sent = self.deliveries.sent();
            let start = std::mem::replace(&mut *self.pumped.lock().unwrap(), sent.len());
            if start == sent.len() {
                return;
            }
            let bodies: Vec<&str> = sent[start..].iter().map(String::as_str).collect();
            let report = deliveries_batch(&self.services, sqs_event(&bodies)).await;
            assert!(report.failures.is_empty(), "{:?}", report.failures);
        }
        panic!("deliveries did not settle in 50 rounds");
    }

    /// Frames the connection received so far.
    pub fn received(&self, connection_id: &str) -> Vec<String> {
        self.gateway.delivered(connection_id)
    }
}

/// Counts AWS requests by operation (every HTTP attempt, retries included).
/// Add it to a client's config (`.interceptor(counter.clone())`) to measure
/// what a handler costs; the tests use it to check requests per delivery.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
);

impl RequestCounter {
    /// Requests so far, keyed by operation name (`Query`, `SendMessageBatch`, …).
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Forgets the counts so far.
    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let name = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned());
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(name).or_default() += 1;
        }
        Ok(())
    }
}
