//! `ping`: answer `{"type":"pong"}` as a route response.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::protocol::{FrameError, Ping, ServerFrame};
use crate::replies::frame_response;

/// The frame answering a ping: `{"type":"pong","name":…}`, echoing `name` when given.
pub fn pong(body: Option<&str>) -> Result<ServerFrame, FrameError> {
    let Ping { name } = Ping::parse(body)?;
    Ok(ServerFrame::Pong { name })
}

pub fn handle_ping(event: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let connection_id = event.request_context.connection_id.as_deref().unwrap_or("");
    let _span = tracing::info_span!("route", route = "ping", connection_id).entered();
    let frame = pong(event.body.as_deref()).unwrap_or_else(|e| e.to_frame());
    tracing::debug!(
        ok = matches!(frame, ServerFrame::Pong { .. }),
        "ping answered"
    );
    frame_response(&frame)
}
