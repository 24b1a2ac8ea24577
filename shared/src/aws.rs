//! AWS: SDK configuration and clients, and [`Wiring`], the one wiring path
//! every function takes.
//!
//! Everything goes through `aws_config`'s default chain, so the standard
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides point the same
//! binaries at moto, LocalStack or the local stack.

use std::sync::Arc;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_async::rt::sleep::SharedAsyncSleep;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};

use crate::adapters::call_log::CallLog;
use crate::adapters::dynamodb::{DynamoHistory, DynamoMemberships, DynamoStore};
use crate::adapters::eventbridge::EventBridge;
use crate::adapters::http::SdkPoster;
use crate::adapters::management_api::{self, ManagementApi};
use crate::adapters::secrets_manager::{self, SecretsManager};
use crate::adapters::sqs::SqsQueue;
use crate::auth::{SecretError, TokenKeys};
use crate::auth::{TokenKeySetting, TokenKeySource};
use crate::config::{self, ConfigError};
use crate::enqueue::EnqueuePolicy;
use crate::handlers::upstream::WebhookSender;
use crate::lazy::Lazy;
use crate::posting::PostingPolicy;
use crate::services::Services;
use crate::services::Settings;
use crate::upstream::{Upstream, WebhookSecret};
use crate::upstream::{UpstreamSettings, WebhookSecretSetting};

/// The SDK's HTTPS client: hyper 1 and rustls, as the SDK's `default-https-client`
/// builds it, but with ring instead of aws-lc-rs for crypto (smaller bootstraps, no
/// C crypto library to start; measurements in BENCHMARKS.md). Like the
/// default it trusts the platform's root certificates (rustls-native-certs), keeps
/// the SDK's cipher suites, honours the connect/read timeouts each client
/// configures and `HTTPS_PROXY`/`NO_PROXY`.
///
/// Unlike the default, nothing TLS happens at init (why: BENCHMARKS.md, "Build
/// choices"). The SDK's validation-time connector build (the only call without
/// connector settings) gets a plain HTTP connector it never uses, and the TLS
/// connector is built by the first request. An https request can never go through the plain
/// connector: hyper refuses the scheme, so a change in the SDK would fail closed
/// (`shared/tests/tls.rs`). `make bench` measures both the init and the first
/// request.
pub fn http_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let Some(settings) = settings else {
            return ConnectorBuilder::default().build_http();
        };
        https_connector(
            settings.clone(),
            components.and_then(|components| components.sleep_impl()),
        )
    })
}

/// The HTTPS connector of [`http_client`] (also used on its own by the
/// Secrets Manager adapter).
pub fn https_connector(
    settings: HttpConnectorSettings,
    sleep: Option<SharedAsyncSleep>,
) -> Connector {
    let mut connector =
        ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
    connector.set_connector_settings(Some(settings));
    connector.set_sleep_impl(sleep);
    connector.set_proxy_config(Some(ProxyConfig::from_env()));
    connector.build()
}

/// [`https_connector`] built on its first request: what a function may call
/// (EventBridge at an event) costs its cold start nothing (no root
/// certificates at init).
pub fn lazy_https_connector(
    settings: HttpConnectorSettings,
    sleep: Option<SharedAsyncSleep>,
) -> SharedHttpConnector {
    SharedHttpConnector::new(LazyConnector(Lazy::new(move || {
        SharedHttpConnector::new(https_connector(settings.clone(), sleep.clone()))
    })))
}

#[derive(Debug, Clone)]
struct LazyConnector(Lazy<SharedHttpConnector>);

/// An HTTP client for hooks and webhooks on [`lazy_https_connector`], with
/// `timeout` to connect and to read.
pub fn poster(timeout: std::time::Duration, sleep: Option<SharedAsyncSleep>) -> SdkPoster {
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build();
    SdkPoster::new(lazy_https_connector(settings, sleep))
}

