//! AWS: SDK configuration, clients and connectors (the wiring that builds
//! adapters on them is [`crate::wiring`]).
//!
//! Everything goes through `aws_config`'s default chain, so the standard
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides point the same
//! binaries at moto, LocalStack or the local stack.

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
use crate::adapters::http::SdkPoster;
use crate::adapters::management_api;
use crate::lazy::Lazy;
use crate::posting::PostingPolicy;

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

/// [`lazy_https_connector`] with `timeout` to connect and to read.
pub fn lazy_https_connector_within(
    timeout: std::time::Duration,
    sleep: Option<SharedAsyncSleep>,
) -> SharedHttpConnector {
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build();
    lazy_https_connector(settings, sleep)
}

#[derive(Debug, Clone)]
struct LazyConnector(Lazy<SharedHttpConnector>);

/// An HTTP client for hooks and webhooks on [`lazy_https_connector`], with
/// `timeout` to connect and to read.
pub fn poster(timeout: std::time::Duration, sleep: Option<SharedAsyncSleep>) -> SdkPoster {
    SdkPoster::new(lazy_https_connector_within(timeout, sleep))
}

/// An HTTP client for OIDC discovery and key sets on
/// [`lazy_https_connector`], with `timeout` to connect and to read (Tokio's
/// sleep unless `sleep` is given).
pub fn fetcher(
    timeout: std::time::Duration,
    sleep: Option<SharedAsyncSleep>,
) -> crate::adapters::jwks::SdkFetcher {
    let sleep = sleep.or_else(aws_smithy_async::rt::sleep::default_async_sleep);
    crate::adapters::jwks::SdkFetcher::new(lazy_https_connector_within(timeout, sleep))
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
    if let Some(region) = crate::config::region() {
        loader = loader.region(Region::new(region));
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
pub(crate) fn management_api_recorded(
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
