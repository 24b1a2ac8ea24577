//! The one place that builds AWS SDK configuration and clients.
//!
//! Everything goes through `aws_config`'s default chain, so the standard
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides point the same
//! binaries at moto, LocalStack or the local stack.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The SDK's HTTPS client: hyper 1 and rustls, as the SDK's `default-https-client`
/// builds it, but with ring instead of aws-lc-rs for crypto (smaller bootstraps, no
/// C crypto library to start; see the size table in the root Cargo.toml). Like the
/// default it trusts the platform's root certificates (rustls-native-certs, loaded
/// once per process when the first client is built, so at init: most of the
/// init time `make bench` measures), keeps the SDK's cipher suites, honours the
/// connect/read timeouts each client configures and `HTTPS_PROXY`/`NO_PROXY`.
pub fn http_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// `aws_config::defaults` with [`http_client`]: the AWS SDK crates are built
/// without a default HTTP client, so every `SdkConfig` starts here.
pub fn defaults() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client())
}

/// Loads region, credentials and endpoint overrides from the environment.
pub async fn load() -> SdkConfig {
    defaults().load().await
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// A Management API client for one stage, e.g.
/// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
/// Each attempt is bounded by `post_timeout`, so a stalled post becomes a
/// retryable failure instead of eating the function's whole timeout; 429s,
/// 5xx and timeouts are retried up to `post_attempts` with exponential
/// backoff and full jitter from `post_backoff`.
pub fn management_api(
    config: &SdkConfig,
    endpoint: &str,
    options: &crate::config::NotifyConnectionOptions,
) -> aws_sdk_apigatewaymanagement::Client {
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.post_timeout)
                .operation_attempt_timeout(options.post_timeout)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(options.post_attempts)
                .with_initial_backoff(options.post_backoff),
        )
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

/// The handlers' services on AWS, from `TABLE_NAME`, `MEMBERSHIPS_TABLE`,
/// `DELIVERIES_QUEUE_URL`, `WEBSOCKET_ENDPOINT` and [`crate::config::settings`].
/// Building clients makes no network call; the first request does.
pub fn services(
    config: &SdkConfig,
) -> Result<crate::handlers::Services, crate::config::ConfigError> {
    use std::sync::Arc;

    use crate::adapters::dynamodb::{DynamoMemberships, DynamoStore};
    use crate::adapters::management_api::ManagementApi;
    use crate::adapters::sqs::SqsQueue;
    use crate::config::required;

    let mut settings = crate::config::settings()?;
    let dynamodb = dynamodb(config);
    let store = Arc::new(DynamoStore::new(dynamodb.clone(), required("TABLE_NAME")?));
    // Idempotency records live in the connections table (see `SentLog for DynamoStore`).
    settings.posting = settings.posting.with_sent_log(store.clone());
    let gateway = ManagementApi::new(management_api(
        config,
        &required("WEBSOCKET_ENDPOINT")?,
        &settings.posting,
    ));
    Ok(crate::handlers::Services {
        store,
        memberships: Arc::new(DynamoMemberships::new(
            dynamodb,
            required("MEMBERSHIPS_TABLE")?,
        )),
        gateway: Arc::new(gateway),
        deliveries: Arc::new(SqsQueue::new(
            sqs(config),
            required("DELIVERIES_QUEUE_URL")?,
        )),
        settings: Arc::new(settings),
    })
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
