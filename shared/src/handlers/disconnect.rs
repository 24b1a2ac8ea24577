//! `$disconnect`: forget the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{error, info};

use crate::handlers::response;
use crate::ports::{ConnectionStore, MembershipStore, StoreError};

/// Deletes the connection record and the connection's group memberships.
pub(crate) async fn forget<S, M>(
    store: &S,
    memberships: &M,
    connection_id: &str,
) -> Result<usize, StoreError>
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
{
    store.delete_connection(connection_id).await?;
    let groups = memberships.connection_groups(connection_id).await?;
    for group in &groups {
        memberships.leave(group, connection_id).await?;
    }
    Ok(groups.len())
}

/// Deletes the connection record and its memberships. An unknown id is
/// success, so a repeated or late `$disconnect` is harmless; whatever cannot be
/// deleted now expires by TTL.
pub async fn handle_disconnect<S, M>(
    store: &S,
    memberships: &M,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: ConnectionStore + ?Sized,
    M: MembershipStore + ?Sized,
{
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref().filter(|id| !id.is_empty()) else {
        error!("disconnect event without a connection id");
        return response(400, None);
    };
    match forget(store, memberships, connection_id).await {
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
