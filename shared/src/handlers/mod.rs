//! One module per route or queue. Each takes the real Lambda event type and
//! the ports it needs, so the Lambdas and the local stack run the same code.

pub mod actions;
pub mod commands;
pub mod connect;
pub mod default;
pub mod deliver;
pub mod disconnect;
pub mod enqueue;
pub mod groups;
pub mod http_api;
pub mod idempotency;
pub mod notify_connection;
pub mod notify_user;
pub mod ping;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use crate::config::{NotifyConnectionOptions, NotifyUserOptions};
use crate::groups::Grants;
use crate::ports::{ConnectionStore, Gateway, MembershipStore, MessageQueue};
use crate::protocol::ServerFrame;

/// Everything the group-aware handlers use: the ports and the settings. The
/// Deliveries queue is where every fan-out (group sends, broadcasts, client
/// events, presence events) hands out batches of connections, and where the
/// deliver worker puts its retries.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn ConnectionStore>,
    pub memberships: Arc<dyn MembershipStore>,
    pub gateway: Arc<dyn Gateway>,
    pub deliveries: Arc<dyn MessageQueue>,
    pub settings: Arc<Settings>,
}

/// Tuning and policy shared by the handlers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Groups whose joins and leaves are announced (`PRESENCE_GROUPS`).
    pub presence: Grants,
    /// Client events (`publish`) one connection may send per window.
    pub publish_limit: u32,
    pub publish_window: Duration,
    pub enqueue: NotifyUserOptions,
    pub posting: NotifyConnectionOptions,
}

/// The default presence-enabled groups: every group named `presence:…`.
pub const DEFAULT_PRESENCE_GROUPS: &str = "presence:*";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            presence: Grants::parse(&[DEFAULT_PRESENCE_GROUPS]).unwrap_or_default(),
            publish_limit: 10,
            publish_window: Duration::from_secs(1),
            enqueue: NotifyUserOptions::default(),
            posting: NotifyConnectionOptions::default(),
        }
    }
}

/// A route response carrying `frame` to the caller.
pub fn frame_response(frame: &ServerFrame) -> ApiGatewayProxyResponse {
    response(200, Some(frame.to_json()))
}

/// An integration response with `status` and an optional text body.
pub fn response(status: u16, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = body.map(Body::Text);
    response
}

/// A record a queue handler could not finish, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub message_id: String,
    pub error: String,
}

/// What a queue handler made of a batch: the records to redeliver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub failures: Vec<RecordFailure>,
}

impl BatchReport {
    /// The Lambda answer: one batch item failure per failed record, so SQS
    /// redelivers only those (`ReportBatchItemFailures`).
    ///
    /// A record without a message id (never seen from SQS) is reported with an
    /// empty id, which makes Lambda retry the whole batch: a loud failure, never a loss.
    pub fn into_response(self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for failure in self.failures {
            response.add_failure(failure.message_id);
        }
        response
    }
}

/// Runs `process` on every record, at most `concurrency` at once, and collects
/// the records it failed.
pub(crate) async fn process_batch<F, Fut>(
    event: SqsEvent,
    concurrency: usize,
    process: F,
) -> BatchReport
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let failures = futures::stream::iter(event.records)
        .map(|record| {
            let message_id = record.message_id.clone().unwrap_or_default();
            let fut = process(record);
            async move {
                fut.await
                    .err()
                    .map(|error| RecordFailure { message_id, error })
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(std::future::ready)
        .collect()
        .await;
    BatchReport { failures }
}

/// How many times SQS has handed out this message, as the event reports it.
pub(crate) fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}
