//! API Gateway's Management API as AWS runs it, emulated for scale runs: the
//! account-level throttle every `POST @connections` draws from
//! ([`AccountThrottle`], `--management-rate` / `--management-burst`, or
//! `--aws-quotas`) and the time one post takes over the network
//! ([`PostLatency`], `--post-latency`). Both are off by default: the local
//! stack then answers as fast as the machine allows, as before.
//!
//! The figures `--aws-quotas` sets are AWS's documented defaults (API
//! Gateway quotas, "Amazon API Gateway quotas for configuring and running a
//! WebSocket API" and the account-level throttle): 10,000 requests per second
//! with a burst of 5,000, shared by every API of the account in a Region.

use std::sync::Mutex;
use std::time::Duration;

use switchboard::clock::now_millis;
use switchboard::rate::{Rate, take};

use crate::ids::random_unit;

/// AWS's account-level throttle: requests per second, steady state.
pub const AWS_ACCOUNT_RATE: u32 = 10_000;
/// AWS's account-level burst (the token bucket's size).
pub const AWS_ACCOUNT_BURST: u32 = 5_000;

/// A token bucket of `burst` tokens refilled at `rate` per second, shared by
/// every post to the Management API (the HTTP endpoint and the in-process
/// gateway alike). A post that finds it empty is answered 429
/// `LimitExceededException`, as API Gateway answers a throttled request.
///
/// It is [`switchboard::rate::take`] (GCRA), the bucket every rate limit of
/// the project uses, on the clock in microseconds.
pub struct AccountThrottle {
    rate: Rate,
    per_second: u32,
    burst: u32,
    /// The bucket's theoretical arrival time (µs); `None`: never used.
    tat: Mutex<Option<i64>>,
}

impl AccountThrottle {
    /// `rate` requests per second, `burst` at once (both at least 1).
    pub fn new(rate: u32, burst: u32) -> Self {
        let (rate, burst) = (rate.max(1), burst.max(1));
        // A bucket of `burst` tokens refilled at `rate`/s: `burst` per `burst / rate` seconds.
        let window = Duration::from_secs_f64(f64::from(burst) / f64::from(rate));
        AccountThrottle {
            rate: Rate::new(burst, window),
            per_second: rate,
            burst,
            tat: Mutex::new(None),
        }
    }

    /// AWS's default account-level quota: 10,000/s, burst 5,000.
    pub fn aws() -> Self {
        Self::new(AWS_ACCOUNT_RATE, AWS_ACCOUNT_BURST)
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes a token now: false means 429.
    pub fn take(&self) -> bool {
        self.take_at(now_millis().saturating_mul(1000))
    }

    /// Takes a token at `now_us` (µs since the Unix epoch): false means 429.
    pub fn take_at(&self, now_us: i64) -> bool {
        let Ok(mut tat) = self.tat.lock() else {
            return false;
        };
        match take(*tat, now_us, self.rate) {
            Some(next) => {
                *tat = Some(next);
                true
            }
            None => false,
        }
    }
}

/// How long a post takes before API Gateway answers it (`--post-latency`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PostLatency {
    /// No added latency (the default).
    #[default]
    None,
    /// Every post takes this long.
    Fixed(Duration),
    /// Log-normal with median `p50` and 99th percentile `p99`: the shape of
    /// network round trips (a floor of most answers, a long tail).
    LogNormal { p50: Duration, p99: Duration },
}

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// The longest latency a draw may take (a bound on the tail).
const MAX_LATENCY: Duration = Duration::from_secs(10);

