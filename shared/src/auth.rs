//! Client authentication: HS256 JSON Web Tokens.
//!
//! The algorithm is pinned to HS256, `exp` and `sub` are required, and expiry is
//! enforced with no leeway. Everything a connection may do comes from these
//! claims, never from what the client says later.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::http::header::AUTHORIZATION;
use aws_lambda_events::query_map::QueryMap;
use futures::future::BoxFuture;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::validate::{self, FieldError};
pub use crate::validate::{MAX_GROUPS, MAX_USER_ID_BYTES};

/// Installs [`RING`] as jsonwebtoken's crypto provider for this process
/// (idempotent). [`TokenVerifier::new`] and [`mint`] call it; code that uses
/// `jsonwebtoken` directly calls it first.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: ours, since the crate is built
    // without its own (`rust_crypto`/`aws_lc_rs` off), and nothing else installs one.
    let _ = RING.install_default();
}

/// jsonwebtoken's crypto on ring, which is linked for TLS already (rustls and
/// webpki verify RSA, ECDSA and Ed25519 certificate signatures with the same
/// code): HMAC signs and verifies (HS256, ours); RS256, ES256 and EdDSA only
/// verify (the OIDC issuers' tokens, [`crate::oidc`]). The crate's
/// `rust_crypto` provider would link a second RSA, ECDSA and Ed25519
/// implementation (RustCrypto's): BENCHMARKS.md, "Build choices".
/// Any other algorithm is refused with `InvalidAlgorithm`, and a key of
/// another family than the algorithm's with `InvalidKeyFormat` (an HMAC
/// "secret" is never checked against a public key's bytes, or the reverse).
/// JWK helpers are not provided ([`crate::oidc`] reads JWKs itself).
static RING: jsonwebtoken::crypto::CryptoProvider = jsonwebtoken::crypto::CryptoProvider {
    signer_factory: hmac::signer,
    verifier_factory: ring_verifier,
    key_utils: jsonwebtoken::crypto::KeyUtils::new_unimplemented(),
};

fn ring_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn jsonwebtoken::crypto::JwtVerifier>> {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => hmac::verifier(algorithm, key),
        _ => public::verifier(algorithm, key),
    }
}

mod public {
    //! RS256, ES256 and EdDSA signature checks on ring (verification only).
    use jsonwebtoken::crypto::JwtVerifier;
    use jsonwebtoken::errors::{ErrorKind, Result};
    use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
        UnparsedPublicKey,
    };

    /// A public key and the one algorithm it is checked with.
    pub(super) struct Public(DecodingKey, Algorithm);

    pub(super) fn verifier(
        algorithm: &Algorithm,
        key: &DecodingKey,
    ) -> Result<Box<dyn JwtVerifier>> {
        let family = match algorithm {
            Algorithm::RS256 => AlgorithmFamily::Rsa,
            Algorithm::ES256 => AlgorithmFamily::Ec,
            Algorithm::EdDSA => AlgorithmFamily::Ed,
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        if key.family() != family {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Box::new(Public(key.clone(), *algorithm)))
    }

    impl signature::Verifier<Vec<u8>> for Public {
        fn verify(
            &self,
            message: &[u8],
            signature: &Vec<u8>,
        ) -> std::result::Result<(), signature::Error> {
            let checked = match (self.1, self.0.kind()) {
                (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                    RsaPublicKeyComponents { n, e }.verify(
                        &RSA_PKCS1_2048_8192_SHA256,
                        message,
                        signature,
                    )
                }
                (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                        .verify(message, signature)
                }
                (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(x)) => {
                    UnparsedPublicKey::new(&ED25519, x).verify(message, signature)
                }
                _ => return Err(signature::Error::new()),
            };
            checked.map_err(|_| signature::Error::new())
        }
    }

    impl JwtVerifier for Public {
        fn algorithm(&self) -> Algorithm {
            self.1
        }
    }
}

mod hmac {
    use jsonwebtoken::crypto::{JwtSigner, JwtVerifier};
    use jsonwebtoken::errors::{ErrorKind, Result};
    use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
    use ring::hmac::{HMAC_SHA256, HMAC_SHA384, HMAC_SHA512, Key};

    /// One HMAC key, with the JWT algorithm it was made for.
    pub(super) struct Hmac(Key, Algorithm);

    fn key(algorithm: &Algorithm, family: AlgorithmFamily, secret: Result<&[u8]>) -> Result<Hmac> {
        let hash = match algorithm {
            Algorithm::HS256 => HMAC_SHA256,
            Algorithm::HS384 => HMAC_SHA384,
            Algorithm::HS512 => HMAC_SHA512,
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        if family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(Hmac(Key::new(hash, secret?), *algorithm))
    }

    pub(super) fn signer(algorithm: &Algorithm, k: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
        Ok(Box::new(key(algorithm, k.family(), Ok(k.as_bytes()))?))
    }

    pub(super) fn verifier(algorithm: &Algorithm, k: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
        Ok(Box::new(key(algorithm, k.family(), k.try_get_as_bytes())?))
    }

    impl signature::Signer<Vec<u8>> for Hmac {
        fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
            Ok(ring::hmac::sign(&self.0, message).as_ref().to_vec())
        }
    }

