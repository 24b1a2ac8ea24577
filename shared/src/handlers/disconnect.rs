//! `$disconnect`: forget the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{error, info};

use crate::handlers::response;
use crate::ports::ConnectionStore;

/// Deletes the connection record. An unknown id is success, so a repeated or
/// late `$disconnect` is harmless; a record that cannot be deleted now expires by TTL.
pub async fn handle_disconnect<S: ConnectionStore + ?Sized>(
    store: &S,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref().filter(|id| !id.is_empty()) else {
        error!("disconnect event without a connection id");
        return response(400, None);
    };
    match store.delete_connection(connection_id).await {
        Ok(()) => {
            info!(
                connection_id,
                status = context.disconnect_status_code,
                reason = context.disconnect_reason.as_deref().unwrap_or(""),
                "disconnected"
            );
            response(200, None)
        }
        Err(e) => {
            error!(connection_id, error = %e, "could not delete the connection record; its TTL will");
            response(500, None)
        }
    }
}