impl aws_smithy_runtime_api::client::http::HttpConnector for LazyConnector {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        self.0.call(request)
    }
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
/// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`: signed
/// with `config`'s credentials and region, sent through [`https_connector`]
/// (built by the first request). Each attempt is bounded by `post_timeout`,
/// so a stalled post becomes a retryable failure instead of eating the
/// function's whole timeout; 429s, 5xx, timeouts and transport errors are
/// retried up to `post_attempts` with exponential backoff and full jitter
/// from `post_backoff`.
pub fn management_api(
    config: &SdkConfig,
    endpoint: &str,
    options: &PostingPolicy,
) -> management_api::Client {
    management_api_recorded(config, endpoint, options, None)
}

/// [`management_api`], its requests recorded in `calls` when given.
fn management_api_recorded(
    config: &SdkConfig,
    endpoint: &str,
    options: &PostingPolicy,
    calls: Option<&CallLog>,
) -> management_api::Client {
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(options.post_timeout)
        .build();
    let connector = lazy_https_connector(settings, config.sleep_impl());
    management_api::Client::new(
        match calls {
            Some(log) => log.connector(connector),
            None => connector,
        },
        config.credentials_provider(),
        config.region().map(|r| r.as_ref().to_owned()),
        endpoint,
        options.post_timeout,
        options.post_attempts,
        options.post_backoff,
    )
}

/// The one wiring path of the functions: the SDK configuration, loaded once,
/// and the adapters each function builds from it. Each part reads only its own
/// variables, so a function needs only the ones for the parts it takes, and
/// every SDK client is built on first use ([`Lazy`]), so a function pays only
/// for the clients its invocations use. Building makes no network call; the
/// first request does, unless `WARM_CONNECTIONS` is on: then [`Wiring::gateway`]
/// opens the Management API connection.
pub struct Wiring {
    sdk: SdkConfig,
    dynamodb: Lazy<aws_sdk_dynamodb::Client>,
    sqs: Lazy<aws_sdk_sqs::Client>,
    /// Every AWS request's record, for the IAM check (`SWITCHBOARD_AWS_CALL_LOG`).
    calls: Option<CallLog>,
}

impl Wiring {
    /// Loads the SDK configuration from the environment (see [`load`]).
    pub async fn load() -> Self {
        Self::new(load().await)
    }

    /// A builder on `sdk`, recording its AWS calls when `SWITCHBOARD_AWS_CALL_LOG`
    /// names a file ([`CallLog::from_env`]).
    pub fn new(sdk: SdkConfig) -> Self {
        Self::recording(sdk, CallLog::from_env())
    }

    /// A builder on `sdk` whose every AWS request (SDK clients and the
    /// adapters that sign their own) is recorded in `calls`, if given.
    pub fn recording(sdk: SdkConfig, calls: Option<CallLog>) -> Self {
        let sdk = match (&calls, sdk.http_client()) {
            (Some(log), Some(client)) => sdk
                .to_builder()
                .http_client(log.http_client(client))
                .build(),
            _ => sdk,
        };
        Wiring {
            dynamodb: lazy_dynamodb(&sdk),
            sqs: lazy_sqs(&sdk),
            sdk,
            calls,
        }
    }

    /// `connector`, recorded when this wiring records its calls.
    fn recorded(&self, connector: SharedHttpConnector) -> SharedHttpConnector {
        match &self.calls {
            Some(log) => log.connector(connector),
            None => connector,
        }
    }

    /// The connection store (and idempotency records) in `TABLE_NAME`.
    pub fn store(&self) -> Result<DynamoStore, ConfigError> {
        Ok(DynamoStore::new(
            self.dynamodb.clone(),
            config::required("TABLE_NAME")?,
        ))
    }

    /// The history in `HISTORY_TABLE`, if it is set (see [`crate::history`]).
    pub fn history(&self) -> Option<DynamoHistory> {
        config::history_table().map(|table| DynamoHistory::new(self.dynamodb.clone(), table))
    }

    /// The memberships in `MEMBERSHIPS_TABLE`.
    pub fn memberships(&self) -> Result<DynamoMemberships, ConfigError> {
        Ok(DynamoMemberships::new(
            self.dynamodb.clone(),
            config::required("MEMBERSHIPS_TABLE")?,
        ))
    }

