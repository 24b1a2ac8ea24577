//! `$disconnect`: forget the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{error, info};

use crate::groups::membership::forget;
use crate::replies::response;
use crate::services::Services;

/// Deletes the connection record and its memberships (announcing presence
/// leaves). An unknown id is success, so a repeated or late `$disconnect` is
/// harmless; whatever cannot be deleted now expires by TTL.
pub async fn handle_disconnect(
    services: &Services,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref().filter(|id| !id.is_empty()) else {
        error!("disconnect event without a connection id");
        return response(400, None);
    };
    match forget(services, connection_id).await {
        Ok(groups_left) => {
            info!(
                connection_id,
                groups_left,
                status = context.disconnect_status_code,
                reason = context.disconnect_reason.as_deref().unwrap_or(""),
                "disconnected"
            );
            response(200, None)
        }
        Err(e) => {
            error!(connection_id, error = %e, "could not forget the connection; TTLs will");
            response(500, None)
        }
    }
}
