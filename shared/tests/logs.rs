//! Issue 23, defect 4: at `LogLevel` WARN or above, metrics and errors must not vanish.
//!
//! With the JSON log format Lambda drops every application line below the
//! function's `ApplicationLogLevel`, and it reads a line's `level` only when the
//! line also carries a valid RFC 3339 `timestamp` (otherwise the line counts as
//! INFO). [`lambda_keeps`] is that documented filter; the test at the end feeds
//! it the functions' real lines (the `tracing` subscriber of `logs::init`, the
//! `Emf` sink's line builder) under every function's `LoggingConfig` and
//! environment as the template sets them, for every allowed `LogLevel`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use switchboard::config::LogSettings;
use switchboard::metrics::{Invocation, Metric, Series};
use switchboard::tracing::{self, error, info, info_span};

use common::template::{load_template, resources_of_type};

/// Lambda's log levels, least severe first.
const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// A level's severity (its place in [`LEVELS`]), case-insensitive as Lambda reads it.
fn severity(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level))
}

/// `n` ASCII digits at `text[at..]`, as a number.
fn digits(text: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = text.get(at..at + n)?;
    part.iter().try_fold(0u32, |value, &b| {
        b.is_ascii_digit().then(|| value * 10 + u32::from(b - b'0'))
    })
}