    /// The queue whose URL is in the variable `url_variable`.
    pub fn queue(&self, url_variable: &'static str) -> Result<SqsQueue, ConfigError> {
        Ok(SqsQueue::new(
            self.sqs.clone(),
            config::required(url_variable)?,
        ))
    }

    /// The Management API of `WEBSOCKET_ENDPOINT`, posting by `policy`; its
    /// connection opened now when `policy.warm_connections` is on.
    pub async fn gateway(&self, policy: &PostingPolicy) -> Result<ManagementApi, ConfigError> {
        let (sdk, endpoint, policy_, calls) = (
            self.sdk.clone(),
            config::required("WEBSOCKET_ENDPOINT")?,
            policy.clone(),
            self.calls.clone(),
        );
        let gateway = ManagementApi::new(Lazy::new(move || {
            management_api_recorded(&sdk, &endpoint, &policy_, calls.as_ref())
        }));
        if policy.warm_connections {
            gateway.warm_up().await;
        }
        Ok(gateway)
    }

    /// The token keys: `TOKEN_SECRET` as it is (the local stack's way), or
    /// the Secrets Manager secret `TOKEN_SECRET_ARN` names, read on first use
    /// (once per container; a failed read is retried by a later request).
    /// Neither or both set is the error every use answers (fail closed).
    pub fn token_keys(&self) -> TokenKeySource {
        match config::token_key_setting() {
            Err(e) => Err::<TokenKeys, _>(e).into(),
            Ok(TokenKeySetting::Plain(secret)) => crate::auth::TokenSecret::new(secret)
                .map(TokenKeys::from)
                .into(),
            Ok(TokenKeySetting::SecretsManager { secret_id }) => {
                let store = self.secrets_manager();
                TokenKeySource::lazy(move || {
                    let (store, secret_id) = (store.clone(), secret_id.clone());
                    async move {
                        match store {
                            Ok(store) => store.token_keys(&secret_id).await,
                            Err(e) => Err(e),
                        }
                    }
                })
            }
        }
    }

    /// Secrets Manager in the SDK configuration's region, with its
    /// credentials, through [`https_connector`].
    pub fn secrets_manager(&self) -> Result<SecretsManager, SecretError> {
        let region = self
            .sdk
            .region()
            .ok_or_else(|| SecretError::Unavailable("no AWS region (AWS_REGION)".into()))?;
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(secrets_manager::REQUEST_TIMEOUT)
            .read_timeout(secrets_manager::REQUEST_TIMEOUT)
            .build();
        let connector = self.recorded(SharedHttpConnector::new(https_connector(
            settings,
            self.sdk.sleep_impl(),
        )));
        Ok(SecretsManager::new(
            connector,
            self.sdk.credentials_provider(),
            region.as_ref(),
            config::secrets_manager_endpoint_override().as_deref(),
        ))
    }

    /// Upstream events and hooks from [`UpstreamSettings::from_env`]
    /// ([`Wiring::upstream_from`]).
    pub fn upstream(&self) -> Result<Upstream, ConfigError> {
        self.upstream_from(&UpstreamSettings::from_env()?)
    }

    /// The sinks and hooks `settings` names: the Upstream queue (SQS), the
    /// EventBridge bus, the hooks with an HTTP client on the SDK's connector,
    /// and the webhook secret ([`Wiring::webhook_secret`]).
    pub fn upstream_from(&self, settings: &UpstreamSettings) -> Result<Upstream, ConfigError> {
        let mut upstream = Upstream::default();
        if let Some(url) = &settings.queue_url {
            upstream.queue = Some(Arc::new(SqsQueue::new(self.sqs.clone(), url)));
        }
        if let Some(bus) = &settings.event_bus {
            upstream.bus = Some(Arc::new(self.event_bridge(bus, None)?));
        }
        upstream.connect_hook = settings.connect_hook.clone();
        upstream.event_hook = settings.event_hook.clone();
        if upstream.connect_hook.is_some()
            || upstream.event_hook.is_some()
            || settings.webhook_url.is_some()
        {
            upstream.http = Some(Arc::new(poster(
                settings.longest_timeout(),
                self.sdk.sleep_impl(),
            )));
        }
        upstream.secret = self.webhook_secret(settings.secret.as_ref());
        Ok(upstream)
    }

