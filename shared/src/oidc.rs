//! OpenID Connect issuers at `$connect`: tokens signed by Cognito, Auth0,
//! Okta, Keycloak, Entra ID, Google… verified with the issuer's published
//! keys (JWKS), beside Switchboard's own HS256 tokens.
//!
//! - A token is the issuer's when its `iss` is exactly one of the configured
//!   issuer URLs ([`Oidc::knows`]); everything else stays with HS256.
//! - Keys come from the JWKS document, found by discovery
//!   (`{issuer}/.well-known/openid-configuration`, whose `issuer` must be the
//!   configured one) or given directly ([`IssuerSettings::jwks_url`]).
//!   Issuer and JWKS URLs are `https://`, or `http://` on a loopback address.
//! - The token's `kid` picks the key, and the key fixes the algorithm:
//!   RS256 (RSA, 2048 bits or more), ES256 (P-256) or EdDSA (Ed25519). The
//!   header's `alg` must be that one: `none`, any HMAC (the public key as an
//!   HMAC secret) or another key's algorithm is refused before any signature
//!   is checked.
//! - The key set is cached per warm instance for [`OidcSettings::ttl`]. A
//!   `kid` not in a fresh set fetches again at most once per
//!   [`UNKNOWN_KID_INTERVAL`]; a flood of made-up `kid`s is answered from the
//!   cache. A failed fetch is retried at most once per [`RETRY_INTERVAL`];
//!   meanwhile, and while the fetch fails, a set fetched within two TTLs
//!   keeps verifying (stale-if-error). Every fetch (discovery and keys
//!   together) ends within [`OidcSettings::fetch_timeout`]; a failure is
//!   logged with the issuer and the reason and counted
//!   ([`Metric::JwksFetchFailures`]). With no usable keys the token is refused
//!   with [`AuthError::KeysUnavailable`] (fail closed).
//! - Claims: `iss` exact, `aud` (a string or a list) contains one of the
//!   issuer's audiences, or, without `aud`, `client_id` is one (Cognito's
//!   access tokens); `exp` required, `nbf` checked, the lifetime and `iat`
//!   rules of [`TokenPolicy`]; `token_use` when the issuer requires it
//!   (Cognito: `id` or `access`). The user id is the configured claim
//!   (`sub` by default); groups, subscribe and publish grants come from
//!   configured claims (Cognito: `cognito:groups` as groups), each a list of
//!   strings or one space-separated string, held to the same rules as the
//!   claims of Switchboard's own tokens.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::error;

use crate::auth::{
    AuthError, Claims, MAX_KID_BYTES, TokenIssuers, TokenPolicy, check_claims, check_lifetime,
    decode_error, install_crypto_provider,
};
use crate::metrics::{self, Metric};

/// After a fetch, how long before a `kid` the set lacks may fetch again.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, how long before the next try.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// How long a key set is used before it is fetched again (default).
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// The bound on one fetch: discovery and the key set together (default).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// What a key fetch leaves of the invocation: the time to answer the handshake.
pub const FETCH_RESERVE: Duration = Duration::from_secs(1);
/// The largest discovery or JWKS document read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// The most keys kept from one JWKS document.
pub const MAX_KEYS: usize = 64;

/// Fetches a document over HTTP(S): a GET answered 200 with at most
/// [`MAX_DOCUMENT_BYTES`] bytes, within `timeout`. The error is the reason,
/// for the log.
#[async_trait]
pub trait Fetch: Send + Sync {
    async fn get(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, String>;
}

/// Why an issuer's settings cannot be used (at startup: the function fails
/// to start rather than accept the wrong tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcConfigError {
    #[error(
        "{what} {url:?} must be an https:// URL (http:// only on a loopback address), without credentials, query or fragment"
    )]
    Url { what: &'static str, url: String },
    #[error("issuer {0:?} has no audience: set the audience or client id its tokens are for")]
    NoAudience(String),
    #[error("issuer {0:?} is listed twice")]
    Duplicate(String),
    #[error("{0}")]
    Invalid(String),
}

