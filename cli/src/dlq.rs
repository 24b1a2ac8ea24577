//! Dead letters, all of them: the five dead-letter queues and their depths,
//! listing their messages ([`list`]) and moving them back ([`redrive`]), SQS
//! message move tasks on AWS (with the receive-and-send copy as the fallback
//! where the API is not supported, as on moto), each message's last error
//! from the owning function's logs, the local stack's dead letters, and the
//! `dlq list` and `dlq redrive` commands ([`list_command`], [`redrive_command`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
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

/// The dead-letter queues by CLI name and the stack output holding each URL.
pub const DEAD_LETTER_QUEUES: [(&str, &str); 5] = [
    ("notify-user", "NotifyUserDeadLetterQueueUrl"),
    ("notify-connection", "NotifyConnectionDeadLetterQueueUrl"),
    ("commands", "CommandsDeadLetterQueueUrl"),
    ("deliveries", "DeliveriesDeadLetterQueueUrl"),
    ("upstream", "UpstreamDeadLetterQueueUrl"),
];

/// Where a dead-letter command runs: the local stack, or a deployed stack
/// with the SDK configuration that reads it.
pub enum Place<'a> {
    Local(&'a Api),
    Aws(Stack, &'a SdkConfig),
}

/// A command's answer: the `--json` document, the text, the exit code.
pub type Done = (Value, String, u8);

impl Stack {
    /// The dead-letter queues `queue` names (all five when `None`), as (name, URL).
    pub fn select(&self, queue: Option<&str>) -> Result<Vec<(String, String)>, CliError> {
        if let Some(queue) = queue
            && !DEAD_LETTER_QUEUES.iter().any(|(name, _)| *name == queue)
        {
            return Err(CliError::UnknownQueue(queue.to_owned()));
        }
        DEAD_LETTER_QUEUES
            .iter()
            .filter(|(name, _)| queue.is_none_or(|q| q == *name))
            .map(|(name, output)| {
                let url = self.outputs.get(*output).ok_or(CliError::NoOutput {
                    stack: self.name.clone(),
                    output,
                })?;
                Ok(((*name).to_owned(), url.clone()))
            })
            .collect()
    }

    /// Every dead-letter queue with its depth.
    pub async fn dead_letter_queues(
        &self,
        sqs: &aws_sdk_sqs::Client,
    ) -> Result<Vec<DeadLetterQueue>, CliError> {
        let mut queues = Vec::new();
        for (name, url) in self.select(None)? {
            let answer = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .map_err(|e| CliError::queue(&name, DisplayErrorContext(e)))?;
            let count = |attribute| {
                answer
                    .attributes()
                    .and_then(|a| a.get(&attribute))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            queues.push(DeadLetterQueue {
                messages: count(QueueAttributeName::ApproximateNumberOfMessages),
                in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                name,
                url,
            });
        }
        Ok(queues)
    }
}

/// A dead-letter queue and its depth (SQS's approximate counts).
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    pub name: String,
    pub url: String,
    pub messages: i64,
    pub in_flight: i64,
}

impl DeadLetterQueue {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "url": self.url,
            "messages": self.messages,
            "inFlight": self.in_flight,
        })
    }
}

/// Up to `max` messages of the queue at `url`, left in it: each is received
/// with a zero visibility timeout, so it stays visible. SQS keeps no error with
/// a message; the failing function logged its message id with the error.
pub async fn list(sqs: &aws_sdk_sqs::Client, url: &str, max: u32) -> Result<Vec<Value>, CliError> {
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    // Bounded: a zero visibility timeout can hand out the same message again, so
    // at most `max` receives of 10, stopping at the first that brings nothing new.
    for _ in 0..max.div_ceil(10).max(1) * 2 {
        let answer = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| CliError::queue(url, DisplayErrorContext(e)))?;
        let before = seen.len();
        for message in answer.messages() {
            let Some(id) = message.message_id() else {
                continue;
            };
            let attribute = |name| {
                message
                    .attributes()
                    .and_then(|a| a.get(&name))
                    .cloned()
                    .unwrap_or_default()
            };
            seen.entry(id.to_owned()).or_insert_with(|| {
                json!({
                    "messageId": id,
                    "receiveCount": attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .parse::<u64>().unwrap_or(0),
                    "sentTimestamp": attribute(MessageSystemAttributeName::SentTimestamp)
                        .parse::<u64>().unwrap_or(0),
                    "body": message.body().unwrap_or_default(),
                })
            });
        }
        if seen.len() == before || seen.len() >= max as usize {
            break;
        }
    }
    Ok(seen.into_values().take(max as usize).collect())
}

