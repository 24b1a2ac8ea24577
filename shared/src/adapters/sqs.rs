//! A queue on Amazon SQS.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use std::time::Duration;

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};

use crate::lazy::Lazy;
use crate::ports::{MAX_BATCH, MAX_DELAY, MessageQueue, QueueError, SendFailure};

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Lazy<Client>,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: impl Into<Lazy<Client>>, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client: client.into(),
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl MessageQueue for SqsQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, QueueError> {
        self.send(bodies, None, &[]).await
    }

    async fn send_later(
        &self,
        bodies: &[String],
        delay: Duration,
        attributes: &[(&str, String)],
    ) -> Result<Vec<SendFailure>, QueueError> {
        self.send(bodies, Some(delay), attributes).await
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.min(MAX_DELAY).as_secs() as i32)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

impl SqsQueue {
    /// `SendMessageBatch`, with `DelaySeconds` and string message attributes when given.
    async fn send(
        &self,
        bodies: &[String],
        delay: Option<Duration>,
        attributes: &[(&str, String)],
    ) -> Result<Vec<SendFailure>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        // The invocation's X-Ray trace header rides along, so the consumer's
        // invocation joins the same trace (Lambda reads AWSTraceHeader).
        let trace = crate::config::trace_header()
            .map(|header| {
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(header)
                    .build()
                    .map_err(|e| QueueError::Unavailable(e.to_string()))
            })
            .transpose()?;
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(index, body)| {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body);
                if let Some(trace) = &trace {
                    entry = entry.message_system_attributes(
                        MessageSystemAttributeNameForSends::AwsTraceHeader,
                        trace.clone(),
                    );
                }
                if let Some(delay) = delay {
                    entry = entry.delay_seconds(delay.min(MAX_DELAY).as_secs() as i32);
                }
                for (name, value) in attributes {
                    let value = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| QueueError::Unavailable(e.to_string()))?;
                    entry = entry.message_attributes(*name, value);
                }
                entry
                    .build()
                    .map_err(|e| QueueError::Unavailable(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(DisplayErrorContext(e).to_string()))?;
        output
            .failed()
            .iter()
            .map(|failed| {
                let index = failed
                    .id()
                    .parse()
                    .ok()
                    .filter(|i: &usize| *i < bodies.len())
                    .ok_or_else(|| {
                        QueueError::Unavailable(format!(
                            "SQS answered an unknown entry id {:?}",
                            failed.id()
                        ))
                    })?;
                Ok(SendFailure {
                    index,
                    code: failed.code().to_owned(),
                    message: failed.message().unwrap_or_default().to_owned(),
                    sender_fault: failed.sender_fault(),
                })
            })
            .collect()
    }
}
