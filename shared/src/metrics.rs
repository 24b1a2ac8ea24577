//! Metrics: what every function counts, aggregated per invocation and handed
//! to a [`MetricsSink`] once when the invocation ends.
//!
//! On Lambda the sink is [`Emf`]: CloudWatch Embedded Metric Format, one JSON
//! line on stdout per invocation (one per combination of dimension values,
//! which in practice is one), namespace [`NAMESPACE`]. CloudWatch Logs turns
//! the line into metrics; no API call, nothing on the hot path but a counter
//! in a map. The local stack's sink feeds its Prometheus registry (`GET /metrics`).
//!
//! Each EMF line is also a line of Lambda's JSON log format: `"level":"INFO"`
//! and an RFC 3339 `"timestamp"` (the instant of `_aws.Timestamp`), the two
//! keys Lambda reads to filter by `ApplicationLogLevel` (a JSON line without a
//! valid timestamp counts as INFO). The sink writes to stdout itself, not
//! through `tracing`, so the functions' `LOG_LEVEL` never drops a metric (see
//! [`crate::logs`]).
//!
//! Dimensions are low-cardinality by construction: every dimension value is a
//! `&'static str` from a closed set in the code (a route, an outcome, a
//! reason, a close-code class), never a user, connection or group.
//!
//! Recording outside [`measure`] (a handler called directly, as most tests
//! do) costs one thread-local lookup and records nothing.

use std::cell::RefCell;
use std::future::Future;
use std::io::Write;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Switchboard";

/// The dimension every metric carries: the function (`connect`, `deliver`, …).
pub const FUNCTION: &str = "Function";

/// EMF takes at most 100 values per metric in one line.
const MAX_VALUES_PER_LINE: usize = 100;

/// The metrics the code emits: the template's alarms and dashboard use only
/// these (`shared/tests/template.rs` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Handshakes `$connect` accepted.
    ConnectsAccepted,
    /// Handshakes `$connect` refused, by `Reason`.
    ConnectsRejected,
    /// `$disconnect`s, by `CloseCode` class.
    Disconnects,
    /// Client actions (subscribe, unsubscribe, publish, presence), by `Action` and `Outcome`.
    ClientActions,
    /// Posts the Management API accepted.
    PostsDelivered,
    /// Posts to a connection that is gone (410).
    PostsGone,
    /// Posts the Management API throttled (429), retried.
    PostsThrottled,
    /// Posts that failed otherwise (5xx, timeout, network), retried.
    PostsFailed,
    /// From the queue message's `SentTimestamp` to the end of its last post, in ms.
    FanoutLatency,
    /// Messages the code refused for good, so they go to their dead-letter queue, by `Queue`.
    DeadLettered,
    /// Posts sent again inside the invocation after a transient failure.
    PostsRetried,
    /// Records handed back to their queue for a try after a short delay, by `Queue`.
    RetriesScheduled,
    /// How long a booking of the stack's post budget waited for its turn, in ms
    /// (see [`crate::pacing`]).
    PostBudgetWait,
    /// Fetches of an OIDC issuer's keys (discovery or JWKS) that failed or
    /// timed out (see [`crate::oidc`]).
    JwksFetchFailures,
}