    /// The `upstream` function's sender: `WEBHOOK_URL`, `UPSTREAM_DLQ_URL`,
    /// the webhook secret and the delivery policy ([`UpstreamSettings`]).
    pub fn webhook_sender(&self) -> Result<WebhookSender, ConfigError> {
        let settings = UpstreamSettings::from_env()?;
        let url = settings
            .webhook_url
            .clone()
            .ok_or(ConfigError::Missing("WEBHOOK_URL"))?;
        let dead_letters = settings
            .dead_letter_queue_url
            .clone()
            .ok_or(ConfigError::Missing("UPSTREAM_DLQ_URL"))?;
        Ok(WebhookSender {
            http: Arc::new(poster(settings.delivery.timeout, self.sdk.sleep_impl())),
            url,
            secret: self.webhook_secret(settings.secret.as_ref()),
            policy: settings.delivery.clone(),
            dead_letters: Arc::new(SqsQueue::new(self.sqs.clone(), dead_letters)),
            concurrency: EnqueuePolicy::from_env()?.concurrency,
        })
    }

    /// EventBridge bus `bus` in the SDK configuration's region, at `endpoint`
    /// (or `AWS_ENDPOINT_URL_EVENTBRIDGE`/`AWS_ENDPOINT_URL`, or AWS's).
    pub fn event_bridge(
        &self,
        bus: &str,
        endpoint: Option<&str>,
    ) -> Result<EventBridge, ConfigError> {
        let region = self
            .sdk
            .region()
            .ok_or(ConfigError::Missing("AWS_REGION"))?;
        let endpoint = endpoint.map(str::to_owned).or_else(|| {
            ["AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL"]
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        });
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(secrets_manager::REQUEST_TIMEOUT)
            .read_timeout(secrets_manager::REQUEST_TIMEOUT)
            .build();
        let connector = self.recorded(lazy_https_connector(settings, self.sdk.sleep_impl()));
        Ok(EventBridge::new(
            EventBridge::client(
                connector,
                self.sdk.credentials_provider(),
                region.as_ref(),
                endpoint.as_deref(),
            ),
            bus,
        ))
    }

    /// The webhook secret: given, or the Secrets Manager secret read on first
    /// use; none is the error every signed request answers (fail closed).
    pub fn webhook_secret(&self, setting: Option<&WebhookSecretSetting>) -> WebhookSecret {
        match setting {
            None => WebhookSecret::default(),
            Some(WebhookSecretSetting::Plain(secret)) => WebhookSecret::given(secret.clone()),
            Some(WebhookSecretSetting::SecretsManager { secret_id }) => {
                let store = self.secrets_manager();
                let secret_id = secret_id.clone();
                WebhookSecret::lazy(move || {
                    let (store, secret_id) = (store.clone(), secret_id.clone());
                    async move { store?.secret_string(&secret_id).await }
                })
            }
        }
    }

    /// The handlers' services: [`Wiring::store`] (which also keeps the
    /// idempotency records), [`Wiring::memberships`], [`Wiring::gateway`],
    /// the queue in `DELIVERIES_QUEUE_URL`, and [`Settings::from_env`]; no
    /// upstream sinks ([`Wiring::producer_services`] adds them).
    pub async fn services(&self) -> Result<Services, ConfigError> {
        let settings = Settings::from_env()?;
        let store = Arc::new(self.store()?);
        let gateway = self.gateway(&settings.posting).await?;
        Ok(Services {
            store: store.clone(),
            memberships: Arc::new(self.memberships()?),
            gateway: Arc::new(gateway),
            deliveries: Arc::new(self.queue("DELIVERIES_QUEUE_URL")?),
            // Idempotency records live in the connections table (see `SentLog for DynamoStore`).
            sent_log: Some(store),
            history: None,
            settings: Arc::new(settings),
            upstream: Default::default(),
        })
    }