impl PostLatency {
    /// `0` (none), `25ms` (fixed) or `25ms,120ms` (log-normal from p50 and p99).
    pub fn parse(text: &str) -> Result<PostLatency, String> {
        let parse = |part: &str| {
            humantime::parse_duration(part.trim())
                .map_err(|e| format!("--post-latency: \"{part}\" is not a duration ({e})"))
        };
        let latency = match text.trim().split_once(',') {
            _ if text.trim() == "0" || text.trim().eq_ignore_ascii_case("none") => {
                PostLatency::None
            }
            None => PostLatency::Fixed(parse(text)?),
            Some((p50, p99)) => {
                let (p50, p99) = (parse(p50)?, parse(p99)?);
                if p50.is_zero() || p99 < p50 {
                    return Err(format!(
                        "--post-latency {text}: p50 must be above 0 and p99 at least p50"
                    ));
                }
                PostLatency::LogNormal { p50, p99 }
            }
        };
        match latency {
            PostLatency::Fixed(d) if d.is_zero() => Ok(PostLatency::None),
            PostLatency::Fixed(d) | PostLatency::LogNormal { p99: d, .. } if d > MAX_LATENCY => {
                Err(format!("--post-latency {text}: at most {MAX_LATENCY:?}"))
            }
            latency => Ok(latency),
        }
    }

    /// One post's latency; `u1`, `u2` uniform in [0, 1) (Box–Muller).
    pub fn sample_with(&self, u1: f64, u2: f64) -> Duration {
        match *self {
            PostLatency::None => Duration::ZERO,
            PostLatency::Fixed(d) => d,
            PostLatency::LogNormal { p50, p99 } => {
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z99;
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let seconds = (mu + sigma * z).exp();
                Duration::from_secs_f64(seconds.min(MAX_LATENCY.as_secs_f64()))
            }
        }
    }

    /// One post's latency, drawn now.
    pub fn sample(&self) -> Duration {
        match self {
            PostLatency::None => Duration::ZERO,
            _ => self.sample_with(random_unit(), random_unit()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn the_throttle_takes_its_burst_at_once_then_refills_at_its_rate() {
        let throttle = AccountThrottle::new(10_000, 5_000);
        let t0 = 1_000 * SECOND;
        let passed = (0..6_000).filter(|_| throttle.take_at(t0)).count();
        assert_eq!(passed, 5_000, "the burst, then 429");
        // 100 ms later: 1,000 more tokens at 10,000/s, not one more.
        let later = t0 + SECOND / 10;
        let passed = (0..2_000).filter(|_| throttle.take_at(later)).count();
        assert_eq!(passed, 1_000);
        // Over a steady second: the rate.
        let mut passed = 0;
        for us in (0..SECOND).step_by(50) {
            passed += usize::from(throttle.take_at(later + 1 + us));
        }
        assert!((9_999..=10_001).contains(&passed), "{passed}");
    }

    #[test]
    fn latency_parses_none_fixed_and_log_normal() {
        assert_eq!(PostLatency::parse("0"), Ok(PostLatency::None));
        assert_eq!(
            PostLatency::parse("25ms"),
            Ok(PostLatency::Fixed(Duration::from_millis(25)))
        );
        assert_eq!(
            PostLatency::parse("20ms,80ms"),
            Ok(PostLatency::LogNormal {
                p50: Duration::from_millis(20),
                p99: Duration::from_millis(80)
            })
        );
        assert_eq!(
            PostLatency::parse("80ms,20ms"),
            Err("--post-latency 80ms,20ms: p50 must be above 0 and p99 at least p50".into())
        );
        assert!(PostLatency::parse("fast").is_err());
        assert!(PostLatency::parse("1h").is_err());
    }

    #[test]
    fn the_log_normal_has_the_given_median_and_99th_percentile() {
        let latency = PostLatency::LogNormal {
            p50: Duration::from_millis(20),
            p99: Duration::from_millis(80),
        };
        // z = 0 at u1 = 1 - e^(-0.5·0) … use the quantile points directly:
        // cos(τ·u2) = 1 at u2 = 0, so z = sqrt(-2 ln(1 - u1)).
        let at = |z: f64| latency.sample_with(1.0 - (-z * z / 2.0).exp(), 0.0);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        assert!((ms(at(0.0)) - 20.0).abs() < 0.01);
        assert!((ms(at(Z99)) - 80.0).abs() < 0.01);
    }
}