    impl signature::Verifier<Vec<u8>> for Hmac {
        /// Constant-time comparison (ring).
        fn verify(
            &self,
            message: &[u8],
            tag: &Vec<u8>,
        ) -> std::result::Result<(), signature::Error> {
            ring::hmac::verify(&self.0, message, tag).map_err(|_| signature::Error::new())
        }
    }

    impl JwtSigner for Hmac {
        fn algorithm(&self) -> Algorithm {
            self.1
        }
    }

    impl JwtVerifier for Hmac {
        fn algorithm(&self) -> Algorithm {
            self.1
        }
    }
}

/// The shortest secret accepted. HS256 needs at least 256 bits of key to be as
/// strong as its hash; a shorter secret is refused, not silently used.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims Switchboard reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued-at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Groups the connection joins at connect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Groups the connection may join or leave itself: names, `prefix:*` or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    /// Groups the connection may publish client events to: names, `prefix:*` or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Client event names the connection may send to the application with
    /// the `event` action: names, `prefix:*` or `*`. None: no events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// Why a token secret cannot be used. Any of these fails closed. No message
/// ever quotes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("TOKEN_SECRET is not set; every connection is refused")]
    Missing,
    #[error("TOKEN_SECRET is {len} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort { len: usize },
    #[error("TOKEN_SECRET and TOKEN_SECRET_ARN are both set; set one")]
    Ambiguous,
    /// The secret store could not be read (network, permissions, not found).
    #[error("the token secret cannot be read: {0}")]
    Unavailable(String),
    /// The stored secret is not the documented JSON (see [`TokenKeys::from_json`]).
    #[error("the token secret is invalid: {0}")]
    Invalid(String),
}

/// Why a connection was not authenticated. Each maps to HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: pass ?token=<jwt> or an Authorization: Bearer <jwt> header")]
    MissingToken,
    #[error("the Authorization header is not a Bearer token")]
    NotBearer,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    WrongAlgorithm,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks the required claim \"{0}\"")]
    MissingClaim(String),
    #[error("the token's claims are invalid: {0}")]
    InvalidClaims(String),
    #[error("the token's key id (kid) is not one of this server's keys")]
    UnknownKey,
    #[error("the token's header lists critical extensions (crit) this server does not understand")]
    UnsupportedCritical,
    #[error("the token's lifetime exceeds the maximum of {max_seconds} seconds")]
    LifetimeTooLong { max_seconds: u64 },
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token's issuer (iss) is not accepted")]
    WrongIssuer,
    #[error("the token's audience (aud) is not accepted")]
    WrongAudience,
    /// An OIDC issuer's token whose `alg` is not its key's (`none`, HS256 with
    /// a public key as the secret, or a key of another type).
    #[error("the token's algorithm ({0}) is not accepted for its issuer's key")]
    AlgorithmNotAccepted(String),
    #[error("the token has no key id (kid); its issuer's keys are chosen by kid")]
    NoKeyId,
    /// The issuer's keys could not be fetched and none are cached (the
    /// reason is logged; the handshake is answered 503, not 401).
    #[error("the token issuer's keys are unavailable; try again later")]
    KeysUnavailable,
}

impl AuthError {
    /// Whether the refusal is the server's state, not the token's fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }
}

/// Tokens from other issuers (OpenID Connect providers): when a token's
/// `iss` names one of them, they verify it (their keys, their rules) instead
/// of the HS256 keys. [`crate::oidc::Oidc`] is the implementation.
pub trait TokenIssuers: Send + Sync {
    /// Whether `iss` (read before any check) is one of these issuers.
    fn knows(&self, iss: &str) -> bool;
    /// Verifies a token whose `iss` [`knows`](TokenIssuers::knows) accepted,
    /// under `policy`'s lifetime rules.
    fn verify<'a>(
        &'a self,
        token: &'a str,
        policy: &'a TokenPolicy,
    ) -> BoxFuture<'a, Result<Claims, AuthError>>;
}

/// The longest key id accepted (`kid`).
pub const MAX_KID_BYTES: usize = 64;

/// A validated HS256 secret, with the key id (`kid`) tokens signed with it
/// carry. The local stack's `TOKEN_SECRET` has none: its tokens carry no `kid`.
#[derive(Clone)]
pub struct TokenSecret {
    secret: Vec<u8>,
    kid: Option<String>,
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kid {
            None => f.write_str("TokenSecret(<redacted>)"),
            Some(kid) => write!(f, "TokenSecret(kid {kid:?}, <redacted>)"),
        }
    }
}

