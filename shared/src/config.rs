//! Configuration: every value read from the environment (handler settings,
//! the enqueue and posting policies, the token secret, negotiate's settings).
//! The one place in the library that reads the environment.

use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::auth::{SecretError, TokenKeys, TokenPolicy, TokenSecret};
use crate::groups::names::Grants;
use crate::rate::Rate;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A required, non-empty variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// An optional variable parsed as `T`, or `default` when unset or empty.
pub fn optional<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// `MAX_RECEIVE_COUNT`: the queues' redrive policy (the template passes its
/// `MaxReceiveCount`), so a queue handler knows which failure sends a message
/// to its dead-letter queue (the `DeadLettered` metric). Unset, invalid or 0:
/// unknown (the local stack counts its own dead letters). Read once.
pub fn max_receive_count() -> Option<u32> {
    static VALUE: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *VALUE.get_or_init(|| {
        std::env::var("MAX_RECEIVE_COUNT")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n > 0)
    })
}

/// The X-Ray trace header of the current invocation (`_X_AMZN_TRACE_ID`, set
/// by the Lambda runtime for each invocation when tracing is active), if it
/// is well formed: `Root=1-…` of at most 256 characters from the header's
/// alphabet. Anything else is dropped rather than sent to SQS, which refuses
/// a malformed `AWSTraceHeader` and with it the message.
pub fn trace_header() -> Option<String> {
    let header = std::env::var("_X_AMZN_TRACE_ID").ok()?;
    let well_formed = header.starts_with("Root=1-")
        && header.len() <= 256
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=;-".contains(&b));
    well_formed.then_some(header)
}

/// `TOKEN_SECRET`, unless unset or empty.
pub fn token_secret_text() -> Option<String> {
    std::env::var("TOKEN_SECRET").ok().filter(|s| !s.is_empty())
}

/// The secret tokens are signed with, from `TOKEN_SECRET`; an unset or unusable
/// secret is the error.
pub fn token_secret() -> Result<TokenSecret, SecretError> {
    TokenSecret::from_optional(token_secret_text())
}

/// Where the token keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKeySetting {
    /// `TOKEN_SECRET`: one key without a `kid` (the local stack, tests).
    Plain(String),
    /// `TOKEN_SECRET_ARN`: a Secrets Manager secret holding the keys as JSON
    /// (see [`TokenKeys::from_json`]), read on first use (AWS).
    SecretsManager { secret_id: String },
}

/// `TOKEN_SECRET_ARN` or `TOKEN_SECRET` (exactly one); neither is
/// [`SecretError::Missing`], both [`SecretError::Ambiguous`].
pub fn token_key_setting() -> Result<TokenKeySetting, SecretError> {
    let arn = std::env::var("TOKEN_SECRET_ARN")
        .ok()
        .filter(|s| !s.trim().is_empty());
    match (arn, token_secret_text()) {
        (Some(_), Some(_)) => Err(SecretError::Ambiguous),
        (Some(arn), None) => Ok(TokenKeySetting::SecretsManager {
            secret_id: arn.trim().to_owned(),
        }),
        (None, Some(secret)) => Ok(TokenKeySetting::Plain(secret)),
        (None, None) => Err(SecretError::Missing),
    }
}

