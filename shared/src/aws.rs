//! The one place that builds AWS SDK configuration and clients.
//!
//! Everything goes through `aws_config`'s default chain, so the standard
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides point the same
//! binaries at moto, LocalStack or the local stack.

use crate::lazy::Lazy;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The SDK's HTTPS client: hyper 1 and rustls, as the SDK's `default-https-client`
/// builds it, but with ring instead of aws-lc-rs for crypto (smaller bootstraps, no
/// C crypto library to start; see the size table in the root Cargo.toml). Like the
/// default it trusts the platform's root certificates (rustls-native-certs), keeps
/// the SDK's cipher suites, honours the connect/read timeouts each client
/// configures and `HTTPS_PROXY`/`NO_PROXY`.
///
/// Unlike the default, nothing TLS happens at init. The SDK builds a throwaway
/// connector whenever a client is constructed, only so that root certificates
/// load early, and each build parses every root certificate again. Measured on
/// the SDK functions before this change, init took 4.1x a hello-world's with the
/// platform's roots (bundle and certificate directory), 2.9x with the bundle alone
/// and 1.9x with no roots at all. Here that call (the only one without connector
/// settings) gets a plain HTTP connector it never uses, and the TLS connector is
/// built by the first request. An https request can never go through the plain
/// connector: hyper refuses the scheme, so a change in the SDK would fail closed
/// (`shared/tests/tls.rs`). `make bench` measures both the init and the first
/// request.
pub fn http_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let Some(settings) = settings else {
            return ConnectorBuilder::default().build_http();
        };
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(Some(settings.clone()));
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

/// Loads region, credentials and endpoint overrides from the environment, with
/// the default chains' results but without building them when the environment
/// answers, as it always does on Lambda (`AWS_REGION`, and the execution role's
/// keys in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`).
/// The default credentials chain builds an STS client and an IMDS client and
/// the region chain another IMDS client, each parsing its endpoint rules: a
/// measurable part of every function's init that a Lambda never uses.
/// Both chains try the environment first, so the answer is the same; elsewhere
/// (a profile, SSO, a container role) the full chains run, on first use.
pub async fn load() -> SdkConfig {
    let mut loader = defaults().credentials_provider(
        CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("DefaultChain", DefaultChainOnFirstUse::default()),
    );
    if let Some(region) = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    {
        loader = loader.region(Region::new(region.trim().to_owned()));
    }
    loader.load().await
}

/// aws-config's default credentials chain, built the first time it is asked.
#[derive(Debug, Default)]
struct DefaultChainOnFirstUse(tokio::sync::OnceCell<Option<SharedCredentialsProvider>>);

impl ProvideCredentials for DefaultChainOnFirstUse {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .0
                .get_or_init(|| async { defaults().load().await.credentials_provider() })
                .await;
            match chain {
                Some(chain) => chain.provide_credentials().await,
                None => Err(CredentialsError::not_loaded(
                    "the default credentials chain has no provider",
                )),
            }
        })
    }
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
/// Building clients makes no network call; the first request does, unless
/// `WARM_CONNECTIONS` is on: then the Management API connection is opened here.
pub async fn services(
    config: &SdkConfig,
) -> Result<crate::handlers::Services, crate::config::ConfigError> {
    use std::sync::Arc;

    use crate::adapters::dynamodb::{DynamoMemberships, DynamoStore};
    use crate::adapters::management_api::ManagementApi;
    use crate::adapters::sqs::SqsQueue;
    use crate::config::required;

    let mut settings = crate::config::settings()?;
    let dynamodb = lazy_dynamodb(config);
    let store = Arc::new(DynamoStore::new(dynamodb.clone(), required("TABLE_NAME")?));
    // Idempotency records live in the connections table (see `SentLog for DynamoStore`).
    settings.posting = settings.posting.with_sent_log(store.clone());
    let gateway = ManagementApi::new(lazy_management_api(
        config,
        &required("WEBSOCKET_ENDPOINT")?,
        &settings.posting,
    ));
    if settings.posting.warm_connections {
        gateway.warm_up().await;
    }
    let sqs = lazy_sqs(config);
    Ok(crate::handlers::Services {
        store,
        memberships: Arc::new(DynamoMemberships::new(
            dynamodb,
            required("MEMBERSHIPS_TABLE")?,
        )),
        gateway: Arc::new(gateway),
        deliveries: Arc::new(SqsQueue::new(sqs, required("DELIVERIES_QUEUE_URL")?)),
        settings: Arc::new(settings),
    })
}

/// [`management_api`], built on first use.
pub fn lazy_management_api(
    config: &SdkConfig,
    endpoint: &str,
    options: &crate::config::NotifyConnectionOptions,
) -> Lazy<aws_sdk_apigatewaymanagement::Client> {
    let (config, endpoint, options) = (config.clone(), endpoint.to_owned(), options.clone());
    Lazy::new(move || management_api(&config, &endpoint, &options))
}

/// [`dynamodb`], built on first use.
pub fn lazy_dynamodb(config: &SdkConfig) -> Lazy<aws_sdk_dynamodb::Client> {
    let config = config.clone();
    Lazy::new(move || dynamodb(&config))
}

/// [`sqs`], built on first use.
pub fn lazy_sqs(config: &SdkConfig) -> Lazy<aws_sdk_sqs::Client> {
    let config = config.clone();
    Lazy::new(move || sqs(&config))
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
