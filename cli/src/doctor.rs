//! `switchboard doctor`: a pre-flight of a deployed stack's settings against
//! what its AWS account can give them.
//!
//! [`read`] gathers the [`Readings`] (the account's Lambda concurrency, the
//! stack's parameters, API Gateway's account throttle quota, the WebSocket
//! stage's default route throttles); a reading that fails is kept as its
//! error. [`findings`] turns the readings into [`Finding`]s, a pure function
//! the unit tests drive without AWS. Each finding that is not `ok` says what
//! to lower or raise, with the exact `sam deploy --parameter-overrides ...`
//! or Service Quotas request that does it.
//!
//! The rules:
//! - the five queue consumers' SQS maximum concurrencies, the concurrency
//!   reserved for connect and ping (2 × RouteReservedConcurrency) and a
//!   headroom for the route functions (10% of the account's concurrency, at
//!   least 5) must fit in what the stack can use: the account's unreserved
//!   concurrency plus the stack's own reservations (Lambda counts those out
//!   of the unreserved figure already). Otherwise a busy queue takes the
//!   concurrency `$connect` needs, and clients fail to connect;
//! - each consumer's maximum must be at most what is left for the consumers
//!   (AWS advises against a maximum concurrency above what the function can
//!   get: "Lambda event source mappings: scaling behavior for SQS");
//! - a reservation must leave Lambda's minimum of 100 unreserved, or
//!   CloudFormation cannot apply it;
//! - PostRateLimit at most 95% of API Gateway's account throttle quota (the
//!   posts share it with `$connect`, client messages and the HTTP API), and
//!   more than 0 (0 turns pacing off);
//! - the stage's default route throttles: both above 0, the burst at least a
//!   tenth of the rate, the rate within the account quota, and the same as
//!   the stack's parameters (else they were changed outside CloudFormation).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_smithy_runtime_api::client::result::SdkError;
use serde_json::{Value, json};

use crate::Stack;

/// The exit code of `doctor` when a finding fails (0: none fails).
pub const FAIL_EXIT: u8 = 5;

/// Service Quotas: Lambda's "Concurrent executions".
pub const LAMBDA_CONCURRENCY_QUOTA: &str = "L-B99A9384";
/// Service Quotas: API Gateway's "Throttle rate" per account and Region, across
/// HTTP, REST and WebSocket APIs and the WebSocket callback (Management) API.
pub const API_GATEWAY_THROTTLE_QUOTA: &str = "L-8A5B8E43";
/// API Gateway's documented default account throttle, requests a second.
pub const DEFAULT_THROTTLE_QUOTA: f64 = 10_000.0;
/// The documented default in the Regions that start lower.
pub const LOW_DEFAULT_THROTTLE_QUOTA: f64 = 2_500.0;
/// The Regions whose default account throttle is 2,500 a second (API Gateway quotas page).
pub const LOW_DEFAULT_REGIONS: [&str; 13] = [
    "af-south-1",
    "eu-south-1",
    "ap-southeast-3",
    "me-central-1",
    "ap-south-2",
    "ap-southeast-4",
    "eu-south-2",
    "eu-central-2",
    "il-central-1",
    "ca-west-1",
    "ap-southeast-5",
    "ap-southeast-7",
    "mx-central-1",
];
/// The share of the account throttle PostRateLimit should stay within.
pub const POST_RATE_SHARE: f64 = 0.95;
/// SQS event sources' lowest maximum concurrency.
pub const MIN_MAX_CONCURRENCY: i64 = 2;
/// What Lambda keeps unreserved: a reservation may not take the account below it.
pub const MIN_UNRESERVED: i64 = 100;
/// The account concurrency `doctor` asks for at least (Lambda's usual default).
pub const REQUESTED_CONCURRENCY: i64 = 1_000;

/// The five queue consumers' parameters and template.yaml's defaults.
pub const CONSUMERS: [(&str, i64); 5] = [
    ("NotifyUserMaxConcurrency", 5),
    ("NotifyConnectionMaxConcurrency", 20),
    ("CommandsMaxConcurrency", 5),
    ("DeliverMaxConcurrency", 50),
    ("UpstreamMaxConcurrency", 5),
];

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        }
    }
}

/// One way to act on a finding: what it does ("lower", "raise", "request",
/// "restore") and the command.
#[derive(Clone, Debug, PartialEq)]
pub struct Fix {
    pub action: &'static str,
    pub command: String,
}

/// What one check found.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The check's name: `concurrency`, `reservation`, `consumer:<Parameter>`,
    /// `post-rate`, `stage-throttle`, `stage-drift`, `parameter:<Parameter>`,
    /// `read:<what>`.
    pub check: String,
    pub severity: Severity,
    pub message: String,
    pub fixes: Vec<Fix>,
}

impl Finding {
    fn new(check: impl Into<String>, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            check: check.into(),
            severity,
            message: message.into(),
            fixes: Vec::new(),
        }
    }

    fn fix(mut self, action: &'static str, command: String) -> Self {
        self.fixes.push(Fix { action, command });
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "check": self.check,
            "severity": self.severity.as_str(),
            "message": self.message,
            "fixes": self.fixes.iter()
                .map(|f| json!({"action": f.action, "command": f.command}))
                .collect::<Vec<_>>(),
        })
    }
}

/// The account's Lambda concurrency (`GetAccountSettings`).
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// AccountLimit.ConcurrentExecutions.
    pub limit: i64,
    /// AccountLimit.UnreservedConcurrentExecutions.
    pub unreserved: i64,
}

/// API Gateway's account throttle quota, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Quota {
    pub value: f64,
    /// "applied" (GetServiceQuota) or "AWS default" (GetAWSDefaultServiceQuota).
    pub source: &'static str,
}

/// The WebSocket stage and its default route throttles (`GetStage`).
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub api_id: String,
    pub name: String,
    pub rate: Option<f64>,
    pub burst: Option<i64>,
}

/// Everything `doctor` read; a reading that failed holds its error.
#[derive(Clone, Debug)]
pub struct Readings {
    pub stack: String,
    pub region: String,
    pub parameters: BTreeMap<String, String>,
    pub account: Result<Account, String>,
    pub quota: Result<Quota, String>,
    pub stage: Result<Stage, String>,
}

