//! OIDC issuers at `$connect`, through the connect handler against the test
//! provider on 127.0.0.1 (`oidc_provider`): RS256, ES256 and EdDSA tokens
//! accepted; every refusal with its exact answer and nothing written; the
//! key set's cache (unknown `kid`s, rotation, stale-if-error); a provider
//! that is down or slow refused within the bound; Cognito's id and access
//! tokens.

mod common;
mod oidc_provider;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Harness, body_text, connect_event, token};
use oidc_provider::{Mode, Provider, SigningKey, hs256};
use serde_json::{Value, json};
use switchboard::auth::{TokenIssuers, TokenSecret, TokenVerifier};
use switchboard::handlers::connect::handle_connect;
use switchboard::metrics::{Invocation, Metric, MetricsSink, measure};
use switchboard::oidc::{IssuerSettings, Oidc, OidcSettings};

const AUDIENCE: &str = "app-client";

fn now() -> u64 {
    switchboard::clock::now_seconds() as u64
}

/// Claims a provider would issue for `user`, valid for 5 minutes.
fn claims(provider: &Provider, user: &str) -> Value {
    json!({"iss": provider.issuer, "aud": AUDIENCE, "sub": user,
           "iat": now(), "exp": now() + 300})
}

fn settings(provider: &Provider) -> OidcSettings {
    OidcSettings::new(vec![
        IssuerSettings::new(&provider.issuer, vec![AUDIENCE.into()]).unwrap(),
    ])
    .unwrap()
}

fn oidc(settings: &OidcSettings) -> Arc<Oidc> {
    let fetcher = switchboard::aws::fetcher(settings.fetch_timeout, None);
    Arc::new(Oidc::new(settings, Arc::new(fetcher)))
}

/// The HS256 verifier of the other tests, with `oidc`'s issuers beside it.
fn verifier(oidc: &Arc<Oidc>) -> Result<TokenVerifier, switchboard::auth::SecretError> {
    let issuers: Arc<dyn TokenIssuers> = oidc.clone();
    Ok(TokenVerifier::new(&TokenSecret::new(common::SECRET).unwrap()).with_issuers(Some(issuers)))
}

async fn accepted(
    h: &Harness,
    oidc: &Arc<Oidc>,
    id: &str,
    token: &str,
) -> switchboard::ports::ConnectionRecord {
    use switchboard::ports::ConnectionStore;
    let response = handle_connect(
        &h.services,
        &verifier(oidc),
        &connect_event(id, Some(token)),
    )
    .await;
    assert_eq!(response.status_code, 200, "{:?}", body_text(&response));
    h.store
        .get_connection(id)
        .await
        .unwrap()
        .expect("the record is stored")
}

