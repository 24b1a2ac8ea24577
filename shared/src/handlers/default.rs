//! `$default`: every frame no other route takes gets an error frame.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::info;

use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};
use crate::replies::frame_response;

/// The error frame for a frame that reached `$default`: `unknown_action` when
/// it names an action (quoted with [`crate::protocol::quote`]: at most 64
/// bytes of it), `bad_request` when it cannot be routed at all.
pub fn default_reply(body: Option<&str>, is_base64_encoded: bool) -> ServerFrame {
    if is_base64_encoded {
        return ServerFrame::error(
            ErrorCode::BadRequest,
            "binary frames are not supported; send JSON text frames",
        );
    }
    match ClientFrame::parse(body) {
        Ok(frame) => ServerFrame::unknown_action(frame.action()),
        Err(e) => e.to_frame(),
    }
}

/// Logs the connection and the error code only: never the frame or the reply,
/// which carry client input.
pub fn handle_default(event: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let connection_id = event.request_context.connection_id.as_deref().unwrap_or("");
    let _span = tracing::info_span!("route", route = "$default", connection_id).entered();
    let frame = default_reply(event.body.as_deref(), event.is_base64_encoded);
    let code = match &frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    };
    info!(
        code = ?code,
        bytes = event.body.as_deref().map_or(0, str::len),
        "unroutable frame"
    );
    frame_response(&frame)
}
