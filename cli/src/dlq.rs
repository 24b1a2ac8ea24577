//! Dead letters beyond [`crate::list`] and [`crate::redrive`]: SQS message
//! move tasks on AWS (with the receive-and-send copy as the fallback where the
//! API is not supported, as on moto), each message's last error from the
//! owning function's logs, and the local stack's dead letters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use switchboard::adapters::aws_json::{AwsJsonClient, default_endpoint};

use crate::http::{Api, segment};
use crate::{CliError, Stack};

/// What an unknown last error says.
pub const UNKNOWN_ERROR: &str = "unknown (logs expired or not found)";

/// The function (its log group's logical id in template.yaml) that consumes each queue.
pub const LOG_GROUPS: [(&str, &str); 5] = [
    ("notify-user", "NotifyUserLogGroup"),
    ("notify-connection", "NotifyConnectionLogGroup"),
    ("commands", "CommandsLogGroup"),
    ("deliveries", "DeliverLogGroup"),
    ("upstream", "UpstreamLogGroup"),
];

/// How a started move task ended (or stood when `--wait` was not given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveTask {
    pub handle: String,
    pub status: String,
    pub moved: i64,
    pub to_move: i64,
    pub failure: Option<String>,
}

impl MoveTask {
    pub fn to_json(&self) -> Value {
        json!({
            "taskHandle": self.handle,
            "status": self.status,
            "moved": self.moved,
            "toMove": self.to_move,
            "failureReason": self.failure,
        })
    }
}

/// Whether SQS (or what stands in for it) does not offer move tasks: an
/// unknown action, `UnsupportedOperation`, or a server error without an AWS
/// error code (moto answers 500 to an action it lacks).
fn unsupported<E: ProvideErrorMetadata>(
    error: &aws_sdk_sqs::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    let code = error.code().unwrap_or_default();
    let status = error.raw_response().map(|r| r.status().as_u16());
    code.contains("UnsupportedOperation")
        || code.contains("InvalidAction")
        || code.contains("NotImplemented")
        || (code.is_empty() && matches!(status, Some(500..=501)))
}

/// Starts a move task from the dead-letter queue at `url` back to its source.
/// `Ok(Err(why))`: the API is not supported here (the caller copies instead).
pub async fn start_move_task(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Result<(String, String), String>, CliError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| CliError::queue(url, DisplayErrorContext(e)))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| CliError::queue(url, "SQS did not say the queue's ARN"))?;
    match sqs.start_message_move_task().source_arn(&arn).send().await {
        Ok(answer) => Ok(Ok((
            arn,
            answer.task_handle().unwrap_or_default().to_owned(),
        ))),
        Err(e) if unsupported(&e) => Ok(Err(format!(
            "StartMessageMoveTask is not supported here ({})",
            e.code().unwrap_or("no error code")
        ))),
        Err(e) => {
            let what = match e.code() {
                Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
                None => DisplayErrorContext(e).to_string(),
            };
            Err(CliError::queue(
                url,
                format!("StartMessageMoveTask: {what}"),
            ))
        }
    }
}

/// The newest move task of the dead-letter queue `arn`.
pub async fn move_task(
    sqs: &aws_sdk_sqs::Client,
    arn: &str,
    handle: &str,
) -> Result<MoveTask, CliError> {
    let answer = sqs
        .list_message_move_tasks()
        .source_arn(arn)
        .max_results(1)
        .send()
        .await
        .map_err(|e| CliError::queue(arn, DisplayErrorContext(e)))?;
    let task = answer
        .results()
        .first()
        .ok_or_else(|| CliError::queue(arn, "ListMessageMoveTasks shows no task"))?;
    Ok(MoveTask {
        handle: task.task_handle().unwrap_or(handle).to_owned(),
        status: task.status().unwrap_or_default().to_owned(),
        moved: task.approximate_number_of_messages_moved(),
        to_move: task.approximate_number_of_messages_to_move().unwrap_or(0),
        failure: task.failure_reason().map(str::to_owned),
    })
}

