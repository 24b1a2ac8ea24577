//! Client tokens at `$connect`: `TokenVerifier::verify` (HS256 pinned, `exp`
//! and `sub` required, no leeway) and `token_from_request`.
//!
//! The first byte picks a mode:
//! - even (seeds use `0`): the rest is the token text exactly as a client sends
//!   it, also tried as an `Authorization` header value;
//! - odd (seeds use `1`): the rest is `<header JSON>\n<claims JSON>`, which the
//!   target encodes and signs with the verifier's own secret, so the fuzzer
//!   reaches the claim checks behind the signature (random text never would).
//!
//! Properties checked, beyond "does not panic":
//! - a token that verifies names `alg: HS256`, has no `crit` header, has `exp`
//!   not before now and an `nbf` (if any) not after now, a lifetime (`exp - iat`,
//!   or `exp - now`) within the default maximum, an `iat` (if any) not beyond the
//!   leeway, and claims that pass every documented limit (no control or format
//!   characters in `sub`), read from the token's own payload;
//! - a verifier holding a current (`kid` "2", the signing secret) and a previous
//!   key (`kid` "1", another secret) accepts only what the single-key verifier
//!   accepts, and never a `kid` other than "2" (the signature is the current key's);
//! - with a required `iss`/`aud`, an accepted token carries exactly those;
//! - the same token never verifies under another key, nor with its signature altered;
//! - claims that verified, signed again with `mint`, verify to the same claims;
//! - `token_from_request` yields a non-empty trimmed token from a Bearer header only.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use switchboard::auth::{
    AuthError, Claims, DEFAULT_MAX_LIFETIME, IAT_LEEWAY, MAX_GROUPS, MAX_USER_ID_BYTES, TokenKeys,
    TokenPolicy, TokenSecret, TokenVerifier, mint, token_from_request,
};
use switchboard::aws_lambda_events::http::header::AUTHORIZATION;
use switchboard::aws_lambda_events::http::{HeaderMap, HeaderValue};
use switchboard::aws_lambda_events::query_map::QueryMap;
use switchboard::groups::{Grants, validate_group};

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

static KEY: LazyLock<TokenSecret> = LazyLock::new(|| TokenSecret::new(SECRET.to_vec()).unwrap());
static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| TokenVerifier::new(&KEY));
/// Current kid "2" (the signing secret), previous kid "1" (another).
static ROTATING: LazyLock<TokenVerifier> = LazyLock::new(|| {
    let keys = TokenKeys {
        current: TokenSecret::with_kid("2", SECRET.to_vec()).unwrap(),
        previous: Some(TokenSecret::with_kid("1", vec![b'p'; 32]).unwrap()),
    };
    TokenVerifier::with_keys(&keys, &TokenPolicy::default())
});
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "switchboard";
static STRICT: LazyLock<TokenVerifier> = LazyLock::new(|| {
    let policy = TokenPolicy {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..TokenPolicy::default()
    };
    TokenVerifier::with_keys(&KEY.clone().into(), &policy)
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Before `jsonwebtoken::crypto::sign` below: the verifier installs it too.
    LazyLock::force(&VERIFIER);
    if mode % 2 == 0 {
        raw(rest);
    } else {
        signed(mode, rest);
    }
});

/// The token as a client sends it.
fn raw(rest: &[u8]) {
    if let Ok(token) = std::str::from_utf8(rest) {
        let _ = verify_checked(&VERIFIER, token);
    }
    let Ok(value) = HeaderValue::from_bytes(rest) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    match token_from_request(&QueryMap::default(), &headers) {
        Ok(token) => {
            assert!(!token.is_empty() && token == token.trim(), "{token:?}");
            let header = headers[AUTHORIZATION].to_str().unwrap().trim();
            assert!(
                header
                    .get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
            );
            assert!(header.ends_with(token));
        }
        Err(e) => assert_eq!(e, AuthError::NotBearer),
    }
}

