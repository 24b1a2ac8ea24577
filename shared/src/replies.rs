//! Route responses: what a WebSocket route answers API Gateway with.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;

use std::time::Duration;

use tracing::warn;

use crate::limits::LimitError;
use crate::protocol::{ErrorCode, FrameError, ServerFrame};

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

/// Why a client action was refused: the ack's error code and message (the
/// actions, `recover` and `history` routes answer with it).
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// When trying again can succeed (the ack's `retryAfterMs`).
    pub(crate) retry_after: Option<Duration>,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `rate_limited`: a budget that refills has no room for this now.
    pub(crate) fn limited_for(message: impl Into<String>, retry_after: Duration) -> Self {
        Refusal {
            retry_after: Some(retry_after),
            ..Refusal::new(ErrorCode::RateLimited, message)
        }
    }

    /// The ack the refusal answers `id` with.
    pub(crate) fn ack(self, id: Option<serde_json::Value>) -> ServerFrame {
        match self.retry_after {
            Some(after) => ServerFrame::ack_error_after(
                id,
                self.code,
                self.message,
                after.as_millis().max(1) as u64,
            ),
            None => ServerFrame::ack_error(id, self.code, self.message),
        }
    }

    /// A field of the frame is refused (see [`FrameError`]), or what it holds.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::BadRequest, message)
    }

    /// The connection may not do this (its token, its record, its groups).
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Refusal::new(ErrorCode::Forbidden, message)
    }

    /// A backing service failed: logged with `what`, answered "try again later".
    pub(crate) fn unavailable(connection_id: &str, what: &str, e: impl std::fmt::Display) -> Self {
        warn!(connection_id, error = %e, "{what}");
        Refusal::new(ErrorCode::Unavailable, "try again later")
    }

    /// A rate limit is reached (`rate_limited`), or could not be checked.
    pub(crate) fn limited(connection_id: &str, e: LimitError) -> Self {
        match e {
            LimitError::Exceeded(exceeded) => match exceeded.retry_after() {
                Some(after) => Refusal::limited_for(exceeded.to_string(), after),
                None => Refusal::new(ErrorCode::RateLimited, exceeded.to_string()),
            },
            LimitError::Store(e) => {
                Refusal::unavailable(connection_id, "cannot check the rate limit", e)
            }
        }
    }
}

impl From<FrameError> for Refusal {
    fn from(e: FrameError) -> Self {
        Refusal::bad_request(e.to_string())
    }
}