/// Polls [`move_task`] every `every` until it is no longer `RUNNING`, at most `timeout`.
pub async fn wait_for_move_task(
    sqs: &aws_sdk_sqs::Client,
    arn: &str,
    handle: &str,
    every: Duration,
    timeout: Duration,
) -> Result<MoveTask, CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        let task = move_task(sqs, arn, handle).await?;
        if task.status != "RUNNING" {
            return Ok(task);
        }
        if Instant::now() + every > deadline {
            return Err(CliError::queue(
                arn,
                format!(
                    "the move task is still running after {}s ({} of {} moved); \
                     `aws sqs list-message-move-tasks --source-arn {arn}` follows it",
                    timeout.as_secs(),
                    task.moved,
                    task.to_move
                ),
            ));
        }
        eprintln!("moving: {} of {} moved", task.moved, task.to_move);
        tokio::time::sleep(every).await;
    }
}

/// The log group of the function that consumes `queue`: the physical id of
/// its `AWS::Logs::LogGroup` resource in the stack.
pub async fn log_group(sdk: &SdkConfig, stack: &Stack, queue: &str) -> Result<String, CliError> {
    let logical = LOG_GROUPS
        .iter()
        .find(|(name, _)| *name == queue)
        .map(|(_, logical)| *logical)
        .ok_or_else(|| CliError::UnknownQueue(queue.to_owned()))?;
    let missing = |what: String| CliError::NoResource {
        stack: stack.name.clone(),
        resource: logical,
        what,
    };
    let answer = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stack_resource()
        .stack_name(&stack.name)
        .logical_resource_id(logical)
        .send()
        .await
        .map_err(|e| {
            let what = match e.code() {
                Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
                None => DisplayErrorContext(e).to_string(),
            };
            missing(format!("DescribeStackResource: {what}"))
        })?;
    answer
        .stack_resource_detail()
        .and_then(|r| r.physical_resource_id())
        .map(str::to_owned)
        .ok_or_else(|| missing("no physical id".into()))
}

/// The CloudWatch Logs client: the AWS JSON protocol, signed with the SDK's
/// credentials, at the SDK's endpoint override or the region's endpoint.
pub fn logs_client(sdk: &SdkConfig) -> Result<AwsJsonClient, CliError> {
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CliError::Credentials("no AWS region (set AWS_REGION)".into()))?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS")
        .ok()
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| default_endpoint("logs", &region))
        .trim_end_matches('/')
        .to_owned();
    Ok(AwsJsonClient {
        connector: crate::http::connector(),
        credentials: sdk.credentials_provider(),
        region,
        endpoint,
        service: "logs",
        target_prefix: "Logs_20140328",
    })
}

/// The most FilterLogEvents pages read for one message, and for how long.
const MAX_PAGES: usize = 10;
const LOOKUP_TIME: Duration = Duration::from_secs(15);

/// The last error the function logged for `message_id` in `group`, if its logs still hold one.
pub async fn last_error(
    logs: &AwsJsonClient,
    group: &str,
    message_id: &str,
) -> Result<Option<String>, CliError> {
    let deadline = Instant::now() + LOOKUP_TIME;
    let mut found = None;
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut body = json!({
            "logGroupName": group,
            "filterPattern": format!("\"{message_id}\""),
            "limit": 100,
        });
        if let Some(token) = &token {
            body["nextToken"] = json!(token);
        }
        let answer = logs
            .call("FilterLogEvents", body.to_string())
            .await
            .map_err(|e| CliError::Logs(group.to_owned(), e))?;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        let lines = events.iter().map(|e| {
            (
                e["timestamp"].as_i64().unwrap_or(0),
                e["message"].as_str().unwrap_or(""),
            )
        });
        if let Some(error) = newest_error(lines, message_id) {
            found = Some(error);
        }
        token = answer["nextToken"].as_str().map(str::to_owned);
        if token.is_none() || Instant::now() > deadline {
            break;
        }
    }
    Ok(found)
}

/// The `error` of the newest log line about `message_id`: a JSON line as
/// `switchboard::logs` writes it (`fields.error`, with `message_id` in
/// `fields` or the `message` span), or a text line's `error=…`.
pub fn newest_error<'a>(
    lines: impl IntoIterator<Item = (i64, &'a str)>,
    message_id: &str,
) -> Option<String> {
    let mut newest: Option<(i64, String)> = None;
    for (timestamp, line) in lines {
        let error = match serde_json::from_str::<Value>(line.trim()) {
            Ok(doc) => {
                let fields = &doc["fields"];
                let about = fields["message_id"] == message_id
                    || doc["span"]["message_id"] == message_id
                    || doc["spans"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s["message_id"] == message_id));
                match fields["error"].as_str() {
                    Some(error) if about => Some(error.to_owned()),
                    _ => None,
                }
            }
            Err(_) if line.contains(message_id) => line
                .split_once("error=")
                .map(|(_, rest)| rest.trim().trim_matches('"').to_owned()),
            Err(_) => None,
        };
        if let Some(error) = error
            && newest.as_ref().is_none_or(|(t, _)| timestamp >= *t)
        {
            newest = Some((timestamp, error));
        }
    }
    newest.map(|(_, error)| error)
}

