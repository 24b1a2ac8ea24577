//! Configuration: the readers of the environment, and the one place in the
//! library that reads it. Each policy type lives with the code it governs
//! ([`EnqueuePolicy`] in `enqueue`, [`PostingPolicy`] in `posting`,
//! [`HistorySettings`] in `history`, [`UpstreamSettings`] in `upstream`,
//! [`Settings`] and [`Limits`] in `services`, the token keys in `auth`); its
//! `from_env` is here, with the variables it reads.

use std::str::FromStr;
use std::time::Duration;

use crate::auth::{SecretError, TokenKeySetting, TokenKeySource, TokenPolicy, TokenSecret};
use crate::enqueue::EnqueuePolicy;
use crate::groups::names::Grants;
use crate::history::{HistorySettings, MIN_READ_BYTES};
use crate::oidc::{OidcOptions, OidcSettings};
use crate::posting::PostingPolicy;
use crate::rate::Rate;
use crate::services::{Limits, Settings};
use crate::upstream::delivery::DeliveryPolicy;
use crate::upstream::{DEFAULT_HOOK_TIMEOUT, Hook, UpstreamSettings, WebhookSecretSetting};

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

/// `service_variable` (`AWS_ENDPOINT_URL_<SERVICE>`), else `AWS_ENDPOINT_URL`,
/// unless unset: the standard endpoint overrides (moto, LocalStack), for the
/// clients that sign their own requests (Secrets Manager, EventBridge).
pub fn endpoint_override(service_variable: &'static str) -> Option<String> {
    [service_variable, "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// `AWS_REGION`, else `AWS_DEFAULT_REGION`, unless unset.
pub fn region() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .map(|region| region.trim().to_owned())
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

/// A comma- or space-separated list, unless unset or empty.
fn list(name: &'static str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split([',', ' ', '\n', '\t'])
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl OidcOptions {
    /// `OIDC_ISSUERS`, `OIDC_AUDIENCE`, `OIDC_JWKS_URL`, `OIDC_USER_CLAIM`,
    /// `OIDC_GROUPS_CLAIM`, `OIDC_SUBSCRIBE_CLAIM`, `OIDC_PUBLISH_CLAIM`,
    /// `OIDC_TOKEN_USE`, `OIDC_JWKS_TTL_SECONDS`, `OIDC_FETCH_TIMEOUT_MS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let text = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            text(name)
                .map(|v| v.trim().parse::<u64>())
                .transpose()
                .map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
        };
        let seconds = number("OIDC_JWKS_TTL_SECONDS")?;
        let millis = number("OIDC_FETCH_TIMEOUT_MS")?;
        Ok(OidcOptions {
            issuers: list("OIDC_ISSUERS"),
            audiences: list("OIDC_AUDIENCE"),
            jwks_url: text("OIDC_JWKS_URL"),
            user_claim: text("OIDC_USER_CLAIM"),
            groups_claim: text("OIDC_GROUPS_CLAIM"),
            subscribe_claim: text("OIDC_SUBSCRIBE_CLAIM"),
            publish_claim: text("OIDC_PUBLISH_CLAIM"),
            token_use: list("OIDC_TOKEN_USE"),
            ttl: seconds.map(Duration::from_secs),
            fetch_timeout: millis.map(Duration::from_millis),
        })
    }
}

impl OidcSettings {
    /// [`OidcOptions::from_env`]'s settings (None without `OIDC_ISSUERS`); an
    /// issuer that is also `TOKEN_ISSUER` is refused (its tokens would never
    /// reach the HS256 keys).
    pub fn from_env(policy: &TokenPolicy) -> Result<Option<Self>, ConfigError> {
        let settings = OidcOptions::from_env()?
            .settings()
            .map_err(|e| ConfigError::Invalid {
                name: "OIDC_ISSUERS",
                reason: e.to_string(),
            })?;
        if let (Some(settings), Some(own)) = (&settings, &policy.issuer) {
            if settings.issuers.iter().any(|i| &i.issuer == own) {
                return Err(ConfigError::Invalid {
                    name: "OIDC_ISSUERS",
                    reason: "TOKEN_ISSUER is one of the OIDC issuers".into(),
                });
            }
        }
        Ok(settings)
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

impl PostingPolicy {
    /// `POST_CONCURRENCY`, `POST_TIMEOUT_MS`, `POST_ATTEMPTS`, `POST_BACKOFF_MS`,
    /// `IDEMPOTENCY_WINDOW_SECONDS` (0 turns idempotency off), `WARM_CONNECTIONS`
    /// (`true` or `false`), `POST_RETRY_BUDGET_MS`, `RETRY_DELAY_MAX_SECONDS`
    /// (1 to 900), `POST_RATE_LIMIT` (posts a second for the whole stack; 0, the
    /// default, turns pacing off; the template sets it), `POST_BOOKER_SHARE`
    /// (the percent of it one booker may book, 1 to 100).
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
            booker_share: optional("POST_BOOKER_SHARE", d.booker_share)?.clamp(1, 100),
        })
    }
}

impl Settings {
    /// `PRESENCE_GROUPS`, `PUBLISH_LIMIT`, `PUBLISH_WINDOW_MS`, the limits'
    /// variables ([`Limits::from_env`]), `MAX_GROUPS_PER_CONNECTION` and
    /// `MAX_PRESENCE_MEMBERS` (each at least 1), and the enqueue and posting policies' variables. `history` is the
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
            max_presence_members: optional("MAX_PRESENCE_MEMBERS", d.max_presence_members)?.max(1),
            enqueue: EnqueuePolicy::from_env()?,
            posting: PostingPolicy::from_env()?,
            // Read by the functions that keep history (`Wiring::services_with_history`),
            // so the others do not carry its parsing.
            history: d.history,
        })
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
        let read_bytes = optional("HISTORY_READ_BYTES", d.read_bytes)?;
        if read_bytes < MIN_READ_BYTES {
            return Err(ConfigError::Invalid {
                name: "HISTORY_READ_BYTES",
                reason: format!("must be at least {MIN_READ_BYTES}"),
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
            read_bytes,
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
