//! Every time budget fits inside the invocation that spends it (issue 23, defect 5): a
//! budget longer than its function's `Timeout` is not a budget, for Lambda ends the
//! invocation first and the code's answer to the budget running out (fail open, hand the
//! record back, dead-letter it) never runs.
//!
//! Each chain is read from template.yaml (a variable a function sets, at its worst: a
//! number, or its parameter's `MaxValue`) or, where the template sets nothing, from the
//! code's default, and must end [`margin`] before the function's timeout: at least a
//! second, or a quarter of the timeout, for the rest of the handler's work.

mod common;

use std::time::Duration;

use common::template::{
    actions, load_template, logical_function_id, repository_file, resources_of_type, statements,
};
use serde_json::Value;
use switchboard::adapters::secrets_manager::REQUEST_TIMEOUT;
use switchboard::enqueue::EnqueuePolicy;
use switchboard::posting::PostingPolicy;
use switchboard::posting::post_time;
use switchboard::retry::HAND_BACK_RESERVE;
use switchboard::upstream::DEFAULT_HOOK_TIMEOUT;
use switchboard::upstream::delivery::DeliveryPolicy;
use switchboard::upstream::delivery::longest_delivery;

/// API Gateway waits at most 29 s for a WebSocket route's integration.
const INTEGRATION_LIMIT_MS: u64 = 29_000;

/// Lambda's guidance: a queue's visibility timeout at least six times its consumer's
/// timeout (docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html), so a
/// throttled batch can be retried before the message shows again.
const VISIBILITY_PER_TIMEOUT: u64 = 6;

