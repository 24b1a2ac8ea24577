//! Webhook signatures, as [Standard Webhooks](https://www.standardwebhooks.com/)
//! defines them: what Switchboard puts on every request it sends to the
//! application (upstream events, connect and event hooks), and [`verify`],
//! the check a Rust receiver runs. Receivers in other languages use the
//! spec's verifier libraries (`standardwebhooks` on PyPI and npm, and others).
//!
//! Every request carries three headers:
//!
//! - `webhook-id`: the event's id (the same on every retry, so a receiver
//!   drops duplicates by it), percent-encoded by CloudEvents' rule for
//!   header values ([`header_id`]);
//! - `webhook-timestamp`: when it was signed, in Unix seconds;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256>` over
//!   `<webhook-id>.<webhook-timestamp>.<body>`; several such values,
//!   space-separated, during a key rotation.
//!
//! The body is the whole event (CloudEvents' structured mode), so the id,
//! the timestamp and everything a receiver routes on are signed. A receiver
//! recomputes the signature over the exact body it received, compares in
//! constant time and rejects a timestamp outside its tolerance.
//!
//! The key: a secret of the spec's form `whsec_<base64>` is the bytes the
//! base64 part decodes to (at least [`MIN_WHSEC_KEY_BYTES`]); any other
//! secret is its own bytes as they are (at least [`MIN_SECRET_BYTES`]), which
//! the spec's libraries take as a raw key (`Webhook(secret.encode())` in
//! Python, `new Webhook(secret, {format: "raw"})` in TypeScript) or as
//! `whsec_` followed by the secret's base64 ([`whsec`]).

use std::time::Duration;

use aws_lambda_events::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::hmac;

/// The header that carries the message id.
pub const ID_HEADER: &str = "webhook-id";
/// The header that carries the time of signing (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header that carries the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The prefix of a secret in the spec's form, `whsec_<base64>`.
pub const SECRET_PREFIX: &str = "whsec_";

/// The tolerance [`verify`] callers should start from: five minutes either
/// way (the spec's libraries use the same).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The shortest webhook secret Switchboard accepts as raw bytes (as for
/// token secrets).
pub const MIN_SECRET_BYTES: usize = 32;

/// The shortest key a `whsec_` secret may decode to (the spec's lower bound).
pub const MIN_WHSEC_KEY_BYTES: usize = 24;

/// Why a secret cannot be a signing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the webhook secret is {0} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort(usize),
    #[error("the webhook secret starts with whsec_ but the rest is not base64")]
    NotBase64,
    #[error(
        "the webhook secret's whsec_ key is {0} bytes; at least {MIN_WHSEC_KEY_BYTES} are required"
    )]
    WhsecTooShort(usize),
}

/// The signing key a secret stands for: `whsec_<base64>` is the decoded
/// bytes, anything else its own bytes.
pub fn key_from_secret(secret: &[u8]) -> Result<Vec<u8>, KeyError> {
    match secret.strip_prefix(SECRET_PREFIX.as_bytes()) {
        Some(encoded) => {
            let trimmed = encoded.strip_suffix(b"==").unwrap_or(encoded);
            let trimmed = trimmed.strip_suffix(b"=").unwrap_or(trimmed);
            let key = STANDARD_NO_PAD
                .decode(trimmed)
                .map_err(|_| KeyError::NotBase64)?;
            if key.len() < MIN_WHSEC_KEY_BYTES {
                return Err(KeyError::WhsecTooShort(key.len()));
            }
            Ok(key)
        }
        None if secret.len() < MIN_SECRET_BYTES => Err(KeyError::TooShort(secret.len())),
        None => Ok(secret.to_vec()),
    }
}

/// `key` in the spec's secret form, `whsec_<base64>`: what a Standard
/// Webhooks library takes as its secret.
pub fn whsec(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request has no {0} header")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error(
        "the signature's timestamp is {age_seconds} s from now, more than the {tolerance_seconds} s allowed"
    )]
    OutsideTolerance {
        age_seconds: i64,
        tolerance_seconds: u64,
    },
    #[error("no v1 signature matches the id, timestamp and body")]
    Mismatch,
}

/// What a verified request says about itself: its id (for dropping
/// duplicates) and when it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub id: String,
    pub timestamp: i64,
}

/// The `webhook-id` value for an event id: CloudEvents' rule for header
/// values (space, `"`, `%` and everything outside printable ASCII
/// percent-encoded as UTF-8), so any id can travel in a header. The ids
/// Switchboard makes from what its edge accepts are printable ASCII and
/// pass unchanged unless they hold a `%` or `"`.
pub fn header_id(id: &str) -> String {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');
    utf8_percent_encode(id, ENCODED).to_string()
}