impl Metric {
    /// Every metric, for the template test and the Prometheus registry.
    pub const ALL: [Metric; 14] = [
        Metric::ConnectsAccepted,
        Metric::ConnectsRejected,
        Metric::Disconnects,
        Metric::ClientActions,
        Metric::PostsDelivered,
        Metric::PostsGone,
        Metric::PostsThrottled,
        Metric::PostsFailed,
        Metric::FanoutLatency,
        Metric::DeadLettered,
        Metric::PostsRetried,
        Metric::RetriesScheduled,
        Metric::PostBudgetWait,
        Metric::JwksFetchFailures,
    ];

    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ConnectsAccepted => "ConnectsAccepted",
            Metric::ConnectsRejected => "ConnectsRejected",
            Metric::Disconnects => "Disconnects",
            Metric::ClientActions => "ClientActions",
            Metric::PostsDelivered => "PostsDelivered",
            Metric::PostsGone => "PostsGone",
            Metric::PostsThrottled => "PostsThrottled",
            Metric::PostsFailed => "PostsFailed",
            Metric::FanoutLatency => "FanoutLatency",
            Metric::DeadLettered => "DeadLettered",
            Metric::PostsRetried => "PostsRetried",
            Metric::RetriesScheduled => "RetriesScheduled",
            Metric::PostBudgetWait => "PostBudgetWait",
            Metric::JwksFetchFailures => "JwksFetchFailures",
        }
    }

    /// The CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::FanoutLatency | Metric::PostBudgetWait => "Milliseconds",
            _ => "Count",
        }
    }

    /// Whether values are summed per invocation (counters) or kept one by one
    /// (distributions such as latency).
    pub fn is_counter(self) -> bool {
        !matches!(self, Metric::FanoutLatency | Metric::PostBudgetWait)
    }

    /// The dimensions besides [`FUNCTION`], in order.
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Metric::ConnectsRejected => &["Reason"],
            Metric::Disconnects => &["CloseCode"],
            Metric::ClientActions => &["Action", "Outcome"],
            Metric::DeadLettered | Metric::RetriesScheduled => &["Queue"],
            _ => &[],
        }
    }

    /// What it measures, for the Prometheus help text.
    pub fn help(self) -> &'static str {
        match self {
            Metric::ConnectsAccepted => "Handshakes $connect accepted",
            Metric::ConnectsRejected => "Handshakes $connect refused, by reason",
            Metric::Disconnects => "Disconnects, by close-code class",
            Metric::ClientActions => "Client actions, by action and outcome",
            Metric::PostsDelivered => "Posts the Management API accepted",
            Metric::PostsGone => "Posts to connections that are gone (410)",
            Metric::PostsThrottled => "Posts throttled by the Management API (429)",
            Metric::PostsFailed => "Posts that failed otherwise (5xx, timeout)",
            Metric::FanoutLatency => {
                "From the queue message's SentTimestamp to its last post, in milliseconds"
            }
            Metric::DeadLettered => "Messages refused for good (bound for the dead-letter queue)",
            Metric::PostsRetried => {
                "Posts sent again inside the invocation after a transient failure"
            }
            Metric::RetriesScheduled => {
                "Records handed back to their queue for a try after a short delay"
            }
            Metric::PostBudgetWait => {
                "How long a booking of the stack's post budget waited for its turn, in milliseconds"
            }
            Metric::JwksFetchFailures => {
                "Fetches of an OIDC issuer's keys that failed or timed out"
            }
        }
    }
}

/// The class of a WebSocket close code, the `CloseCode` dimension.
pub fn close_code_class(code: i64) -> &'static str {
    match code {
        1000 => "normal",
        1001 => "going_away",
        1005 | 1006 => "abnormal",
        1008 | 1009 => "policy",
        1011 => "server_error",
        1002..=1015 => "protocol",
        3000..=4999 => "application",
        _ => "other",
    }
}

/// One series: a metric and its dimension values (in [`Metric::dimensions`] order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    pub metric: Metric,
    pub values: Vec<&'static str>,
}

/// Dimension names and values, in order.
type Dimensions = Vec<(&'static str, &'static str)>;

/// One EMF line's dimension values and its metrics' values.
type Group<'a> = (Dimensions, Vec<(Metric, &'a [u64])>);

/// What one invocation recorded: each counter's sum, each distribution's
/// values, in whole units. A handful of series per invocation, so a list
/// searched in order (smaller in the bootstraps than a map).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invocation {
    pub series: Vec<(Series, Vec<u64>)>,
}

