//! Route responses: what a WebSocket route answers API Gateway with.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;

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
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
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
            LimitError::Exceeded(exceeded) => {
                Refusal::new(ErrorCode::RateLimited, exceeded.to_string())
            }
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