/// One OIDC issuer: where its keys are and how its tokens map to claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    /// The `iss` its tokens carry, exactly (the discovery base).
    pub issuer: String,
    /// Accepted `aud` values (or `client_id` for a token without `aud`).
    pub audiences: Vec<String>,
    /// The JWKS URL; None: from discovery.
    pub jwks_url: Option<String>,
    /// The claim that holds the user id.
    pub user_claim: String,
    /// The claim whose names the connection joins at connect.
    pub groups_claim: Option<String>,
    /// The claim whose patterns the connection may subscribe to.
    pub subscribe_claim: Option<String>,
    /// The claim whose patterns the connection may publish to.
    pub publish_claim: Option<String>,
    /// Accepted `token_use` values; empty: not checked.
    pub token_use: Vec<String>,
}

impl IssuerSettings {
    /// An issuer with its defaults: user id in `sub`; for Cognito
    /// (`https://cognito-idp.<region>.amazonaws.com/<pool>`) groups from
    /// `cognito:groups` and `token_use` `id` or `access`.
    pub fn new(issuer: &str, audiences: Vec<String>) -> Result<Self, OidcConfigError> {
        let issuer = issuer.trim().to_owned();
        check_url("issuer", &issuer)?;
        let audiences: Vec<String> = audiences
            .into_iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if audiences.is_empty() {
            return Err(OidcConfigError::NoAudience(issuer));
        }
        let cognito = is_cognito(&issuer);
        Ok(IssuerSettings {
            audiences,
            jwks_url: None,
            user_claim: "sub".into(),
            groups_claim: cognito.then(|| "cognito:groups".into()),
            subscribe_claim: None,
            publish_claim: None,
            token_use: if cognito {
                vec!["id".into(), "access".into()]
            } else {
                Vec::new()
            },
            issuer,
        })
    }

    /// Keys from `url` instead of discovery.
    pub fn with_jwks_url(mut self, url: &str) -> Result<Self, OidcConfigError> {
        let url = url.trim();
        check_url("JWKS URL", url)?;
        self.jwks_url = Some(url.to_owned());
        Ok(self)
    }
}

/// Whether `issuer` is a Cognito user pool's.
fn is_cognito(issuer: &str) -> bool {
    issuer
        .strip_prefix("https://cognito-idp.")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| host.ends_with(".amazonaws.com"))
}

/// `https://`, or `http://` to a loopback host; no userinfo, query or fragment.
fn check_url(what: &'static str, url: &str) -> Result<(), OidcConfigError> {
    let bad = || OidcConfigError::Url {
        what,
        url: url.to_owned(),
    };
    let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || url.contains(['?', '#'])
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    if secure || is_loopback(authority) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback(authority: &str) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        return v6
            .split_once(']')
            .and_then(|(host, _)| host.parse::<Ipv6Addr>().ok())
            .is_some_and(|ip| ip.is_loopback());
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Every issuer, and how their keys are cached and fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    pub issuers: Vec<IssuerSettings>,
    /// How long a fetched key set is fresh.
    pub ttl: Duration,
    /// The bound on one fetch (discovery and keys).
    pub fetch_timeout: Duration,
    /// After a fetch, how long before an unknown `kid` may fetch again
    /// ([`UNKNOWN_KID_INTERVAL`]; shorter only in tests).
    pub unknown_kid_interval: Duration,
    /// After a failed fetch, how long before the next ([`RETRY_INTERVAL`]).
    pub retry_interval: Duration,
}

impl OidcSettings {
    /// `issuers` with the default TTL and timeout; an issuer listed twice is an error.
    pub fn new(issuers: Vec<IssuerSettings>) -> Result<Self, OidcConfigError> {
        for (i, issuer) in issuers.iter().enumerate() {
            if issuers[..i]
                .iter()
                .any(|other| other.issuer == issuer.issuer)
            {
                return Err(OidcConfigError::Duplicate(issuer.issuer.clone()));
            }
        }
        Ok(OidcSettings {
            issuers,
            ttl: DEFAULT_TTL,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            unknown_kid_interval: UNKNOWN_KID_INTERVAL,
            retry_interval: RETRY_INTERVAL,
        })
    }
}