impl TokenSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret = secret.into();
        match secret.len() {
            0 => Err(SecretError::Missing),
            len if len < MIN_SECRET_BYTES => Err(SecretError::TooShort { len }),
            _ => Ok(TokenSecret { secret, kid: None }),
        }
    }

    /// A secret whose tokens carry `kid`: 1 to [`MAX_KID_BYTES`] bytes of
    /// printable ASCII.
    pub fn with_kid(kid: &str, secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        if kid.is_empty() || kid.len() > MAX_KID_BYTES || !kid.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SecretError::Invalid(format!(
                "a kid is 1 to {MAX_KID_BYTES} printable ASCII characters"
            )));
        }
        let mut secret = Self::new(secret)?;
        secret.kid = Some(kid.to_owned());
        Ok(secret)
    }

    /// Reads a secret from an optional value, as found in the environment.
    pub fn from_optional(value: Option<String>) -> Result<Self, SecretError> {
        Self::new(value.unwrap_or_default())
    }

    /// The key id tokens signed with this secret carry.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// The keys tokens are checked against: `current` signs and verifies,
/// `previous` (during a rotation) only verifies.
#[derive(Clone, Debug)]
pub struct TokenKeys {
    pub current: TokenSecret,
    pub previous: Option<TokenSecret>,
}

impl From<TokenSecret> for TokenKeys {
    fn from(current: TokenSecret) -> Self {
        TokenKeys {
            current,
            previous: None,
        }
    }
}

impl TokenKeys {
    /// Reads the secret as stored in Secrets Manager: either
    /// `{"current": {"kid": "2", "secret": "..."}, "previous": {"kid": "1", "secret": "..."}}`
    /// (`previous` optional) or a single `{"kid": "1", "secret": "..."}` (what
    /// the template generates). Every key needs a `kid`, and the two differ.
    /// Errors never quote the text (it is the secret).
    pub fn from_json(text: &str) -> Result<Self, SecretError> {
        // Read through `serde_json::Value` (linked already) rather than
        // derived untagged enums: the bootstraps are within bytes of their limit.
        let shape = || {
            SecretError::Invalid(
                "expected {\"current\":{\"kid\":…,\"secret\":…},\"previous\":{…}} or {\"kid\":…,\"secret\":…}"
                    .into(),
            )
        };
        let stored: serde_json::Value = serde_json::from_str(text).map_err(|_| shape())?;
        let key = |k: &serde_json::Value| match (k["kid"].as_str(), k["secret"].as_str()) {
            (Some(kid), Some(secret)) => TokenSecret::with_kid(kid, secret),
            _ => Err(shape()),
        };
        let keys = if stored.get("current").is_some() {
            TokenKeys {
                current: key(&stored["current"])?,
                previous: match stored.get("previous") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(previous) => Some(key(previous)?),
                },
            }
        } else {
            TokenKeys {
                current: key(&stored)?,
                previous: None,
            }
        };
        if let Some(previous) = &keys.previous {
            if previous.kid == keys.current.kid {
                return Err(SecretError::Invalid(
                    "the current and previous keys have the same kid".into(),
                ));
            }
        }
        Ok(keys)
    }
}

/// What a token must satisfy beyond its signature and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The longest lifetime accepted: `exp - iat`, or `exp - now` without `iat`.
    pub max_lifetime: Duration,
    /// How far in the future `iat` may be (clock skew between the minting
    /// server and this one).
    pub iat_leeway: Duration,
    /// When set, tokens must carry this `iss`, and minted tokens do.
    pub issuer: Option<String>,
    /// When set, tokens' `aud` must be or contain this, and minted tokens carry it.
    pub audience: Option<String>,
}

/// Tokens live at most a day unless configured otherwise.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// `iat` may be at most a minute ahead of this server's clock.
pub const IAT_LEEWAY: Duration = Duration::from_secs(60);

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            max_lifetime: DEFAULT_MAX_LIFETIME,
            iat_leeway: IAT_LEEWAY,
            issuer: None,
            audience: None,
        }
    }
}

/// Verifies tokens against the current key and, during a rotation, the
/// previous one, under a [`TokenPolicy`].
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    policy: TokenPolicy,
    issuers: Option<Arc<dyn TokenIssuers>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier(HS256)")
    }
}

impl TokenVerifier {
    /// One key, the default policy.
    pub fn new(secret: &TokenSecret) -> Self {
        Self::with_keys(&secret.clone().into(), &TokenPolicy::default())
    }

    /// The current and previous keys, under `policy`.
    pub fn with_keys(keys: &TokenKeys, policy: &TokenPolicy) -> Self {
        install_crypto_provider();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        TokenVerifier {
            keys: std::iter::once(&keys.current)
                .chain(keys.previous.as_ref())
                .map(|k| (k.kid.clone(), DecodingKey::from_secret(&k.secret)))
                .collect(),
            validation,
            policy: policy.clone(),
            issuers: None,
        }
    }

    /// Also accepts the tokens of `issuers` (OIDC), by their `iss`.
    pub fn with_issuers(mut self, issuers: Option<Arc<dyn TokenIssuers>>) -> Self {
        self.issuers = issuers;
        self
    }