/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else `AWS_ENDPOINT_URL`, unless unset:
/// the standard endpoint overrides (moto, LocalStack).
pub fn secrets_manager_endpoint_override() -> Option<String> {
    ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

impl TokenPolicy {
    /// `TOKEN_MAX_LIFETIME_SECONDS` (default 86400), `TOKEN_ISSUER` and
    /// `TOKEN_AUDIENCE` (unset: not checked).
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = TokenPolicy::default();
        let text = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        let max_lifetime = optional("TOKEN_MAX_LIFETIME_SECONDS", d.max_lifetime.as_secs())?;
        if max_lifetime == 0 {
            return Err(ConfigError::Invalid {
                name: "TOKEN_MAX_LIFETIME_SECONDS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(TokenPolicy {
            max_lifetime: Duration::from_secs(max_lifetime),
            iat_leeway: d.iat_leeway,
            issuer: text("TOKEN_ISSUER"),
            audience: text("TOKEN_AUDIENCE"),
        })
    }
}

type LoadKeys = Box<dyn Fn() -> BoxFuture<'static, Result<TokenKeys, SecretError>> + Send + Sync>;

/// The token keys of a function, read once per container: given (the
/// environment's `TOKEN_SECRET`) or loaded on first use (Secrets Manager).
/// A failed load is the answer (the caller fails closed) and is tried again
/// on a later request, at most once per [`KEY_RETRY_INTERVAL`].
#[derive(Clone)]
pub struct TokenKeySource(Arc<KeySourceInner>);

enum KeySourceInner {
    Ready(Result<TokenKeys, SecretError>),
    Lazy {
        keys: tokio::sync::OnceCell<TokenKeys>,
        failed: std::sync::Mutex<Option<(std::time::Instant, SecretError)>>,
        load: LoadKeys,
    },
}

/// After a failed load, how long the error is answered before the next try.
pub const KEY_RETRY_INTERVAL: Duration = Duration::from_secs(5);

impl TokenKeySource {
    /// Keys loaded by `load` on first use.
    pub fn lazy<F>(load: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: std::future::Future<Output = Result<TokenKeys, SecretError>> + Send + 'static,
    {
        TokenKeySource(Arc::new(KeySourceInner::Lazy {
            keys: tokio::sync::OnceCell::new(),
            failed: std::sync::Mutex::new(None),
            load: Box::new(move || Box::pin(load())),
        }))
    }

    /// The keys, loading them if this is the first use.
    pub async fn keys(&self) -> Result<&TokenKeys, SecretError> {
        match &*self.0 {
            KeySourceInner::Ready(keys) => keys.as_ref().map_err(Clone::clone),
            KeySourceInner::Lazy { keys, failed, load } => {
                if let Some(keys) = keys.get() {
                    return Ok(keys);
                }
                if let Ok(failed) = failed.lock() {
                    if let Some((at, e)) = &*failed {
                        if at.elapsed() < KEY_RETRY_INTERVAL {
                            return Err(e.clone());
                        }
                    }
                }
                let result = keys.get_or_try_init(load).await;
                if let (Err(e), Ok(mut failed)) = (&result, failed.lock()) {
                    *failed = Some((std::time::Instant::now(), e.clone()));
                }
                result
            }
        }
    }
}

impl From<Result<TokenKeys, SecretError>> for TokenKeySource {
    fn from(keys: Result<TokenKeys, SecretError>) -> Self {
        TokenKeySource(Arc::new(KeySourceInner::Ready(keys)))
    }
}

impl From<Result<TokenSecret, SecretError>> for TokenKeySource {
    fn from(secret: Result<TokenSecret, SecretError>) -> Self {
        secret.map(TokenKeys::from).into()
    }
}

impl std::fmt::Debug for TokenKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeySource(<redacted>)")
    }
}

/// The retry policy of every enqueue (notify-user's NotifyConnection messages,
/// every fan-out's Deliveries messages, deliver's retries), and how many
/// records of a batch notify-user and commands work on at once.
#[derive(Debug, Clone)]
pub struct EnqueuePolicy {
    /// Attempts per SendMessageBatch entry before the NotifyUser message is failed.
    pub send_attempts: u32,
    /// First retry delay; doubled each attempt, with full jitter.
    pub retry_base_delay: Duration,
    /// Records of one notify-user or commands batch processed at once.
    pub concurrency: usize,
}

impl Default for EnqueuePolicy {
    fn default() -> Self {
        EnqueuePolicy {
            send_attempts: 3,
            retry_base_delay: Duration::from_millis(50),
            concurrency: 4,
        }
    }
}

impl EnqueuePolicy {
    /// `SEND_ATTEMPTS`, `RETRY_BASE_DELAY_MS`, `RECORD_CONCURRENCY`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(EnqueuePolicy {
            send_attempts: optional("SEND_ATTEMPTS", d.send_attempts)?.max(1),
            retry_base_delay: Duration::from_millis(optional(
                "RETRY_BASE_DELAY_MS",
                d.retry_base_delay.as_millis() as u64,
            )?),
            concurrency: optional("RECORD_CONCURRENCY", d.concurrency)?.max(1),
        })
    }
}

/// The default idempotency window: a redelivered message with an `id` is not
/// posted twice to a connection within it.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(3600);