/// The local stack's dead letters of `queue` (`GET /queues/{queue}/dead-letters`).
pub async fn local_list(api: &Api, queue: &str) -> Result<Vec<Value>, CliError> {
    let answer = api
        .call(
            "GET",
            &format!("/queues/{}/dead-letters", segment(queue)),
            None,
        )
        .await?;
    if !answer.is_success() {
        return Err(CliError::refused(&answer));
    }
    Ok(answer.body.as_array().cloned().unwrap_or_default())
}

/// Moves up to `max` of the local stack's dead letters of `queue` back.
pub async fn local_redrive(api: &Api, queue: &str, max: u32) -> Result<u64, CliError> {
    let answer = api
        .call(
            "POST",
            &format!("/queues/{}/dead-letters/redrive?max={max}", segment(queue)),
            None,
        )
        .await?;
    if !answer.is_success() {
        return Err(CliError::refused(&answer));
    }
    Ok(answer.body["moved"].as_u64().unwrap_or(0))
}

/// Each message id's last error, or [`UNKNOWN_ERROR`].
pub async fn last_errors(
    logs: &AwsJsonClient,
    group: &str,
    ids: &[String],
) -> Result<BTreeMap<String, String>, CliError> {
    let mut errors = BTreeMap::new();
    for id in ids {
        let error = last_error(logs, group, id).await?;
        errors.insert(
            id.clone(),
            error.unwrap_or_else(|| UNKNOWN_ERROR.to_owned()),
        );
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the functions write them (tracing's JSON, switchboard::logs).
    const COMMANDS_FAILED: &str = r#"{"level":"WARN","fields":{"message":"command failed; SQS will redeliver it","message_id":"5b1c-1","receive_count":4,"error":"the connections table could not be read: throttled"},"span":{"queue":"commands","message_id":"5b1c-1","name":"message"},"spans":[{"requestId":"8f5e","name":"Lambda runtime invoke"},{"queue":"commands","message_id":"5b1c-1","name":"message"}]}"#;
    const UNDELIVERABLE: &str = r#"{"level":"ERROR","fields":{"message":"undeliverable; it goes to the DLQ after maxReceiveCount","message_id":"5b1c-1","receive_count":5,"error":"the message is not JSON"},"span":{"queue":"commands","message_id":"5b1c-1","name":"message"},"spans":[]}"#;
    const OTHER: &str = r#"{"level":"WARN","fields":{"message":"command failed","message_id":"9999","error":"another message's error"},"span":{"queue":"commands","message_id":"9999","name":"message"},"spans":[]}"#;
    const DELIVERED: &str = r#"{"level":"INFO","fields":{"message":"delivered","delivered":1},"span":{"queue":"commands","message_id":"5b1c-1","name":"message"},"spans":[]}"#;

    #[test]
    fn the_newest_error_about_the_message_wins() {
        let lines = [
            (10, COMMANDS_FAILED),
            (20, UNDELIVERABLE),
            (30, OTHER),
            (40, DELIVERED),
        ];
        assert_eq!(
            newest_error(lines, "5b1c-1").as_deref(),
            Some("the message is not JSON")
        );
        assert_eq!(
            newest_error([(10, COMMANDS_FAILED)], "5b1c-1").as_deref(),
            Some("the connections table could not be read: throttled")
        );
        assert_eq!(newest_error([(40, DELIVERED), (30, OTHER)], "5b1c-1"), None);
        assert_eq!(newest_error([], "5b1c-1"), None);
    }

    #[test]
    fn text_lines_count_too() {
        let line = r#"WARN message{queue="commands" message_id=5b1c-1}: command failed message_id=5b1c-1 error=bad group"#;
        assert_eq!(
            newest_error([(1, line)], "5b1c-1").as_deref(),
            Some("bad group")
        );
    }
}
