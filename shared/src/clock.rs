//! The one wall clock: seconds and milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_seconds() -> i64 {
    since_epoch().as_secs() as i64
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_millis() -> i64 {
    since_epoch().as_millis() as i64
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_millis_agree() {
        let (s, ms) = (now_seconds(), now_millis());
        // 2020-01-01 or later, and the two readings within a second of each other.
        assert!(s > 1_577_836_800, "{s}");
        assert!((ms / 1000 - s).abs() <= 1, "{ms} vs {s}");
    }
}