/// The `webhook-signature` value for one key: `v1,<base64 HMAC-SHA256 of
/// "<id>.<timestamp>.<body>">`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, &signed_content(id, timestamp, body));
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

/// The three headers for `body` under `id` (a `webhook-id` value, see
/// [`header_id`]), signed at `timestamp` (Unix seconds).
pub fn signed_headers_at(
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        (ID_HEADER, id.to_owned()),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, signature(key, id, timestamp, body)),
    ]
}

/// [`signed_headers_at`] now.
pub fn signed_headers(key: &[u8], id: &str, body: &[u8]) -> [(&'static str, String); 3] {
    signed_headers_at(key, id, crate::clock::now_seconds(), body)
}

/// Checks a request's `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` against its exact `body` under `key` (see
/// [`key_from_secret`]): a `v1` signature that matches, compared in constant
/// time, signed within `tolerance` of now.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    key: &[u8],
    tolerance: Duration,
) -> Result<Verified, VerifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .ok_or(VerifyError::Missing(name))?
            .to_str()
            .map_err(|_| VerifyError::Malformed(name))
    };
    verify_values(
        header(ID_HEADER)?,
        header(TIMESTAMP_HEADER)?,
        header(SIGNATURE_HEADER)?,
        body,
        &[key],
        tolerance,
        crate::clock::now_seconds(),
    )
}