/// How posts to connections are made, by deliver and notify-connection alike:
/// concurrency, the Management API client's timeouts and retries, and the
/// idempotency window.
#[derive(Debug, Clone)]
pub struct PostingPolicy {
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Per-attempt timeout of one post.
    pub post_timeout: Duration,
    /// Attempts per post (throttling, 5xx, timeouts and transport errors are
    /// retried with backoff by `adapters/management_api.rs`).
    pub post_attempts: u32,
    /// The initial retry backoff: attempt n waits a random time in
    /// `[0, post_backoff × 2^(n-1)]` (exponential backoff, full jitter).
    pub post_backoff: Duration,
    /// How long a posted message `id` is remembered per connection; zero
    /// turns idempotency off.
    pub idempotency_window: Duration,
    /// Open the Management API connection (root certificates, TLS handshake)
    /// during init instead of on the first post.
    pub warm_connections: bool,
    /// How long a record may keep retrying failed posts inside the invocation
    /// (never past the invocation's deadline: see [`crate::retry`]).
    pub retry_budget: Duration,
    /// The longest delay before a record handed back to its queue is tried
    /// again (the delays start at 1–2 s and double).
    pub retry_delay_max: Duration,
    /// Posts a second for the whole stack, every instance of every posting
    /// function together (see [`crate::pacing`]); 0 turns pacing off.
    pub rate_limit: u32,
}

impl Default for PostingPolicy {
    fn default() -> Self {
        PostingPolicy {
            concurrency: 10,
            post_timeout: Duration::from_secs(1),
            post_attempts: 2,
            post_backoff: Duration::from_millis(100),
            idempotency_window: IDEMPOTENCY_WINDOW,
            warm_connections: false,
            retry_budget: Duration::from_secs(3),
            retry_delay_max: Duration::from_secs(20),
            rate_limit: 0,
        }
    }
}

impl PostingPolicy {
    /// `POST_CONCURRENCY`, `POST_TIMEOUT_MS`, `POST_ATTEMPTS`, `POST_BACKOFF_MS`,
    /// `IDEMPOTENCY_WINDOW_SECONDS` (0 turns idempotency off), `WARM_CONNECTIONS`
    /// (`true` or `false`), `POST_RETRY_BUDGET_MS`, `RETRY_DELAY_MAX_SECONDS`
    /// (1 to 900), `POST_RATE_LIMIT` (posts a second for the whole stack; 0, the
    /// default, turns pacing off; the template sets it).
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(PostingPolicy {
            concurrency: optional("POST_CONCURRENCY", d.concurrency)?.max(1),
            post_timeout: Duration::from_millis(optional(
                "POST_TIMEOUT_MS",
                d.post_timeout.as_millis() as u64,
            )?),
            post_attempts: optional("POST_ATTEMPTS", d.post_attempts)?.max(1),
            post_backoff: Duration::from_millis(
                optional("POST_BACKOFF_MS", d.post_backoff.as_millis() as u64)?.max(1),
            ),
            idempotency_window: Duration::from_secs(optional(
                "IDEMPOTENCY_WINDOW_SECONDS",
                d.idempotency_window.as_secs(),
            )?),
            warm_connections: optional("WARM_CONNECTIONS", d.warm_connections)?,
            retry_budget: Duration::from_millis(optional(
                "POST_RETRY_BUDGET_MS",
                d.retry_budget.as_millis() as u64,
            )?),
            retry_delay_max: Duration::from_secs(
                optional("RETRY_DELAY_MAX_SECONDS", d.retry_delay_max.as_secs())?.clamp(1, 900),
            ),
            rate_limit: optional("POST_RATE_LIMIT", d.rate_limit)?,
        })
    }
}

/// Tuning and policy shared by the handlers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Groups whose joins and leaves are announced (`PRESENCE_GROUPS`).
    pub presence: Grants,
    /// Client events (`publish`) one user may send per window, over all their
    /// connections (a token bucket: see [`crate::rate`]).
    pub publish_limit: u32,
    pub publish_window: Duration,
    /// The other client limits: actions, presence changes, connections per user.
    pub limits: Limits,
    /// The most groups one connection may be in at once (`MAX_GROUPS_PER_CONNECTION`).
    pub max_groups_per_connection: u32,
    pub enqueue: EnqueuePolicy,
    pub posting: PostingPolicy,
    /// Which streams keep history, and for how long (see [`crate::history`]).
    pub history: HistorySettings,
}