impl Readings {
    pub fn to_json(&self) -> Value {
        let or_error = |v: Result<Value, &String>| v.unwrap_or_else(|e| json!({ "error": e }));
        json!({
            "parameters": self.parameters,
            "account": or_error(self.account.as_ref().map(|a| json!({
                "concurrentExecutions": a.limit,
                "unreservedConcurrentExecutions": a.unreserved,
            }))),
            "managementApiQuota": or_error(self.quota.as_ref().map(|q| json!({
                "quotaCode": API_GATEWAY_THROTTLE_QUOTA,
                "value": q.value,
                "source": q.source,
            }))),
            "stage": or_error(self.stage.as_ref().map(|s| json!({
                "apiId": s.api_id,
                "stageName": s.name,
                "throttlingRateLimit": s.rate,
                "throttlingBurstLimit": s.burst,
            }))),
        })
    }
}

/// The stack parameters the checks use, with template.yaml's defaults where
/// the stack has none (an older template) or an unreadable value.
#[derive(Clone, Debug, PartialEq)]
struct Parameters {
    consumers: [(&'static str, i64); 5],
    route_reserved: i64,
    post_rate_limit: f64,
    rate: f64,
    burst: f64,
}

impl Parameters {
    fn read(stack: &BTreeMap<String, String>, out: &mut Vec<Finding>) -> Self {
        let mut number = |name: &'static str, default: f64| -> f64 {
            let missing = |why: String| {
                Finding::new(
                    format!("parameter:{name}"),
                    Severity::Warn,
                    format!("{why}: the checks assume the template default {default}"),
                )
            };
            match stack.get(name).map(|v| v.trim().parse::<f64>()) {
                Some(Ok(v)) if v.is_finite() && v >= 0.0 => v,
                Some(_) => {
                    out.push(missing(format!(
                        "the stack's parameter {name} is not a number ({:?})",
                        stack.get(name).map(String::as_str).unwrap_or_default()
                    )));
                    default
                }
                None => {
                    out.push(missing(format!(
                        "the stack has no parameter {name} (an older template?)"
                    )));
                    default
                }
            }
        };
        let mut consumers = CONSUMERS;
        for (name, value) in &mut consumers {
            *value = number(name, *value as f64).round() as i64;
        }
        Parameters {
            consumers,
            route_reserved: number("RouteReservedConcurrency", 0.0).round() as i64,
            post_rate_limit: number("PostRateLimit", 9_500.0),
            rate: number("ThrottlingRateLimit", 1_000.0),
            burst: number("ThrottlingBurstLimit", 500.0),
        }
    }

    fn consumer_sum(&self) -> i64 {
        self.consumers.iter().map(|(_, v)| v).sum()
    }
}

/// The headroom kept for the route functions: 10% of the account's
/// concurrency, at least 5.
pub fn headroom(limit: i64) -> i64 {
    ((limit + 9) / 10).max(5)
}

/// `value` as few digits as it needs (1000, 9.5).
fn num(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The `sam deploy` that sets `overrides` on the stack (the other parameters keep their values).
fn sam_deploy(r: &Readings, overrides: &[(&str, String)]) -> String {
    let list: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "sam deploy --stack-name {} --region {} --parameter-overrides {}",
        r.stack,
        r.region,
        list.join(" ")
    )
}

/// The Service Quotas request for `desired` of `quota` in `service`.
fn quota_request(r: &Readings, service: &str, quota: &str, desired: i64) -> String {
    format!(
        "aws service-quotas request-service-quota-increase --service-code {service} --quota-code {quota} --desired-value {desired} --region {}",
        r.region
    )
}

/// The findings from the readings, in the order of the checks.
pub fn findings(r: &Readings) -> Vec<Finding> {
    let mut out = Vec::new();
    let p = Parameters::read(&r.parameters, &mut out);
    match &r.account {
        Ok(account) => concurrency(r, &p, account, &mut out),
        Err(e) => out.push(Finding::new(
            "read:lambda-concurrency",
            Severity::Warn,
            format!(
                "could not read the account's Lambda concurrency (lambda:GetAccountSettings): {e}; the concurrency checks were skipped"
            ),
        )),
    }
    let quota = match &r.quota {
        Ok(q) => q.value,
        Err(e) => {
            let assumed = default_quota(&r.region);
            out.push(Finding::new(
                "read:management-api-quota",
                Severity::Warn,
                format!(
                    "could not read API Gateway's account throttle quota ({API_GATEWAY_THROTTLE_QUOTA}, servicequotas:GetServiceQuota): {e}; the checks assume the documented default {}/s for {}",
                    num(assumed),
                    r.region
                ),
            ));
            assumed
        }
    };
    post_rate(r, &p, quota, &mut out);
    stage(r, &p, quota, &mut out);
    out
}

/// API Gateway's documented default account throttle in `region`.
pub fn default_quota(region: &str) -> f64 {
    if LOW_DEFAULT_REGIONS.contains(&region) {
        LOW_DEFAULT_THROTTLE_QUOTA
    } else {
        DEFAULT_THROTTLE_QUOTA
    }
}

/// Consumer maxima that fit in `budget` (at least 2 each; `budget` ≥ 10):
/// the current ones when they fit, else shares in proportion to them, the
/// remainder to the largest fractions.
fn fit_consumers(current: &[(&'static str, i64); 5], budget: i64) -> [(&'static str, i64); 5] {
    let sum: i64 = current.iter().map(|(_, v)| v).sum();
    if sum <= budget {
        return *current;
    }
    let mut fitted = *current;
    let mut fractions = Vec::new();
    for (i, (_, value)) in fitted.iter_mut().enumerate() {
        let share = (current[i].1 as f64) * (budget as f64) / (sum as f64);
        *value = (share.floor() as i64).max(MIN_MAX_CONCURRENCY);
        fractions.push((share - share.floor(), i));
    }
    let total = |f: &[(&str, i64); 5]| f.iter().map(|(_, v)| v).sum::<i64>();
    // Over by the minimum of 2: take from the largest (bounded: each pass takes one).
    for _ in 0..(5 * budget.max(1)) {
        if total(&fitted) <= budget {
            break;
        }
        if let Some(largest) = fitted
            .iter_mut()
            .filter(|(_, v)| *v > MIN_MAX_CONCURRENCY)
            .max_by_key(|(_, v)| *v)
        {
            largest.1 -= 1;
        }
    }
    // Under: the rest to the largest fractions, one each.
    fractions.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in fractions {
        if total(&fitted) >= budget {
            break;
        }
        fitted[i].1 += 1;
    }
    fitted
}

fn concurrency(r: &Readings, p: &Parameters, account: &Account, out: &mut Vec<Finding>) {
    let reserved = p.route_reserved;
    let own = 2 * reserved;
    // Lambda's unreserved figure already leaves out this stack's own reservations.
    let pool = account.unreserved + own;
    let room = headroom(account.limit);
    let consumers = p.consumer_sum();
    let need = consumers + own + room;
    let left = pool - own - room;
    let has = if own > 0 {
        format!(
            "the account has {} (unreserved {}, and {own} reserved for this stack's connect and ping)",
            account.limit, account.unreserved
        )
    } else {
        format!(
            "the account has {} (unreserved {})",
            account.limit, account.unreserved
        )
    };
    let what = format!(
        "the five queue consumers may take {consumers} concurrent executions; with {own} reserved for connect and ping (RouteReservedConcurrency {reserved} each) and {room} kept for the other routes that is {need}, and {has}"
    );
    // The account the stack needs: its settings, the headroom (10% of it) and
    // what other functions reserve, rounded up to a hundred, at least 1,000.
    let others = (account.limit - pool).max(0);
    let wanted =
        (((consumers + own + others) as f64 / 0.9).ceil() as i64).max(consumers + own + others + 5);
    let wanted = (wanted + 99) / 100 * 100;
    let desired = wanted.max(REQUESTED_CONCURRENCY);
    let increase = quota_request(r, "lambda", LAMBDA_CONCURRENCY_QUOTA, desired);

    // A reservation must leave Lambda's 100 unreserved.
    if reserved > 0 && pool - own < MIN_UNRESERVED {
        out.push(
            Finding::new(
                "reservation",
                Severity::Fail,
                format!(
                    "RouteReservedConcurrency {reserved} reserves {own} (connect and ping), which would leave {} unreserved: Lambda keeps at least {MIN_UNRESERVED} unreserved, so CloudFormation cannot apply it. Set 0 (connect and ping then share the pool, with the headroom above), or request an increase",
                    pool - own
                ),
            )
            .fix(
                "lower",
                sam_deploy(r, &[("RouteReservedConcurrency", "0".into())]),
            )
            .fix("request", increase.clone()),
        );
    }

    if need <= pool {
        out.push(Finding::new(
            "concurrency",
            Severity::Ok,
            format!("{what}: it fits ({left} left for the queue consumers)"),
        ));
        return;
    }

    // The lowest reservation that lets the consumers fit (the current one, or 0).
    let fits = |reserve: i64| {
        let budget = pool - 2 * reserve - room;
        let reservable = reserve == 0 || pool - 2 * reserve >= MIN_UNRESERVED;
        (budget >= 5 * MIN_MAX_CONCURRENCY && reservable).then_some(budget)
    };
    let plan = fits(reserved)
        .map(|budget| (reserved, budget))
        .or_else(|| fits(0).map(|budget| (0, budget)));
    let mut finding = Finding::new(
        "concurrency",
        Severity::Fail,
        format!("{what}: $connect will be throttled when the queues are busy"),
    );
    let proposed = match plan {
        Some((reserve, budget)) => {
            let fitted = fit_consumers(&p.consumers, budget);
            let mut overrides: Vec<(&str, String)> = fitted
                .iter()
                .zip(p.consumers.iter())
                .filter(|(new, old)| new.1 != old.1)
                .map(|(new, _)| (new.0, new.1.to_string()))
                .collect();
            if reserve != reserved {
                overrides.push(("RouteReservedConcurrency", reserve.to_string()));
            }
            let names: Vec<String> = overrides
                .iter()
                .map(|(k, v)| {
                    let old = p
                        .consumers
                        .iter()
                        .find(|(name, _)| name == k)
                        .map_or(reserved, |(_, v)| *v);
                    format!("{k} {old} to {v}")
                })
                .collect();
            finding.message.push_str(&format!(
                ". Lower {} ({} for the consumers in all), or request an increase",
                names.join(", "),
                fitted.iter().map(|(_, v)| v).sum::<i64>()
            ));
            finding = finding
                .fix("lower", sam_deploy(r, &overrides))
                .fix("request", increase);
            fitted
        }
        None => {
            // Not even the lowest settings fit: only an increase helps; the
            // lowest settings are what to run with until it is granted.
            let lowest = CONSUMERS.map(|(name, _)| (name, MIN_MAX_CONCURRENCY));
            let mut overrides: Vec<(&str, String)> =
                lowest.iter().map(|(k, v)| (*k, v.to_string())).collect();
            if reserved != 0 {
                overrides.push(("RouteReservedConcurrency", "0".into()));
            }
            finding.message.push_str(&format!(
                ". Even the lowest settings ({MIN_MAX_CONCURRENCY} each, {} in all: SQS's minimum maximum concurrency) leave {} for the routes, under the {room} headroom: request an increase (new accounts start low; AWS also raises them with use). Until it is granted, the lowest settings take the least from $connect",
                5 * MIN_MAX_CONCURRENCY,
                (pool - 5 * MIN_MAX_CONCURRENCY).max(0)
            ));
            finding = finding
                .fix("request", increase)
                .fix("lower", sam_deploy(r, &overrides));
            lowest
        }
    };
    out.push(finding);

    // Each consumer's maximum at most what the consumers have left.
    for ((name, value), (_, new)) in p.consumers.iter().zip(proposed.iter()) {
        if *value > left {
            let lower = plan.is_some() && new < value;
            let message = format!(
                "{name} {value} is more than the {} executions left for the queue consumers: SQS would scale the function past what it can get (AWS advises against a maximum concurrency above it); {}",
                left.max(0),
                if lower {
                    format!("lower it to {new}")
                } else {
                    "request an increase".to_owned()
                }
            );
            let mut finding = Finding::new(format!("consumer:{name}"), Severity::Fail, message);
            if lower {
                finding = finding.fix("lower", sam_deploy(r, &[(name, new.to_string())]));
            }
            out.push(finding);
        }
    }
}

fn post_rate(r: &Readings, p: &Parameters, quota: f64, out: &mut Vec<Finding>) {
    let rate = p.post_rate_limit;
    let target = (quota * POST_RATE_SHARE).floor();
    let set = |rate: f64| sam_deploy(r, &[("PostRateLimit", num(rate))]);
    let quota_text = format!("API Gateway's account throttle ({}/s)", num(quota));
    if rate == 0.0 {
        out.push(
            Finding::new(
                "post-rate",
                Severity::Warn,
                format!(
                    "PostRateLimit 0 turns pacing off: a broadcast finds {quota_text} by 429s and retries. Set 95% of it"
                ),
            )
            .fix("raise", set(target)),
        );
    } else if rate > quota {
        out.push(
            Finding::new(
                "post-rate",
                Severity::Fail,
                format!(
                    "PostRateLimit {} is over {quota_text}: broadcasts are throttled (429) and $connect, client messages and the HTTP API with them. Lower it to 95% of the quota, or request an increase",
                    num(rate)
                ),
            )
            .fix("lower", set(target))
            .fix(
                "request",
                quota_request(
                    r,
                    "apigateway",
                    API_GATEWAY_THROTTLE_QUOTA,
                    (rate / POST_RATE_SHARE).ceil() as i64,
                ),
            ),
        );
    } else if rate > target {
        out.push(
            Finding::new(
                "post-rate",
                Severity::Warn,
                format!(
                    "PostRateLimit {} is over 95% of {quota_text}: a broadcast leaves under 5% of it for $connect, client messages and the HTTP API. Lower it to {}",
                    num(rate),
                    num(target)
                ),
            )
            .fix("lower", set(target)),
        );
    } else {
        out.push(Finding::new(
            "post-rate",
            Severity::Ok,
            format!(
                "PostRateLimit {} is within 95% of {quota_text} ({})",
                num(rate),
                num(target)
            ),
        ));
    }
}

fn stage(r: &Readings, p: &Parameters, quota: f64, out: &mut Vec<Finding>) {
    let (rate, burst, whose) = match &r.stage {
        Ok(stage) => {
            let rate = stage.rate;
            let burst = stage.burst.map(|b| b as f64);
            if rate != Some(p.rate) || burst != Some(p.burst) {
                let shown = |v: Option<f64>| v.map_or("none".to_owned(), num);
                out.push(
                    Finding::new(
                        "stage-drift",
                        Severity::Warn,
                        format!(
                            "stage {} of API {} throttles at rate {} burst {}, the stack's parameters say {} and {}: changed outside CloudFormation. Restore them (or set the parameters to what you want)",
                            stage.name,
                            stage.api_id,
                            shown(rate),
                            shown(burst),
                            num(p.rate),
                            num(p.burst)
                        ),
                    )
                    .fix(
                        "restore",
                        format!(
                            "aws apigatewayv2 update-stage --api-id {} --stage-name {} --default-route-settings ThrottlingRateLimit={},ThrottlingBurstLimit={} --region {}",
                            stage.api_id,
                            stage.name,
                            num(p.rate),
                            num(p.burst),
                            r.region
                        ),
                    ),
                );
            }
            (
                rate.unwrap_or(0.0),
                burst.unwrap_or(0.0),
                format!("stage {}", stage.name),
            )
        }
        Err(e) => {
            out.push(Finding::new(
                "read:stage",
                Severity::Warn,
                format!(
                    "could not read the WebSocket stage's throttles (apigateway:GET): {e}; checking the stack's parameters instead"
                ),
            ));
            (p.rate, p.burst, "the stack's parameters".to_owned())
        }
    };
    let defaults = [
        ("ThrottlingRateLimit", "1000".to_owned()),
        ("ThrottlingBurstLimit", "500".to_owned()),
    ];
    if rate <= 0.0 || burst <= 0.0 {
        out.push(
            Finding::new(
                "stage-throttle",
                Severity::Fail,
                format!(
                    "{whose}: rate {} burst {}: a limit of 0 throttles every $connect and client message",
                    num(rate),
                    num(burst)
                ),
            )
            .fix("raise", sam_deploy(r, &defaults)),
        );
        return;
    }
    let mut fine = true;
    if burst < rate / 10.0 {
        fine = false;
        let burst_to = (rate / 2.0).ceil();
        out.push(
            Finding::new(
                "stage-throttle",
                Severity::Warn,
                format!(
                    "{whose}: burst {} is under a tenth of the rate {}: clients arriving together (a reconnect after a deploy or a network blip) are throttled below the rate. Raise the burst to half the rate",
                    num(burst),
                    num(rate)
                ),
            )
            .fix("raise", sam_deploy(r, &[("ThrottlingBurstLimit", num(burst_to))])),
        );
    }
    if rate > quota {
        fine = false;
        let rate_to = (quota - p.post_rate_limit).floor().max(1.0);
        out.push(
            Finding::new(
                "stage-throttle",
                Severity::Warn,
                format!(
                    "{whose}: rate {} is over API Gateway's account throttle ({}/s), which applies first and is shared with the Management API posts (PostRateLimit {}). Lower it to what the posts leave",
                    num(rate),
                    num(quota),
                    num(p.post_rate_limit)
                ),
            )
            .fix("lower", sam_deploy(r, &[("ThrottlingRateLimit", num(rate_to))])),
        );
    }
    if fine {
        out.push(Finding::new(
            "stage-throttle",
            Severity::Ok,
            format!("{whose}: rate {}/s, burst {}", num(rate), num(burst)),
        ));
    }
}

/// The findings as text: one line each (`FAIL`, `WARN`, `ok`), its fixes
/// below it, and a count.
pub fn text(r: &Readings, findings: &[Finding]) -> String {
    let mut text = format!("stack {} in {}\n", r.stack, r.region);
    for f in findings {
        let label = match f.severity {
            Severity::Ok => "ok  ",
            Severity::Warn => "WARN",
            Severity::Fail => "FAIL",
        };
        text.push_str(&format!("{label} {}: {}\n", f.check, f.message));
        for fix in &f.fixes {
            text.push_str(&format!(
                "       {:<8} {}\n",
                format!("{}:", fix.action),
                fix.command
            ));
        }
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    text.push_str(&format!(
        "{} fail, {} warn, {} ok\n",
        count(Severity::Fail),
        count(Severity::Warn),
        count(Severity::Ok)
    ));
    text
}

/// The JSON document: the readings, the findings and their count.
pub fn to_json(r: &Readings, findings: &[Finding]) -> Value {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    json!({
        "stack": r.stack,
        "region": r.region,
        "readings": r.to_json(),
        "findings": findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        "summary": {
            "fail": count(Severity::Fail),
            "warn": count(Severity::Warn),
            "ok": count(Severity::Ok),
        },
    })
}

/// The exit code for the findings: [`FAIL_EXIT`] when one fails, else 0.
pub fn exit_code(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.severity == Severity::Fail) {
        FAIL_EXIT
    } else {
        0
    }
}

/// An AWS error as `Code: message`, an HTTP status when the answer held no
/// AWS error (an API the endpoint does not have), or the SDK's description.
fn aws_error<E>(e: SdkError<E, aws_smithy_runtime_api::http::Response>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(code) = e.code() {
        return match e.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    if let SdkError::ServiceError(context) = &e {
        return format!(
            "HTTP {} with no AWS error (is the API there?)",
            context.raw().status().as_u16()
        );
    }
    DisplayErrorContext(e).to_string()
}

/// The WebSocket API id and stage of a `WebSocketUrl` output
/// (`wss://<api>.execute-api.<region>.<suffix>/<stage>`).
pub fn websocket_stage(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("wss://")?;
    let (host, path) = rest.split_once('/')?;
    let (api, _) = host.split_once('.')?;
    let stage = path.trim_end_matches('/');
    if api.is_empty() || stage.is_empty() || stage.contains('/') {
        return None;
    }
    Some((api.to_owned(), stage.to_owned()))
}

async fn read_account(sdk: &SdkConfig) -> Result<Account, String> {
    let answer = aws_sdk_lambda::Client::new(sdk)
        .get_account_settings()
        .send()
        .await
        .map_err(aws_error)?;
    let limit = answer
        .account_limit()
        .ok_or("the answer has no AccountLimit")?;
    let unreserved = limit
        .unreserved_concurrent_executions()
        .unwrap_or(limit.concurrent_executions());
    Ok(Account {
        limit: i64::from(limit.concurrent_executions()),
        unreserved: i64::from(unreserved),
    })
}

async fn read_quota(sdk: &SdkConfig) -> Result<Quota, String> {
    let client = aws_sdk_servicequotas::Client::new(sdk);
    let applied = client
        .get_service_quota()
        .service_code("apigateway")
        .quota_code(API_GATEWAY_THROTTLE_QUOTA)
        .send()
        .await;
    let applied_error = match applied {
        Ok(answer) => match answer.quota().and_then(|q| q.value()) {
            Some(value) => {
                return Ok(Quota {
                    value,
                    source: "applied",
                });
            }
            None => "the answer has no value".to_owned(),
        },
        Err(e) => aws_error(e),
    };
    // No applied value (never changed in this account): AWS's default.
    let default = client
        .get_aws_default_service_quota()
        .service_code("apigateway")
        .quota_code(API_GATEWAY_THROTTLE_QUOTA)
        .send()
        .await;
    let default_error = match default {
        Ok(answer) => match answer.quota().and_then(|q| q.value()) {
            Some(value) => {
                return Ok(Quota {
                    value,
                    source: "AWS default",
                });
            }
            None => "the answer has no value".to_owned(),
        },
        Err(e) => aws_error(e),
    };
    Err(format!(
        "GetServiceQuota: {applied_error}; GetAWSDefaultServiceQuota: {default_error}"
    ))
}

async fn read_stage(sdk: &SdkConfig, stack: &Stack) -> Result<Stage, String> {
    let url = stack.output("WebSocketUrl").map_err(|e| e.to_string())?;
    let (api_id, name) = websocket_stage(url).ok_or_else(|| {
        format!("the stack's output WebSocketUrl is not a wss:// stage URL: {url}")
    })?;
    let answer = aws_sdk_apigatewayv2::Client::new(sdk)
        .get_stage()
        .api_id(&api_id)
        .stage_name(&name)
        .send()
        .await
        .map_err(|e| format!("GetStage {api_id}/{name}: {}", aws_error(e)))?;
    let settings = answer.default_route_settings();
    Ok(Stage {
        api_id,
        name,
        rate: settings.and_then(|s| s.throttling_rate_limit()),
        burst: settings
            .and_then(|s| s.throttling_burst_limit())
            .map(i64::from),
    })
}

/// Reads everything the checks need, each reading at once; a reading that
/// fails keeps its error (the findings say what could not be read).
pub async fn read(sdk: &SdkConfig, region: &str, stack: &Stack) -> Readings {
    let (account, quota, stage) =
        tokio::join!(read_account(sdk), read_quota(sdk), read_stage(sdk, stack));
    Readings {
        stack: stack.name.clone(),
        region: region.to_owned(),
        parameters: stack.parameters.clone(),
        account,
        quota,
        stage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// template.yaml's defaults, as DescribeStacks gives them.
    fn defaults() -> BTreeMap<String, String> {
        let mut parameters: BTreeMap<String, String> = CONSUMERS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        for (k, v) in [
            ("RouteReservedConcurrency", "0"),
            ("PostRateLimit", "9500"),
            ("ThrottlingRateLimit", "1000"),
            ("ThrottlingBurstLimit", "500"),
            ("StageName", "prod"),
        ] {
            parameters.insert(k.to_owned(), v.to_owned());
        }
        parameters
    }

    fn readings(limit: i64, unreserved: i64) -> Readings {
        Readings {
            stack: "sb".into(),
            region: "us-east-1".into(),
            parameters: defaults(),
            account: Ok(Account { limit, unreserved }),
            quota: Ok(Quota {
                value: 10_000.0,
                source: "AWS default",
            }),
            stage: Ok(Stage {
                api_id: "abc123".into(),
                name: "prod".into(),
                rate: Some(1000.0),
                burst: Some(500),
            }),
        }
    }

    fn with(mut r: Readings, overrides: &[(&str, &str)]) -> Readings {
        for (k, v) in overrides {
            r.parameters.insert((*k).to_owned(), (*v).to_owned());
        }
        r
    }

    fn find<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
    }

    fn fix<'a>(finding: &'a Finding, action: &str) -> &'a str {
        finding
            .fixes
            .iter()
            .find(|f| f.action == action)
            .map(|f| f.command.as_str())
            .unwrap_or_else(|| panic!("no {action} fix in {finding:#?}"))
    }

    /// The overrides of a `sam deploy` command, applied to the readings.
    fn apply(r: &Readings, command: &str) -> Readings {
        let (_, list) = command
            .split_once("--parameter-overrides ")
            .expect("a sam deploy command");
        let mut r = r.clone();
        for pair in list.split(' ') {
            let (k, v) = pair.split_once('=').expect("Key=Value");
            r.parameters.insert(k.to_owned(), v.to_owned());
        }
        r
    }

    fn checks(findings: &[Finding]) -> Vec<(&str, Severity)> {
        findings
            .iter()
            .map(|f| (f.check.as_str(), f.severity))
            .collect()
    }

    #[test]
    fn a_new_account_of_ten_with_the_defaults_fails_and_must_ask_for_an_increase() {
        let r = readings(10, 10);
        let findings = findings(&r);
        let concurrency = find(&findings, "concurrency");
        assert_eq!(concurrency.severity, Severity::Fail);
        assert!(
            concurrency.message.starts_with(
                "the five queue consumers may take 85 concurrent executions; with 0 reserved for connect and ping (RouteReservedConcurrency 0 each) and 5 kept for the other routes that is 90, and the account has 10 (unreserved 10): $connect will be throttled when the queues are busy. Even the lowest settings (2 each, 10 in all"
            ),
            "{}",
            concurrency.message
        );
        assert_eq!(
            fix(concurrency, "request"),
            "aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 --desired-value 1000 --region us-east-1"
        );
        // The stop-gap names every consumer at SQS's minimum.
        assert_eq!(
            fix(concurrency, "lower"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides NotifyUserMaxConcurrency=2 NotifyConnectionMaxConcurrency=2 CommandsMaxConcurrency=2 DeliverMaxConcurrency=2 UpstreamMaxConcurrency=2"
        );
        // 10 - 5 headroom leaves 5 for the consumers: the two above it fail on their own.
        let deliver = find(&findings, "consumer:DeliverMaxConcurrency");
        assert_eq!(deliver.severity, Severity::Fail);
        assert_eq!(
            deliver.message,
            "DeliverMaxConcurrency 50 is more than the 5 executions left for the queue consumers: SQS would scale the function past what it can get (AWS advises against a maximum concurrency above it); request an increase"
        );
        assert_eq!(
            find(&findings, "consumer:NotifyConnectionMaxConcurrency").severity,
            Severity::Fail
        );
        assert!(
            !findings
                .iter()
                .any(|f| f.check == "consumer:NotifyUserMaxConcurrency")
        );
        assert_eq!(exit_code(&findings), FAIL_EXIT);
        // Even at the lowest settings it still fails: only the increase helps.
        let lowest = findings_of(&apply(&r, fix(concurrency, "lower")));
        assert_eq!(find(&lowest, "concurrency").severity, Severity::Fail);
    }

    fn findings_of(r: &Readings) -> Vec<Finding> {
        findings(r)
    }

    #[test]
    fn a_fifty_account_gets_overrides_that_fit_in_proportion() {
        let r = readings(50, 50);
        let findings = findings(&r);
        let concurrency = find(&findings, "concurrency");
        assert_eq!(concurrency.severity, Severity::Fail);
        assert!(
            concurrency.message.ends_with(
                ": $connect will be throttled when the queues are busy. Lower NotifyUserMaxConcurrency 5 to 3, NotifyConnectionMaxConcurrency 20 to 10, CommandsMaxConcurrency 5 to 3, DeliverMaxConcurrency 50 to 26, UpstreamMaxConcurrency 5 to 3 (45 for the consumers in all), or request an increase"
            ),
            "{}",
            concurrency.message
        );
        assert_eq!(
            fix(concurrency, "lower"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides NotifyUserMaxConcurrency=3 NotifyConnectionMaxConcurrency=10 CommandsMaxConcurrency=3 DeliverMaxConcurrency=26 UpstreamMaxConcurrency=3"
        );
        let deliver = find(&findings, "consumer:DeliverMaxConcurrency");
        assert_eq!(
            fix(deliver, "lower"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides DeliverMaxConcurrency=26"
        );
        // Applied, the overrides pass.
        let after = findings_of(&apply(&r, fix(concurrency, "lower")));
        assert_eq!(find(&after, "concurrency").severity, Severity::Ok);
        assert_eq!(exit_code(&after), 0);
    }

    #[test]
    fn proposed_overrides_always_fit_where_anything_can() {
        for limit in [15, 16, 20, 33, 50, 64, 99, 100, 101, 150, 200, 500] {
            for others in [0, 3] {
                let r = readings(limit, limit - others);
                let before = findings(&r);
                let concurrency = find(&before, "concurrency");
                if concurrency.severity == Severity::Ok {
                    continue;
                }
                let after = findings_of(&apply(&r, fix(concurrency, "lower")));
                let fits = limit - others - headroom(limit) >= 10;
                assert_eq!(
                    find(&after, "concurrency").severity == Severity::Ok,
                    fits,
                    "limit {limit}, others {others}: {after:#?}"
                );
                if fits {
                    assert!(
                        !after.iter().any(|f| f.check.starts_with("consumer:")),
                        "{after:#?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_thousand_account_with_the_defaults_is_ok() {
        let findings = findings(&readings(1000, 1000));
        assert_eq!(
            checks(&findings),
            [
                ("concurrency", Severity::Ok),
                ("post-rate", Severity::Ok),
                ("stage-throttle", Severity::Ok)
            ]
        );
        assert_eq!(
            findings[0].message,
            "the five queue consumers may take 85 concurrent executions; with 0 reserved for connect and ping (RouteReservedConcurrency 0 each) and 100 kept for the other routes that is 185, and the account has 1000 (unreserved 1000): it fits (900 left for the queue consumers)"
        );
        assert_eq!(exit_code(&findings), 0);
    }

    #[test]
    fn the_stacks_own_reservations_count_back_into_the_pool() {
        // Deployed with 50 each for connect and ping: Lambda shows 900 unreserved.
        let r = with(readings(1000, 900), &[("RouteReservedConcurrency", "50")]);
        let findings = findings(&r);
        assert_eq!(find(&findings, "concurrency").severity, Severity::Ok);
        assert!(
            findings[0]
                .message
                .contains("that is 285, and the account has 1000 (unreserved 900, and 100 reserved for this stack's connect and ping): it fits (800 left"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn a_reservation_must_leave_a_hundred_unreserved() {
        // A 150 account with 30 each reserved would keep 90: CloudFormation cannot apply it.
        let r = with(readings(150, 90), &[("RouteReservedConcurrency", "30")]);
        let findings = findings(&r);
        let reservation = find(&findings, "reservation");
        assert_eq!(reservation.severity, Severity::Fail);
        assert_eq!(
            fix(reservation, "lower"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides RouteReservedConcurrency=0"
        );
        // The consumers fit either way (85 + 60 + 15 = 160 > 150 does not):
        // the proposal drops the reservation and keeps what fits.
        let concurrency = find(&findings, "concurrency");
        assert_eq!(concurrency.severity, Severity::Fail);
        let lower = fix(concurrency, "lower");
        assert!(lower.ends_with(" RouteReservedConcurrency=0"), "{lower}");
        // After a lowering to 0, Lambda gives the 60 back.
        let mut after = apply(&r, lower);
        after.account = Ok(Account {
            limit: 150,
            unreserved: 150,
        });
        let after = findings_of(&after);
        assert_eq!(exit_code(&after), 0, "{after:#?}");
    }

    #[test]
    fn post_rate_limit_stays_within_95_percent_of_the_quota() {
        let at = |rate: &str| findings_of(&with(readings(1000, 1000), &[("PostRateLimit", rate)]));
        assert_eq!(find(&at("9500"), "post-rate").severity, Severity::Ok);

        let over_share = at("9800");
        let post = find(&over_share, "post-rate");
        assert_eq!(post.severity, Severity::Warn);
        assert_eq!(
            post.message,
            "PostRateLimit 9800 is over 95% of API Gateway's account throttle (10000/s): a broadcast leaves under 5% of it for $connect, client messages and the HTTP API. Lower it to 9500"
        );
        assert_eq!(
            fix(post, "lower"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides PostRateLimit=9500"
        );
        assert_eq!(exit_code(&over_share), 0);

        let over_quota = at("12000");
        let post = find(&over_quota, "post-rate");
        assert_eq!(post.severity, Severity::Fail);
        assert_eq!(
            fix(post, "request"),
            "aws service-quotas request-service-quota-increase --service-code apigateway --quota-code L-8A5B8E43 --desired-value 12632 --region us-east-1"
        );
        assert_eq!(exit_code(&over_quota), FAIL_EXIT);

        let off = at("0");
        let post = find(&off, "post-rate");
        assert_eq!(post.severity, Severity::Warn);
        assert!(post.message.starts_with("PostRateLimit 0 turns pacing off"));
        assert_eq!(
            fix(post, "raise"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides PostRateLimit=9500"
        );

        // After a quota increase, 95% of the new quota.
        let mut raised = readings(1000, 1000);
        raised.quota = Ok(Quota {
            value: 20_000.0,
            source: "applied",
        });
        let raised = findings_of(&raised);
        assert_eq!(
            find(&raised, "post-rate").message,
            "PostRateLimit 9500 is within 95% of API Gateway's account throttle (20000/s) (19000)"
        );
    }

    #[test]
    fn an_unread_quota_is_a_warning_and_the_regions_documented_default_is_assumed() {
        let mut r = readings(1000, 1000);
        r.region = "eu-south-1".into();
        r.quota = Err("GetServiceQuota: AccessDeniedException: no".into());
        let findings = findings(&r);
        let read = find(&findings, "read:management-api-quota");
        assert_eq!(read.severity, Severity::Warn);
        assert_eq!(
            read.message,
            "could not read API Gateway's account throttle quota (L-8A5B8E43, servicequotas:GetServiceQuota): GetServiceQuota: AccessDeniedException: no; the checks assume the documented default 2500/s for eu-south-1"
        );
        // 9500 is over Milan's 2,500: the default stack fails there.
        let post = find(&findings, "post-rate");
        assert_eq!(post.severity, Severity::Fail);
        assert_eq!(
            fix(post, "lower"),
            "sam deploy --stack-name sb --region eu-south-1 --parameter-overrides PostRateLimit=2375"
        );
        assert_eq!(default_quota("us-east-1"), 10_000.0);
    }

    #[test]
    fn an_unread_account_skips_the_concurrency_checks_with_a_warning() {
        let mut r = readings(1000, 1000);
        r.account = Err("HTTP 404 with no AWS error (is the API there?)".into());
        let findings = findings(&r);
        assert_eq!(
            checks(&findings),
            [
                ("read:lambda-concurrency", Severity::Warn),
                ("post-rate", Severity::Ok),
                ("stage-throttle", Severity::Ok)
            ]
        );
        assert_eq!(
            findings[0].message,
            "could not read the account's Lambda concurrency (lambda:GetAccountSettings): HTTP 404 with no AWS error (is the API there?); the concurrency checks were skipped"
        );
        assert_eq!(exit_code(&findings), 0);
    }

    #[test]
    fn stage_throttles_are_sane_and_match_the_stack() {
        let stage = |rate: Option<f64>, burst: Option<i64>| {
            let mut r = readings(1000, 1000);
            r.stage = Ok(Stage {
                api_id: "abc123".into(),
                name: "prod".into(),
                rate,
                burst,
            });
            r
        };
        // Changed by hand: drift, and how to restore it.
        let drift = findings_of(&stage(Some(200.0), Some(100)));
        let d = find(&drift, "stage-drift");
        assert_eq!(d.severity, Severity::Warn);
        assert_eq!(
            fix(d, "restore"),
            "aws apigatewayv2 update-stage --api-id abc123 --stage-name prod --default-route-settings ThrottlingRateLimit=1000,ThrottlingBurstLimit=500 --region us-east-1"
        );
        assert_eq!(find(&drift, "stage-throttle").severity, Severity::Ok);

        // A burst under a tenth of the rate.
        let r = with(
            stage(Some(1000.0), Some(50)),
            &[("ThrottlingBurstLimit", "50")],
        );
        let narrow = findings_of(&r);
        let t = find(&narrow, "stage-throttle");
        assert_eq!(t.severity, Severity::Warn);
        assert_eq!(
            fix(t, "raise"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides ThrottlingBurstLimit=500"
        );
        assert!(!narrow.iter().any(|f| f.check == "stage-drift"));

        // A zero limit throttles everything.
        let r = with(stage(Some(0.0), Some(0)), &[("ThrottlingRateLimit", "0")]);
        let zero = findings_of(&with(r, &[("ThrottlingBurstLimit", "0")]));
        let t = find(&zero, "stage-throttle");
        assert_eq!(t.severity, Severity::Fail);
        assert_eq!(exit_code(&zero), FAIL_EXIT);

        // No default route settings on the stage: drift, and the limits read as 0.
        let none = findings_of(&stage(None, None));
        assert_eq!(find(&none, "stage-drift").severity, Severity::Warn);
        assert!(
            find(&none, "stage-drift")
                .message
                .starts_with("stage prod of API abc123 throttles at rate none burst none,")
        );

        // A rate over the account quota.
        let r = with(
            stage(Some(20_000.0), Some(10_000)),
            &[
                ("ThrottlingRateLimit", "20000"),
                ("ThrottlingBurstLimit", "10000"),
            ],
        );
        let high = findings_of(&r);
        let t = find(&high, "stage-throttle");
        assert_eq!(t.severity, Severity::Warn);
        assert_eq!(
            fix(t, "lower"),
            "sam deploy --stack-name sb --region us-east-1 --parameter-overrides ThrottlingRateLimit=500"
        );

        // An unread stage: a warning, and the parameters are checked instead.
        let mut r = readings(1000, 1000);
        r.stage = Err(
            "GetStage abc123/prod: NotFoundException: Invalid stage identifier specified".into(),
        );
        let unread = findings_of(&r);
        assert_eq!(
            find(&unread, "read:stage").message,
            "could not read the WebSocket stage's throttles (apigateway:GET): GetStage abc123/prod: NotFoundException: Invalid stage identifier specified; checking the stack's parameters instead"
        );
        assert_eq!(
            find(&unread, "stage-throttle").message,
            "the stack's parameters: rate 1000/s, burst 500"
        );
    }

    #[test]
    fn missing_or_bad_parameters_are_named_and_the_defaults_assumed() {
        let mut r = readings(1000, 1000);
        r.parameters.remove("UpstreamMaxConcurrency");
        r.parameters
            .insert("DeliverMaxConcurrency".into(), "lots".into());
        let findings = findings(&r);
        assert_eq!(
            find(&findings, "parameter:UpstreamMaxConcurrency").message,
            "the stack has no parameter UpstreamMaxConcurrency (an older template?): the checks assume the template default 5"
        );
        assert_eq!(
            find(&findings, "parameter:DeliverMaxConcurrency").message,
            "the stack's parameter DeliverMaxConcurrency is not a number (\"lots\"): the checks assume the template default 50"
        );
        assert_eq!(find(&findings, "concurrency").severity, Severity::Ok);
    }

    #[test]
    fn text_and_json_show_every_finding_with_its_fixes() {
        let r = readings(50, 50);
        let findings = findings(&r);
        let text = text(&r, &findings);
        assert!(
            text.starts_with("stack sb in us-east-1\nFAIL concurrency: "),
            "{text}"
        );
        assert!(
            text.contains("\n       lower:   sam deploy --stack-name sb --region us-east-1 --parameter-overrides NotifyUserMaxConcurrency=3 "),
            "{text}"
        );
        assert!(
            text.contains("\n       request: aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 --desired-value 1000 --region us-east-1\n"),
            "{text}"
        );
        assert!(text.ends_with("\n2 fail, 0 warn, 2 ok\n"), "{text}");
        let document = to_json(&r, &findings);
        assert_eq!(document["summary"], json!({"fail": 2, "warn": 0, "ok": 2}));
        assert_eq!(document["findings"][0]["check"], "concurrency");
        assert_eq!(document["findings"][0]["severity"], "fail");
        assert_eq!(document["findings"][0]["fixes"][0]["action"], "lower");
        assert_eq!(
            document["readings"]["account"],
            json!({"concurrentExecutions": 50, "unreservedConcurrentExecutions": 50})
        );
        assert_eq!(
            document["readings"]["managementApiQuota"],
            json!({"quotaCode": "L-8A5B8E43", "value": 10000.0, "source": "AWS default"})
        );
    }

    #[test]
    fn the_stage_comes_from_the_websocket_url() {
        assert_eq!(
            websocket_stage("wss://abc123.execute-api.us-east-1.amazonaws.com/prod"),
            Some(("abc123".into(), "prod".into()))
        );
        assert_eq!(websocket_stage("https://abc123.execute-api.x/prod"), None);
        assert_eq!(websocket_stage("wss://abc123.execute-api.x/"), None);
        assert_eq!(websocket_stage("wss://abc123/prod"), None);
    }

    #[test]
    fn headroom_is_a_tenth_and_at_least_five() {
        assert_eq!(headroom(10), 5);
        assert_eq!(headroom(50), 5);
        assert_eq!(headroom(51), 6);
        assert_eq!(headroom(1000), 100);
    }
}