    /// Verifies a token: an OIDC issuer's (by its `iss`, see
    /// [`TokenIssuers`]), else an HS256 token of this server's ([`Self::verify`]).
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthError> {
        if let Some(issuers) = &self.issuers {
            if unverified_issuer(token).is_some_and(|iss| issuers.knows(&iss)) {
                return issuers.verify(token, &self.policy).await;
            }
        }
        self.verify(token)
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // The header is checked first so that `alg: none`, an unknown or another
        // algorithm is reported as such, whatever the rest of the token holds.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.into_kind() {
            ErrorKind::Json(e) if e.to_string().contains("unknown variant") => {
                AuthError::WrongAlgorithm
            }
            _ => AuthError::Malformed,
        })?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::WrongAlgorithm);
        }
        // RFC 7515 4.1.11: a recipient refuses a token whose critical
        // extensions it does not understand, and this one understands none.
        if header.crit.is_some() {
            return Err(AuthError::UnsupportedCritical);
        }
        // A `kid` picks its key; a token without one is checked against the
        // current key only (the local stack's tokens, and tokens minted before
        // keys had ids).
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid.as_str()))
                .map(|(_, key)| key)
                .ok_or(AuthError::UnknownKey)?,
            None => &self.keys[0].1,
        };
        let data = jsonwebtoken::decode::<WireClaims>(token, key, &self.validation)
            .map_err(decode_error)?;
        let wire = data.claims;
        check_lifetime(&self.policy, wire.iat, wire.exp)?;
        self.check_policy(&wire)?;
        let claims = Claims {
            sub: wire
                .sub
                .ok_or_else(|| AuthError::MissingClaim("sub".into()))?,
            exp: wire
                .exp
                .ok_or_else(|| AuthError::MissingClaim("exp".into()))?,
            iat: wire.iat,
            groups: wire.groups.unwrap_or_default(),
            subscribe: wire.subscribe.unwrap_or_default(),
            publish: wire.publish.unwrap_or_default(),
            events: wire.events.unwrap_or_default(),
        };
        check_claims(&claims)?;
        Ok(claims)
    }

    /// `iss` and `aud` (signature, expiry and lifetime are checked).
    fn check_policy(&self, wire: &WireClaims) -> Result<(), AuthError> {
        let policy = &self.policy;
        if let Some(want) = &policy.issuer {
            let iss = wire
                .iss
                .as_ref()
                .ok_or_else(|| AuthError::MissingClaim("iss".into()))?;
            if serde_json::from_str::<&str>(iss.get()).ok() != Some(want.as_str()) {
                return Err(AuthError::WrongIssuer);
            }
        }
        if let Some(want) = &policy.audience {
            let aud = wire
                .aud
                .as_ref()
                .ok_or_else(|| AuthError::MissingClaim("aud".into()))?;
            let matches = match serde_json::from_str::<serde_json::Value>(aud.get()) {
                Ok(serde_json::Value::String(aud)) => aud == *want,
                Ok(serde_json::Value::Array(auds)) => auds.iter().any(|a| a == want.as_str()),
                _ => false,
            };
            if !matches {
                return Err(AuthError::WrongAudience);
            }
        }
        Ok(())
    }
}

/// `jsonwebtoken`'s refusal as the [`AuthError`] a client is told.
pub fn decode_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.into_kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::InvalidClaims(format!("\"{claim}\" has the wrong type"))
        }
        ErrorKind::Json(e) => AuthError::InvalidClaims(e.to_string()),
        _ => AuthError::Malformed,
    }
}

/// `iat` no further ahead than the leeway, and `exp - iat` (or `exp - now`
/// without `iat`) within the policy's maximum lifetime.
pub fn check_lifetime(
    policy: &TokenPolicy,
    iat: Option<u64>,
    exp: Option<u64>,
) -> Result<(), AuthError> {
    let now = crate::clock::now_seconds().max(0) as u64;
    if let Some(iat) = iat {
        if iat > now.saturating_add(policy.iat_leeway.as_secs()) {
            return Err(AuthError::IssuedInFuture);
        }
    }
    if let Some(exp) = exp {
        let from = iat.unwrap_or(now);
        if exp.saturating_sub(from) > policy.max_lifetime.as_secs() {
            return Err(AuthError::LifetimeTooLong {
                max_seconds: policy.max_lifetime.as_secs(),
            });
        }
    }
    Ok(())
}

/// The `iss` claim of a token, read without any check (it picks who checks
/// the token); None when the token is not three parts or has no string `iss`.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let mut parts = token.split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_), None) => payload,
        _ => return None,
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Claims as they arrive: every field optional, so a missing one is named in the error.
#[derive(Deserialize)]
struct WireClaims {
    sub: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    groups: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
    publish: Option<Vec<String>>,
    events: Option<Vec<String>>,
    // Read only when the policy requires them.
    iss: Option<Box<serde_json::value::RawValue>>,
    aud: Option<Box<serde_json::value::RawValue>>,
}

/// The claims pass the rules every surface applies to these fields (see [`validate`]).
pub fn check_claims(claims: &Claims) -> Result<(), AuthError> {
    validate::user_id("sub", &claims.sub).map_err(invalid_claim)?;
    validate::group_list("groups", &claims.groups).map_err(invalid_claim)?;
    validate::pattern_list("subscribe", &claims.subscribe).map_err(invalid_claim)?;
    validate::pattern_list("publish", &claims.publish).map_err(invalid_claim)?;
    validate::pattern_list("events", &claims.events).map_err(invalid_claim)
}

