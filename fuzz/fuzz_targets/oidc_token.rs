//! OIDC issuers' tokens at `$connect`: `TokenVerifier::authenticate` with an
//! issuer (`switchboard::oidc`) whose key set is an Ed25519 key (`kid` "ed")
//! and a P-256 key (`kid` "ec") made per run, served from memory, and the
//! JWKS reader behind it.
//!
//! The first byte picks a mode:
//! - 0 mod 3 (seeds use `0`): the rest is the token text as a client sends it;
//! - 1 mod 3 (seeds use `1`): the rest is `<header JSON>\n<claims JSON>`, which
//!   the target encodes and signs with the Ed25519 key, so the fuzzer reaches
//!   the claim checks behind the signature (`$now` and `$later` in the claims
//!   become the current time and five minutes on, so seeds stay valid);
//! - 2 mod 3 (seeds use `2`): the rest is the JWKS document a fresh issuer
//!   fetches before it checks a token signed by the Ed25519 key.
//!
//! Properties checked, beyond "does not panic":
//! - a token of the issuer that verifies names `alg` EdDSA with `kid` "ed" or
//!   ES256 with `kid` "ec" (never `none`, an HMAC or another key's algorithm),
//!   has no `crit`, an `exp` not before now and an `nbf` (if any) not after it,
//!   `aud` containing the audience (or, without `aud`, `client_id` equal to
//!   it), and a `sub` that passes the user-id rules;
//! - the same token with its signature altered never verifies;
//! - a JWKS document that verifies the token holds the Ed25519 key's `x`.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::Value;
use switchboard::auth::{AuthError, Claims, TokenIssuers, TokenSecret, TokenVerifier};
use switchboard::oidc::{Fetch, IssuerSettings, Oidc, OidcSettings};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "app";

/// Answers every GET with `document` (the JWKS URL is given, so no discovery).
struct Served(Vec<u8>);

#[async_trait::async_trait]
impl Fetch for Served {
    async fn get(&self, _: &str, _: Duration) -> Result<Vec<u8>, String> {
        Ok(self.0.clone())
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
});

static ED: LazyLock<Ed25519KeyPair> = LazyLock::new(|| {
    let der = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap()
});

static ED_X: LazyLock<String> = LazyLock::new(|| b64(ED.public_key().as_ref()));

static JWKS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
    let point = ec.public_key().as_ref();
    serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": *ED_X},
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
    ]})
    .to_string()
    .into_bytes()
});

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn verifier(document: Vec<u8>) -> TokenVerifier {
    let issuer = IssuerSettings::new(ISSUER, vec![AUDIENCE.into()])
        .unwrap()
        .with_jwks_url("https://idp.test/jwks")
        .unwrap();
    let settings = OidcSettings::new(vec![issuer]).unwrap();
    let oidc: Arc<dyn TokenIssuers> = Arc::new(Oidc::new(&settings, Arc::new(Served(document))));
    TokenVerifier::new(&TokenSecret::new(vec![b's'; 32]).unwrap()).with_issuers(Some(oidc))
}

static VERIFIER: LazyLock<TokenVerifier> = LazyLock::new(|| verifier(JWKS.clone()));

fn authenticate(verifier: &TokenVerifier, token: &str) -> Result<Claims, AuthError> {
    RUNTIME.block_on(verifier.authenticate(token))
}

fn sign(header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = ED.sign(input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                checked(&VERIFIER, token);
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let Some((header, claims)) = text.split_once('\n') else {
                return;
            };
            let now = switchboard::clock::now_seconds();
            let claims = claims
                .replace("$now", &now.to_string())
                .replace("$later", &(now + 300).to_string());
            checked(&VERIFIER, &sign(header, &claims));
        }
        _ => {
            let now = switchboard::clock::now_seconds();
            let token = sign(
                r#"{"alg":"EdDSA","kid":"ed"}"#,
                &format!(
                    r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"u","exp":{}}}"#,
                    now + 300
                ),
            );
            let verifier = verifier(rest.to_vec());
            if authenticate(&verifier, &token).is_ok() {
                let document = String::from_utf8_lossy(rest);
                assert!(
                    document.contains(ED_X.as_str()),
                    "a key set without the signing key verified its token"
                );
            }
        }
    }
});

/// Verifies `token`; when it is the issuer's and verifies, checks it obeys every rule.
fn checked(verifier: &TokenVerifier, token: &str) {
    let Ok(claims) = authenticate(verifier, token) else {
        return;
    };
    let Some(iss) = switchboard::auth::unverified_issuer(token) else {
        return;
    };
    if iss != ISSUER {
        return; // the HS256 path, fuzzed by the `token` target
    }
    let mut parts = token.split('.');
    let decode = |part: Option<&str>| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part.unwrap()).unwrap()).unwrap()
    };
    let header = decode(parts.next());
    let payload = decode(parts.next());
    let signature = parts.next().unwrap();
    match (header["alg"].as_str(), header["kid"].as_str()) {
        (Some("EdDSA"), Some("ed")) | (Some("ES256"), Some("ec")) => {}
        other => panic!("accepted alg/kid {other:?}"),
    }
    assert!(header.get("crit").is_none(), "accepted a crit header");
    let now = switchboard::clock::now_seconds();
    assert!(claims.exp as i64 >= now, "accepted an expired token");
    if let Some(nbf) = payload.get("nbf") {
        assert!(
            nbf.as_i64().is_none_or(|nbf| nbf <= now),
            "accepted a token before nbf"
        );
    }
    let audience_ok = match payload.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(auds)) => auds.iter().any(|a| a == AUDIENCE),
        Some(_) => false,
        None => payload["client_id"] == AUDIENCE,
    };
    assert!(audience_ok, "accepted a token for another audience");
    assert!(switchboard::validate::user_id("sub", &claims.sub).is_ok());
    // The signature is what made it: altered, it never verifies.
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let altered = format!(
        "{}.{}.{flipped}{}",
        token.split('.').next().unwrap(),
        token.split('.').nth(1).unwrap(),
        signature.get(1..).unwrap_or("")
    );
    assert!(
        authenticate(verifier, &altered).is_err(),
        "an altered signature verified"
    );
}