/// The default cap on a connection's groups (API Gateway has none; Pusher
/// allows 100 channels per connection, Azure Web PubSub's groups are unbounded).
pub const DEFAULT_MAX_GROUPS_PER_CONNECTION: u32 = 100;

/// The default presence-enabled groups: every group named `presence:…`.
pub const DEFAULT_PRESENCE_GROUPS: &str = "presence:*";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            presence: Grants::parse(&[DEFAULT_PRESENCE_GROUPS]).unwrap_or_default(),
            publish_limit: 10,
            publish_window: Duration::from_secs(1),
            limits: Limits::default(),
            max_groups_per_connection: DEFAULT_MAX_GROUPS_PER_CONNECTION,
            enqueue: EnqueuePolicy::default(),
            posting: PostingPolicy::default(),
            history: HistorySettings::default(),
        }
    }
}

impl Settings {
    /// `PRESENCE_GROUPS`, `PUBLISH_LIMIT`, `PUBLISH_WINDOW_MS`, the limits'
    /// variables ([`Limits::from_env`]), `MAX_GROUPS_PER_CONNECTION` (at least
    /// 1), and the enqueue and posting policies' variables. `history` is the
    /// default here: [`HistorySettings::from_env`] reads it where history is
    /// kept.
    ///
    /// `PRESENCE_GROUPS` is a comma-separated list of group patterns (`name`,
    /// `prefix:*`, `*`) whose joins and leaves are announced; unset means
    /// `presence:*`, and `none` turns presence off.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Settings::default();
        let presence = match std::env::var("PRESENCE_GROUPS") {
            Ok(v) if !v.trim().is_empty() => presence_groups(&v)?,
            _ => d.presence,
        };
        Ok(Settings {
            presence,
            publish_limit: optional("PUBLISH_LIMIT", d.publish_limit)?,
            publish_window: Duration::from_millis(
                optional("PUBLISH_WINDOW_MS", d.publish_window.as_millis() as u64)?.max(1),
            ),
            limits: Limits::from_env()?,
            max_groups_per_connection: optional(
                "MAX_GROUPS_PER_CONNECTION",
                d.max_groups_per_connection,
            )?
            .max(1),
            enqueue: EnqueuePolicy::from_env()?,
            posting: PostingPolicy::from_env()?,
            // Read by the functions that keep history (`Wiring::services_with_history`),
            // so the others do not carry its parsing.
            history: d.history,
        })
    }

    /// The publish limit as a [`Rate`].
    pub fn publish_rate(&self) -> Rate {
        Rate::new(self.publish_limit, self.publish_window)
    }
}

/// Client limits besides `publish` (see [`crate::limits`]): every client
/// action per connection and per user, presence changes per group and user,
/// and open connections per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Actions (`subscribe`, `unsubscribe`, `publish`, `presence`) per connection.
    pub connection_actions: Rate,
    /// Actions and handshakes per user, over all their connections.
    pub user_actions: Rate,
    /// `subscribe`/`unsubscribe` of one user in one presence group.
    pub presence_changes: Rate,
    /// Open connections per user; the next handshake is refused with 429.
    pub max_connections_per_user: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connection_actions: Rate::new(20, Duration::from_secs(1)),
            user_actions: Rate::new(40, Duration::from_secs(1)),
            presence_changes: Rate::new(10, Duration::from_secs(60)),
            max_connections_per_user: 10,
        }
    }
}

impl Limits {
    /// `ACTION_LIMIT` and `USER_ACTION_LIMIT` per `ACTION_WINDOW_MS`,
    /// `PRESENCE_CHANGE_LIMIT` per `PRESENCE_CHANGE_WINDOW_MS`,
    /// `MAX_CONNECTIONS_PER_USER`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Limits::default();
        let window = |name, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(
                optional(name, default.as_millis() as u64)?.max(1),
            ))
        };
        let action_window = window("ACTION_WINDOW_MS", d.connection_actions.window)?;
        Ok(Limits {
            connection_actions: Rate::new(
                optional("ACTION_LIMIT", d.connection_actions.limit)?,
                action_window,
            ),
            user_actions: Rate::new(
                optional("USER_ACTION_LIMIT", d.user_actions.limit)?,
                action_window,
            ),
            presence_changes: Rate::new(
                optional("PRESENCE_CHANGE_LIMIT", d.presence_changes.limit)?,
                window("PRESENCE_CHANGE_WINDOW_MS", d.presence_changes.window)?,
            ),
            max_connections_per_user: optional(
                "MAX_CONNECTIONS_PER_USER",
                d.max_connections_per_user,
            )?,
        })
    }
}

