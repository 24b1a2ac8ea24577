//! `$disconnect`: forget the connection, and emit `disconnected` upstream.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{Instrument, error, info};

use crate::membership::forget;
use crate::metrics::{self, Metric, close_code_class};
use crate::replies::response;
use crate::services::Services;
use crate::upstream;

/// Deletes the connection record and its memberships (announcing presence
/// leaves, each under the user's presence-change limit: see [`crate::membership`]). An unknown id is success, so a repeated or late `$disconnect` is
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
    // The record is read only when an upstream sink wants the event.
    let record = if services.upstream.has_sinks() {
        services
            .store
            .get_connection(connection_id)
            .await
            .unwrap_or_else(|e| {
                error!(connection_id, error = %e, "cannot read the record: no disconnected event");
                None
            })
    } else {
        None
    };
    if let Some(record) = record {
        let event = upstream::events::disconnected(&upstream::events::Disconnected {
            connection_id,
            user_id: &record.user_id,
            status_code: context.disconnect_status_code,
            reason: context.disconnect_reason.as_deref(),
            connected_at_ms: record.connected_at_ms,
            disconnected_at_ms: crate::clock::now_millis(),
        });
        services.upstream.emit(&event).await;
    }
    match forget(services, connection_id, true).await {
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