/// `<header JSON>\n<claims JSON>`, signed with the verifier's secret.
fn signed(mode: u8, rest: &[u8]) {
    let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b""[..]),
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("HMAC signing cannot fail");
    let token = format!("{signing_input}.{signature}");
    let result = verify_checked(&VERIFIER, &token);

    // Rotation: the same key under kid "2" (or none) and nothing else.
    let rotating = verify_checked(&ROTATING, &token);
    if rotating.is_ok() {
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid;
        assert!(
            kid.is_none() || kid.as_deref() == Some("2"),
            "accepted kid {kid:?} for the current key's signature"
        );
        // Kid-less, the single-key verifier sees the same key and policy
        // (only a second's tick between the two calls may differ).
        if kid.is_none() {
            assert!(
                matches!(
                    result,
                    Ok(_)
                        | Err(AuthError::Expired
                            | AuthError::NotYetValid
                            | AuthError::IssuedInFuture
                            | AuthError::LifetimeTooLong { .. })
                ),
                "{result:?}"
            );
        }
    }

    // A required issuer and audience are the token's own.
    if verify_checked(&STRICT, &token).is_ok() {
        #[derive(serde::Deserialize)]
        struct IssAud {
            iss: String,
            aud: serde_json::Value,
        }
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let read: IssAud = serde_json::from_slice(&payload).expect("accepted: iss and aud");
        assert_eq!(read.iss, ISSUER);
        assert!(
            read.aud == AUDIENCE
                || read
                    .aud
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == AUDIENCE)),
            "accepted aud {}",
            read.aud
        );
    }

    // Another key never accepts: the secret with one bit flipped (which one is
    // up to the input), and a 32-byte key cut from the input when it differs.
    let mut other = *SECRET;
    other[rest.len() % other.len()] ^= 1 << ((mode >> 1) & 7);
    let mut keys = vec![other.to_vec()];
    if claims.len() >= 32 && claims[..32] != SECRET[..] {
        keys.push(claims[..32].to_vec());
    }
    for key in keys {
        let verifier = TokenVerifier::new(&TokenSecret::new(key).unwrap());
        let other = verify_checked(&verifier, &token);
        assert!(
            other.is_err(),
            "a token signed with another key verified: {token}"
        );
    }

    // An altered signature never verifies.
    let (body, signature) = token.rsplit_once('.').unwrap();
    let mut altered = signature.as_bytes().to_vec();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    let altered = format!("{body}.{}", String::from_utf8(altered).unwrap());
    let result_altered = verify_checked(&VERIFIER, &altered);
    assert!(
        result_altered.is_err(),
        "an altered signature verified: {altered}"
    );

    // Claims that verified, minted again, verify to the same claims.
    if let Ok(claims) = result {
        let again = mint(&KEY, &claims).expect("verified claims can be signed");
        assert_eq!(verify_checked(&VERIFIER, &again), Ok(claims));
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Verifies `token` and checks what an accepted token must be.
fn verify_checked(verifier: &TokenVerifier, token: &str) -> Result<Claims, AuthError> {
    let before = now();
    let result = verifier.verify(token);
    let after = now();
    if let Ok(claims) = &result {
        check_accepted(token, claims, before, after);
    }
    result
}

/// `before` and `after` bracket the clock `verify` read.
fn check_accepted(token: &str, claims: &Claims, before: u64, after: u64) {
    let header = jsonwebtoken::decode_header(token).expect("an accepted token has a header");
    assert_eq!(
        header.alg,
        Algorithm::HS256,
        "accepted a token that is not HS256"
    );
    assert!(header.crit.is_none(), "accepted a crit header");
    assert!(
        claims.exp >= before,
        "accepted an expired token: exp {} at {before}",
        claims.exp
    );
    assert!(!claims.sub.is_empty() && claims.sub.len() <= MAX_USER_ID_BYTES);
    assert!(!claims.sub.chars().any(char::is_control));
    assert!(
        !claims.sub.chars().any(switchboard::validate::is_format),
        "accepted a sub with a format character: {:?}",
        claims.sub
    );
    let lifetime = claims.exp.saturating_sub(claims.iat.unwrap_or(after));
    assert!(
        lifetime <= DEFAULT_MAX_LIFETIME.as_secs(),
        "accepted a lifetime of {lifetime} s"
    );
    if let Some(iat) = claims.iat {
        assert!(
            iat <= after + IAT_LEEWAY.as_secs(),
            "accepted iat {iat} at {after}"
        );
    }
    assert!(claims.groups.len() <= MAX_GROUPS);
    for group in &claims.groups {
        validate_group(group).unwrap_or_else(|e| panic!("accepted group {group:?}: {e}"));
    }
    for patterns in [&claims.subscribe, &claims.publish] {
        assert!(patterns.len() <= MAX_GROUPS);
        Grants::parse(patterns).expect("accepted patterns parse");
    }

    // The claims are the payload's own. Read it as jsonwebtoken does, through
    // serde: fields the claims do not name are skipped without checking that
    // their strings are UTF-8, so a `Value` of the payload may not exist.
    #[derive(serde::Deserialize)]
    struct SubExp {
        sub: String,
        exp: u64,
    }
    #[derive(serde::Deserialize)]
    struct Nbf {
        nbf: u64,
    }
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    let read: SubExp = serde_json::from_slice(&payload).expect("the payload has sub and exp");
    assert_eq!(
        (read.sub.as_str(), read.exp),
        (claims.sub.as_str(), claims.exp)
    );
    if let Ok(Nbf { nbf }) = serde_json::from_slice(&payload) {
        assert!(
            nbf <= after,
            "accepted a token not valid before {nbf} at {after}"
        );
    }
}