/// Parses a `PRESENCE_GROUPS` value.
pub fn presence_groups(value: &str) -> Result<Grants, ConfigError> {
    group_patterns("PRESENCE_GROUPS", value)
}

/// A setting of comma-separated group patterns (the group pattern rules), or
/// `none`: `name` is the setting an error names.
fn group_patterns(name: &'static str, value: &str) -> Result<Grants, ConfigError> {
    if value.trim() == "none" {
        return Ok(Grants::default());
    }
    let patterns: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    Grants::parse(&patterns).map_err(|e| ConfigError::Invalid {
        name,
        reason: e.to_string(),
    })
}

/// What negotiate needs besides the ports: where clients connect, the keys
/// tokens are signed with and the policy they must meet.
#[derive(Clone)]
pub struct NegotiateSettings {
    /// `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` (or the local stack's `ws://…`).
    pub websocket_url: String,
    /// The keys tokens are signed with (the current one signs); negotiate
    /// fails closed (500) without usable keys.
    pub secret: TokenKeySource,
    /// `iss`/`aud` to put in tokens, and the longest lifetime `$connect` accepts.
    pub policy: TokenPolicy,
    /// Token lifetime when the request names none.
    pub default_ttl: Duration,
    /// The longest lifetime a request may ask for.
    pub max_ttl: Duration,
}

/// Negotiated tokens live 5 minutes unless asked otherwise: long enough to connect.
pub const NEGOTIATE_DEFAULT_TTL: Duration = Duration::from_secs(300);
/// And at most an hour.
pub const NEGOTIATE_MAX_TTL: Duration = Duration::from_secs(3600);

impl NegotiateSettings {
    /// `WEBSOCKET_URL`, `NEGOTIATE_DEFAULT_TTL_SECONDS`,
    /// `NEGOTIATE_MAX_TTL_SECONDS` (capped at the token policy's maximum
    /// lifetime), the [`TokenPolicy`], and `secret` (the caller's: see
    /// [`token_key_setting`]).
    pub fn from_env(secret: TokenKeySource) -> Result<Self, ConfigError> {
        let policy = TokenPolicy::from_env()?;
        let max_ttl = optional("NEGOTIATE_MAX_TTL_SECONDS", NEGOTIATE_MAX_TTL.as_secs())?
            .min(policy.max_lifetime.as_secs());
        Ok(NegotiateSettings {
            websocket_url: required("WEBSOCKET_URL")?,
            secret,
            default_ttl: Duration::from_secs(
                optional(
                    "NEGOTIATE_DEFAULT_TTL_SECONDS",
                    NEGOTIATE_DEFAULT_TTL.as_secs(),
                )?
                .min(max_ttl),
            ),
            max_ttl: Duration::from_secs(max_ttl),
            policy,
        })
    }
}

/// Which streams keep history ([`crate::history`]) and how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// Whether every user's stream keeps history (`HISTORY_USERS`, default on).
    pub users: bool,
    /// Groups whose streams keep history (`HISTORY_GROUPS`, the group pattern
    /// rules; default none).
    pub groups: Grants,
    /// Messages kept per stream (`HISTORY_SIZE`, default 1000): a recovery
    /// from further back is `recovered:false`.
    pub size: u64,
    /// How long a message is kept (`HISTORY_TTL_SECONDS`, default 300).
    pub ttl: Duration,
    /// The most messages one `recover` or `history` request sends, over all
    /// its streams (`HISTORY_RECOVER_LIMIT`, default 200).
    pub recover_limit: usize,
    /// `recover` and `history` requests one user may make per window
    /// (`HISTORY_READ_LIMIT` per `HISTORY_READ_WINDOW_MS`, default 20 per 10 s).
    pub reads: Rate,
}

/// The default time a message is kept: long enough for a reconnect after a
/// network change or a laptop lid, short enough to cost little.
pub const DEFAULT_HISTORY_TTL: Duration = Duration::from_secs(300);

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            users: true,
            groups: Grants::default(),
            size: 1000,
            ttl: DEFAULT_HISTORY_TTL,
            recover_limit: 200,
            reads: Rate::new(20, Duration::from_secs(10)),
        }
    }
}

