//! Random ids and numbers: connection, request and message ids shaped like
//! AWS's, secrets, and the uniform draws of fault injection.

use base64::Engine;
use switchboard::clock::now_millis;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source only fails on exotic platforms; fall back to time-seeded noise.
    if getrandom::fill(&mut bytes).is_err() {
        let seed = now_millis().to_le_bytes();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = seed[i % seed.len()] ^ (i as u8).wrapping_mul(151);
        }
    }
    bytes
}

/// A connection id shaped like API Gateway's: 16 base64 characters, e.g. `f97yeeMZDoECGqg=`.
pub fn connection_id() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes::<11>())
}

/// A uniformly random number in [0, 1) (fault injection).
pub fn random_unit() -> f64 {
    let bytes = random_bytes::<8>();
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// A request or message id, e.g. `Qj3yOdMlFiACEnw=`.
pub fn request_id() -> String {
    connection_id()
}

/// A random hex string of `2 * N` characters (secrets, message ids).
pub fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_api_gateways() {
        let id = connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert_ne!(connection_id(), id);
    }
}
