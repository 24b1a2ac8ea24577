//! `$disconnect`: forget the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{Instrument, error, info};

use crate::groups::membership::forget;
use crate::metrics::{self, Metric, close_code_class};
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
        error!(
            route = "$disconnect",
            "disconnect event without a connection id"
        );
        return response(400, None);
    };
    let span = tracing::info_span!("route", route = "$disconnect", connection_id);
    disconnect(services, event, connection_id)
        .instrument(span)
        .await
}

async fn disconnect(
    services: &Services,
    event: &ApiGatewayWebsocketProxyRequest,
    connection_id: &str,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let code = context.disconnect_status_code.unwrap_or(1005);
    metrics::count(Metric::Disconnects, &[close_code_class(code)], 1);
    match forget(services, connection_id).await {
        Ok(groups_left) => {
            info!(
                groups_left,
                status = context.disconnect_status_code,
                reason = context.disconnect_reason.as_deref().unwrap_or(""),
                "disconnected"
            );
            response(200, None)
        }
        Err(e) => {
            error!(error = %e, "could not forget the connection; TTLs will");
            response(500, None)
        }
    }
}
