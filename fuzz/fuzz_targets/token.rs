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
//! - a token that verifies names `alg: HS256`, has `exp` not before now and an
//!   `nbf` (if any) not after now, and claims that pass every documented limit,
//!   read from the token's own payload;
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
    AuthError, Claims, MAX_GROUPS, MAX_USER_ID_BYTES, TokenSecret, TokenVerifier, mint,
    token_from_request,
};
use switchboard::aws_lambda_events::http::header::AUTHORIZATION;
use switchboard::aws_lambda_events::http::{HeaderMap, HeaderValue};
use switchboard::aws_lambda_events::query_map::QueryMap;
use switchboard::groups::{Grants, validate_group};

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

static KEY: LazyLock<TokenSecret> = LazyLock::new(|| TokenSecret::new(SECRET.to_vec()).unwrap());
static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| TokenVerifier::new(&KEY));

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
    assert!(
        claims.exp >= before,
        "accepted an expired token: exp {} at {before}",
        claims.exp
    );
    assert!(!claims.sub.is_empty() && claims.sub.len() <= MAX_USER_ID_BYTES);
    assert!(!claims.sub.chars().any(char::is_control));
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