    /// [`Wiring::services`] with the history in `HISTORY_TABLE` (if set):
    /// for the functions that append to streams or read them (actions,
    /// commands, api). The others leave it out, and so do not link it.
    pub async fn services_with_history(&self) -> Result<Services, ConfigError> {
        let mut services = self.services().await?;
        let mut settings = Settings::clone(&services.settings);
        settings.history = crate::history::HistorySettings::from_env()?;
        services.settings = Arc::new(settings);
        services.history = self
            .history()
            .map(|h| Arc::new(h) as Arc<dyn crate::ports::History>);
        Ok(services)
    }

    /// The actions function's services: the history (`recover` and `history`
    /// read it, `publish` appends), the gateway (`recover` posts the missed
    /// messages to the asking connection) and the upstream sinks (`event`).
    pub async fn actions_services(&self) -> Result<Services, ConfigError> {
        let mut services = self.services_with_history().await?;
        services.upstream = Arc::new(self.upstream()?);
        Ok(services)
    }

    /// [`Wiring::services`] with upstream events and hooks ([`Wiring::upstream`]):
    /// for the producers that never post (connect, disconnect), so the other
    /// functions link none of it.
    ///
    /// These two never post to a connection or read the sent log (every
    /// send of theirs goes through the Deliveries queue), so they get
    /// [`NoGateway`] and no sent log: the Management API client and the sent
    /// log's batch reads stay out of their bootstraps (connect is at its size
    /// target; docs/upstream-events.md).
    pub async fn producer_services(&self) -> Result<Services, ConfigError> {
        Ok(Services {
            store: Arc::new(self.store()?),
            memberships: Arc::new(self.memberships()?),
            gateway: Arc::new(NoGateway),
            deliveries: Arc::new(self.queue("DELIVERIES_QUEUE_URL")?),
            sent_log: None,
            history: None,
            settings: Arc::new(Settings::from_env()?),
            upstream: Arc::new(self.upstream()?),
        })
    }
}

/// The gateway of the functions that never post (connect, disconnect): a
/// call would be a bug, and fails loudly instead of posting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGateway;

#[async_trait::async_trait]
impl crate::ports::Gateway for NoGateway {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        _data: &[u8],
    ) -> Result<(), crate::ports::GatewayError> {
        tracing::error!(connection_id, "this function does not post to connections");
        Err(crate::ports::GatewayError::Forbidden(
            "this function does not post to connections".into(),
        ))
    }

    async fn delete_connection(
        &self,
        connection_id: &str,
    ) -> Result<(), crate::ports::GatewayError> {
        tracing::error!(connection_id, "this function does not close connections");
        Err(crate::ports::GatewayError::Forbidden(
            "this function does not close connections".into(),
        ))
    }
}

/// [`management_api`], built on first use.
pub fn lazy_management_api(
    config: &SdkConfig,
    endpoint: &str,
    options: &PostingPolicy,
) -> Lazy<management_api::Client> {
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

#[cfg(test)]
mod lazy_connector_tests {
    use super::*;
    use crate::upstream::HttpPoster;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Building the client builds no connector (no root certificates at cold
    /// start); the first POST builds it and goes through.
    #[tokio::test]
    async fn the_connector_is_built_by_the_first_post_not_by_the_wiring() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 4096];
            let _ = socket.read(&mut buffer).await.unwrap();
            socket
                .write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
        });
        let settings = HttpConnectorSettings::builder().build();
        let lazy = LazyConnector(Lazy::new(move || {
            SharedHttpConnector::new(https_connector(settings.clone(), None))
        }));
        let poster = SdkPoster::new(SharedHttpConnector::new(lazy.clone()));
        assert!(!lazy.0.is_built());
        let answer = poster
            .post(
                &format!("http://{addr}/hook"),
                &[],
                b"{}".to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 204);
        assert!(lazy.0.is_built());
        server.await.unwrap();
    }
}