/// A synchronous hook (see [`crate::upstream::hooks`]): where it is, how long
/// it may take, and whether its failure (timeout, 5xx, unreachable) lets the
/// request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub url: String,
    pub timeout: Duration,
    /// `false` (the default): a failed hook refuses the request.
    pub fail_open: bool,
}

/// The default time a hook may take. The template allows at most 4 s
/// (`HookTimeoutMs`): the hook and the rest of the handler end within the
/// connect and actions functions' 6 s, and a hook is also cut short to end
/// [`crate::upstream::hooks::HOOK_RESERVE`] before its invocation does.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// How the `upstream` function posts webhooks ([`crate::upstream::delivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// POSTs per event in one invocation; then the message goes back to the
    /// queue (and, after the queue's receive count, to its DLQ).
    pub attempts: u32,
    /// Attempt n waits a random time in `[0, base_delay × 2^(n-1)]` (full jitter).
    pub base_delay: Duration,
    /// Per attempt: connect, send and answer.
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        }
    }
}

impl HistorySettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = HistorySettings::default();
        let groups = match std::env::var("HISTORY_GROUPS") {
            Ok(v) if !v.trim().is_empty() => history_groups(&v)?,
            _ => d.groups,
        };
        let size = optional("HISTORY_SIZE", d.size)?;
        if size == 0 {
            return Err(ConfigError::Invalid {
                name: "HISTORY_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        let ttl = optional("HISTORY_TTL_SECONDS", d.ttl.as_secs())?;
        if ttl == 0 {
            return Err(ConfigError::Invalid {
                name: "HISTORY_TTL_SECONDS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(HistorySettings {
            users: optional("HISTORY_USERS", d.users)?,
            groups,
            size,
            ttl: Duration::from_secs(ttl),
            recover_limit: optional("HISTORY_RECOVER_LIMIT", d.recover_limit)?.clamp(1, 1000),
            reads: Rate::new(
                optional("HISTORY_READ_LIMIT", d.reads.limit)?,
                Duration::from_millis(
                    optional("HISTORY_READ_WINDOW_MS", d.reads.window.as_millis() as u64)?.max(1),
                ),
            ),
        })
    }
}

/// `HISTORY_TABLE`: the DynamoDB table streams keep their history in; unset
/// keeps no history.
pub fn history_table() -> Option<String> {
    std::env::var("HISTORY_TABLE")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `HISTORY_GROUPS`: comma-separated group patterns, or `none`.
pub fn history_groups(value: &str) -> Result<Grants, ConfigError> {
    group_patterns("HISTORY_GROUPS", value)
}

/// Where the webhook secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSecretSetting {
    /// `WEBHOOK_SECRET_ARN`: a Secrets Manager secret (its `SecretString`), read on first use (AWS).
    SecretsManager { secret_id: String },
    /// `WEBHOOK_SECRET`: the secret itself (tests; the local stack takes `--webhook-secret`).
    Plain(String),
}

/// Upstream events and hooks, from the environment. Every part is optional:
/// a function reads only the variables its template entry sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// `UPSTREAM_QUEUE_URL`: producers put events here for the webhook sender.
    pub queue_url: Option<String>,
    /// `EVENT_BUS_NAME`: producers put events on this EventBridge bus.
    pub event_bus: Option<String>,
    /// `CONNECT_HOOK_URL`, `CONNECT_HOOK_TIMEOUT_MS` (default 2000), `CONNECT_HOOK_FAIL_OPEN` (default false).
    pub connect_hook: Option<Hook>,
    /// `EVENT_HOOK_URL`, `EVENT_HOOK_TIMEOUT_MS` (default 2000).
    pub event_hook: Option<Hook>,
    /// `WEBHOOK_URL`: where the `upstream` function POSTs.
    pub webhook_url: Option<String>,
    /// `UPSTREAM_DLQ_URL`: where the `upstream` function puts events a receiver refused for good.
    pub dead_letter_queue_url: Option<String>,
    /// `WEBHOOK_ATTEMPTS`, `WEBHOOK_RETRY_BASE_DELAY_MS`, `WEBHOOK_TIMEOUT_MS`.
    pub delivery: DeliveryPolicy,
    /// `WEBHOOK_SECRET_ARN` or `WEBHOOK_SECRET` (both: an error).
    pub secret: Option<WebhookSecretSetting>,
}

/// An `http://` or `https://` URL with a host, or the error naming `name`.
pub fn hook_url(name: &'static str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(ConfigError::Invalid {
            name,
            reason: "must be an http:// or https:// URL with a host".into(),
        }),
    }
}

