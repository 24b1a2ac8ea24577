//! `/connections/{connectionId}`: close a connection, or read its record and groups.

use std::collections::HashMap;

use serde_json::json;

use super::fields::{reason, segment};
use super::{HttpAnswer, unavailable};
use crate::commands::execute;
use crate::protocol::Command;
use crate::services::Services;
use crate::validate;

/// `DELETE /connections/{connectionId}?reason=…`.
pub(super) async fn close(
    services: &Services,
    connection_id: &str,
    query: &HashMap<String, String>,
) -> Result<HttpAnswer, HttpAnswer> {
    let command = Command::CloseConnection {
        connection_id: segment("connectionId", connection_id, validate::connection_id)?,
        reason: reason(query)?,
    };
    execute(services, command).await?;
    Ok(HttpAnswer::ok(
        200,
        json!({ "connectionId": connection_id, "closed": true }),
    ))
}

/// `GET /connections/{connectionId}`: 404 when it does not exist.
pub(super) async fn get(services: &Services, id: &str) -> Result<HttpAnswer, HttpAnswer> {
    let Some(record) = services
        .store
        .get_connection(id)
        .await
        .map_err(unavailable)?
    else {
        return Ok(HttpAnswer::ok(
            404,
            json!({ "connectionId": id, "exists": false }),
        ));
    };
    let groups = services
        .memberships
        .connection_groups(id)
        .await
        .map_err(unavailable)?;
    Ok(HttpAnswer::ok(
        200,
        json!({
            "connectionId": id,
            "exists": true,
            "userId": record.user_id,
            "connectedAt": record.connected_at_ms,
            "groups": groups,
        }),
    ))
}