/// What [`redrive`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    pub moved: usize,
    pub source: String,
}

/// Moves up to `max` messages from the dead-letter queue at `url` back to its
/// source queue (the one queue whose redrive policy names it): receive ten,
/// send them to the source, delete exactly the ones sent. A message the source
/// refused stays in the dead-letter queue and ends the run with its error.
pub async fn redrive(sqs: &aws_sdk_sqs::Client, url: &str, max: u32) -> Result<Redriven, CliError> {
    let sources = sqs
        .list_dead_letter_source_queues()
        .queue_url(url)
        .send()
        .await
        .map_err(|e| CliError::queue(url, DisplayErrorContext(e)))?;
    let source = match sources.queue_urls() {
        [one] => one.clone(),
        [] => return Err(CliError::queue(url, "no queue sends its failures here")),
        more => {
            return Err(CliError::queue(
                url,
                format!(
                    "{} queues send their failures here; redrive by hand",
                    more.len()
                ),
            ));
        }
    };
    let mut moved = 0usize;
    // Bounded by `max` messages and by `max / 10 + 1` receives.
    for _ in 0..=(max / 10) {
        if moved >= max as usize {
            break;
        }
        let want = (max as usize - moved).min(10) as i32;
        let answer = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(want)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| CliError::queue(url, DisplayErrorContext(e)))?;
        let messages = answer.messages();
        if messages.is_empty() {
            break;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body().unwrap_or_default())
                    .build()
                    .map_err(|e| CliError::queue(&source, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(&source)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| CliError::queue(&source, DisplayErrorContext(e)))?;
        let deletes = sent
            .successful()
            .iter()
            .filter_map(|ok| {
                let index: usize = ok.id().parse().ok()?;
                let handle = messages.get(index)?.receipt_handle()?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if !deletes.is_empty() {
            let count = deletes.len();
            sqs.delete_message_batch()
                .queue_url(url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| CliError::queue(url, DisplayErrorContext(e)))?;
            moved += count;
        }
        if let Some(failed) = sent.failed().first() {
            return Err(CliError::queue(
                &source,
                format!(
                    "refused a message ({}: {}) after {moved} moved; it stays in the dead-letter queue",
                    failed.code(),
                    failed.message().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(Redriven { moved, source })
}

/// The queue names `queue` selects (all five when `None`).
pub fn queue_names(queue: Option<&str>) -> Result<Vec<&'static str>, CliError> {
    let names: Vec<&'static str> = DEAD_LETTER_QUEUES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| queue.is_none_or(|q| q == *name))
        .collect();
    match (queue, names.is_empty()) {
        (Some(q), true) => Err(CliError::UnknownQueue(q.to_owned())),
        _ => Ok(names),
    }
}

/// `dlq list`: each selected queue's dead letters (and, with `errors`, each one's last error), as JSON, text and exit code.
pub async fn list_command(
    place: Place<'_>,
    queue: Option<&str>,
    max: u32,
    errors: bool,
) -> Result<Done, CliError> {
    let mut text = String::new();
    let mut listed = Vec::new();
    match place {
        Place::Local(api) => {
            for name in queue_names(queue)? {
                let mut letters = match local_list(api, name).await {
                    // A local stack without --webhook has no Upstream queue.
                    Err(CliError::NotFound(_)) if queue.is_none() && name == "upstream" => {
                        continue;
                    }
                    answer => answer?,
                };
                letters.truncate(max as usize);
                text.push_str(&format!("{name}: {} messages\n", letters.len()));
                for m in &letters {
                    text.push_str(&format!(
                        "  {} receives={} dead={} error={} {}\n",
                        m["messageId"].as_str().unwrap_or(""),
                        m["receiveCount"],
                        m["deadAt"].as_str().unwrap_or(""),
                        m["lastError"].as_str().unwrap_or(UNKNOWN_ERROR),
                        m["body"].as_str().unwrap_or("")
                    ));
                }
                listed.push(json!({ "queue": name, "messages": letters }));
            }
        }
        Place::Aws(stack, sdk) => {
            let sqs = switchboard::aws::sqs(sdk);
            let logs = if errors {
                Some(logs_client(sdk)?)
            } else {
                None
            };
            for (name, url) in stack.select(queue)? {
                let mut messages = list(&sqs, &url, max).await?;
                if let Some(logs) = &logs
                    && !messages.is_empty()
                {
                    let group = log_group(sdk, &stack, &name).await?;
                    let ids: Vec<String> = messages
                        .iter()
                        .filter_map(|m| m["messageId"].as_str().map(str::to_owned))
                        .collect();
                    let found = last_errors(logs, &group, &ids).await?;
                    for m in &mut messages {
                        let id = m["messageId"].as_str().unwrap_or_default().to_owned();
                        m["lastError"] =
                            json!(found.get(&id).map_or(UNKNOWN_ERROR, String::as_str));
                    }
                }
                text.push_str(&format!("{name}: {} messages\n", messages.len()));
                for m in &messages {
                    let error = m["lastError"]
                        .as_str()
                        .map(|e| format!(" error={e}"))
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "  {} receives={} sent={}{error} {}\n",
                        m["messageId"].as_str().unwrap_or(""),
                        m["receiveCount"],
                        m["sentTimestamp"],
                        m["body"].as_str().unwrap_or("")
                    ));
                }
                listed.push(json!({ "queue": name, "messages": messages }));
            }
        }
    }
    Ok((json!({ "queues": listed }), text, 0))
}

/// `dlq redrive`: the queue's dead letters moved back to their source (a move task where SQS has them, else received and sent), as JSON, text and exit code.
pub async fn redrive_command(
    place: Place<'_>,
    queue: &str,
    max: Option<u32>,
    copy: bool,
    wait: bool,
    timeout: u64,
) -> Result<Done, CliError> {
    let name = queue_names(Some(queue))?[0];
    match place {
        Place::Local(api) => {
            let moved = local_redrive(api, name, max.unwrap_or(10_000)).await?;
            let text = format!("{name}: moved {moved} messages back\n");
            Ok((
                json!({ "queue": name, "moved": moved, "method": "local" }),
                text,
                0,
            ))
        }
        Place::Aws(stack, sdk) => {
            let sqs = switchboard::aws::sqs(sdk);
            let (_, url) = stack
                .select(Some(name))?
                .into_iter()
                .next()
                .ok_or_else(|| CliError::UnknownQueue(name.to_owned()))?;
            let mut fallback = None;
            if !copy && max.is_none() {
                match start_move_task(&sqs, &url).await? {
                    Ok((arn, handle)) => {
                        let task = if wait {
                            wait_for_move_task(
                                &sqs,
                                &arn,
                                &handle,
                                Duration::from_secs(2),
                                Duration::from_secs(timeout),
                            )
                            .await?
                        } else {
                            move_task(&sqs, &arn, &handle).await?
                        };
                        let text = format!(
                            "{name}: move task {} {} ({} of {} moved){}\n",
                            task.handle,
                            task.status,
                            task.moved,
                            task.to_move,
                            task.failure
                                .as_deref()
                                .map(|f| format!(": {f}"))
                                .unwrap_or_default()
                        );
                        let failed = task.status == "FAILED";
                        let mut document = task.to_json();
                        document["queue"] = json!(name);
                        document["method"] = json!("move-task");
                        return Ok((document, text, u8::from(failed)));
                    }
                    Err(why) => fallback = Some(why),
                }
            }
            let outcome = redrive(&sqs, &url, max.unwrap_or(10_000)).await?;
            let note = fallback
                .as_deref()
                .map(|why| format!(" ({why}: copied by receive and send)"))
                .unwrap_or_default();
            let text = format!(
                "{name}: moved {} messages back to {}{note}\n",
                outcome.moved, outcome.source
            );
            let document = json!({
                "queue": name,
                "moved": outcome.moved,
                "source": outcome.source,
                "method": "copy",
                "moveTaskUnsupported": fallback,
            });
            Ok((document, text, 0))
        }
    }
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
