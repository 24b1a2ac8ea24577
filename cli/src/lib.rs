//! What the `switchboard` CLI does, as functions: a stack's outputs
//! ([`Stack::describe`]), its dead letters ([`dlq`]: depths, listing,
//! redriving, move tasks, last errors, the local stack's), the server operations
//! through the HTTP API ([`http`], [`ops`]), and the pre-flight of the
//! stack's settings against its account ([`doctor`]). Every loop is bounded.

pub mod dlq;
pub mod doctor;
pub mod http;
pub mod ops;

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::error::DisplayErrorContext;

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
}