impl Invocation {
    fn add(&mut self, metric: Metric, values: &[&'static str], value: u64) {
        let index = match self
            .series
            .iter()
            .position(|(s, _)| s.metric == metric && s.values == values)
        {
            Some(index) => index,
            None => {
                let series = Series {
                    metric,
                    values: values.to_vec(),
                };
                self.series.push((series, Vec::new()));
                self.series.len() - 1
            }
        };
        let entry = &mut self.series[index].1;
        match entry.first_mut() {
            Some(sum) if metric.is_counter() => *sum += value,
            _ => entry.push(value),
        }
    }

    /// The sum of `metric`'s values over every series whose dimension values
    /// are `values` (all of them when `values` is empty).
    pub fn total(&self, metric: Metric, values: &[&str]) -> u64 {
        self.series
            .iter()
            .filter(|(s, _)| s.metric == metric && (values.is_empty() || s.values == values))
            .flat_map(|(_, v)| v.iter())
            .sum()
    }

    /// The EMF lines for this invocation of `function` at `timestamp_ms`: one
    /// per combination of dimension values (and more when a distribution has
    /// over 100 values).
    pub fn emf_lines(&self, function: &str, timestamp_ms: i64) -> Vec<String> {
        // Series grouped by their dimension names and values: one line each.
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (series, values) in &self.series {
            let dims: Dimensions = series
                .metric
                .dimensions()
                .iter()
                .copied()
                .zip(series.values.iter().copied())
                .collect();
            match groups.iter_mut().find(|(d, _)| *d == dims) {
                Some((_, metrics)) => metrics.push((series.metric, values)),
                None => groups.push((dims, vec![(series.metric, values)])),
            }
        }
        let mut lines = Vec::new();
        let time = crate::clock::rfc3339(timestamp_ms);
        for (dims, metrics) in groups {
            let chunks = metrics
                .iter()
                .map(|(_, v)| v.len().div_ceil(MAX_VALUES_PER_LINE))
                .max()
                .unwrap_or(1)
                .max(1);
            for chunk in 0..chunks {
                let start = chunk * MAX_VALUES_PER_LINE;
                let parts: Vec<(Metric, &[u64])> = metrics
                    .iter()
                    .map(|(metric, values)| {
                        let part = values.get(start..).unwrap_or_default();
                        (*metric, &part[..part.len().min(MAX_VALUES_PER_LINE)])
                    })
                    .filter(|(_, part)| !part.is_empty())
                    .collect();
                lines.push(emf_line(function, timestamp_ms, &time, &dims, &parts));
            }
        }
        lines
    }
}

/// One EMF line: Lambda's `level` and `timestamp` (`time`, the RFC 3339 form
/// of `timestamp_ms`), the `_aws` directive, the dimension values and the
/// metric values.
fn emf_line(
    function: &str,
    timestamp_ms: i64,
    time: &str,
    dims: &Dimensions,
    parts: &[(Metric, &[u64])],
) -> String {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        r#"{{"level":"INFO","timestamp":"{time}","_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":[{{"Namespace":"{NAMESPACE}","Dimensions":[["{FUNCTION}""#
    );
    for (name, _) in dims {
        line.push(',');
        push_json_str(&mut line, name);
    }
    line.push_str(r#"]],"Metrics":["#);
    for (i, (metric, _)) in parts.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(
            line,
            r#"{{"Name":"{}","Unit":"{}"}}"#,
            metric.name(),
            metric.unit()
        );
    }
    line.push_str(r#"]}]},""#);
    line.push_str(FUNCTION);
    line.push_str(r#"":"#);
    push_json_str(&mut line, function);
    for (name, value) in dims {
        line.push(',');
        push_json_str(&mut line, name);
        line.push(':');
        push_json_str(&mut line, value);
    }
    for (metric, values) in parts {
        let _ = write!(line, r#","{}":"#, metric.name());
        if metric.is_counter() {
            let _ = write!(line, "{}", values[0]);
        } else {
            line.push('[');
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{value}");
            }
            line.push(']');
        }
    }
    line.push('}');
    line
}

/// `text` as a JSON string (the dimension values are plain names, but a
/// caller's function name is escaped all the same).
fn push_json_str(line: &mut String, text: &str) {
    line.push('"');
    for c in text.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(line, "\\u{:04x}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// Where an invocation's metrics go when it ends.
pub trait MetricsSink: Send + Sync {
    fn export(&self, function: &'static str, invocation: &Invocation);
}

/// CloudWatch Embedded Metric Format on stdout (Lambda sends stdout to CloudWatch Logs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Emf;

impl MetricsSink for Emf {
    fn export(&self, function: &'static str, invocation: &Invocation) {
        let lines = invocation.emf_lines(function, crate::clock::now_millis());
        if lines.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        for line in lines {
            // Metrics are best effort: a closed stdout must not fail the invocation.
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

tokio::task_local! {
    static CURRENT: RefCell<Invocation>;
}

/// Runs `invocation` with a fresh [`Invocation`] that the code it calls
/// records into, then hands what it recorded to `sink` under `function`.
/// Work the invocation spawns onto other tasks is not counted (the handlers
/// spawn none).
pub async fn measure<F: Future>(
    sink: &dyn MetricsSink,
    function: &'static str,
    invocation: F,
) -> F::Output {
    let (output, recorded) = CURRENT
        .scope(RefCell::new(Invocation::default()), async {
            let output = invocation.await;
            let recorded = CURRENT.with(|current| std::mem::take(&mut *current.borrow_mut()));
            (output, recorded)
        })
        .await;
    sink.export(function, &recorded);
    output
}

/// Adds `value` to `metric` with the dimension `values` (in
/// [`Metric::dimensions`] order) in the current invocation, if any.
pub fn record(metric: Metric, values: &[&'static str], value: u64) {
    debug_assert_eq!(values.len(), metric.dimensions().len(), "{metric:?}");
    let _ = CURRENT.try_with(|current| {
        if let Ok(mut current) = current.try_borrow_mut() {
            current.add(metric, values, value);
        }
    });
}

/// Adds `n` to the counter `metric` (dimension `values`).
pub fn count(metric: Metric, values: &[&'static str], n: usize) {
    if n > 0 {
        record(metric, values, n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_dimension_values_with_units_and_values() {
        let mut invocation = Invocation::default();
        invocation.add(Metric::PostsDelivered, &[], 2);
        invocation.add(Metric::PostsDelivered, &[], 1);
        invocation.add(Metric::FanoutLatency, &[], 12);
        invocation.add(Metric::FanoutLatency, &[], 30);
        let lines = invocation.emf_lines("deliver", 1_700_000_000_000);
        assert_eq!(lines.len(), 1);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["Function"], "deliver");
        assert_eq!(line["PostsDelivered"], 3);
        assert_eq!(line["FanoutLatency"], serde_json::json!([12, 30]));
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Switchboard");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000i64);
        // Lambda's JSON log keys: the same instant, at level INFO.
        assert_eq!(line["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(line["level"], "INFO");
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(
            metrics.contains(&serde_json::json!({"Name":"FanoutLatency","Unit":"Milliseconds"}))
        );
        assert!(metrics.contains(&serde_json::json!({"Name":"PostsDelivered","Unit":"Count"})));
    }

    #[test]
    fn over_100_values_split_into_lines() {
        let mut invocation = Invocation::default();
        for i in 0..150 {
            invocation.add(Metric::FanoutLatency, &[], i);
        }
        let lines = invocation.emf_lines("deliver", 0);
        assert_eq!(lines.len(), 2);
        let counts: Vec<usize> = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["FanoutLatency"].as_array().unwrap().len()
            })
            .collect();
        assert_eq!(counts, [100, 50]);
    }

    #[test]
    fn lines_are_json_with_dimension_values_and_escaped_names() {
        let mut invocation = Invocation::default();
        invocation.add(Metric::ClientActions, &["publish", "rate_limited"], 1);
        invocation.add(Metric::ClientActions, &["publish", "rate_limited"], 1);
        invocation.add(Metric::ClientActions, &["subscribe", "ok"], 1);
        let lines = invocation.emf_lines("odd \"name\"\n", 5);
        assert_eq!(lines.len(), 2);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "level": "INFO",
                "timestamp": "1970-01-01T00:00:00.005Z",
                "_aws": {"Timestamp": 5, "CloudWatchMetrics": [{
                    "Namespace": "Switchboard",
                    "Dimensions": [["Function", "Action", "Outcome"]],
                    "Metrics": [{"Name": "ClientActions", "Unit": "Count"}],
                }]},
                "Function": "odd \"name\"\n",
                "Action": "publish",
                "Outcome": "rate_limited",
                "ClientActions": 2,
            })
        );
    }

    #[test]
    fn close_codes_fall_in_few_classes() {
        assert_eq!(close_code_class(1000), "normal");
        assert_eq!(close_code_class(1001), "going_away");
        assert_eq!(close_code_class(1006), "abnormal");
        assert_eq!(close_code_class(1009), "policy");
        assert_eq!(close_code_class(1003), "protocol");
        assert_eq!(close_code_class(4001), "application");
        assert_eq!(close_code_class(-1), "other");
    }
}