/// The handshake is refused with `status` and exactly `message`, and nothing is written.
async fn refused(h: &Harness, oidc: &Arc<Oidc>, token: &str, status: i64, message: &str) {
    let response = handle_connect(
        &h.services,
        &verifier(oidc),
        &connect_event("c-x", Some(token)),
    )
    .await;
    assert_eq!(
        (response.status_code, body_text(&response)),
        (
            status,
            Some(
                json!({ "message": format!("unauthorized: {message}") })
                    .to_string()
                    .as_str()
            )
        ),
    );
    assert!(h.store.is_empty(), "a refused connection writes no record");
    assert!(
        h.memberships.all().is_empty(),
        "a refused connection joins nothing"
    );
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_connect() {
    let (rsa, ec, ed) = (
        SigningKey::rsa("rsa-1", 0),
        SigningKey::ec("ec-1"),
        SigningKey::ed("ed-1"),
    );
    let provider = Provider::start(&[&rsa, &ec, &ed]).await;
    let oidc = oidc(&settings(&provider));
    let h = Harness::new();
    for (i, key) in [&rsa, &ec, &ed].into_iter().enumerate() {
        let user = format!("user-{}", key.alg);
        let record = accepted(
            &h,
            &oidc,
            &format!("c{i}"),
            &key.sign(&claims(&provider, &user)),
        )
        .await;
        assert_eq!(record.user_id, user);
    }
    // One discovery and one key set served all three (cached).
    assert_eq!(
        (provider.discovery_requests(), provider.jwks_requests()),
        (1, 1)
    );
    // Switchboard's own HS256 tokens still connect beside them.
    let record = accepted(&h, &oidc, "c-own", &token("own-user")).await;
    assert_eq!(record.user_id, "own-user");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason_and_nothing_written() {
    let (rsa, ec, ed) = (
        SigningKey::rsa("rsa-1", 0),
        SigningKey::ec("ec-1"),
        SigningKey::ed("ed-1"),
    );
    let provider = Provider::start(&[&rsa, &ec, &ed]).await;
    let oidc = oidc(&settings(&provider));
    let h = Harness::new();
    let good = claims(&provider, "mallory");
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };

    // Another issuer's token is not this provider's: it goes to the HS256 keys.
    let other = with(json!({"iss": "https://evil.example"}));
    refused(
        &h,
        &oidc,
        &rsa.sign(&other),
        401,
        "the token's algorithm is not HS256",
    )
    .await;
    let slash = with(json!({"iss": format!("{}/", provider.issuer)}));
    refused(
        &h,
        &oidc,
        &rsa.sign(&slash),
        401,
        "the token's algorithm is not HS256",
    )
    .await;

    refused(
        &h,
        &oidc,
        &ec.sign(&with(json!({"aud": "other-app"}))),
        401,
        "the token's audience (aud) is not accepted",
    )
    .await;
    refused(
        &h,
        &oidc,
        &ec.sign(&with(json!({"aud": ["a", "b"]}))),
        401,
        "the token's audience (aud) is not accepted",
    )
    .await;
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    refused(
        &h,
        &oidc,
        &ec.sign(&no_aud),
        401,
        "the token lacks the required claim \"aud\"",
    )
    .await;

    let expired = with(json!({"iat": now() - 600, "exp": now() - 10}));
    for key in [&rsa, &ec, &ed] {
        refused(&h, &oidc, &key.sign(&expired), 401, "the token has expired").await;
    }
    let early = with(json!({"nbf": now() + 120}));
    refused(
        &h,
        &oidc,
        &ed.sign(&early),
        401,
        "the token is not valid yet",
    )
    .await;
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(
        &h,
        &oidc,
        &rsa.sign(&no_exp),
        401,
        "the token lacks the required claim \"exp\"",
    )
    .await;

    // Key confusion: HS256 with each public key as the HMAC secret, by kid and without.
    for key in [&rsa, &ec, &ed] {
        for header in [
            json!({"alg": "HS256", "kid": key.kid}),
            json!({"alg": "HS256"}),
        ] {
            let forged = hs256(&header, &good, &key.public_bytes);
            refused(
                &h,
                &oidc,
                &forged,
                401,
                "the token's algorithm (HS256) is not accepted for its issuer's key",
            )
            .await;
        }
    }
    // alg none, with and without a signature.
    let unsigned = rsa.sign_with(&json!({"alg": "none", "kid": "rsa-1"}), &good);
    let (head_and_body, _) = unsigned.rsplit_once('.').unwrap();
    for token in [format!("{head_and_body}."), unsigned.clone()] {
        refused(
            &h,
            &oidc,
            &token,
            401,
            "the token's algorithm (none) is not accepted for its issuer's key",
        )
        .await;
    }
    // Another key's algorithm under its kid (RS256 claimed, EC key named).
    let swapped = rsa.sign_with(&json!({"alg": "RS256", "kid": "ec-1"}), &good);
    refused(
        &h,
        &oidc,
        &swapped,
        401,
        "the token's algorithm (RS256) is not accepted for its issuer's key",
    )
    .await;
    // A token signed by one key but naming another of the same type.
    let rsa2 = SigningKey::rsa("rsa-1", 1);
    refused(
        &h,
        &oidc,
        &rsa2.sign(&good),
        401,
        "the token's signature is invalid",
    )
    .await;
    // No kid.
    let no_kid = ec.sign_with(&json!({"alg": "ES256"}), &good);
    refused(
        &h,
        &oidc,
        &no_kid,
        401,
        "the token has no key id (kid); its issuer's keys are chosen by kid",
    )
    .await;
    // Claims held to Switchboard's rules.
    let bad_user = with(json!({"sub": "alice\u{202E}"}));
    refused(
        &h,
        &oidc,
        &ed.sign(&bad_user),
        401,
        "the token's claims are invalid: \"sub\" contains the invisible format character U+202E",
    )
    .await;
    let long = with(json!({"iat": now(), "exp": now() + 2 * 86400}));
    refused(
        &h,
        &oidc,
        &ed.sign(&long),
        401,
        "the token's lifetime exceeds the maximum of 86400 seconds",
    )
    .await;
}

#[tokio::test]
async fn unknown_kids_fetch_once_then_are_refused_from_the_cache() {
    let rsa = SigningKey::rsa("rsa-1", 0);
    let provider = Provider::start(&[&rsa]).await;
    let oidc = oidc(&settings(&provider));
    let h = Harness::new();
    let good = claims(&provider, "u");
    // The first token's kid is unknown: the set is fetched (it was empty) and lacks it.
    let stranger = SigningKey::ec("made-up-0");
    refused(
        &h,
        &oidc,
        &stranger.sign(&good),
        401,
        "the token's key id (kid) is not one of this server's keys",
    )
    .await;
    assert_eq!(provider.jwks_requests(), 1);
    // A flood of made-up kids within the minute: no more fetches.
    for i in 1..=25 {
        let header = json!({"alg": "RS256", "kid": format!("made-up-{i}")});
        refused(
            &h,
            &oidc,
            &rsa.sign_with(&header, &good),
            401,
            "the token's key id (kid) is not one of this server's keys",
        )
        .await;
    }
    assert_eq!(
        (provider.discovery_requests(), provider.jwks_requests()),
        (1, 1)
    );
    // The known key still verifies from the cache.
    accepted(&h, &oidc, "c1", &rsa.sign(&good)).await;
    assert_eq!(provider.jwks_requests(), 1);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_once_the_set_is_fetched_again() {
    let (old, new) = (SigningKey::ec("2024"), SigningKey::ed("2025"));
    let provider = Provider::start(&[&old]).await;
    let mut settings = settings(&provider);
    settings.unknown_kid_interval = Duration::from_millis(300);
    let oidc = oidc(&settings);
    let h = Harness::new();
    let good = claims(&provider, "u");
    accepted(&h, &oidc, "c1", &old.sign(&good)).await;
    provider.publish(&[&new]);
    // Within the interval the new kid is not fetched for.
    refused(
        &Harness::new(),
        &oidc,
        &new.sign(&good),
        401,
        "the token's key id (kid) is not one of this server's keys",
    )
    .await;
    assert_eq!(provider.jwks_requests(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    accepted(&h, &oidc, "c2", &new.sign(&good)).await;
    assert_eq!(provider.jwks_requests(), 2);
    // The retired key is gone with the old set.
    refused(
        &Harness::new(),
        &oidc,
        &old.sign(&good),
        401,
        "the token's key id (kid) is not one of this server's keys",
    )
    .await;
    // Discovery is not repeated for a rotation.
    assert_eq!(provider.discovery_requests(), 1);
}

/// Keeps each invocation's metric names.
#[derive(Default)]
struct Names(Mutex<Vec<Metric>>);

impl MetricsSink for Names {
    fn export(&self, _: &'static str, invocation: &Invocation) {
        let mut names = self.0.lock().unwrap();
        names.extend(invocation.series.iter().map(|(s, _)| s.metric));
    }
}

const UNAVAILABLE: &str = "the token issuer's keys are unavailable; try again later";

#[tokio::test]
async fn a_provider_that_is_down_or_slow_is_refused_within_the_bound() {
    let rsa = SigningKey::rsa("rsa-1", 0);
    for mode in [Mode::Down, Mode::Slow(Duration::from_secs(20))] {
        let provider = Provider::start(&[&rsa]).await;
        provider.set_mode(mode);
        let mut settings = settings(&provider);
        settings.fetch_timeout = Duration::from_millis(500);
        let oidc = oidc(&settings);
        let h = Harness::new();
        let sink = Names::default();
        let started = Instant::now();
        let token = rsa.sign(&claims(&provider, "u"));
        let response = measure(
            &sink,
            "connect",
            handle_connect(
                &h.services,
                &verifier(&oidc),
                &connect_event("c1", Some(&token)),
            ),
        )
        .await;
        let took = started.elapsed();
        assert_eq!(
            (response.status_code, body_text(&response)),
            (
                503,
                Some(
                    json!({"message": format!("unauthorized: {UNAVAILABLE}")})
                        .to_string()
                        .as_str()
                )
            ),
            "{mode:?}"
        );
        // The bound is the fetch timeout (500 ms), with room for a loaded machine.
        assert!(took < Duration::from_secs(3), "{mode:?} took {took:?}");
        assert!(h.store.is_empty() && h.memberships.all().is_empty());
        let names = sink.0.lock().unwrap().clone();
        assert!(
            names.contains(&Metric::JwksFetchFailures),
            "{mode:?}: {names:?}"
        );
        assert!(names.contains(&Metric::ConnectsRejected));
        // Within the retry interval the next token is refused at once, no new fetch.
        let fetches = provider.discovery_requests() + provider.jwks_requests();
        let started = Instant::now();
        refused(&h, &oidc, &token, 503, UNAVAILABLE).await;
        assert!(started.elapsed() < Duration::from_millis(400));
        assert_eq!(
            provider.discovery_requests() + provider.jwks_requests(),
            fetches
        );
    }
}

/// A fetch never outlives the invocation: with 1.6 s of it left, a provider
/// slower than the fetch timeout (2 s) is given up on after 0.6 s, leaving
/// `FETCH_RESERVE` to answer 503 before Lambda would end the invocation.
#[tokio::test]
async fn a_key_fetch_ends_before_the_invocation_does() {
    let rsa = SigningKey::rsa("rsa-1", 0);
    let provider = Provider::start(&[&rsa]).await;
    provider.set_mode(Mode::Slow(Duration::from_secs(20)));
    let settings = settings(&provider);
    assert_eq!(settings.fetch_timeout, Duration::from_secs(2));
    let oidc = oidc(&settings);
    let h = Harness::new();
    let token = rsa.sign(&claims(&provider, "u"));
    let started = Instant::now();
    let deadline = started + Duration::from_millis(1_600);
    let response = switchboard::retry::with_deadline(
        deadline.into(),
        handle_connect(
            &h.services,
            &verifier(&oidc),
            &connect_event("c1", Some(&token)),
        ),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(response.status_code, 503);
    assert!(
        took < Duration::from_millis(1_500),
        "the fetch took {took:?} of an invocation with 1.6 s left"
    );
    assert!(h.store.is_empty() && h.memberships.all().is_empty());
}

#[tokio::test]
async fn cached_keys_keep_verifying_for_one_more_ttl_while_the_provider_is_down() {
    let ec = SigningKey::ec("ec-1");
    let provider = Provider::start(&[&ec]).await;
    let mut settings = settings(&provider);
    settings.ttl = Duration::from_millis(400);
    settings.retry_interval = Duration::from_millis(50);
    let oidc = oidc(&settings);
    let h = Harness::new();
    let good = claims(&provider, "u");
    accepted(&h, &oidc, "c1", &ec.sign(&good)).await;
    provider.set_mode(Mode::Down);
    tokio::time::sleep(Duration::from_millis(450)).await;
    // Stale, the fetch fails: the cached key verifies (stale-if-error).
    accepted(&h, &oidc, "c2", &ec.sign(&good)).await;
    assert_eq!(provider.jwks_requests(), 2);
    // Past two TTLs with every fetch failing: refused.
    tokio::time::sleep(Duration::from_millis(400)).await;
    refused(&Harness::new(), &oidc, &ec.sign(&good), 503, UNAVAILABLE).await;
    // Back up: fetched again and accepted.
    provider.set_mode(Mode::Up);
    tokio::time::sleep(Duration::from_millis(60)).await;
    accepted(&h, &oidc, "c3", &ec.sign(&good)).await;
}

#[tokio::test]
async fn a_jwks_url_given_directly_skips_discovery() {
    let ed = SigningKey::ed("ed-1");
    let provider = Provider::start(&[&ed]).await;
    let issuer = IssuerSettings::new(&provider.issuer, vec![AUDIENCE.into()])
        .unwrap()
        .with_jwks_url(&provider.jwks_url())
        .unwrap();
    let oidc = oidc(&OidcSettings::new(vec![issuer]).unwrap());
    accepted(
        &Harness::new(),
        &oidc,
        "c1",
        &ed.sign(&claims(&provider, "u")),
    )
    .await;
    assert_eq!(
        (provider.discovery_requests(), provider.jwks_requests()),
        (0, 1)
    );
}

/// Cognito's claims, as a user pool issues them (id and access tokens).
fn cognito_claims(provider: &Provider, token_use: &str, client: &str) -> Value {
    let common = json!({
        "sub": "0c4f5a1e-2b6d-4c84-9e21-5d0b2a6f7e11",
        "cognito:groups": ["team:red", "admins"],
        "iss": provider.issuer,
        "origin_jti": "5f1c7f0e-9f0e-4c59-bf8c-1d8b3c2e4a10",
        "event_id": "a2b7e0c4-3d1f-4e6a-9b8c-7d6e5f4a3b21",
        "token_use": token_use,
        "auth_time": now() - 5,
        "iat": now() - 5,
        "exp": now() + 3600,
        "jti": "e7d6c5b4-a392-4817-8f6e-5d4c3b2a1908",
    });
    let mut claims = common.as_object().unwrap().clone();
    if token_use == "id" {
        claims.insert("aud".into(), json!(client));
        claims.insert("cognito:username".into(), json!("alice"));
        claims.insert("email".into(), json!("alice@example.com"));
        claims.insert("email_verified".into(), json!(true));
    } else {
        claims.insert("client_id".into(), json!(client));
        claims.insert("scope".into(), json!("aws.cognito.signin.user.admin"));
        claims.insert("username".into(), json!("alice"));
    }
    Value::Object(claims)
}

/// An issuer configured as a Cognito user pool is (its URL is loopback here).
fn cognito_settings(provider: &Provider) -> OidcSettings {
    let mut issuer = IssuerSettings::new(&provider.issuer, vec![AUDIENCE.into()]).unwrap();
    issuer.groups_claim = Some("cognito:groups".into());
    issuer.token_use = vec!["id".into(), "access".into()];
    OidcSettings::new(vec![issuer]).unwrap()
}

#[tokio::test]
async fn cognito_id_and_access_tokens_connect_and_join_their_groups() {
    let rsa = SigningKey::rsa("cognito-kid", 0);
    let provider = Provider::start(&[&rsa]).await;
    let oidc = oidc(&cognito_settings(&provider));
    let h = Harness::new();
    for (id, token_use) in [("c-id", "id"), ("c-access", "access")] {
        let token = rsa.sign(&cognito_claims(&provider, token_use, AUDIENCE));
        let record = accepted(&h, &oidc, id, &token).await;
        assert_eq!(record.user_id, "0c4f5a1e-2b6d-4c84-9e21-5d0b2a6f7e11");
        assert_eq!(record.groups, ["team:red", "admins"]);
        let mut joined: Vec<String> = h
            .memberships
            .all()
            .into_iter()
            .filter(|m| m.connection_id == id)
            .map(|m| m.group)
            .collect();
        joined.sort();
        assert_eq!(joined, ["admins", "team:red"]);
    }
    let h = Harness::new();
    let other_client = rsa.sign(&cognito_claims(&provider, "access", "another-client"));
    refused(
        &h,
        &oidc,
        &other_client,
        401,
        "the token's audience (aud) is not accepted",
    )
    .await;
    let refresh = rsa.sign(&cognito_claims(&provider, "refresh", AUDIENCE));
    refused(
        &h,
        &oidc,
        &refresh,
        401,
        "the token's claims are invalid: \"token_use\" is not id or access",
    )
    .await;
    let mut no_use = cognito_claims(&provider, "id", AUDIENCE);
    no_use.as_object_mut().unwrap().remove("token_use");
    refused(
        &h,
        &oidc,
        &rsa.sign(&no_use),
        401,
        "the token lacks the required claim \"token_use\"",
    )
    .await;
    let mut bad_group = cognito_claims(&provider, "id", AUDIENCE);
    bad_group["cognito:groups"] = json!(["Team Red"]);
    refused(&h, &oidc, &rsa.sign(&bad_group), 401,
        "the token's claims are invalid: \"groups\": \"Team Red\": the group name contains ' '; allowed are ASCII letters, digits and : _ - . @ /").await;
}

/// The figures for the note: warm `$connect` latency through the
/// handler (in-memory stores) with an OIDC issuer's cached keys against HS256,
/// in the same run. Prints a table; asserts only that every handshake was
/// accepted. Run: `cargo test --release -p switchboard --test oidc -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run it by hand with --release"]
async fn connect_latency_with_cached_oidc_keys_against_hs256() {
    let (rsa, ec, ed) = (
        SigningKey::rsa("rsa-1", 0),
        SigningKey::ec("ec-1"),
        SigningKey::ed("ed-1"),
    );
    let provider = Provider::start(&[&rsa, &ec, &ed]).await;
    let oidc = oidc(&settings(&provider));
    let verifier = verifier(&oidc);
    const ROUNDS: usize = 400;
    let mut rows = Vec::new();
    for case in ["HS256", "RS256", "ES256", "EdDSA"] {
        let h = Harness::new();
        let tokens: Vec<String> = (0..ROUNDS + 20)
            .map(|i| {
                let user = format!("{case}-{i}");
                match case {
                    "HS256" => token(&user),
                    "RS256" => rsa.sign(&claims(&provider, &user)),
                    "ES256" => ec.sign(&claims(&provider, &user)),
                    _ => ed.sign(&claims(&provider, &user)),
                }
            })
            .collect();
        let mut times = Vec::with_capacity(ROUNDS);
        for (i, token) in tokens.iter().enumerate() {
            let event = connect_event(&format!("c{i}"), Some(token));
            let started = Instant::now();
            let response = handle_connect(&h.services, &verifier, &event).await;
            let took = started.elapsed();
            assert_eq!(response.status_code, 200, "{case}");
            if i >= 20 {
                times.push(took.as_secs_f64() * 1e6);
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        rows.push((case, times[ROUNDS / 2], times[ROUNDS * 9 / 10]));
    }
    let base = rows[0].1;
    println!("| token | median µs | p90 µs | ratio (median) |\n|---|---|---|---|");
    for (case, median, p90) in rows {
        println!("| {case} | {median:.1} | {p90:.1} | {:.2} |", median / base);
    }
}