/// Whether `text` is an RFC 3339 `date-time` (section 5.6), e.g.
/// `2024-11-02T16:51:31.587199Z` or `2024-11-02T18:51:31+02:00`.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let (Some(year), Some(month), Some(day)) = (digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    let (Some(hour), Some(minute), Some(second)) =
        (digits(b, 11, 2), digits(b, 14, 2), digits(b, 17, 2))
    else {
        return false;
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || !(1..=days).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return false;
    }
    // time-secfrac, then time-offset.
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        let fraction = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if fraction == 0 {
            return false;
        }
        at += 1 + fraction;
    }
    match b.get(at) {
        Some(b'Z' | b'z') => at + 1 == b.len(),
        Some(b'+' | b'-') => {
            at + 6 == b.len()
                && digits(b, at + 1, 2).is_some_and(|h| h <= 23)
                && b.get(at + 3) == Some(&b':')
                && digits(b, at + 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// The level Lambda gives one line of JSON log output: its `level` (any case)
/// if that is a level and the line has an RFC 3339 `timestamp`; INFO otherwise
/// (a line that is no JSON object, no level or an invalid one, no timestamp or
/// an invalid one).
fn lambda_level(line: &str) -> usize {
    let info = severity("INFO").expect("INFO is a level");
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        return info;
    };
    if !object
        .get("timestamp")
        .and_then(Value::as_str)
        .is_some_and(is_rfc3339)
    {
        return info;
    }
    object
        .get("level")
        .and_then(Value::as_str)
        .and_then(severity)
        .unwrap_or(info)
}

/// Whether Lambda sends `line` to CloudWatch Logs under the JSON log format at
/// `ApplicationLogLevel` `application_log_level`: its level is that one or a
/// less detailed one (WARN sends WARN, ERROR and FATAL).
fn lambda_keeps(line: &str, application_log_level: &str) -> bool {
    let configured = severity(application_log_level)
        .unwrap_or_else(|| panic!("{application_log_level:?} is no ApplicationLogLevel"));
    lambda_level(line) >= configured
}

#[test]
fn the_filter_follows_lambdas_documented_rules() {
    let time = "2024-11-02T16:51:31.587199Z";
    let line = |value: Value| value.to_string();
    let error = line(json!({"timestamp": time, "level": "ERROR", "message": "m"}));
    // Sent at its own level and every more detailed one, not at a less detailed one.
    for (level, kept) in [
        ("TRACE", true),
        ("DEBUG", true),
        ("INFO", true),
        ("WARN", true),
        ("ERROR", true),
        ("FATAL", false),
    ] {
        assert_eq!(lambda_keeps(&error, level), kept, "{level}");
    }
    let debug = line(json!({"timestamp": time, "level": "DEBUG"}));
    assert!(lambda_keeps(&debug, "DEBUG") && !lambda_keeps(&debug, "INFO"));
    // The level is read in any case.
    assert!(lambda_keeps(
        &line(json!({"timestamp": time, "level": "warn"})),
        "WARN"
    ));
    assert!(lambda_keeps(
        &line(json!({"timestamp": time, "level": "Fatal"})),
        "FATAL"
    ));
    // No level, or one that is none of Lambda's: INFO.
    for no_level in [
        json!({"timestamp": time, "message": "m"}),
        json!({"timestamp": time, "level": "NOTICE"}),
        json!({"timestamp": time, "level": 50}),
    ] {
        let no_level = line(no_level);
        assert!(lambda_keeps(&no_level, "INFO"), "{no_level}");
        assert!(!lambda_keeps(&no_level, "WARN"), "{no_level}");
    }
    // No timestamp, or an invalid one: INFO even for an ERROR line.
    for timestamp in [
        None,
        Some(json!("")),
        Some(json!(1_730_566_291_587i64)),
        Some(json!("1730566291587")),
        Some(json!("2024-11-02 16:51:31Z")),
        Some(json!("2024-11-02T16:51:31")),
        Some(json!("2024-13-02T16:51:31Z")),
        Some(json!("2023-02-29T16:51:31Z")),
        Some(json!("2024-11-02T24:00:00Z")),
        Some(json!("2024-11-02T16:51:31.Z")),
        Some(json!("2024-11-02T16:51:31+0200")),
    ] {
        let mut object = json!({"level": "ERROR", "message": "m"});
        if let Some(timestamp) = timestamp {
            object["timestamp"] = timestamp;
        }
        let error = line(object);
        assert_eq!(lambda_level(&error), 2, "{error}");
        assert!(lambda_keeps(&error, "INFO"), "{error}");
        assert!(!lambda_keeps(&error, "WARN"), "{error}");
    }
    // Valid RFC 3339 forms.
    for time in [
        "2024-11-02T16:51:31Z",
        "2024-11-02t16:51:31.5z",
        "2024-02-29T23:59:60.000Z",
        "2024-11-02T18:51:31.587+02:00",
        "2024-11-02T11:51:31-05:00",
    ] {
        let error = line(json!({"timestamp": time, "level": "ERROR"}));
        assert!(lambda_keeps(&error, "ERROR"), "{error}");
    }
    // A line that is no JSON object: INFO.
    assert!(lambda_keeps("plain text ERROR", "INFO"));
    assert!(!lambda_keeps("plain text ERROR", "WARN"));
    assert!(!lambda_keeps(r#"["ERROR"]"#, "WARN"));
}

/// A writer for the subscriber that keeps what it is given.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("the buffer");
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The lines a function logs under `settings` for one error and one info event
/// inside the runtime's invocation span: the subscriber `logs::init` installs,
/// writing into a buffer.
fn tracing_lines(settings: LogSettings) -> Vec<String> {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = switchboard::logs::subscriber(settings, move || writer.clone());
    tracing::subscriber::with_default(subscriber, || {
        let span = info_span!("Lambda runtime invoke", requestId = "r-1");
        let _entered = span.enter();
        error!(error = "a store error", "an invocation failed");
        info!(delivered = 3, "delivered");
    });
    buffer.lines()
}

/// The `Emf` sink's lines for one invocation of `function` now.
fn emf_lines(function: &str) -> Vec<String> {
    let invocation = Invocation {
        series: vec![
            (
                Series {
                    metric: Metric::PostsDelivered,
                    values: vec![],
                },
                vec![3],
            ),
            (
                Series {
                    metric: Metric::FanoutLatency,
                    values: vec![],
                },
                vec![12, 30],
            ),
        ],
    };
    invocation.emf_lines(function, switchboard::clock::now_millis())
}

/// A template value with `Ref LogLevel` replaced by `log_level`.
fn resolve(value: &Value, log_level: &str) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(object) if object.get("Ref") == Some(&json!("LogLevel")) => {
            Some(log_level.to_owned())
        }
        Value::Null => None,
        other => panic!("a log setting the test cannot resolve: {other}"),
    }
}

#[test]
fn every_line_tells_lambda_its_level_and_time() {
    let json = |level| LogSettings::from_values("JSON", Some(level));
    for line in tracing_lines(json("TRACE")) {
        let value: Value = serde_json::from_str(&line).expect("a JSON line");
        let expected = if line.contains("an invocation failed") {
            "ERROR"
        } else {
            "INFO"
        };
        assert_eq!(value["level"], expected, "{line}");
        assert_eq!(
            lambda_level(&line),
            severity(expected).expect("a level"),
            "{line}"
        );
        // tracing-subscriber's time: RFC 3339 in UTC, e.g. 2024-11-02T16:51:31.587199Z.
        let time = value["timestamp"].as_str().unwrap_or_default();
        assert!(is_rfc3339(time) && time.ends_with('Z'), "{line}");
    }
    for line in emf_lines("deliver") {
        let emf: Value = serde_json::from_str(&line).expect("EMF is JSON");
        let ms = emf["_aws"]["Timestamp"].as_i64().expect("a Timestamp");
        // The same instant as the metrics', at INFO.
        assert_eq!(emf["timestamp"], switchboard::clock::rfc3339(ms), "{line}");
        assert_eq!(emf["level"], "INFO", "{line}");
        assert_eq!(lambda_level(&line), severity("INFO").expect("a level"));
    }
}

#[test]
fn no_metric_and_no_error_line_is_dropped_at_any_log_level() {
    let template = load_template();
    let parameter = &template["Parameters"]["LogLevel"];
    let allowed: Vec<&str> = parameter["AllowedValues"]
        .as_array()
        .expect("LogLevel has AllowedValues")
        .iter()
        .map(|v| v.as_str().expect("a level"))
        .collect();
    assert_eq!(allowed, LEVELS, "the levels Lambda knows");
    let globals = &template["Globals"]["Function"];
    let functions: Vec<(&str, &Value)> =
        resources_of_type(&template, "AWS::Serverless::Function").collect();
    assert_eq!(functions.len(), 11);
    for (id, function) in functions {
        let properties = &function["Properties"];
        // A function's own setting wins over the Globals one.
        let setting = |section: &str, key: &str, log_level: &str| {
            let own = &properties[section][key];
            let own = if own.is_null() {
                &globals[section][key]
            } else {
                own
            };
            resolve(own, log_level)
        };
        let variable = |name: &str, log_level: &str| {
            let own = &properties["Environment"]["Variables"][name];
            let own = if own.is_null() {
                &globals["Environment"]["Variables"][name]
            } else {
                own
            };
            resolve(own, log_level)
        };
        for log_level in LEVELS {
            let format = setting("LoggingConfig", "LogFormat", log_level);
            assert_eq!(format.as_deref(), Some("JSON"), "{id}");
            let application_log_level = setting("LoggingConfig", "ApplicationLogLevel", log_level)
                .unwrap_or_else(|| panic!("{id} has no ApplicationLogLevel"));
            // The environment Lambda starts the function with.
            let environment = [
                ("AWS_LAMBDA_LOG_FORMAT", format),
                ("AWS_LAMBDA_LOG_LEVEL", Some(application_log_level.clone())),
                ("LOG_LEVEL", variable("LOG_LEVEL", log_level)),
                ("RUST_LOG", variable("RUST_LOG", log_level)),
            ];
            let settings = LogSettings::from_lookup(|name| {
                environment
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| v.clone())
            });
            let context = format!(
                "{id} at LogLevel {log_level}, ApplicationLogLevel {application_log_level}"
            );

            for line in emf_lines(id) {
                assert!(
                    lambda_keeps(&line, &application_log_level),
                    "{context}: Lambda drops the metrics line {line}"
                );
            }

            let written = tracing_lines(settings);
            let sent: Vec<&String> = written
                .iter()
                .filter(|line| lambda_keeps(line, &application_log_level))
                .collect();
            let errors = written
                .iter()
                .filter(|l| l.contains("an invocation failed"));
            for line in errors {
                assert!(
                    sent.contains(&line),
                    "{context}: Lambda drops the error line {line}"
                );
            }
            // What reaches CloudWatch is what LogLevel asks for: errors at every
            // level (FATAL logs what ERROR does: tracing has no FATAL), info up to INFO.
            let sent_error = sent.iter().any(|l| l.contains("an invocation failed"));
            let sent_info = sent.iter().any(|l| l.contains("\"delivered\""));
            assert!(
                sent_error,
                "{context}: no error line reaches CloudWatch: {written:?}"
            );
            assert_eq!(
                sent_info,
                severity(log_level) <= severity("INFO"),
                "{context}: {written:?}"
            );
        }
    }
    // The functions' own level is the parameter, and no function sets another.
    assert_eq!(
        globals["Environment"]["Variables"]["LOG_LEVEL"],
        json!({"Ref": "LogLevel"})
    );
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let own = &function["Properties"]["Environment"]["Variables"]["LOG_LEVEL"];
        assert!(own.is_null(), "{id} sets its own LOG_LEVEL: {own}");
    }
}
