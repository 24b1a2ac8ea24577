//! The local stack's configuration: [`Config`], where state lives ([`Backend`],
//! with the AWS SDK configuration each backend takes), how posts reach
//! connections ([`GatewayMode`]), and API Gateway's limits.

use std::net::SocketAddr;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;
use switchboard::services::Settings;

/// API Gateway's limits and timeouts, as the local stack applies them.
pub const MAX_MESSAGE_BYTES: usize = switchboard::protocol::MAX_MESSAGE_BYTES;
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const MAX_DURATION: Duration = Duration::from_secs(2 * 3600);

/// The largest request body any endpoint reads; a larger one is refused with
/// a JSON 413 before it is buffered.
pub const MAX_REQUEST_BODY_BYTES: usize = 2 * 1024 * 1024;

/// SQS's maximum message size (1 MiB since August 2025; `MaximumMessageSize`
/// can lower it per queue, the template leaves the default): `POST /queues/…`
/// refuses a larger body with 413, as SendMessage would.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 1024 * 1024;

/// The default bound on a connection's outbound queue: eight of API Gateway's
/// largest (128 KB) messages waiting for a client that reads slowly, on top of
/// what the operating system's socket buffers hold. API Gateway documents no
/// per-connection buffer; a post beyond the bound answers 429.
pub const OUTBOUND_LIMIT_BYTES: usize = 1024 * 1024;

/// The smallest outbound bound: one message of the largest size must fit.
pub const MIN_OUTBOUND_LIMIT_BYTES: usize =
    MAX_MESSAGE_BYTES + crate::connections::PER_MESSAGE_BYTES;

/// The shortest API key the stack accepts from `SWITCHBOARD_API_KEY`.
pub const MIN_API_KEY_BYTES: usize = 32;

/// Where connections and queues live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In memory: nothing else to start.
    Memory,
    /// DynamoDB and SQS, at `endpoint` (moto, LocalStack) or at AWS.
    Aws {
        endpoint: Option<String>,
        table: String,
        memberships_table: String,
        notify_user_queue_url: String,
        notify_connection_queue_url: String,
        /// Commands and Deliveries queues; without them the stack keeps these
        /// two queues in memory.
        commands_queue_url: Option<String>,
        deliveries_queue_url: Option<String>,
        /// The history table; without it the stack keeps history in memory.
        history_table: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. A non-loopback address needs `expose`.
    pub addr: SocketAddr,
    /// Consent to listen on a non-loopback address; the HTTP API, the
    /// Management API and the queue endpoints then require the API key.
    pub expose: bool,
    /// The key those endpoints require (`Authorization: Bearer <key>`); `None`
    /// makes an exposed stack generate one. On loopback, a key given here is
    /// required too; without one, loopback needs none.
    pub api_key: Option<String>,
    /// `Host` names the stack answers to beyond IP literals and `localhost`
    /// (DNS names could be rebound to this machine by another site).
    pub allowed_hosts: Vec<String>,
    /// Browser origins that may call the stack beyond its own and this
    /// machine's pages (`*`: any).
    pub allowed_origins: Vec<String>,
    /// Bytes a connection's outbound queue may hold (each message counts its
    /// length plus [`crate::connections::PER_MESSAGE_BYTES`]); a post beyond it
    /// answers 429 `LimitExceededException`, as a throttled post.
    pub outbound_limit: usize,
    /// The stage path segment in URLs (`ws://host/{stage}`); any prefix is accepted.
    pub stage: String,
    /// The HS256 secret; `None` makes the stack generate a random one.
    pub token_secret: Option<String>,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    /// How long a failed queue message stays invisible before redelivery (in-memory queues).
    pub visibility_timeout: Duration,
    /// Receives before a failing message moves to the dead letters (in-memory queues).
    pub max_receive_count: u32,
    pub backend: Backend,
    /// The handlers' settings (limits, presence, history, posting and
    /// enqueueing policies), as `Settings::from_env` gives them to a function
    /// on AWS; the flags fill them in (`main.rs`).
    pub settings: Settings,
    /// Fault injection: the share of Management API posts (0.0 to 1.0) that
    /// answer 429 or 500 or stall for `fault_stall`, a third each.
    pub fault_rate: f64,
    pub fault_stall: Duration,
    /// How long a queue handler may run before it is cut off (Lambda's
    /// function timeout); its whole batch is then redelivered.
    pub handler_timeout: Duration,
    /// The most batches each queue's handler works on at once; each queue
    /// also stays within its event source's `MaximumConcurrency` in the
    /// template (see [`crate::queues::MAXIMUM_CONCURRENCY`]).
    pub source_concurrency: usize,
    /// How the handlers reach the Management API.
    pub gateway: GatewayMode,
    /// Upstream events and hooks (all off by default).
    pub upstream: UpstreamConfig,
    /// Virtual connections made at start by `$connect` (none by default).
    pub virtual_connections: crate::virtual_connections::VirtualSpread,
    /// The account-level throttle on Management API posts: (requests per
    /// second, burst); `None` (the default): no limit.
    pub management_quota: Option<(u32, u32)>,
    /// The time each hop takes: a Management API post, an SQS message to
    /// its handler, a DynamoDB call, a route integration (none by default).
    pub aws_latency: crate::emulation::AwsLatency,
    /// OpenID Connect issuers whose tokens connect beside the stack's own (none by default).
    pub oidc: switchboard::oidc::OidcOptions,
}

