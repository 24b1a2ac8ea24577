//! One module per route or queue. Each takes the real Lambda event type and
//! the ports it needs, so the Lambdas and the local stack run the same code.

pub mod connect;
pub mod default;
pub mod disconnect;
pub mod notify_connection;
pub mod notify_user;
pub mod ping;

use std::future::Future;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use crate::protocol::ServerFrame;

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

/// Runs `process` on every record, at most `concurrency` at once, and reports
/// the records it failed as batch item failures, so SQS redelivers only those.
///
/// A record without a message id (never seen from SQS) is reported with an
/// empty id, which makes Lambda retry the whole batch: a loud failure, never a loss.
pub(crate) async fn process_batch<F, Fut>(
    event: SqsEvent,
    concurrency: usize,
    process: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = bool>,
{
    let failed: Vec<String> = futures::stream::iter(event.records)
        .map(|record| {
            let id = record.message_id.clone().unwrap_or_default();
            let fut = process(record);
            async move { (!fut.await).then_some(id) }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(std::future::ready)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    response
}

/// How many times SQS has handed out this message, as the event reports it.
pub(crate) fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}
