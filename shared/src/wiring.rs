//! [`Wiring`]: the one wiring path every function takes, from the SDK
//! configuration ([`crate::aws`]) to the adapters and the handlers'
//! [`Services`].

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::SharedHttpConnector;

use crate::adapters::call_log::CallLog;
use crate::adapters::dynamodb::{DynamoHistory, DynamoMemberships, DynamoStore};
use crate::adapters::eventbridge::EventBridge;
use crate::adapters::management_api::ManagementApi;
use crate::adapters::no_gateway::NoGateway;
use crate::adapters::secrets_manager::{self, SecretsManager};
use crate::adapters::sqs::SqsQueue;
use crate::auth::{SecretError, TokenKeySetting, TokenKeySource, TokenKeys, TokenPolicy};
use crate::aws::{
    lazy_dynamodb, lazy_https_connector_within, lazy_sqs, load, management_api_recorded, poster,
};
use crate::config::{self, ConfigError};
use crate::enqueue::EnqueuePolicy;
use crate::handlers::upstream::WebhookSender;
use crate::history::HistorySettings;
use crate::lazy::Lazy;
use crate::oidc::{Oidc, OidcSettings};
use crate::posting::PostingPolicy;
use crate::services::{Services, Settings};
use crate::upstream::{Upstream, UpstreamSettings, WebhookSecret, WebhookSecretSetting};

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

    /// The OIDC issuers of `OIDC_ISSUERS` ([`OidcSettings::from_env`]), their
    /// keys fetched through [`crate::aws::lazy_https_connector`] (no TLS at init; no AWS
    /// call, so no IAM), or None without issuers.
    pub fn oidc(&self, policy: &TokenPolicy) -> Result<Option<Arc<Oidc>>, ConfigError> {
        let Some(settings) = OidcSettings::from_env(policy)? else {
            return Ok(None);
        };
        let fetcher = crate::aws::fetcher(settings.fetch_timeout, self.sdk.sleep_impl());
        Ok(Some(Arc::new(Oidc::new(&settings, Arc::new(fetcher)))))
    }

    /// Secrets Manager in the SDK configuration's region, with its
    /// credentials, through [`crate::aws::lazy_https_connector`]: the secret is read on
    /// first use, so its connector (TLS, the root certificates) is built then,
    /// not during init.
    pub fn secrets_manager(&self) -> Result<SecretsManager, SecretError> {
        let region = self
            .sdk
            .region()
            .ok_or_else(|| SecretError::Unavailable("no AWS region (AWS_REGION)".into()))?;
        let connector = self.recorded(lazy_https_connector_within(
            secrets_manager::REQUEST_TIMEOUT,
            self.sdk.sleep_impl(),
        ));
        Ok(SecretsManager::new(
            connector,
            self.sdk.credentials_provider(),
            region.as_ref(),
            config::endpoint_override("AWS_ENDPOINT_URL_SECRETS_MANAGER").as_deref(),
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
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| config::endpoint_override("AWS_ENDPOINT_URL_EVENTBRIDGE"));
        let connector = self.recorded(lazy_https_connector_within(
            secrets_manager::REQUEST_TIMEOUT,
            self.sdk.sleep_impl(),
        ));
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
    /// history ([`Wiring::services_with_history`] adds it) and no upstream
    /// sinks ([`Services::with_upstream`] and [`Wiring::upstream`] add them).
    pub async fn services(&self) -> Result<Services, ConfigError> {
        let settings = Settings::from_env()?;
        let store = Arc::new(self.store()?);
        let gateway = self.gateway(&settings.posting).await?;
        Ok(Services::new(
            store.clone(),
            Arc::new(self.memberships()?),
            Arc::new(gateway),
            Arc::new(self.queue("DELIVERIES_QUEUE_URL")?),
            settings,
        )
        // Idempotency records live in the connections table (see `SentLog for DynamoStore`).
        .with_sent_log(store))
    }

    /// [`Wiring::services`] with the history in `HISTORY_TABLE` (if set) and
    /// [`HistorySettings::from_env`]: for the functions that append to
    /// streams or read them (actions, commands, api). The others leave it
    /// out, and so do not link it.
    pub async fn services_with_history(&self) -> Result<Services, ConfigError> {
        let services = self.services().await?;
        let settings = HistorySettings::from_env()?;
        Ok(match self.history() {
            Some(history) => services.with_history(Arc::new(history), settings),
            None => services.with_history_settings(settings),
        })
    }

    /// The services of the functions that never post to a connection or
    /// read the sent log (connect, disconnect: every send of theirs goes
    /// through the Deliveries queue): [`Wiring::store`],
    /// [`Wiring::memberships`], the queue in `DELIVERIES_QUEUE_URL` and
    /// [`Settings::from_env`], with [`NoGateway`] and no sent log, so the
    /// Management API client and the sent log's batch reads stay out of their
    /// bootstraps (connect is at its size target; docs/upstream-events.md).
    pub fn services_without_posts(&self) -> Result<Services, ConfigError> {
        Ok(Services::new(
            Arc::new(self.store()?),
            Arc::new(self.memberships()?),
            Arc::new(NoGateway),
            Arc::new(self.queue("DELIVERIES_QUEUE_URL")?),
            Settings::from_env()?,
        ))
    }
}