/// The issuer settings as given (the environment, the local stack's flags):
/// the same claims and audiences for every issuer listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcOptions {
    /// Issuer URLs; none: no OIDC.
    pub issuers: Vec<String>,
    /// Accepted audiences or client ids.
    pub audiences: Vec<String>,
    /// The JWKS URL, with exactly one issuer; None: discovery.
    pub jwks_url: Option<String>,
    /// The user id's claim; None: `sub`.
    pub user_claim: Option<String>,
    /// None: Cognito's `cognito:groups` for Cognito issuers, else no groups.
    pub groups_claim: Option<String>,
    pub subscribe_claim: Option<String>,
    pub publish_claim: Option<String>,
    /// Accepted `token_use` values; empty: Cognito's `id` and `access` for
    /// Cognito issuers, else not checked.
    pub token_use: Vec<String>,
    /// None: [`DEFAULT_TTL`].
    pub ttl: Option<Duration>,
    /// None: [`DEFAULT_FETCH_TIMEOUT`].
    pub fetch_timeout: Option<Duration>,
}

/// The shortest key-set TTL accepted.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest fetch timeout accepted (connect must answer well within
/// API Gateway's 29 s integration timeout).
pub const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl OidcOptions {
    /// The settings, or None without issuers.
    pub fn settings(&self) -> Result<Option<OidcSettings>, OidcConfigError> {
        if self.issuers.is_empty() {
            return Ok(None);
        }
        if self.jwks_url.is_some() && self.issuers.len() > 1 {
            return Err(OidcConfigError::Invalid(
                "a JWKS URL is given for exactly one issuer; with several, each is found by discovery".into(),
            ));
        }
        let name = |claim: &Option<String>| {
            claim
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
        };
        let token_use: Vec<String> = self
            .token_use
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(bad) = token_use.iter().find(|t| *t != "id" && *t != "access") {
            return Err(OidcConfigError::Invalid(format!(
                "token_use {bad:?} is not id or access"
            )));
        }
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for url in &self.issuers {
            let mut issuer = IssuerSettings::new(url, self.audiences.clone())?;
            if let Some(jwks) = &self.jwks_url {
                issuer = issuer.with_jwks_url(jwks)?;
            }
            if let Some(claim) = name(&self.user_claim) {
                issuer.user_claim = claim;
            }
            if let Some(claim) = name(&self.groups_claim) {
                issuer.groups_claim = Some(claim);
            }
            issuer.subscribe_claim = name(&self.subscribe_claim);
            issuer.publish_claim = name(&self.publish_claim);
            if !token_use.is_empty() {
                issuer.token_use = token_use.clone();
            }
            issuers.push(issuer);
        }
        let mut settings = OidcSettings::new(issuers)?;
        if let Some(ttl) = self.ttl {
            if ttl < MIN_TTL {
                return Err(OidcConfigError::Invalid(format!(
                    "the key set TTL is at least {} seconds",
                    MIN_TTL.as_secs()
                )));
            }
            settings.ttl = ttl;
        }
        if let Some(timeout) = self.fetch_timeout {
            if timeout.is_zero() || timeout > MAX_FETCH_TIMEOUT {
                return Err(OidcConfigError::Invalid(format!(
                    "the fetch timeout is 1 to {} ms",
                    MAX_FETCH_TIMEOUT.as_millis()
                )));
            }
            settings.fetch_timeout = timeout;
        }
        Ok(Some(settings))
    }
}

/// The OIDC issuers of a function, their key sets cached per warm instance.
pub struct Oidc {
    issuers: Vec<Issuer>,
    fetch: Arc<dyn Fetch>,
    ttl: Duration,
    timeout: Duration,
    unknown_kid_interval: Duration,
    retry_interval: Duration,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.issuers.iter().map(|i| &i.settings.issuer))
            .finish()
    }
}

struct Issuer {
    settings: IssuerSettings,
    /// The last key set fetched, read by every verification.
    keys: Mutex<Arc<KeySet>>,
    /// Held while fetching: one fetch at a time per issuer.
    fetching: tokio::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct KeySet {
    fetched_at: Option<Instant>,
    keys: Vec<Key>,
}

#[derive(Debug)]
struct Key {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// The JWKS URL discovery found (or the configured one).
    jwks_url: Option<String>,
}

impl KeySet {
    fn age(&self, now: Instant) -> Option<Duration> {
        self.fetched_at.map(|at| now.saturating_duration_since(at))
    }