/// What a chain leaves of an invocation of `timeout_ms` for the handler's other work.
fn margin(timeout_ms: u64) -> u64 {
    (timeout_ms / 4).max(1_000)
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

/// A function's `Timeout` (else the globals', else Lambda's 3 s), in milliseconds.
fn timeout_ms(template: &Value, function: &str) -> u64 {
    let own = &template["Resources"][function]["Properties"]["Timeout"];
    let global = &template["Globals"]["Function"]["Timeout"];
    let seconds = if own.is_null() { global } else { own };
    if seconds.is_null() {
        return 3_000;
    }
    seconds
        .as_u64()
        .unwrap_or_else(|| panic!("{function}: Timeout {seconds} is not a number of seconds"))
        * 1_000
}

/// The largest value `value` may take: a number, or the `MaxValue` of the parameter it is.
fn worst_case(template: &Value, place: &str, value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        Value::Object(o) => o.get("Ref").and_then(Value::as_str).map(|parameter| {
            let bound = &template["Parameters"][parameter]["MaxValue"];
            bound.as_u64().unwrap_or_else(|| {
                panic!("{place}: parameter {parameter} has no MaxValue, so no worst case")
            })
        }),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{place}: {value} is not a number or a bounded parameter"))
}

/// A variable of `function`'s environment (its own, else the globals'), at its worst.
fn variable(template: &Value, function: &str, name: &str) -> Option<u64> {
    let own = &template["Resources"][function]["Properties"]["Environment"]["Variables"][name];
    let global = &template["Globals"]["Function"]["Environment"]["Variables"][name];
    let value = if own.is_null() { global } else { own };
    (!value.is_null()).then(|| worst_case(template, &format!("{function}.{name}"), value))
}

/// `spent_ms` and the margin end within `timeout_ms`.
fn assert_fits(function: &str, what: &str, spent_ms: u64, timeout_ms: u64) {
    let margin = margin(timeout_ms);
    assert!(
        spent_ms + margin <= timeout_ms,
        "{function}: {what} may take {spent_ms} ms; with a margin of {margin} ms that is \
         more than its timeout of {timeout_ms} ms"
    );
}

fn functions(template: &Value) -> Vec<&str> {
    resources_of_type(template, "AWS::Serverless::Function")
        .map(|(id, _)| id)
        .collect()
}

/// (a) A hook (`CONNECT_HOOK_TIMEOUT_MS`, `EVENT_HOOK_TIMEOUT_MS`: `HookTimeoutMs`) ends
/// before the function that asks it, with room for the rest of the handler, so a hook that
/// times out is answered (refused, or let in with `ConnectHookFailOpen`) instead of Lambda
/// killing the invocation. `$connect` is also held to API Gateway's 29 s.
#[test]
fn hooks_end_before_the_functions_that_ask_them() {
    let template = load_template();
    let mut hooks = Vec::new();
    for function in functions(&template) {
        let variables = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        for name in variables.as_object().into_iter().flatten().map(|(n, _)| n) {
            if !name.ends_with("_HOOK_TIMEOUT_MS") {
                continue;
            }
            let hook = variable(&template, function, name).unwrap_or(millis(DEFAULT_HOOK_TIMEOUT));
            let timeout = timeout_ms(&template, function);
            assert_fits(function, &format!("the hook ({name})"), hook, timeout);
            assert!(
                hook + margin(INTEGRATION_LIMIT_MS) <= INTEGRATION_LIMIT_MS,
                "{function}: the hook ({name}) may take {hook} ms, over API Gateway's \
                 {INTEGRATION_LIMIT_MS} ms with a margin"
            );
            hooks.push(format!("{function}.{name}"));
        }
    }
    hooks.sort();
    assert_eq!(
        hooks,
        [
            "ActionsFunction.EVENT_HOOK_TIMEOUT_MS",
            "ConnectFunction.CONNECT_HOOK_TIMEOUT_MS"
        ]
    );
}

/// (b) Posts end before the functions that post. Each post is bounded by `POST_TIMEOUT_MS`
/// per attempt, `POST_ATTEMPTS` and their backoffs ([`post_time`]); deliver and
/// notify-connection also retry failed posts for up to `POST_RETRY_BUDGET_MS`, then one more
/// post, then hand the record back ([`HAND_BACK_RESERVE`]).
#[test]
fn posts_and_their_retries_end_before_the_functions_that_post() {
    let template = load_template();
    let handlers = repository_file("shared/src/handlers");
    let mut retrying: Vec<String> = std::fs::read_dir(&handlers)
        .unwrap_or_else(|e| panic!("{}: {e}", handlers.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            std::fs::read_to_string(path).is_ok_and(|text| text.contains("post_with_retries("))
        })
        .map(|path| logical_function_id(path.file_stem().unwrap().to_str().unwrap()))
        .collect();
    retrying.sort();
    assert_eq!(retrying, ["DeliverFunction", "NotifyConnectionFunction"]);

    let mut posting = Vec::new();
    for function in functions(&template) {
        let resource = &template["Resources"][function];
        let posts = statements(resource)
            .iter()
            .any(|s| actions(s).contains(&"execute-api:ManageConnections"));
        if !posts {
            continue;
        }
        let d = PostingPolicy::default();
        let setting =
            |name: &str, default: u64| variable(&template, function, name).unwrap_or(default);
        let policy = PostingPolicy {
            post_timeout: Duration::from_millis(setting("POST_TIMEOUT_MS", millis(d.post_timeout))),
            post_attempts: setting("POST_ATTEMPTS", u64::from(d.post_attempts)) as u32,
            post_backoff: Duration::from_millis(setting("POST_BACKOFF_MS", millis(d.post_backoff))),
            retry_budget: Duration::from_millis(setting(
                "POST_RETRY_BUDGET_MS",
                millis(d.retry_budget),
            )),
            ..d
        };
        let one_post = millis(post_time(&policy));
        let timeout = timeout_ms(&template, function);
        if retrying.iter().any(|r| r == function) {
            let budget = millis(policy.retry_budget);
            let reserve = millis(HAND_BACK_RESERVE);
            assert_fits(
                function,
                &format!(
                    "retrying posts ({budget} ms), one more post ({one_post} ms) and handing \
                     the record back ({reserve} ms)"
                ),
                budget + one_post + reserve,
                timeout,
            );
        } else {
            assert_fits(function, "one post", one_post, timeout);
        }
        posting.push(function);
    }
    posting.sort();
    assert_eq!(
        posting,
        [
            "ActionsFunction",
            "ApiFunction",
            "CommandsFunction",
            "DeliverFunction",
            "NotifyConnectionFunction"
        ]
    );
}

/// (c) A queue hides a received message for at least six of its consumer's timeouts
/// (plus the batching window), or a batch still running shows again and runs twice.
#[test]
fn every_queue_outlasts_six_timeouts_of_its_consumer() {
    let template = load_template();
    let mut sources = 0;
    for function in functions(&template) {
        let events = &template["Resources"][function]["Properties"]["Events"];
        for (event, source) in events.as_object().into_iter().flatten() {
            if source["Type"] != "SQS" {
                continue;
            }
            let properties = &source["Properties"];
            let queue = properties["Queue"]["Fn::GetAtt"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{function}.{event}: the queue is not a !GetAtt"));
            let visibility = &template["Resources"][queue]["Properties"]["VisibilityTimeout"];
            // SQS's default visibility timeout is 30 s.
            let visibility = visibility.as_u64().unwrap_or(30) * 1_000;
            let window = properties["MaximumBatchingWindowInSeconds"]
                .as_u64()
                .unwrap_or(0)
                * 1_000;
            let timeout = timeout_ms(&template, function);
            let needed = VISIBILITY_PER_TIMEOUT * timeout + window;
            assert!(
                visibility >= needed,
                "{queue}: a VisibilityTimeout of {visibility} ms is less than \
                 {VISIBILITY_PER_TIMEOUT} × {function}'s timeout of {timeout} ms \
                 (+ a batching window of {window} ms) = {needed} ms"
            );
            sources += 1;
        }
    }
    assert_eq!(sources, 5, "the five queue consumers");
}

/// (d) API Gateway waits at most 29 s for a WebSocket route's integration (less with
/// `TimeoutInMillis`): every route's function ends before API Gateway stops waiting.
#[test]
fn websocket_routes_end_before_api_gateway_stops_waiting() {
    let template = load_template();
    let mut routed = Vec::new();
    for (id, integration) in resources_of_type(&template, "AWS::ApiGatewayV2::Integration") {
        let properties = &integration["Properties"];
        let limit = match &properties["TimeoutInMillis"] {
            Value::Null => INTEGRATION_LIMIT_MS,
            value => worst_case(&template, id, value),
        };
        assert!(
            (50..=INTEGRATION_LIMIT_MS).contains(&limit),
            "{id}: TimeoutInMillis {limit} ms is outside API Gateway's 50 to {INTEGRATION_LIMIT_MS} ms"
        );
        let uri = properties["IntegrationUri"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: IntegrationUri is not a !Sub"));
        let function = uri
            .split_once("/functions/${")
            .and_then(|(_, rest)| rest.split_once(".Arn}"))
            .map(|(function, _)| function)
            .unwrap_or_else(|| panic!("{id}: no function in {uri}"));
        let timeout = timeout_ms(&template, function);
        assert!(
            timeout <= limit,
            "{function}: its timeout of {timeout} ms outlasts {id}'s {limit} ms, after which \
             API Gateway answers the client without it"
        );
        routed.push(function);
    }
    routed.sort();
    routed.dedup();
    assert_eq!(
        routed,
        [
            "ActionsFunction",
            "ConnectFunction",
            "DefaultFunction",
            "DisconnectFunction",
            "PingFunction"
        ]
    );
}

/// (e) The upstream function's webhook deliveries (`WEBHOOK_ATTEMPTS` POSTs of at most
/// `WEBHOOK_TIMEOUT_MS`, with backoffs from `WEBHOOK_RETRY_BASE_DELAY_MS`) end before it
/// does, after reading the signing secret, for every wave of a batch
/// (`BatchSize / RECORD_CONCURRENCY` records at once).
#[test]
fn webhook_deliveries_end_before_the_upstream_function() {
    let template = load_template();
    let senders: Vec<&str> = functions(&template)
        .into_iter()
        .filter(|f| {
            !template["Resources"][f]["Properties"]["Environment"]["Variables"]["WEBHOOK_URL"]
                .is_null()
        })
        .collect();
    assert_eq!(senders, ["UpstreamFunction"]);
    for function in senders {
        let d = DeliveryPolicy::default();
        let setting =
            |name: &str, default: u64| variable(&template, function, name).unwrap_or(default);
        let policy = DeliveryPolicy {
            attempts: setting("WEBHOOK_ATTEMPTS", u64::from(d.attempts)) as u32,
            base_delay: Duration::from_millis(setting(
                "WEBHOOK_RETRY_BASE_DELAY_MS",
                millis(d.base_delay),
            )),
            timeout: Duration::from_millis(setting("WEBHOOK_TIMEOUT_MS", millis(d.timeout))),
        };
        let concurrency = setting(
            "RECORD_CONCURRENCY",
            EnqueuePolicy::default().concurrency as u64,
        );
        let events = &template["Resources"][function]["Properties"]["Events"];
        for (event, source) in events.as_object().into_iter().flatten() {
            // SQS's default batch size is 10.
            let batch = source["Properties"]["BatchSize"].as_u64().unwrap_or(10);
            let waves = batch.div_ceil(concurrency.max(1));
            let delivery = millis(longest_delivery(&policy));
            let secret = millis(REQUEST_TIMEOUT);
            assert_fits(
                function,
                &format!(
                    "reading the webhook secret ({secret} ms) and {waves} wave(s) of \
                     deliveries ({event}: {batch} events, {concurrency} at once, each at most \
                     {delivery} ms)"
                ),
                secret + waves * delivery,
                timeout_ms(&template, function),
            );
        }
    }
}
