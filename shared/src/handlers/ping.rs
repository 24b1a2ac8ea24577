//! `ping`: answer `{"type":"pong"}` as a route response.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use crate::protocol::{ClientFrame, FrameError, ServerFrame};
use crate::replies::frame_response;

/// The frame answering a ping: `{"type":"pong","name":…}`, echoing `name` when given.
pub fn pong(body: Option<&str>) -> Result<ServerFrame, FrameError> {
    let frame = ClientFrame::parse(body)?;
    let name = frame.optional_str("name")?.map(str::to_owned);
    Ok(ServerFrame::Pong { name })
}

pub fn handle_ping(event: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let frame = pong(event.body.as_deref()).unwrap_or_else(|e| e.to_frame());
    frame_response(&frame)
}