    fn find(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| (k.algorithm, k.key.clone()))
    }
}

impl Oidc {
    pub fn new(settings: &OidcSettings, fetch: Arc<dyn Fetch>) -> Self {
        install_crypto_provider();
        Oidc {
            issuers: settings
                .issuers
                .iter()
                .map(|settings| Issuer {
                    settings: settings.clone(),
                    keys: Mutex::new(Arc::new(KeySet::default())),
                    fetching: tokio::sync::Mutex::new(FetchState {
                        last_attempt: None,
                        jwks_url: settings.jwks_url.clone(),
                    }),
                })
                .collect(),
            fetch,
            ttl: settings.ttl,
            timeout: settings.fetch_timeout,
            unknown_kid_interval: settings.unknown_kid_interval,
            retry_interval: settings.retry_interval,
        }
    }

    fn issuer(&self, iss: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.settings.issuer == iss)
    }

    /// Verifies a token of one of the issuers (see the module's rules).
    pub async fn verify_token(
        &self,
        token: &str,
        policy: &TokenPolicy,
    ) -> Result<Claims, AuthError> {
        let header = Header::read(token)?;
        let iss = crate::auth::unverified_issuer(token).ok_or(AuthError::WrongIssuer)?;
        let issuer = self.issuer(&iss).ok_or(AuthError::WrongIssuer)?;
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other => return Err(AuthError::AlgorithmNotAccepted(printable(other))),
        };
        if header.crit.is_some() {
            return Err(AuthError::UnsupportedCritical);
        }
        let kid = header.kid.ok_or(AuthError::NoKeyId)?;
        if kid.is_empty() || kid.len() > MAX_KID_BYTES {
            return Err(AuthError::UnknownKey);
        }
        let (key_alg, key) = self.key(issuer, &kid).await?;
        if key_alg != alg {
            return Err(AuthError::AlgorithmNotAccepted(header.alg));
        }
        let mut validation = Validation::new(key_alg);
        validation.algorithms = vec![key_alg];
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[issuer.settings.issuer.as_str()]);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                    _ => decode_error(e),
                }
            })?;
        claims_of(&issuer.settings, policy, &data.claims)
    }

    /// The key `kid` of `issuer`, fetching the set when it is stale, empty
    /// or lacks `kid` (within the intervals), or the reason there is none.
    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<(Algorithm, DecodingKey), AuthError> {
        let cached = issuer.current();
        if cached.age(Instant::now()).is_some_and(|age| age < self.ttl) {
            if let Some(key) = cached.find(kid) {
                return Ok(key);
            }
        }
        // Stale, empty or without `kid`: one fetch at a time; a request that
        // waited here finds what the fetch it waited for brought.
        let mut state = issuer.fetching.lock().await;
        let now = Instant::now();
        let set = issuer.current();
        let age = set.age(now);
        let fresh = age.is_some_and(|age| age < self.ttl);
        if fresh {
            if let Some(key) = set.find(kid) {
                return Ok(key);
            }
        }
        let interval = if fresh {
            self.unknown_kid_interval
        } else {
            self.retry_interval
        };
        let may_fetch = state
            .last_attempt
            .is_none_or(|at| now.saturating_duration_since(at) >= interval);
        if may_fetch {
            state.last_attempt = Some(now);
            match self.fetch_keys(issuer, &mut state).await {
                Ok(keys) => {
                    let set = Arc::new(KeySet {
                        fetched_at: Some(Instant::now()),
                        keys,
                    });
                    issuer.replace(set.clone());
                    return set.find(kid).ok_or(AuthError::UnknownKey);
                }
                Err(reason) => {
                    metrics::count(Metric::JwksFetchFailures, &[], 1);
                    let stale = age.is_some_and(|age| age < self.ttl * 2);
                    error!(
                        issuer = %issuer.settings.issuer,
                        reason,
                        cached_keys = stale,
                        "OIDC keys could not be fetched; {}",
                        if stale {
                            "the cached keys keep verifying"
                        } else {
                            "its tokens are refused"
                        }
                    );
                    // Discover again next time: the JWKS URL may have moved.
                    state.jwks_url = issuer.settings.jwks_url.clone();
                }
            }
        }
        // No fetch now (or it failed): the cached set if young enough.
        if age.is_some_and(|age| age < self.ttl * 2) {
            set.find(kid).ok_or(AuthError::UnknownKey)
        } else {
            Err(AuthError::KeysUnavailable)
        }
    }

    /// Discovery (unless the JWKS URL is known) and the key set, within the timeout.
    async fn fetch_keys(
        &self,
        issuer: &Issuer,
        state: &mut FetchState,
    ) -> Result<Vec<Key>, String> {
        // Within the invocation too: a fetch that starts late (after a slow
        // secret read, say) still leaves connect the time to answer 503.
        let timeout = crate::retry::within_invocation(self.timeout, FETCH_RESERVE);
        let work = async {
            let url = match &state.jwks_url {
                Some(url) => url.clone(),
                None => {
                    let url = self.discover(&issuer.settings.issuer, timeout).await?;
                    state.jwks_url = Some(url.clone());
                    url
                }
            };
            let document = self.fetch.get(&url, timeout).await?;
            read_jwks(&document)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
    }

    async fn discover(&self, issuer: &str, timeout: Duration) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let document = self.fetch.get(&url, timeout).await?;
        let discovery: Discovery = serde_json::from_slice(&document)
            .map_err(|e| format!("the discovery document is invalid: {e}"))?;
        if discovery.issuer != issuer {
            return Err(format!(
                "the discovery document names issuer {:?}, not this one",
                printable(&discovery.issuer)
            ));
        }
        check_url("jwks_uri", &discovery.jwks_uri).map_err(|e| e.to_string())?;
        Ok(discovery.jwks_uri)
    }
}