fn invalid_claim(e: FieldError) -> AuthError {
    AuthError::InvalidClaims(match e {
        // Two wordings older than the kit, which token tests and clients know.
        FieldError::Empty(field) => format!("\"{field}\" is empty"),
        FieldError::PatternEntry { field, source, .. } => format!("\"{field}\": {source}"),
        e => e.named(),
    })
}

/// Takes the token from a `$connect` request: the `token` query-string
/// parameter (browsers cannot set headers on a WebSocket), else an
/// `Authorization: Bearer` header.
pub fn token_from_request<'a>(
    query: &'a QueryMap,
    headers: &'a HeaderMap,
) -> Result<&'a str, AuthError> {
    if let Some(token) = query.first("token").filter(|t| !t.is_empty()) {
        return Ok(token);
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(AuthError::MissingToken);
    };
    let value = value.to_str().map_err(|_| AuthError::NotBearer)?.trim();
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AuthError::NotBearer),
    }
}

/// Signs claims into an HS256 token carrying the secret's `kid` (used by
/// negotiate, the local stack and tests).
pub fn mint(secret: &TokenSecret, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    mint_for(secret, claims, &TokenPolicy::default())
}

/// [`mint`], adding the `iss` and `aud` that `policy` requires.
pub fn mint_for(
    secret: &TokenSecret,
    claims: &Claims,
    policy: &TokenPolicy,
) -> Result<String, jsonwebtoken::errors::Error> {
    #[derive(Serialize)]
    struct Minted<'a> {
        #[serde(flatten)]
        claims: &'a Claims,
        #[serde(skip_serializing_if = "Option::is_none")]
        iss: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<&'a str>,
    }
    install_crypto_provider();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = secret.kid.clone();
    jsonwebtoken::encode(
        &header,
        &Minted {
            claims,
            iss: policy.issuer.as_deref(),
            aud: policy.audience.as_deref(),
        },
        &EncodingKey::from_secret(&secret.secret),
    )
}

