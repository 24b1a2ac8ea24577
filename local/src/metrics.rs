//! `GET /metrics`: the handlers' metrics ([`switchboard::metrics`]) in the
//! Prometheus text format, through `prometheus-client`.
//!
//! The handlers record what they record on Lambda; each invocation ends in
//! [`Prometheus::export`] instead of an EMF line. Names are the CloudWatch
//! names in snake case under `switchboard_` (`ConnectsRejected` is
//! `switchboard_connects_rejected_total`), labels are the same dimensions in
//! snake case (`function`, `reason`, …), and the distributions are histograms:
//! `switchboard_fanout_latency_milliseconds`, `switchboard_post_budget_wait_milliseconds`. The local queues' dead letters
//! are counted when scraped (`switchboard_dead_lettered_total{queue=…}`).

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use switchboard::metrics::{FUNCTION, Invocation, Metric, MetricsSink};

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

type Labels = Vec<(String, String)>;
/// One distribution's histograms, by label set.
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets: 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// The registry and one family per [`Metric`].
pub struct Prometheus {
    registry: Registry,
    counters: HashMap<Metric, Family<Labels, Counter>>,
    /// One histogram family per distribution (`FanoutLatency`, `PostBudgetWait`).
    latencies: HashMap<Metric, Histograms>,
    /// Serialises [`Prometheus::sync_dead_letters`] (read, then add the difference).
    dead_letters: Mutex<()>,
}

impl Default for Prometheus {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let mut counters = HashMap::new();
        let mut latencies = HashMap::new();
        for metric in Metric::ALL {
            if metric.is_counter() {
                let family = Family::<Labels, Counter>::default();
                registry.register(snake_case(metric.name()), metric.help(), family.clone());
                counters.insert(metric, family);
            } else {
                let family: Histograms = Family::new_with_constructor(latency_histogram);
                registry.register_with_unit(
                    snake_case(metric.name()),
                    metric.help(),
                    Unit::Other("milliseconds".into()),
                    family.clone(),
                );
                latencies.insert(metric, family);
            }
        }
        Prometheus {
            registry,
            counters,
            latencies,
            dead_letters: Mutex::new(()),
        }
    }
}

impl Prometheus {
    /// The text exposition (`text/plain; version=0.0.4` is what Prometheus
    /// scrapes; OpenMetrics text, which this is, is accepted as that).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Adds the Management API's post answers
    /// (`switchboard_management_posts_total{answer}`: delivered,
    /// throttled_account, refused).
    pub(crate) fn register_management(&mut self, management: &crate::management::Management) {
        self.registry.register(
            "management_posts",
            "Management API posts by answer (throttled_account: 429 from the account-level throttle)",
            management.counts.family.clone(),
        );
    }

    /// Brings `switchboard_dead_lettered_total{queue}` up to `dead` (the
    /// local queue's dead letters so far, which only grow).
    pub fn sync_dead_letters(&self, queue: &str, dead: u64) {
        let _guard = self.dead_letters.lock();
        let Some(family) = self.counters.get(&Metric::DeadLettered) else {
            return;
        };
        let labels = vec![
            (snake_case(FUNCTION), "local-queue".to_owned()),
            ("queue".to_owned(), queue.to_owned()),
        ];
        let counter = family.get_or_create(&labels);
        let seen = counter.get();
        if dead > seen {
            counter.inc_by(dead - seen);
        }
    }
}

impl MetricsSink for Prometheus {
    fn export(&self, function: &'static str, invocation: &Invocation) {
        for (series, values) in &invocation.series {
            let mut labels: Labels = vec![(snake_case(FUNCTION), function.to_owned())];
            labels.extend(
                series
                    .metric
                    .dimensions()
                    .iter()
                    .zip(&series.values)
                    .map(|(name, value)| (snake_case(name), (*value).to_owned())),
            );
            if series.metric.is_counter() {
                if let Some(family) = self.counters.get(&series.metric) {
                    family.get_or_create(&labels).inc_by(values.iter().sum());
                }
            } else if let Some(family) = self.latencies.get(&series.metric) {
                let histogram = family.get_or_create(&labels);
                for value in values {
                    histogram.observe(*value as f64);
                }
            }
        }
    }
}

/// `ConnectsRejected` → `connects_rejected`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case() {
        assert_eq!(snake_case("ConnectsRejected"), "connects_rejected");
        assert_eq!(snake_case("CloseCode"), "close_code");
        assert_eq!(snake_case("Function"), "function");
    }
}
