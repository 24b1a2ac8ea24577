//! AWS as it runs, emulated: the account-level throttle every `POST
//! @connections` draws from ([`AccountThrottle`], `--management-rate` /
//! `--management-burst`, or `--aws-quotas`) and the time each hop takes
//! ([`AwsLatency`], `--aws-latency`): a Management API post
//! (`--post-latency`), an SQS message from send to its handler's start
//! (`--queue-latency`), a DynamoDB call (`--dynamodb-latency`) and a route
//! integration, client frame or HTTP request to its handler (`--route-latency`),
//! each a [`Latency`]. All are off by default: the local stack then answers
//! as fast as the machine allows.
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

/// How long one hop takes: a Management API post before API Gateway
/// answers it, an SQS message before its handler starts, a DynamoDB call, a
/// route integration.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Latency {
    /// No added latency (the default).
    #[default]
    None,
    /// Every hop takes this long.
    Fixed(Duration),
    /// Log-normal with median `p50` and 99th percentile `p99`: the shape of
    /// network round trips (a floor of most answers, a long tail).
    LogNormal { p50: Duration, p99: Duration },
}

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// The longest latency a draw may take (a bound on the tail).
const MAX_LATENCY: Duration = Duration::from_secs(10);

impl Latency {
    /// `0` (none), `25ms` (fixed) or `25ms,120ms` (log-normal from p50 and p99).
    pub fn parse(text: &str) -> Result<Latency, String> {
        let parse = |part: &str| {
            humantime::parse_duration(part.trim())
                .map_err(|e| format!("\"{part}\" is not a duration ({e})"))
        };
        let latency = match text.trim().split_once(',') {
            _ if text.trim() == "0" || text.trim().eq_ignore_ascii_case("none") => Latency::None,
            None => Latency::Fixed(parse(text)?),
            Some((p50, p99)) => {
                let (p50, p99) = (parse(p50)?, parse(p99)?);
                if p50.is_zero() || p99 < p50 {
                    return Err(format!(
                        "{text}: the median must be above 0 and the 99th percentile at least the median"
                    ));
                }
                Latency::LogNormal { p50, p99 }
            }
        };
        match latency {
            Latency::Fixed(d) if d.is_zero() => Ok(Latency::None),
            Latency::Fixed(d) | Latency::LogNormal { p99: d, .. } if d > MAX_LATENCY => {
                Err(format!("{text}: at most {MAX_LATENCY:?}"))
            }
            latency => Ok(latency),
        }
    }

    /// Whether this adds nothing.
    pub fn is_none(&self) -> bool {
        *self == Latency::None
    }

    /// One hop's latency; `u1`, `u2` uniform in [0, 1) (Box–Muller).
    pub fn sample_with(&self, u1: f64, u2: f64) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::LogNormal { p50, p99 } => {
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64() / p50.as_secs_f64()).ln() / Z99;
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let seconds = (mu + sigma * z).exp();
                Duration::from_secs_f64(seconds.min(MAX_LATENCY.as_secs_f64()))
            }
        }
    }

    /// One hop's latency, from `unit`'s uniform draws in [0, 1) (a seeded
    /// generator in tests).
    pub fn sample_from(&self, mut unit: impl FnMut() -> f64) -> Duration {
        match self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => *d,
            Latency::LogNormal { .. } => {
                let u1 = unit();
                self.sample_with(u1, unit())
            }
        }
    }

    /// One hop's latency, drawn now.
    pub fn sample(&self) -> Duration {
        self.sample_from(random_unit)
    }

    /// Waits one hop's latency (nothing when there is none).
    pub async fn wait(&self) {
        let latency = self.sample();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// The median (the fixed time; zero for none).
    pub fn median(&self) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) | Latency::LogNormal { p50: d, .. } => d,
        }
    }
}

/// A log-normal latency from its median and 99th percentile in microseconds.
const fn log_normal(p50_us: u64, p99_us: u64) -> Latency {
    Latency::LogNormal {
        p50: Duration::from_micros(p50_us),
        p99: Duration::from_micros(p99_us),
    }
}

/// The time each hop takes (`--aws-latency` sets AWS's, each flag overrides
/// its own; all none by default). docs/local-stack.md has the sources.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AwsLatency {
    /// A route integration: a client frame (or an HTTP API request) to its
    /// handler's start (`--route-latency`).
    pub route: Latency,
    /// An SQS message from its send to its handler's start (`--queue-latency`).
    pub queue: Latency,
    /// One DynamoDB call, single-item or query (`--dynamodb-latency`).
    pub store: Latency,
    /// A Management API post before API Gateway answers (`--post-latency`).
    pub post: Latency,
}