/// Claims for `user_id` valid for `ttl` from now.
pub fn claims_for(user_id: &str, ttl: Duration, groups: Vec<String>) -> Claims {
    let now = crate::clock::now_seconds() as u64;
    Claims {
        sub: user_id.to_owned(),
        exp: now + ttl.as_secs(),
        iat: Some(now),
        groups,
        subscribe: Vec::new(),
        publish: Vec::new(),
        events: Vec::new(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::HeaderValue;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn secret() -> TokenSecret {
        TokenSecret::new(SECRET).unwrap()
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&secret())
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn future() -> u64 {
        claims_for("u", Duration::from_secs(3600), vec![]).exp
    }

    #[test]
    fn a_valid_token_yields_its_claims() {
        let claims = claims_for("user-1", Duration::from_secs(60), vec!["a".into()]);
        let token = mint(&secret(), &claims).unwrap();
        assert_eq!(verifier().verify(&token).unwrap(), claims);
    }

    #[test]
    fn secrets_fail_closed() {
        assert_eq!(
            TokenSecret::from_optional(None).unwrap_err(),
            SecretError::Missing
        );
        assert_eq!(
            TokenSecret::from_optional(Some(String::new())).unwrap_err(),
            SecretError::Missing
        );
        assert_eq!(
            TokenSecret::new("short").unwrap_err(),
            SecretError::TooShort { len: 5 }
        );
        assert_eq!(format!("{:?}", secret()), "TokenSecret(<redacted>)");
    }

    #[test]
    fn expired_tokens_are_refused_without_leeway() {
        let mut claims = claims_for("u", Duration::ZERO, vec![]);
        claims.exp -= 1;
        let token = mint(&secret(), &claims).unwrap();
        assert_eq!(verifier().verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn a_wrong_secret_is_a_bad_signature() {
        let other = TokenSecret::new("another-secret-another-secret-xx").unwrap();
        let token = mint(&other, &claims_for("u", Duration::from_secs(60), vec![])).unwrap();
        assert_eq!(verifier().verify(&token), Err(AuthError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, future());
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&payload)
        );
        assert_eq!(verifier().verify(&token), Err(AuthError::WrongAlgorithm));
        // The same with a valid HS256 signature appended: still refused.
        let signed = mint(&secret(), &claims_for("u", Duration::from_secs(60), vec![])).unwrap();
        let signature = signed.rsplit('.').next().unwrap();
        assert_eq!(
            verifier().verify(&format!("{token}{signature}")),
            Err(AuthError::WrongAlgorithm)
        );
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_key() {
        let claims = claims_for("u", Duration::from_secs(60), vec![]);
        install_crypto_provider();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(verifier().verify(&token), Err(AuthError::WrongAlgorithm));
    }

    #[test]
    fn required_claims_are_enforced() {
        #[derive(Serialize)]
        struct NoExp {
            sub: String,
        }
        install_crypto_provider();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoExp { sub: "u".into() },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::MissingClaim("exp".into()))
        );

        #[derive(Serialize)]
        struct NoSub {
            exp: u64,
        }
        install_crypto_provider();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoSub { exp: future() },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::MissingClaim("sub".into()))
        );

        let empty = mint(&secret(), &claims_for("", Duration::from_secs(60), vec![])).unwrap();
        assert_eq!(
            verifier().verify(&empty),
            Err(AuthError::InvalidClaims("\"sub\" is empty".into()))
        );
    }

    #[test]
    fn wrongly_typed_claims_are_refused() {
        #[derive(Serialize)]
        struct BadGroups {
            sub: String,
            exp: u64,
            groups: String,
        }
        install_crypto_provider();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &BadGroups {
                sub: "u".into(),
                exp: future(),
                groups: "a,b".into(),
            },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            verifier().verify(&token),
            Err(AuthError::InvalidClaims(m)) if m.contains("invalid type: string")
        ));
    }

    #[test]
    fn group_claims_are_validated() {
        let mut claims = claims_for("u", Duration::from_secs(60), vec!["bad name".into()]);
        let token = mint(&secret(), &claims).unwrap();
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::InvalidClaims(
                "\"groups\": \"bad name\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /".into()
            ))
        );
        claims.groups = vec!["chat:1".into()];
        claims.subscribe = vec!["chat:*".into(), "news".into()];
        claims.publish = vec!["chat*".into()];
        let token = mint(&secret(), &claims).unwrap();
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::InvalidClaims(
                "\"publish\": \"*\" may only end a pattern, after a \":\" (\"prefix:*\") or stand alone (\"*\")".into()
            ))
        );
        claims.publish = vec!["chat:*".into()];
        let token = mint(&secret(), &claims).unwrap();
        assert_eq!(verifier().verify(&token), Ok(claims));
    }

    #[test]
    fn the_ring_provider_matches_reference_tags_and_refuses_other_algorithms_and_key_families() {
        // Reference tags from Python's hmac module for this input and key.
        let input = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrYXQifQ";
        let key = b"0123456789abcdef0123456789abcdef";
        install_crypto_provider();
        let sign = |alg| jsonwebtoken::crypto::sign(input, &EncodingKey::from_secret(key), alg);
        assert_eq!(
            sign(Algorithm::HS256).unwrap(),
            "9ni9snJISSv9KxvJeOh9TZ0rlI80lXPWZMOpGF5sZHQ"
        );
        assert_eq!(
            sign(Algorithm::HS512).unwrap(),
            "DynCuGr_4flAqc7fvyOLkj-9cyvJ59BVnLTK_dHPeFLsPkIRr_v4gGdr5EUqMW5GeiTatnB2Z9C4yKbuu9trQw"
        );
        let decoding = DecodingKey::from_secret(key);
        let verify = |tag: &str, alg| jsonwebtoken::crypto::verify(tag, input, &decoding, alg);
        assert!(
            verify(
                "9ni9snJISSv9KxvJeOh9TZ0rlI80lXPWZMOpGF5sZHQ",
                Algorithm::HS256
            )
            .unwrap()
        );
        assert!(
            !verify(
                "8ni9snJISSv9KxvJeOh9TZ0rlI80lXPWZMOpGF5sZHQ",
                Algorithm::HS256
            )
            .unwrap()
        );
        // Only HMAC signs; RS256, ES256 and EdDSA verify, each only with a
        // key of its own family (never an HMAC secret), and nothing else does.
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::PS256,
        ] {
            let refused = sign(alg).unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?}");
        }
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let refused = verify("AAAA", alg).unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::InvalidKeyFormat, "{alg:?}");
        }
        for alg in [Algorithm::PS256, Algorithm::ES384, Algorithm::RS512] {
            let refused = verify("AAAA", alg).unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?}");
        }
        // And an HMAC algorithm never takes a public key as its secret.
        let public =
            DecodingKey::from_ed_components("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        let refused =
            jsonwebtoken::crypto::verify("AAAA", input, &public, Algorithm::HS256).unwrap_err();
        assert_eq!(refused.kind(), &ErrorKind::InvalidKeyFormat);
    }

    fn keyed(kid: &str, fill: u8) -> TokenSecret {
        TokenSecret::with_kid(kid, vec![fill; 32]).unwrap()
    }

    fn rotating() -> TokenKeys {
        TokenKeys {
            current: keyed("2", b'b'),
            previous: Some(keyed("1", b'a')),
        }
    }

    fn token(header: &str, payload: &str, key: &[u8]) -> String {
        install_crypto_provider();
        let input = format!("{}.{}", b64(header), b64(payload));
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(key),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{signature}")
    }

    fn now() -> u64 {
        crate::clock::now_seconds() as u64
    }

    #[test]
    fn rotation_accepts_the_current_and_the_previous_key_by_kid() {
        let verifier = TokenVerifier::with_keys(&rotating(), &TokenPolicy::default());
        let claims = claims_for("u", Duration::from_secs(60), vec![]);
        let current = mint(&keyed("2", b'b'), &claims).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&current)
                .unwrap()
                .kid
                .as_deref(),
            Some("2")
        );
        assert_eq!(verifier.verify(&current), Ok(claims.clone()));
        let previous = mint(&keyed("1", b'a'), &claims).unwrap();
        assert_eq!(verifier.verify(&previous), Ok(claims.clone()));
        // An unknown kid, even signed with a real key, is refused.
        let unknown = mint(&keyed("3", b'b'), &claims).unwrap();
        assert_eq!(verifier.verify(&unknown), Err(AuthError::UnknownKey));
        // A kid names the key: the previous kid with the current key's signature fails.
        let swapped = mint(&keyed("1", b'b'), &claims).unwrap();
        assert_eq!(verifier.verify(&swapped), Err(AuthError::BadSignature));
        // Without a kid, only the current key.
        let bare = mint(&TokenSecret::new(vec![b'b'; 32]).unwrap(), &claims).unwrap();
        assert_eq!(verifier.verify(&bare), Ok(claims.clone()));
        let bare_old = mint(&TokenSecret::new(vec![b'a'; 32]).unwrap(), &claims).unwrap();
        assert_eq!(verifier.verify(&bare_old), Err(AuthError::BadSignature));
        // A kid-less key (TOKEN_SECRET) refuses tokens that carry a kid.
        assert_eq!(
            verifier_with(b'b').verify(&current),
            Err(AuthError::UnknownKey)
        );
    }

    fn verifier_with(fill: u8) -> TokenVerifier {
        TokenVerifier::new(&TokenSecret::new(vec![fill; 32]).unwrap())
    }

    #[test]
    fn stored_keys_are_read_from_json_without_quoting_them() {
        let keys = TokenKeys::from_json(
            r#"{"current":{"kid":"2","secret":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},"previous":{"kid":"1","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#,
        )
        .unwrap();
        assert_eq!(keys.current.kid(), Some("2"));
        assert_eq!(keys.previous.as_ref().and_then(TokenSecret::kid), Some("1"));
        let single =
            TokenKeys::from_json(r#"{"kid":"k1","secret":"cccccccccccccccccccccccccccccccc"}"#)
                .unwrap();
        assert_eq!(
            (single.current.kid(), single.previous.is_none()),
            (Some("k1"), true)
        );
        let shape = SecretError::Invalid(
            "expected {\"current\":{\"kid\":…,\"secret\":…},\"previous\":{…}} or {\"kid\":…,\"secret\":…}".into(),
        );
        for bad in [
            "dddddddddddddddddddddddddddddddddddd",
            r#"{"secret":"dddddddddddddddddddddddddddddddd"}"#,
            r#"{"current":{"secret":"dddddddddddddddddddddddddddddddd"}}"#,
        ] {
            let e = TokenKeys::from_json(bad).unwrap_err();
            assert_eq!(e, shape);
            assert!(!e.to_string().contains("dddd"));
        }
        assert_eq!(
            TokenKeys::from_json(r#"{"kid":"1","secret":"short"}"#).unwrap_err(),
            SecretError::TooShort { len: 5 }
        );
        assert_eq!(
            TokenKeys::from_json(
                r#"{"current":{"kid":"1","secret":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},"previous":{"kid":"1","secret":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#
            )
            .unwrap_err(),
            SecretError::Invalid("the current and previous keys have the same kid".into())
        );
        assert_eq!(
            TokenKeys::from_json(r#"{"kid":"a b","secret":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}"#)
                .unwrap_err(),
            SecretError::Invalid("a kid is 1 to 64 printable ASCII characters".into())
        );
        assert_eq!(
            format!("{:?}", keys.current),
            "TokenSecret(kid \"2\", <redacted>)"
        );
    }

    #[test]
    fn lifetimes_longer_than_the_maximum_are_refused() {
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let t = now();
        // exp in the year 9999, with and without iat.
        for payload in [
            r#"{"sub":"u","exp":253402300799}"#.to_owned(),
            format!(r#"{{"sub":"u","exp":253402300799,"iat":{t}}}"#),
            format!(r#"{{"sub":"u","exp":{},"iat":{t}}}"#, t + 24 * 3600 + 1),
        ] {
            assert_eq!(
                verifier().verify(&token(header, &payload, SECRET.as_bytes())),
                Err(AuthError::LifetimeTooLong { max_seconds: 86400 }),
                "{payload}"
            );
        }
        assert_eq!(
            AuthError::LifetimeTooLong { max_seconds: 86400 }.to_string(),
            "the token's lifetime exceeds the maximum of 86400 seconds"
        );
        // Exactly the maximum is accepted; a configured maximum applies.
        let at_max = format!(r#"{{"sub":"u","exp":{},"iat":{t}}}"#, t + 24 * 3600);
        assert!(
            verifier()
                .verify(&token(header, &at_max, SECRET.as_bytes()))
                .is_ok()
        );
        let policy = TokenPolicy {
            max_lifetime: Duration::from_secs(600),
            ..TokenPolicy::default()
        };
        let short = TokenVerifier::with_keys(&secret().into(), &policy);
        assert_eq!(
            short.verify(&token(header, &at_max, SECRET.as_bytes())),
            Err(AuthError::LifetimeTooLong { max_seconds: 600 })
        );
        // Issued long ago with a long lifetime: exp - iat counts, not exp - now.
        let old = format!(r#"{{"sub":"u","exp":{},"iat":{}}}"#, t + 60, t - 700);
        assert_eq!(
            short.verify(&token(header, &old, SECRET.as_bytes())),
            Err(AuthError::LifetimeTooLong { max_seconds: 600 })
        );
    }

    #[test]
    fn iat_in_the_future_is_refused_beyond_the_leeway() {
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let t = now();
        let future = format!(r#"{{"sub":"u","exp":{},"iat":{}}}"#, t + 3700, t + 3600);
        assert_eq!(
            verifier().verify(&token(header, &future, SECRET.as_bytes())),
            Err(AuthError::IssuedInFuture)
        );
        assert_eq!(
            AuthError::IssuedInFuture.to_string(),
            "the token was issued in the future (iat)"
        );
        let skewed = format!(r#"{{"sub":"u","exp":{},"iat":{}}}"#, t + 600, t + 30);
        assert!(
            verifier()
                .verify(&token(header, &skewed, SECRET.as_bytes()))
                .is_ok()
        );
    }

    #[test]
    fn a_crit_header_is_refused() {
        let payload = format!(r#"{{"sub":"u","exp":{}}}"#, future());
        for header in [
            r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","crit":[]}"#,
        ] {
            assert_eq!(
                verifier().verify(&token(header, &payload, SECRET.as_bytes())),
                Err(AuthError::UnsupportedCritical),
                "{header}"
            );
        }
        assert_eq!(
            AuthError::UnsupportedCritical.to_string(),
            "the token's header lists critical extensions (crit) this server does not understand"
        );
    }

    #[test]
    fn issuer_and_audience_are_required_when_configured() {
        let policy = TokenPolicy {
            issuer: Some("https://app.example".into()),
            audience: Some("switchboard".into()),
            ..TokenPolicy::default()
        };
        let strict = TokenVerifier::with_keys(&secret().into(), &policy);
        let claims = claims_for("u", Duration::from_secs(60), vec![]);
        // mint_for adds both; the default verifier ignores them.
        let good = mint_for(&secret(), &claims, &policy).unwrap();
        assert_eq!(strict.verify(&good), Ok(claims.clone()));
        assert_eq!(verifier().verify(&good), Ok(claims.clone()));
        let bare = mint(&secret(), &claims).unwrap();
        assert_eq!(
            strict.verify(&bare),
            Err(AuthError::MissingClaim("iss".into()))
        );
        let header = r#"{"alg":"HS256"}"#;
        let exp = future();
        let cases = [
            (
                format!(
                    r#"{{"sub":"u","exp":{exp},"iss":"https://evil.example","aud":"switchboard"}}"#
                ),
                AuthError::WrongIssuer,
            ),
            (
                format!(r#"{{"sub":"u","exp":{exp},"iss":7,"aud":"switchboard"}}"#),
                AuthError::WrongIssuer,
            ),
            (
                format!(r#"{{"sub":"u","exp":{exp},"iss":"https://app.example"}}"#),
                AuthError::MissingClaim("aud".into()),
            ),
            (
                format!(r#"{{"sub":"u","exp":{exp},"iss":"https://app.example","aud":"other"}}"#),
                AuthError::WrongAudience,
            ),
            (
                format!(r#"{{"sub":"u","exp":{exp},"iss":"https://app.example","aud":["a","b"]}}"#),
                AuthError::WrongAudience,
            ),
        ];
        for (payload, error) in cases {
            assert_eq!(
                strict.verify(&token(header, &payload, SECRET.as_bytes())),
                Err(error),
                "{payload}"
            );
        }
        let listed = format!(
            r#"{{"sub":"u","exp":{exp},"iss":"https://app.example","aud":["other","switchboard"]}}"#
        );
        assert!(
            strict
                .verify(&token(header, &listed, SECRET.as_bytes()))
                .is_ok()
        );
        assert_eq!(
            AuthError::WrongIssuer.to_string(),
            "the token's issuer (iss) is not accepted"
        );
        assert_eq!(
            AuthError::WrongAudience.to_string(),
            "the token's audience (aud) is not accepted"
        );
    }

    #[test]
    fn a_sub_with_invisible_characters_is_refused() {
        let claims = claims_for("alice\u{202E}", Duration::from_secs(60), vec![]);
        let token = mint(&secret(), &claims).unwrap();
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::InvalidClaims(
                "\"sub\" contains the invisible format character U+202E".into()
            ))
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(verifier().verify("not-a-jwt"), Err(AuthError::Malformed));
        assert_eq!(verifier().verify("a.b.c"), Err(AuthError::Malformed));
        assert_eq!(verifier().verify(""), Err(AuthError::Malformed));
    }

    #[test]
    fn token_comes_from_query_then_bearer_header() {
        let query: QueryMap = [("token".to_string(), "q".to_string())]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
            .into();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(token_from_request(&query, &headers), Ok("q"));
        assert_eq!(token_from_request(&QueryMap::default(), &headers), Ok("h"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  h2 "));
        assert_eq!(token_from_request(&QueryMap::default(), &headers), Ok("h2"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(
            token_from_request(&QueryMap::default(), &headers),
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            token_from_request(&QueryMap::default(), &HeaderMap::new()),
            Err(AuthError::MissingToken)
        );
    }
}
