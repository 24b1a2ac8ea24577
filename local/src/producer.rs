//! Where producers' messages go: each queue of the stack as an in-memory
//! [`LocalQueue`] or an SQS queue, and the four of them by name.

use std::sync::Arc;

use crate::queues::{DeadLetter, LocalQueue};

/// One queue producers write to: in memory or on SQS.
pub(crate) enum Producer {
    Local(Arc<LocalQueue>),
    Sqs {
        client: aws_sdk_sqs::Client,
        url: String,
    },
}

impl Producer {
    pub(crate) async fn send(&self, body: String) -> Result<String, String> {
        match self {
            Producer::Local(queue) => Ok(queue.send(body)),
            Producer::Sqs { client, url } => client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .map(|out| out.message_id().unwrap_or_default().to_owned())
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string()),
        }
    }

    pub(crate) fn dead_letters(&self) -> Option<Vec<DeadLetter>> {
        match self {
            Producer::Local(queue) => Some(queue.dead_letters()),
            Producer::Sqs { .. } => None,
        }
    }

    /// Moves up to `max` dead letters back (None: on SQS, where the CLI starts a move task).
    pub(crate) fn redrive(&self, max: usize) -> Option<usize> {
        match self {
            Producer::Local(queue) => Some(queue.redrive(max)),
            Producer::Sqs { .. } => None,
        }
    }
}

/// The stack's four queues, each with its event source.
pub(crate) struct Producers {
    pub(crate) notify_user: Producer,
    pub(crate) notify_connection: Producer,
    pub(crate) commands: Producer,
    /// Written by the fan-outs, not by producers.
    pub(crate) deliveries: Producer,
    /// The Upstream queue (with `--webhook`): written by the handlers.
    pub(crate) upstream: Option<Producer>,
}

impl Producers {
    /// The queues producers may write to (`notify-user`, `notify-connection`, `commands`).
    pub(crate) fn writable(&self, name: &str) -> Option<&Producer> {
        match name {
            "notify-user" => Some(&self.notify_user),
            "notify-connection" => Some(&self.notify_connection),
            "commands" => Some(&self.commands),
            _ => None,
        }
    }

    /// The four queues with their names.
    pub(crate) fn named(&self) -> [(&'static str, &Producer); 4] {
        [
            ("notify-user", &self.notify_user),
            ("notify-connection", &self.notify_connection),
            ("commands", &self.commands),
            ("deliveries", &self.deliveries),
        ]
    }

    /// Any of the four queues by name (the writable ones and `deliveries`).
    pub(crate) fn any(&self, name: &str) -> Option<&Producer> {
        match name {
            "deliveries" => Some(&self.deliveries),
            "upstream" => self.upstream.as_ref(),
            _ => self.writable(name),
        }
    }
}