/// Where the local stack sends upstream events, and its hooks.
#[derive(Debug, Clone, Default)]
pub struct UpstreamConfig {
    /// `--webhook`: events go through the in-memory Upstream queue to this URL.
    pub webhook: Option<String>,
    /// `--webhook-secret`: signs every webhook and hook request (at least 32 bytes).
    pub secret: Option<String>,
    /// `--connect-hook`, `--event-hook`.
    pub connect_hook: Option<String>,
    pub event_hook: Option<String>,
    /// `--hook-timeout` (default 2 s) for both hooks.
    pub hook_timeout: Option<Duration>,
    /// `--connect-hook-fail-open`: a failed connect hook lets the connection in.
    pub connect_hook_fail_open: bool,
    /// `--event-bus`: events go to this EventBridge bus (at `--aws-endpoint`).
    pub event_bus: Option<String>,
    /// How the webhook sender posts (attempts, backoff, timeout).
    pub delivery: switchboard::upstream::delivery::DeliveryPolicy,
}

impl UpstreamConfig {
    /// Whether anything upstream is on.
    pub fn any(&self) -> bool {
        self.webhook.is_some()
            || self.connect_hook.is_some()
            || self.event_hook.is_some()
            || self.event_bus.is_some()
    }
}

/// How the handlers' posts reach the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayMode {
    /// As on AWS: the AWS SDK's Management API client, SigV4-signed HTTP to
    /// this stack's own `/@connections/{id}`. Exercises the production adapter
    /// (error mapping, the SDK's timeouts and retries) on every post.
    #[default]
    Sdk,
    /// Straight to the stack's Management API code, with the same answers,
    /// faults, attempt timeout and retries, but no HTTP round trip. For load.
    InProcess,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3001)),
            expose: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            api_key: None,
            outbound_limit: OUTBOUND_LIMIT_BYTES,
            stage: "local".into(),
            token_secret: None,
            idle_timeout: IDLE_TIMEOUT,
            max_duration: MAX_DURATION,
            visibility_timeout: Duration::from_secs(2),
            max_receive_count: 5,
            backend: Backend::Memory,
            settings: Settings::default(),
            fault_rate: 0.0,
            fault_stall: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(30),
            source_concurrency: 16,
            gateway: GatewayMode::Sdk,
            upstream: UpstreamConfig::default(),
            virtual_connections: Default::default(),
            management_quota: None,
            aws_latency: Default::default(),
            oidc: Default::default(),
        }
    }
}

impl Backend {
    /// The AWS SDK's configuration for this backend: the environment's, or
    /// placeholders where the other side (moto, LocalStack, this process) takes any.
    pub(crate) async fn sdk_config(&self) -> SdkConfig {
        match self {
            Backend::Aws {
                endpoint: Some(endpoint),
                ..
            } => {
                let mut loader = switchboard::aws::defaults().endpoint_url(endpoint);
                // moto and LocalStack take any credentials; supply some if the environment has none.
                if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                    && std::env::var_os("AWS_PROFILE").is_none()
                {
                    loader = loader.credentials_provider(placeholder_credentials());
                }
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    loader = loader.region(Region::new(PLACEHOLDER_REGION));
                }
                loader.load().await
            }
            Backend::Aws { endpoint: None, .. } => switchboard::aws::load().await,
            // Only the Management API client is used, against this process: sign with placeholders.
            Backend::Memory => {
                switchboard::aws::defaults()
                    .region(Region::new(PLACEHOLDER_REGION))
                    .credentials_provider(placeholder_credentials())
                    .load()
                    .await
            }
        }
    }
}

/// The region the SDK is given when nothing else names one.
const PLACEHOLDER_REGION: &str = "us-east-1";

fn placeholder_credentials() -> Credentials {
    Credentials::new("local", "local", None, None, "switchboard-local")
}

/// Why the stack could not start: a bind failure, or a configuration it refuses.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] switchboard::auth::SecretError),
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, and the HTTP API, the Management API \
         and the queue endpoints would be open to the network. Listen on 127.0.0.1, or pass --expose \
         (SWITCHBOARD_EXPOSE=true) to require an API key on them"
    )]
    Exposed { addr: SocketAddr },
    #[error("SWITCHBOARD_API_KEY is {0} bytes; at least 32 are required")]
    ShortApiKey(usize),
    #[error("cannot generate an API key: the operating system's random source failed")]
    NoRandomness,
    #[error(
        "a webhook or hook is configured but no webhook secret: pass --webhook-secret \
         (SWITCHBOARD_WEBHOOK_SECRET, at least 32 bytes); nothing is sent unsigned"
    )]
    NoWebhookSecret,
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Virtual(#[from] crate::virtual_connections::VirtualError),
    #[error("--oidc-issuer: {0}")]
    Oidc(#[from] switchboard::oidc::OidcConfigError),
}

impl StartError {
    /// A configuration the user must change (exit code 2), not a runtime failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StartError::Exposed { .. }
                | StartError::ShortApiKey(_)
                | StartError::Secret(_)
                | StartError::NoWebhookSecret
                | StartError::Upstream(_)
                | StartError::Oidc(_)
                | StartError::Virtual(crate::virtual_connections::VirtualError::OverUserCap { .. })
        )
    }
}
