//! Webhook signatures: what Switchboard puts on every request it sends to the
//! application (upstream events, connect and event hooks), and
//! [`verify`], the check a Rust receiver runs.
//!
//! The header is `Switchboard-Signature: t=<unix seconds>,v1=<hex>`, where
//! `<hex>` is HMAC-SHA256 keyed with the webhook secret over the bytes
//! `<t>.<body>` (Stripe's scheme). A receiver recomputes it over the exact
//! body it received, compares in constant time and rejects a timestamp
//! outside its tolerance, so a captured request cannot be replayed later.

use std::time::Duration;

use aws_lambda_events::http::HeaderMap;
use ring::hmac;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "switchboard-signature";

/// The tolerance [`verify`] callers should start from: five minutes either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The shortest webhook secret Switchboard accepts (as for token secrets).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request has no Switchboard-Signature header")]
    Missing,
    #[error("the Switchboard-Signature header is malformed")]
    Malformed,
    #[error(
        "the signature's timestamp is {age_seconds} s from now, more than the {tolerance_seconds} s allowed"
    )]
    OutsideTolerance {
        age_seconds: i64,
        tolerance_seconds: u64,
    },
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex(&mac(secret, timestamp, body)))
}

/// Signs `body` now: the header value to send.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    signature_header(secret, crate::clock::now_seconds(), body)
}

/// Checks the `Switchboard-Signature` header of a request against its exact
/// `body`: a `v1` HMAC-SHA256 of `<t>.<body>` under `secret` (compared in
/// constant time), with `t` within `tolerance` of now.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let value = headers
        .get(SIGNATURE_HEADER)
        .ok_or(VerifyError::Missing)?
        .to_str()
        .map_err(|_| VerifyError::Malformed)?;
    verify_header(value, body, secret, tolerance, crate::clock::now_seconds())
}

/// [`verify`] on the header's value, at `now` (Unix seconds).
pub fn verify_header(
    value: &str,
    body: &[u8],
    secret: &[u8],
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| VerifyError::Malformed)?)
            }
            Some(("v1", v)) => signatures.push(unhex(v).ok_or(VerifyError::Malformed)?),
            // Other schemes (a future v2) are ignored, as Stripe's receivers do.
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let age = now.saturating_sub(timestamp);
    if age.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance {
            age_seconds: age,
            tolerance_seconds: tolerance.as_secs(),
        });
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signed = signed_bytes(timestamp, body);
    if signatures
        .iter()
        .any(|tag| hmac::verify(&key, &signed, tag).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn signed_bytes(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signed
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, &signed_bytes(timestamp, body))
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::HeaderValue;

    const SECRET: &[u8] = b"webhook-test-secret-webhook-test-secret";
    const BODY: &[u8] = br#"{"connectionId":"c1"}"#;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_fresh_signature_verifies() {
        let header = sign(SECRET, BODY);
        assert_eq!(
            verify(&headers(&header), BODY, SECRET, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn the_known_vector_is_hmac_sha256_over_t_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature_header(b"key", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }

    #[test]
    fn tampering_fails() {
        let now = 1_700_000_000;
        let header = signature_header(SECRET, now, BODY);
        let check = |value: &str, body: &[u8], secret: &[u8]| {
            verify_header(value, body, secret, DEFAULT_TOLERANCE, now)
        };
        assert_eq!(check(&header, BODY, SECRET), Ok(()));
        assert_eq!(
            check(&header, br#"{"connectionId":"c2"}"#, SECRET),
            Err(VerifyError::Mismatch)
        );
        let moved = header.replacen("t=1700000000", "t=1700000001", 1);
        assert_eq!(check(&moved, BODY, SECRET), Err(VerifyError::Mismatch));
        assert_eq!(
            check(&header, BODY, b"another-secret-another-secret-another"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check("v1=00", BODY, SECRET), Err(VerifyError::Malformed));
        assert_eq!(
            check("t=1700000000", BODY, SECRET),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            check("t=1700000000,v1=zz", BODY, SECRET),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(&HeaderMap::new(), BODY, SECRET, DEFAULT_TOLERANCE),
            Err(VerifyError::Missing)
        );
    }

    #[test]
    fn outside_the_tolerance_fails_even_when_signed() {
        let signed_at = 1_700_000_000;
        let header = signature_header(SECRET, signed_at, BODY);
        let at = |now| verify_header(&header, BODY, SECRET, Duration::from_secs(300), now);
        assert_eq!(at(signed_at + 300), Ok(()));
        assert_eq!(at(signed_at - 300), Ok(()));
        assert_eq!(
            at(signed_at + 301),
            Err(VerifyError::OutsideTolerance {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
        assert_eq!(
            at(signed_at - 301),
            Err(VerifyError::OutsideTolerance {
                age_seconds: -301,
                tolerance_seconds: 300
            })
        );
    }
}
