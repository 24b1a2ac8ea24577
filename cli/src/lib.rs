//! What the `switchboard` CLI does, as functions: a stack's outputs
//! ([`Stack::describe`]), its dead-letter queues' depths, their messages
//! ([`list`]) and moving them back ([`redrive`]; [`dlq`] for move tasks, last
//! errors and the local stack's dead letters), the server operations
//! through the HTTP API ([`http`], [`ops`]), and the pre-flight of the
//! stack's settings against its account ([`doctor`]). Every loop is bounded.

pub mod dlq;
pub mod doctor;
pub mod http;
pub mod ops;

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use serde_json::{Value, json};

/// The dead-letter queues by CLI name and the stack output holding each URL.
pub const DEAD_LETTER_QUEUES: [(&str, &str); 5] = [
    ("notify-user", "NotifyUserDeadLetterQueueUrl"),
    ("notify-connection", "NotifyConnectionDeadLetterQueueUrl"),
    ("commands", "CommandsDeadLetterQueueUrl"),
    ("deliveries", "DeliveriesDeadLetterQueueUrl"),
    ("upstream", "UpstreamDeadLetterQueueUrl"),
];

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no stack named {0:?} (CloudFormation DescribeStacks: {1})")]
    NoStack(String, String),
    #[error("stack {stack:?} has no output {output} (is it a Switchboard stack?)")]
    NoOutput { stack: String, output: &'static str },
    #[error("stack {stack:?} has no resource {resource} ({what})")]
    NoResource {
        stack: String,
        resource: &'static str,
        what: String,
    },
    #[error(
        "no dead-letter queue named {0:?}: use notify-user, notify-connection, commands, deliveries or upstream"
    )]
    UnknownQueue(String),
    #[error("{queue}: {what}")]
    Queue { queue: String, what: String },
    /// A command line the CLI refuses before sending anything (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("{place} at {url} is not reachable ({what})")]
    Unreachable {
        place: &'static str,
        url: String,
        what: String,
    },
    #[error("{place} at {url} answered with {what}")]
    BadAnswer {
        place: &'static str,
        url: String,
        what: String,
    },
    #[error("AWS credentials: {0}")]
    Credentials(String),
    /// The API answered 404: the connection, user or group does not exist (exit 4).
    #[error("{0}")]
    NotFound(String),
    /// The API refused the request (its status and message).
    #[error("refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the logs of {0}: {1}")]
    Logs(String, String),
}

impl CliError {
    /// Whether the mistake is in the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, CliError::UnknownQueue(_) | CliError::Usage(_))
    }

    /// The exit code: 2 usage, 4 not found, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::UnknownQueue(_) | CliError::Usage(_) => 2,
            CliError::NotFound(_) => 4,
            _ => 1,
        }
    }

    /// An answer that is not a success, as an error.
    pub fn refused(answer: &http::Answer) -> Self {
        match answer.status {
            404 => CliError::NotFound(answer.error_message()),
            status => CliError::Refused {
                status,
                message: answer.error_message(),
            },
        }
    }

    pub(crate) fn queue(queue: &str, what: impl std::fmt::Display) -> Self {
        CliError::Queue {
            queue: queue.to_owned(),
            what: what.to_string(),
        }
    }
}

/// A deployed stack: its status, outputs and parameters.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl Stack {
    /// `DescribeStacks` for `name`.
    pub async fn describe(sdk: &SdkConfig, name: &str) -> Result<Stack, CliError> {
        let client = aws_sdk_cloudformation::Client::new(sdk);
        let answer = client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| CliError::NoStack(name.to_owned(), DisplayErrorContext(e).to_string()))?;
        let stack = answer
            .stacks()
            .first()
            .ok_or_else(|| CliError::NoStack(name.to_owned(), "no stack in the answer".into()))?;
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        let parameters = stack
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_owned(),
                    p.parameter_value()?.to_owned(),
                ))
            })
            .collect();
        Ok(Stack {
            name: stack.stack_name().unwrap_or(name).to_owned(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            outputs,
            parameters,
        })
    }

    /// The output `key` (e.g. `HttpApiUrl`), or an error naming it.
    pub fn output(&self, key: &'static str) -> Result<&str, CliError> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .ok_or(CliError::NoOutput {
                stack: self.name.clone(),
                output: key,
            })
    }

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
