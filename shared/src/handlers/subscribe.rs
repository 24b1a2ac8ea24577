//! `subscribe` and `unsubscribe`: a client joins or leaves a group its token's
//! `subscribe` patterns grant, and gets an ack.
//!
//! `{"action":"subscribe","group":"notification:test","id":7}` answers
//! `{"type":"ack","id":7,"ok":true}`, or `{"type":"ack","id":7,"ok":false,
//! "error":{"code":"forbidden"|"bad_request"|"unavailable","message":…}}`.
//! Both are idempotent. Permissions come from the connection record, which
//! holds what the token granted at `$connect`; nothing in the frame widens them.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{info, warn};

use crate::groups::{Grants, validate_group};
use crate::handlers::frame_response;
use crate::ports::{ConnectionStore, Membership, MembershipStore};
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

/// Joins (`subscribe`) or leaves (`unsubscribe`) the frame's group; the ack to send back.
pub async fn subscription<S, M>(
    connections: &S,
    memberships: &M,
    connection_id: &str,
    body: Option<&str>,
) -> ServerFrame
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
{
    let frame = match ClientFrame::parse(body) {
        Ok(frame) => frame,
        Err(e) => return ServerFrame::ack_error(None, ErrorCode::BadRequest, e.to_string()),
    };
    let join = match frame.action.as_str() {
        "subscribe" => true,
        "unsubscribe" => false,
        other => {
            return ServerFrame::Error {
                code: ErrorCode::UnknownAction,
                message: format!("unknown action \"{other}\""),
                action: Some(other.to_owned()),
            };
        }
    };
    let id = match frame.correlation_id() {
        Ok(id) => id,
        Err(e) => return ServerFrame::ack_error(None, ErrorCode::BadRequest, e.to_string()),
    };
    let group = match frame.required_str("group") {
        Ok(group) => group,
        Err(e) => return ServerFrame::ack_error(id, ErrorCode::BadRequest, e.to_string()),
    };
    if let Err(e) = validate_group(group) {
        return ServerFrame::ack_error(id, ErrorCode::BadRequest, e.to_string());
    }
    let record = match connections.get_connection(connection_id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return ServerFrame::ack_error(
                id,
                ErrorCode::Forbidden,
                "the connection is not registered",
            );
        }
        Err(e) => {
            warn!(connection_id, error = %e, "cannot read the connection record");
            return ServerFrame::ack_error(id, ErrorCode::Unavailable, "try again later");
        }
    };
    // Patterns were validated at $connect; a record that no longer parses grants nothing.
    let grants = Grants::parse(&record.subscribe).unwrap_or_default();
    if !grants.allows(group) {
        let verb = if join {
            "subscribe to"
        } else {
            "unsubscribe from"
        };
        return ServerFrame::ack_error(
            id,
            ErrorCode::Forbidden,
            format!("the token does not allow you to {verb} \"{group}\""),
        );
    }
    let result = if join {
        memberships
            .join(&Membership {
                group: group.to_owned(),
                connection_id: connection_id.to_owned(),
                user_id: record.user_id.clone(),
                expires_at: record.expires_at,
            })
            .await
    } else {
        memberships.leave(group, connection_id).await
    };
    match result {
        Ok(changed) => {
            info!(connection_id, user_id = %record.user_id, group, join, changed, "subscription");
            ServerFrame::ack_ok(id)
        }
        Err(e) => {
            warn!(connection_id, group, error = %e, "cannot change the membership");
            ServerFrame::ack_error(id, ErrorCode::Unavailable, "try again later")
        }
    }
}

/// The `subscribe` and `unsubscribe` routes: the ack is the route response.
pub async fn handle_subscription<S, M>(
    connections: &S,
    memberships: &M,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
{
    let connection_id = event.request_context.connection_id.as_deref().unwrap_or("");
    frame_response(
        &subscription(
            connections,
            memberships,
            connection_id,
            event.body.as_deref(),
        )
        .await,
    )
}