/// [`verify`] on the three header values, at `now` (Unix seconds), accepting
/// a signature under any of `keys` (during a rotation, the old key and the
/// new).
pub fn verify_values(
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    keys: &[&[u8]],
    tolerance: Duration,
    now: i64,
) -> Result<Verified, VerifyError> {
    // No upper bound: whatever id the sender signed verifies (the HTTP
    // server in front already bounds a header's length).
    if id.is_empty() {
        return Err(VerifyError::Malformed(ID_HEADER));
    }
    let timestamp = timestamp
        .trim()
        .parse::<i64>()
        .map_err(|_| VerifyError::Malformed(TIMESTAMP_HEADER))?;
    let mut tags = Vec::new();
    for value in signatures.split(' ').filter(|v| !v.is_empty()) {
        match value.split_once(',') {
            Some(("v1", tag)) => tags.push(
                STANDARD
                    .decode(tag)
                    .map_err(|_| VerifyError::Malformed(SIGNATURE_HEADER))?,
            ),
            // Other versions (v1a: asymmetric) are not ours to check.
            Some(_) => {}
            None => return Err(VerifyError::Malformed(SIGNATURE_HEADER)),
        }
    }
    if tags.is_empty() {
        return Err(VerifyError::Malformed(SIGNATURE_HEADER));
    }
    let age = now.saturating_sub(timestamp);
    if age.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance {
            age_seconds: age,
            tolerance_seconds: tolerance.as_secs(),
        });
    }
    let signed = signed_content(id, timestamp, body);
    let matches = keys.iter().any(|key| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        tags.iter()
            .any(|tag| hmac::verify(&key, &signed, tag).is_ok())
    });
    if !matches {
        return Err(VerifyError::Mismatch);
    }
    Ok(Verified {
        id: id.to_owned(),
        timestamp,
    })
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signed
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::HeaderValue;

    const KEY: &[u8] = b"webhook-test-secret-webhook-test-secret";
    const BODY: &[u8] = br#"{"id":"connected:c1","type":"switchboard.connected"}"#;
    const NOW: i64 = 1_700_000_000;

    fn header_map(headers: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_fresh_signature_verifies_and_names_its_id() {
        let headers = signed_headers(KEY, "connected:c1", BODY);
        let verified = verify(&header_map(&headers), BODY, KEY, DEFAULT_TOLERANCE).unwrap();
        assert_eq!(verified.id, "connected:c1");
    }

    #[test]
    fn the_specs_test_vector_verifies() {
        // The Standard Webhooks reference libraries' test vector.
        let key = key_from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(signature(&key, id, 1_614_265_330, body), expected);
        assert!(
            verify_values(
                id,
                "1614265330",
                expected,
                body,
                &[&key],
                DEFAULT_TOLERANCE,
                1_614_265_330
            )
            .is_ok()
        );
    }

    #[test]
    fn tampering_with_the_id_timestamp_body_or_key_fails() {
        let [(_, id), (_, t), (_, sig)] = signed_headers_at(KEY, "message:c1:s1", NOW, BODY);
        let check = |id: &str, t: &str, sig: &str, body: &[u8], key: &[u8]| {
            verify_values(id, t, sig, body, &[key], DEFAULT_TOLERANCE, NOW)
        };
        assert!(check(&id, &t, &sig, BODY, KEY).is_ok());
        let other_body = br#"{"id":"connected:c1","type":"switchboard.disconnected"}"#;
        for result in [
            check("message:c1:s2", &t, &sig, BODY, KEY),
            check(&id, "1700000001", &sig, BODY, KEY),
            check(&id, &t, &sig, other_body, KEY),
            check(
                &id,
                &t,
                &sig,
                BODY,
                b"another-secret-another-secret-another",
            ),
        ] {
            assert_eq!(result, Err(VerifyError::Mismatch));
        }
        assert_eq!(
            check(&id, &t, "v1,@@", BODY, KEY),
            Err(VerifyError::Malformed(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(&id, &t, "v1a,abc", BODY, KEY),
            Err(VerifyError::Malformed(SIGNATURE_HEADER))
        );
        assert_eq!(
            check(&id, "soon", &sig, BODY, KEY),
            Err(VerifyError::Malformed(TIMESTAMP_HEADER))
        );
        assert_eq!(
            check("", &t, &sig, BODY, KEY),
            Err(VerifyError::Malformed(ID_HEADER))
        );
        assert_eq!(
            verify(&HeaderMap::new(), BODY, KEY, DEFAULT_TOLERANCE),
            Err(VerifyError::Missing(ID_HEADER))
        );
        assert_eq!(
            VerifyError::Missing(ID_HEADER).to_string(),
            "the request has no webhook-id header"
        );
    }

    #[test]
    fn any_of_several_signatures_and_keys_verifies_a_rotation() {
        let old: &[u8] = b"old-secret-old-secret-old-secret-old";
        let new_signature = signature(KEY, "e1", NOW, BODY);
        let both = format!("{} {new_signature}", signature(old, "e1", NOW, BODY));
        let at = |sigs: &str, keys: &[&[u8]]| {
            verify_values(
                "e1",
                &NOW.to_string(),
                sigs,
                BODY,
                keys,
                DEFAULT_TOLERANCE,
                NOW,
            )
        };
        assert!(at(&both, &[KEY]).is_ok());
        assert!(at(&both, &[old]).is_ok());
        assert!(at(&new_signature, &[old, KEY]).is_ok());
        assert_eq!(at(&new_signature, &[old]), Err(VerifyError::Mismatch));
    }

    #[test]
    fn outside_the_tolerance_fails_even_when_signed() {
        let sig = signature(KEY, "e1", NOW, BODY);
        let at = |now| {
            verify_values(
                "e1",
                &NOW.to_string(),
                &sig,
                BODY,
                &[KEY],
                DEFAULT_TOLERANCE,
                now,
            )
        };
        assert!(at(NOW + 300).is_ok());
        assert!(at(NOW - 300).is_ok());
        assert_eq!(
            at(NOW + 301),
            Err(VerifyError::OutsideTolerance {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
        assert_eq!(
            at(NOW - 301),
            Err(VerifyError::OutsideTolerance {
                age_seconds: -301,
                tolerance_seconds: 300
            })
        );
    }

    #[test]
    fn secrets_are_raw_bytes_or_the_specs_whsec_form() {
        let raw = b"s".repeat(32);
        assert_eq!(key_from_secret(&raw), Ok(raw.clone()));
        assert_eq!(key_from_secret(b"short"), Err(KeyError::TooShort(5)));
        assert_eq!(key_from_secret(whsec(&raw).as_bytes()), Ok(raw.clone()));
        let unpadded = whsec(&raw[..25]);
        let unpadded = unpadded.trim_end_matches('=');
        assert_eq!(key_from_secret(unpadded.as_bytes()), Ok(raw[..25].to_vec()));
        assert_eq!(
            key_from_secret(whsec(&raw[..23]).as_bytes()),
            Err(KeyError::WhsecTooShort(23))
        );
        assert_eq!(
            key_from_secret(b"whsec_not base64!!"),
            Err(KeyError::NotBase64)
        );
        assert_eq!(
            KeyError::TooShort(5).to_string(),
            "the webhook secret is 5 bytes; at least 32 are required"
        );
    }

    #[test]
    fn header_ids_are_percent_encoded_by_the_cloudevents_rule() {
        assert_eq!(header_id("message:c1:sAb-1_~"), "message:c1:sAb-1_~");
        assert_eq!(header_id("m:s50%"), "m:s50%25");
        assert_eq!(header_id("m:s\"x y\""), "m:s%22x%20y%22");
        assert_eq!(header_id("m:s\n\u{7f}é"), "m:s%0A%7F%C3%A9");
    }
}
