//! The one place that reads the environment.

use std::str::FromStr;
use std::time::Duration;

use crate::auth::{SecretError, TokenSecret, TokenVerifier};

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

/// The token verifier from `TOKEN_SECRET`. An unusable secret is kept as the
/// error so `$connect` can refuse every connection with 500 (fail closed).
pub fn token_verifier() -> Result<TokenVerifier, SecretError> {
    TokenSecret::from_optional(std::env::var("TOKEN_SECRET").ok()).map(|s| TokenVerifier::new(&s))
}

/// Tuning for notify-user.
#[derive(Debug, Clone)]
pub struct NotifyUserOptions {
    /// Attempts per SendMessageBatch entry before the NotifyUser message is failed.
    pub send_attempts: u32,
    /// First retry delay; doubled each attempt, with full jitter.
    pub retry_base_delay: Duration,
    /// NotifyUser records of one batch processed at once.
    pub concurrency: usize,
}

impl Default for NotifyUserOptions {
    fn default() -> Self {
        NotifyUserOptions {
            send_attempts: 3,
            retry_base_delay: Duration::from_millis(50),
            concurrency: 4,
        }
    }
}

impl NotifyUserOptions {
    /// `SEND_ATTEMPTS`, `RETRY_BASE_DELAY_MS`, `RECORD_CONCURRENCY`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(NotifyUserOptions {
            send_attempts: optional("SEND_ATTEMPTS", d.send_attempts)?.max(1),
            retry_base_delay: Duration::from_millis(optional(
                "RETRY_BASE_DELAY_MS",
                d.retry_base_delay.as_millis() as u64,
            )?),
            concurrency: optional("RECORD_CONCURRENCY", d.concurrency)?.max(1),
        })
    }
}

/// The store of idempotency records, attached when the handlers are wired.
#[derive(Clone)]
pub struct SentLogRef(pub std::sync::Arc<dyn crate::ports::SentLog>);

impl std::fmt::Debug for SentLogRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentLog")
    }
}

/// The default idempotency window: a redelivered message with an `id` is not
/// posted twice to a connection within it.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(3600);

/// Tuning for notify-connection and its Management API client.
#[derive(Debug, Clone)]
pub struct NotifyConnectionOptions {
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Per-attempt timeout of one post.
    pub post_timeout: Duration,
    /// SDK attempts per post (throttling and 5xx are retried with backoff by the SDK).
    pub post_attempts: u32,
    /// The SDK's initial retry backoff: attempt n waits a random time in
    /// `[0, post_backoff × 2^(n-1)]` (exponential backoff, full jitter).
    pub post_backoff: Duration,
    /// How long a posted message `id` is remembered per connection; zero
    /// turns idempotency off.
    pub idempotency_window: Duration,
    /// Where posted ids are remembered; `None` turns idempotency off.
    pub sent_log: Option<SentLogRef>,
    /// Open the Management API connection (root certificates, TLS handshake)
    /// during init instead of on the first post.
    pub warm_connections: bool,
}

impl Default for NotifyConnectionOptions {
    fn default() -> Self {
        NotifyConnectionOptions {
            concurrency: 10,
            post_timeout: Duration::from_secs(3),
            post_attempts: 2,
            post_backoff: Duration::from_millis(100),
            idempotency_window: IDEMPOTENCY_WINDOW,
            sent_log: None,
            warm_connections: false,
        }
    }
}

impl NotifyConnectionOptions {
    /// `POST_CONCURRENCY`, `POST_TIMEOUT_MS`, `POST_ATTEMPTS`, `POST_BACKOFF_MS`,
    /// `IDEMPOTENCY_WINDOW_SECONDS` (0 turns idempotency off), `WARM_CONNECTIONS`
    /// (`true` or `false`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(NotifyConnectionOptions {
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
            sent_log: None,
            warm_connections: optional("WARM_CONNECTIONS", d.warm_connections)?,
        })
    }

    /// Attaches the store of idempotency records.
    pub fn with_sent_log(mut self, log: std::sync::Arc<dyn crate::ports::SentLog>) -> Self {
        self.sent_log = Some(SentLogRef(log));
        self
    }

    /// The idempotency store and window, unless idempotency is off.
    pub fn idempotency(&self) -> Option<(&dyn crate::ports::SentLog, Duration)> {
        match &self.sent_log {
            Some(log) if !self.idempotency_window.is_zero() => {
                Some((&*log.0, self.idempotency_window))
            }
            _ => None,
        }
    }
}

/// Handler settings: `PRESENCE_GROUPS`, `PUBLISH_LIMIT`, `PUBLISH_WINDOW_MS`,
/// and the enqueue and posting options above.
///
/// `PRESENCE_GROUPS` is a comma-separated list of group patterns (`name`,
/// `prefix:*`, `*`) whose joins and leaves are announced; unset means
/// `presence:*`, and `none` turns presence off.
pub fn settings() -> Result<crate::handlers::Settings, ConfigError> {
    let d = crate::handlers::Settings::default();
    let presence = match std::env::var("PRESENCE_GROUPS") {
        Ok(v) if !v.trim().is_empty() => presence_groups(&v)?,
        _ => d.presence,
    };
    Ok(crate::handlers::Settings {
        presence,
        publish_limit: optional("PUBLISH_LIMIT", d.publish_limit)?,
        publish_window: Duration::from_millis(
            optional("PUBLISH_WINDOW_MS", d.publish_window.as_millis() as u64)?.max(1),
        ),
        enqueue: NotifyUserOptions::from_env()?,
        posting: NotifyConnectionOptions::from_env()?,
    })
}

/// Parses a `PRESENCE_GROUPS` value.
pub fn presence_groups(value: &str) -> Result<crate::groups::Grants, ConfigError> {
    if value.trim() == "none" {
        return Ok(crate::groups::Grants::default());
    }
    let patterns: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    crate::groups::Grants::parse(&patterns).map_err(|e| ConfigError::Invalid {
        name: "PRESENCE_GROUPS",
        reason: e.to_string(),
    })
}
