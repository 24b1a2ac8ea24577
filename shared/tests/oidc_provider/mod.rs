//! A test OpenID Connect provider on 127.0.0.1: discovery at
//! `/.well-known/openid-configuration`, its key set at `/jwks`, keys made per
//! run (RSA 2048 with the `rsa` crate, P-256 and Ed25519 with ring; every
//! signature made with ring). It can be taken down (503) or made slow, it
//! counts the requests of each document, and it signs tokens with any header.
//! Shared by `shared/tests/oidc.rs` and the local stack's tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Every request answered 503.
    Down,
    /// Every request answered after this long (at most 30 s).
    Slow(Duration),
}

/// One signing key and its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: &'static str,
    pair: Pair,
    /// The public key as PEM (RSA) or raw bytes (EC point, Ed25519 x): what
    /// a key-confusion attacker would use as an HMAC secret.
    pub public_bytes: Vec<u8>,
    pub jwk: Value,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RSA key: its PKCS#8 DER, modulus, exponent and public PEM.
type RsaParts = (Vec<u8>, Vec<u8>, Vec<u8>, String);

/// RSA key generation is the slow part: each index made once per run, shared.
fn rsa_der(index: usize) -> RsaParts {
    static KEYS: OnceLock<Mutex<Vec<RsaParts>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(Vec::new()));
    let mut keys = keys.lock().unwrap();
    while keys.len() <= index {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = private.to_pkcs8_der().unwrap().as_bytes().to_vec();
        let public = private.to_public_key();
        let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
        keys.push((der, public.n().to_bytes_be(), public.e().to_bytes_be(), pem));
    }
    keys[index].clone()
}

impl SigningKey {
    /// An RS256 key (`index` picks one of the run's RSA keys).
    pub fn rsa(kid: &str, index: usize) -> Self {
        let (der, n, e, pem) = rsa_der(index);
        SigningKey {
            kid: kid.into(),
            alg: "RS256",
            pair: Pair::Rsa(RsaKeyPair::from_pkcs8(&der).unwrap()),
            public_bytes: pem.into_bytes(),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": b64(&n), "e": b64(&e)}),
        }
    }

    pub fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        SigningKey {
            kid: kid.into(),
            alg: "ES256",
            jwk: json!({"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
            public_bytes: point,
            pair: Pair::Ec(pair),
        }
    }

    pub fn ed(kid: &str) -> Self {
        let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        let x = pair.public_key().as_ref().to_vec();
        SigningKey {
            kid: kid.into(),
            alg: "EdDSA",
            jwk: json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(&x)}),
            public_bytes: x,
            pair: Pair::Ed(pair),
        }
    }

    /// A token of `claims` with this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token of `claims` under any `header`, signed with this key.
    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                    .unwrap();
                signature
            }
            Pair::Ec(pair) => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Pair::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// A token under `header`, signed HS256 with `secret`.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

#[derive(Default)]
struct State {
    keys: Vec<Value>,
    mode: Option<Mode>,
    discovery_requests: usize,
    jwks_requests: usize,
}

/// The provider: `issuer` is its base URL (`http://127.0.0.1:<port>`).
#[derive(Clone)]
pub struct Provider {
    pub issuer: String,
    state: Arc<Mutex<State>>,
}

impl Provider {
    /// A provider publishing the JWKs of `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
            ..State::default()
        }));
        let (served, base) = (state.clone(), issuer.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, served.clone(), base.clone()));
            }
        });
        Provider { issuer, state }
    }

    /// Publishes exactly `keys` from now on (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.state.lock().unwrap().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    /// Requests for the discovery document so far.
    pub fn discovery_requests(&self) -> usize {
        self.state.lock().unwrap().discovery_requests
    }

    /// Requests for the key set so far.
    pub fn jwks_requests(&self) -> usize {
        self.state.lock().unwrap().jwks_requests
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }
}

/// Answers one request per connection (bounded: 16 KiB of request head).
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, issuer: String) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if head.len() + n <= 16 * 1024 => head.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (mode, body) = {
        let mut state = state.lock().unwrap();
        let body = match path.as_str() {
            "/.well-known/openid-configuration" => {
                state.discovery_requests += 1;
                Some(
                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
                            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"]}),
                )
            }
            "/jwks" => {
                state.jwks_requests += 1;
                Some(json!({"keys": state.keys}))
            }
            _ => None,
        };
        (state.mode.unwrap_or(Mode::Up), body)
    };
    let (status, body) = match (mode, body) {
        (Mode::Down, _) => ("503 Service Unavailable", "{}".to_owned()),
        (_, None) => ("404 Not Found", "{}".to_owned()),
        (Mode::Slow(delay), Some(body)) => {
            tokio::time::sleep(delay.min(Duration::from_secs(30))).await;
            ("200 OK", body.to_string())
        }
        (Mode::Up, Some(body)) => ("200 OK", body.to_string()),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}