impl Issuer {
    fn current(&self) -> Arc<KeySet> {
        match self.keys.lock() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, set: Arc<KeySet>) {
        match self.keys.lock() {
            Ok(mut keys) => *keys = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}

impl TokenIssuers for Oidc {
    fn knows(&self, iss: &str) -> bool {
        self.issuer(iss).is_some()
    }

    fn verify<'a>(
        &'a self,
        token: &'a str,
        policy: &'a TokenPolicy,
    ) -> BoxFuture<'a, Result<Claims, AuthError>> {
        Box::pin(self.verify_token(token, policy))
    }
}

/// A value quoted in an error: at most 32 printable ASCII characters.
fn printable(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect()
}

/// The JOSE header fields read; anything else is ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

impl Header {
    fn read(token: &str) -> Result<Self, AuthError> {
        use base64::Engine;
        let header = token.split('.').next().ok_or(AuthError::Malformed)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
    }
}

/// The usable keys of a JWKS document: signature keys with a `kid`, of a
/// type this server verifies, whose `alg` (when given) is that type's.
fn read_jwks(document: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    #[derive(Deserialize)]
    struct Jwk {
        kty: String,
        kid: Option<String>,
        alg: Option<String>,
        #[serde(rename = "use")]
        use_: Option<String>,
        crv: Option<String>,
        n: Option<String>,
        e: Option<String>,
        x: Option<String>,
        y: Option<String>,
    }
    let jwks: Jwks = serde_json::from_slice(document)
        .map_err(|e| format!("the JWKS document is invalid: {e}"))?;
    let mut keys: Vec<Key> = Vec::new();
    for jwk in jwks.keys {
        let Some(kid) = jwk
            .kid
            .filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_BYTES)
        else {
            continue;
        };
        if jwk.use_.as_deref().is_some_and(|u| u != "sig")
            || keys.iter().any(|k| k.kid == kid)
            || keys.len() >= MAX_KEYS
        {
            continue;
        }
        let alg = jwk.alg.as_deref();
        let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) if alg.is_none_or(|a| a == "RS256") => match (&jwk.n, &jwk.e) {
                (Some(n), Some(e)) => DecodingKey::from_rsa_components(n, e)
                    .ok()
                    .map(|key| (Algorithm::RS256, key)),
                _ => None,
            },
            ("EC", Some("P-256")) if alg.is_none_or(|a| a == "ES256") => match (&jwk.x, &jwk.y) {
                (Some(x), Some(y)) => DecodingKey::from_ec_components(x, y)
                    .ok()
                    .map(|key| (Algorithm::ES256, key)),
                _ => None,
            },
            ("OKP", Some("Ed25519")) if alg.is_none_or(|a| a == "EdDSA" || a == "Ed25519") => jwk
                .x
                .as_deref()
                .and_then(|x| DecodingKey::from_ed_components(x).ok())
                .map(|key| (Algorithm::EdDSA, key)),
            _ => None,
        };
        if let Some((algorithm, key)) = key {
            keys.push(Key {
                kid,
                algorithm,
                key,
            });
        }
    }
    Ok(keys)
}