impl UpstreamSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let text = |name: &'static str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let url = |name: &'static str| text(name).map(|u| hook_url(name, &u)).transpose();
        let millis = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(
                optional(name, default.as_millis() as u64)?.max(1),
            ))
        };
        let connect_hook = match url("CONNECT_HOOK_URL")? {
            Some(url) => Some(Hook {
                url,
                timeout: millis("CONNECT_HOOK_TIMEOUT_MS", DEFAULT_HOOK_TIMEOUT)?,
                fail_open: optional("CONNECT_HOOK_FAIL_OPEN", false)?,
            }),
            None => None,
        };
        let event_hook = match url("EVENT_HOOK_URL")? {
            Some(url) => Some(Hook {
                url,
                timeout: millis("EVENT_HOOK_TIMEOUT_MS", DEFAULT_HOOK_TIMEOUT)?,
                fail_open: false,
            }),
            None => None,
        };
        let d = DeliveryPolicy::default();
        let secret = match (text("WEBHOOK_SECRET_ARN"), text("WEBHOOK_SECRET")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "WEBHOOK_SECRET",
                    reason: "set WEBHOOK_SECRET_ARN or WEBHOOK_SECRET, not both".into(),
                });
            }
            (Some(arn), None) => Some(WebhookSecretSetting::SecretsManager { secret_id: arn }),
            (None, Some(secret)) => Some(WebhookSecretSetting::Plain(secret)),
            (None, None) => None,
        };
        Ok(UpstreamSettings {
            queue_url: text("UPSTREAM_QUEUE_URL"),
            event_bus: text("EVENT_BUS_NAME"),
            connect_hook,
            event_hook,
            webhook_url: url("WEBHOOK_URL")?,
            dead_letter_queue_url: text("UPSTREAM_DLQ_URL"),
            delivery: DeliveryPolicy {
                attempts: optional("WEBHOOK_ATTEMPTS", d.attempts)?.max(1),
                base_delay: millis("WEBHOOK_RETRY_BASE_DELAY_MS", d.base_delay)?,
                timeout: millis("WEBHOOK_TIMEOUT_MS", d.timeout)?,
            },
            secret,
        })
    }

    /// The longest any hook may take (the HTTP client's connect/read timeout).
    pub fn longest_timeout(&self) -> Duration {
        [&self.connect_hook, &self.event_hook]
            .into_iter()
            .flatten()
            .map(|h| h.timeout)
            .chain([self.delivery.timeout])
            .max()
            .unwrap_or(DEFAULT_HOOK_TIMEOUT)
    }
}

/// How a function logs: the format of Lambda's logging configuration
/// (`LoggingConfig` in template.yaml, `AWS_LAMBDA_LOG_FORMAT`: `JSON` or text)
/// and the function's own level: `LOG_LEVEL` (the template's `LogLevel`
/// parameter), else `AWS_LAMBDA_LOG_LEVEL` (Lambda's `ApplicationLogLevel`,
/// which the template pins to `TRACE`), else `RUST_LOG` as a plain level, else
/// `INFO`; an empty value counts as unset. Lambda's `FATAL` is `ERROR`; a value
/// that is no level is `INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    pub level: tracing::level_filters::LevelFilter,
}

impl LogSettings {
    pub fn from_env() -> Self {
        LogSettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from the variables `var` returns (the environment's in [`LogSettings::from_env`]).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let format = var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
        let level = ["LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
            .into_iter()
            .filter_map(&var)
            .find(|level| !level.trim().is_empty());
        LogSettings::from_values(&format, level.as_deref())
    }

    pub fn from_values(format: &str, level: Option<&str>) -> Self {
        use tracing::level_filters::LevelFilter;
        let level = match level.map(str::trim) {
            Some(l) if l.eq_ignore_ascii_case("fatal") => LevelFilter::ERROR,
            Some(l) => l.parse().unwrap_or(LevelFilter::INFO),
            None => LevelFilter::INFO,
        };
        LogSettings {
            json: format.trim().eq_ignore_ascii_case("json"),
            level,
        }
    }
}
