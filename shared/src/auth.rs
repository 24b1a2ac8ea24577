//! Client authentication: HS256 JSON Web Tokens.
//!
//! The algorithm is pinned to HS256, `exp` and `sub` are required, and expiry is
//! enforced with no leeway. Everything a connection may do comes from these
//! claims, never from what the client says later.

use std::time::Duration;

use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::http::header::AUTHORIZATION;
use aws_lambda_events::query_map::QueryMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::validate::{self, FieldError};
pub use crate::validate::{MAX_GROUPS, MAX_USER_ID_BYTES};

/// Installs [`HMAC_ONLY`] as jsonwebtoken's crypto provider for this process
/// (idempotent). [`TokenVerifier::new`] and [`mint`] call it; code that uses
/// `jsonwebtoken` directly calls it first.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: ours, since the crate is built
    // without its own (`rust_crypto`/`aws_lc_rs` off), and nothing else installs one.
    let _ = HMAC_ONLY.install_default();
}

/// jsonwebtoken's crypto, HMAC only, on ring (already linked for TLS). The
/// crate's `rust_crypto` provider would also link RSA, ECDSA and Ed25519 code
/// that an HS256-pinned verifier never runs: about 100 KB in each bootstrap
/// that verifies tokens (see the size table in the root Cargo.toml).
/// Any other algorithm is refused with `InvalidAlgorithm`; JWK helpers are not
/// provided (Switchboard takes no JWKs).
static HMAC_ONLY: jsonwebtoken::crypto::CryptoProvider = jsonwebtoken::crypto::CryptoProvider {
    signer_factory: hmac::signer,
    verifier_factory: hmac::verifier,
    key_utils: jsonwebtoken::crypto::KeyUtils::new_unimplemented(),
};

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
}

/// Why a token secret cannot be used. Any of these fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("TOKEN_SECRET is not set; every connection is refused")]
    Missing,
    #[error("TOKEN_SECRET is {len} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort { len: usize },
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
}

/// A validated HS256 secret.
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl TokenSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret = secret.into();
        match secret.len() {
            0 => Err(SecretError::Missing),
            len if len < MIN_SECRET_BYTES => Err(SecretError::TooShort { len }),
            _ => Ok(TokenSecret(secret)),
        }
    }

    /// Reads a secret from an optional value, as found in the environment.
    pub fn from_optional(value: Option<String>) -> Result<Self, SecretError> {
        Self::new(value.unwrap_or_default())
    }
}

/// Verifies tokens against one secret.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier(HS256)")
    }
}

impl TokenVerifier {
    pub fn new(secret: &TokenSecret) -> Self {
        install_crypto_provider();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        TokenVerifier {
            key: DecodingKey::from_secret(&secret.0),
            validation,
        }
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
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.key, &self.validation).map_err(
            |e| match e.into_kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::WrongAlgorithm
                }
                ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
                ErrorKind::InvalidClaimFormat(claim) => {
                    AuthError::InvalidClaims(format!("\"{claim}\" has the wrong type"))
                }
                ErrorKind::Json(e) => AuthError::InvalidClaims(e.to_string()),
                _ => AuthError::Malformed,
            },
        )?;
        let wire = data.claims;
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
        };
        check_claims(&claims)?;
        Ok(claims)
    }
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
}

/// The claims pass the rules every surface applies to these fields (see [`validate`]).
fn check_claims(claims: &Claims) -> Result<(), AuthError> {
    validate::user_id("sub", &claims.sub).map_err(invalid_claim)?;
    validate::group_list("groups", &claims.groups).map_err(invalid_claim)?;
    validate::pattern_list("subscribe", &claims.subscribe).map_err(invalid_claim)?;
    validate::pattern_list("publish", &claims.publish).map_err(invalid_claim)
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

/// Signs claims into an HS256 token (used by the local stack and by tests).
pub fn mint(secret: &TokenSecret, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    install_crypto_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&secret.0),
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
    fn the_hmac_provider_matches_reference_tags_and_refuses_other_algorithms() {
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
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::PS256,
        ] {
            let refused = sign(alg).unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?}");
            let refused = verify("AAAA", alg).unwrap_err();
            assert_eq!(refused.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?}");
        }
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