impl AwsLatency {
    /// SQS send to the handler's start through Lambda's event source mapping:
    /// p50 16.2 ms, p99 105 ms (bitesizedserverless.com, "Serverless messaging
    /// latency compared", eu-west-1, 2022).
    pub const QUEUE: Latency = log_normal(16_200, 105_000);
    /// A DynamoDB call from a Lambda function: PutItem p50 7.55 ms, p99
    /// 16.2 ms (github.com/alexdebrie/dynamodb-performance-testing).
    pub const STORE: Latency = log_normal(7_550, 16_200);
    /// A Management API post: no published measurement. An in-region signed
    /// HTTPS call as a DynamoDB call is, plus API Gateway's hand-off to the
    /// connection: p50 10 ms, p99 40 ms (what `make bench-scale` and the
    /// capacity model assume).
    pub const POST: Latency = log_normal(10_000, 40_000);
    /// A route integration (API Gateway to a warm Lambda): no published
    /// measurement; a conservative p50 10 ms, p99 50 ms.
    pub const ROUTE: Latency = log_normal(10_000, 50_000);

    /// Every hop at AWS's figures.
    pub fn aws() -> Self {
        AwsLatency {
            route: Self::ROUTE,
            queue: Self::QUEUE,
            store: Self::STORE,
            post: Self::POST,
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
        assert_eq!(Latency::parse("0"), Ok(Latency::None));
        assert_eq!(
            Latency::parse("25ms"),
            Ok(Latency::Fixed(Duration::from_millis(25)))
        );
        assert_eq!(
            Latency::parse("20ms,80ms"),
            Ok(Latency::LogNormal {
                p50: Duration::from_millis(20),
                p99: Duration::from_millis(80)
            })
        );
        assert_eq!(
            Latency::parse("80ms,20ms"),
            Err(
                "80ms,20ms: the median must be above 0 and the 99th percentile at least the median"
                    .into()
            )
        );
        assert_eq!(
            Latency::parse("fast"),
            Err("\"fast\" is not a duration (expected number at 0)".into())
        );
        assert_eq!(Latency::parse("1h"), Err("1h: at most 10s".into()));
    }

    #[test]
    fn the_log_normal_has_the_given_median_and_99th_percentile() {
        let latency = Latency::LogNormal {
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

    /// SplitMix64: uniform draws in [0, 1) from a seed, so a test of the
    /// distribution is the same every run.
    fn seeded(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The `q`th quantile (0..1) of 20,000 draws of `latency`, in ms.
    fn quantiles(latency: Latency, seed: u64) -> impl Fn(f64) -> f64 {
        let mut unit = seeded(seed);
        let mut draws: Vec<f64> = (0..20_000)
            .map(|_| latency.sample_from(&mut unit).as_secs_f64() * 1000.0)
            .collect();
        draws.sort_by(f64::total_cmp);
        move |q| draws[((draws.len() as f64 * q) as usize).min(draws.len() - 1)]
    }

    #[test]
    fn each_aws_hop_draws_around_its_cited_median_and_99th_percentile() {
        for (name, latency, p50, p99) in [
            ("queue", AwsLatency::QUEUE, 16.2, 105.0),
            ("store", AwsLatency::STORE, 7.55, 16.2),
            ("post", AwsLatency::POST, 10.0, 40.0),
            ("route", AwsLatency::ROUTE, 10.0, 50.0),
        ] {
            for seed in [1, 27, 9_001] {
                let at = quantiles(latency, seed);
                let (median, high) = (at(0.5), at(0.99));
                assert!(
                    (median / p50 - 1.0).abs() < 0.05,
                    "{name}, seed {seed}: median {median:.2} ms, not about {p50}"
                );
                assert!(
                    (high / p99 - 1.0).abs() < 0.15,
                    "{name}, seed {seed}: p99 {high:.2} ms, not about {p99}"
                );
                assert!(at(0.0) > 0.0, "{name}: never instant");
            }
        }
        assert_eq!(AwsLatency::default().queue.sample(), Duration::ZERO);
        assert!(AwsLatency::default().store.is_none());
    }
}