/// The issuer's rules on verified claims, and the claims they map to.
fn claims_of(
    issuer: &IssuerSettings,
    policy: &TokenPolicy,
    claims: &Map<String, Value>,
) -> Result<Claims, AuthError> {
    let number = |name: &str| claims.get(name).and_then(Value::as_u64);
    let exp = number("exp").ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
    let iat = number("iat");
    check_lifetime(policy, iat, Some(exp))?;
    let audience_ok = match (claims.get("aud"), claims.get("client_id")) {
        (Some(Value::String(aud)), _) => issuer.audiences.contains(aud),
        (Some(Value::Array(auds)), _) => auds.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| issuer.audiences.iter().any(|w| w == a))
        }),
        (Some(_), _) => false,
        (None, Some(Value::String(client_id))) => issuer.audiences.contains(client_id),
        (None, Some(_)) => false,
        (None, None) => return Err(AuthError::MissingClaim("aud".into())),
    };
    if !audience_ok {
        return Err(AuthError::WrongAudience);
    }
    if !issuer.token_use.is_empty() {
        match claims.get("token_use") {
            None => return Err(AuthError::MissingClaim("token_use".into())),
            Some(Value::String(used)) if issuer.token_use.contains(used) => {}
            Some(_) => {
                return Err(AuthError::InvalidClaims(format!(
                    "\"token_use\" is not {}",
                    issuer.token_use.join(" or ")
                )));
            }
        }
    }
    let sub = match claims.get(&issuer.user_claim) {
        Some(Value::String(user)) => user.clone(),
        Some(_) => {
            return Err(AuthError::InvalidClaims(format!(
                "\"{}\" is not a string",
                issuer.user_claim
            )));
        }
        None => return Err(AuthError::MissingClaim(issuer.user_claim.clone())),
    };
    let list = |claim: &Option<String>| -> Result<Vec<String>, AuthError> {
        let Some(name) = claim else {
            return Ok(Vec::new());
        };
        match claims.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(words)) => Ok(words.split_whitespace().map(str::to_owned).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AuthError::InvalidClaims(format!("\"{name}\" is not a list of strings"))
                }),
            Some(_) => Err(AuthError::InvalidClaims(format!(
                "\"{name}\" is not a list of strings"
            ))),
        }
    };
    let claims = Claims {
        sub,
        exp,
        iat,
        groups: list(&issuer.groups_claim)?,
        subscribe: list(&issuer.subscribe_claim)?,
        publish: list(&issuer.publish_claim)?,
        events: Vec::new(),
    };
    check_claims(&claims)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_https_or_loopback_http() {
        for good in [
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
            "https://example.okta.com/oauth2/default",
            "http://127.0.0.1:8080",
            "http://localhost:9000/realms/demo",
            "http://[::1]:80/",
            "http://127.3.4.5",
        ] {
            assert_eq!(check_url("issuer", good), Ok(()), "{good}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::2]/",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://example.com/?a=b",
            "https://example.com/#x",
            "https://",
            "example.com",
            "https://exa mple.com",
        ] {
            assert_eq!(
                check_url("issuer", bad),
                Err(OidcConfigError::Url {
                    what: "issuer",
                    url: bad.into()
                }),
                "{bad}"
            );
        }
        assert_eq!(
            OidcConfigError::Url {
                what: "issuer",
                url: "http://example.com".into()
            }
            .to_string(),
            "issuer \"http://example.com\" must be an https:// URL (http:// only on a loopback address), without credentials, query or fragment"
        );
    }

    #[test]
    fn cognito_issuers_get_cognito_defaults_and_an_audience_is_required() {
        let cognito = IssuerSettings::new(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
            vec!["client".into()],
        )
        .unwrap();
        assert_eq!(cognito.groups_claim.as_deref(), Some("cognito:groups"));
        assert_eq!(cognito.token_use, ["id", "access"]);
        let other = IssuerSettings::new("https://example.okta.com", vec!["a".into()]).unwrap();
        assert_eq!((other.groups_claim, other.token_use.len()), (None, 0));
        assert_eq!(
            IssuerSettings::new("https://example.okta.com", vec![" ".into()]),
            Err(OidcConfigError::NoAudience(
                "https://example.okta.com".into()
            ))
        );
        assert_eq!(
            OidcSettings::new(vec![cognito.clone(), cognito]).unwrap_err(),
            OidcConfigError::Duplicate(
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc".into()
            )
        );
    }

    #[test]
    fn options_become_settings_or_a_clear_error() {
        let options = OidcOptions {
            issuers: vec!["https://a.example".into()],
            audiences: vec!["app".into()],
            ..OidcOptions::default()
        };
        assert_eq!(OidcOptions::default().settings(), Ok(None));
        let settings = options.settings().unwrap().unwrap();
        assert_eq!(
            (
                settings.ttl,
                settings.fetch_timeout,
                settings.issuers[0].user_claim.as_str()
            ),
            (DEFAULT_TTL, DEFAULT_FETCH_TIMEOUT, "sub")
        );
        let refused = |options: OidcOptions| options.settings().unwrap_err().to_string();
        assert_eq!(
            refused(OidcOptions {
                issuers: vec!["https://a.example".into(), "https://b.example".into()],
                jwks_url: Some("https://a.example/keys".into()),
                ..options.clone()
            }),
            "a JWKS URL is given for exactly one issuer; with several, each is found by discovery"
        );
        assert_eq!(
            refused(OidcOptions {
                token_use: vec!["refresh".into()],
                ..options.clone()
            }),
            "token_use \"refresh\" is not id or access"
        );
        assert_eq!(
            refused(OidcOptions {
                ttl: Some(Duration::from_secs(59)),
                ..options.clone()
            }),
            "the key set TTL is at least 60 seconds"
        );
        assert_eq!(
            refused(OidcOptions {
                fetch_timeout: Some(Duration::from_secs(11)),
                ..options.clone()
            }),
            "the fetch timeout is 1 to 10000 ms"
        );
        assert_eq!(
            refused(OidcOptions {
                audiences: Vec::new(),
                ..options.clone()
            }),
            "issuer \"https://a.example\" has no audience: set the audience or client id its tokens are for"
        );
        assert_eq!(
            refused(OidcOptions {
                jwks_url: Some("http://a.example/keys".into()),
                ..options
            }),
            "JWKS URL \"http://a.example/keys\" must be an https:// URL (http:// only on a loopback address), without credentials, query or fragment"
        );
    }

    #[test]
    fn jwks_keep_only_signature_keys_of_supported_types() {
        let document = br#"{"keys":[
            {"kty":"RSA","kid":"r","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"r384","alg":"RS384","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"},
            {"kty":"EC","kid":"e","crv":"P-256","x":"AAAA","y":"AAAA"},
            {"kty":"EC","kid":"p384","crv":"P-384","x":"AAAA","y":"AAAA"},
            {"kty":"OKP","kid":"d","crv":"Ed25519","x":"AAAA"},
            {"kty":"oct","kid":"h","k":"AAAA"},
            {"kty":"RSA","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"r","alg":"RS256","n":"AAAA","e":"AQAB"}
        ]}"#;
        let keys = read_jwks(document).unwrap();
        let found: Vec<(&str, Algorithm)> =
            keys.iter().map(|k| (k.kid.as_str(), k.algorithm)).collect();
        assert_eq!(
            found,
            [
                ("r", Algorithm::RS256),
                ("e", Algorithm::ES256),
                ("d", Algorithm::EdDSA)
            ]
        );
        assert!(
            read_jwks(b"{}")
                .unwrap_err()
                .starts_with("the JWKS document is invalid")
        );
    }
}
