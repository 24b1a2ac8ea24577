//! `/connections/{connectionId}`: close a connection, or read its record and groups.

use std::collections::HashMap;

use serde_json::json;

use super::fields::{reason, segment};
use super::{HttpAnswer, unavailable};
use crate::command_runner::execute;
use crate::protocol::Command;
use crate::services::Services;
use crate::validate;

/// `DELETE /connections/{connectionId}?reason=…`: 404 when it does not
/// exist, as `GET` and `PUT /groups/{group}/connections/{connectionId}` answer.
pub(super) async fn close(
    services: &Services,
    connection_id: &str,
    query: &HashMap<String, String>,
) -> Result<HttpAnswer, HttpAnswer> {
    let command = Command::CloseConnection {
        connection_id: segment("connectionId", connection_id, validate::connection_id)?,
        reason: reason(query)?,
    };
    require_connection(services, connection_id).await?;
    execute(services, command).await?;
    Ok(HttpAnswer::ok(
        200,
        json!({ "connectionId": connection_id, "closed": true }),
    ))
}

/// The 404 every verb answers for a connection that does not exist.
pub(super) fn no_such_connection(connection_id: &str) -> HttpAnswer {
    HttpAnswer::not_found(format!("connection \"{connection_id}\" does not exist"))
}

/// Ok when the connection's record exists; the 404 otherwise.
pub(super) async fn require_connection(
    services: &Services,
    connection_id: &str,
) -> Result<(), HttpAnswer> {
    match services.store.get_connection(connection_id).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(no_such_connection(connection_id)),
        Err(e) => Err(unavailable(e)),
    }
}

/// `GET /connections/{connectionId}`: 404 when it does not exist.
pub(super) async fn get(services: &Services, id: &str) -> Result<HttpAnswer, HttpAnswer> {
    segment("connectionId", id, validate::connection_id)?;
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
