//! `/users/{userId}`: close all of a user's connections, or count them.

use std::collections::HashMap;

use serde_json::json;

use super::fields::{reason, segment};
use super::{HttpAnswer, unavailable};
use crate::command_runner::execute;
use crate::fanout::user_connection_ids;
use crate::protocol::Command;
use crate::services::Services;
use crate::validate;

/// `DELETE /users/{userId}/connections?reason=…`: 404 when the user has no
/// connection, as `GET /users/{userId}` answers.
pub(super) async fn close_connections(
    services: &Services,
    user_id: &str,
    query: &HashMap<String, String>,
) -> Result<HttpAnswer, HttpAnswer> {
    let command = Command::CloseUserConnections {
        user_id: segment("userId", user_id, validate::user_id)?,
        reason: reason(query)?,
    };
    let closed = execute(services, command).await?;
    if closed == 0 {
        return Err(HttpAnswer::not_found(format!(
            "user \"{user_id}\" has no connection"
        )));
    }
    Ok(HttpAnswer::ok(
        200,
        json!({ "userId": user_id, "closed": closed }),
    ))
}

/// `GET /users/{userId}`: 404 when the user has no connection.
pub(super) async fn get(services: &Services, user_id: &str) -> Result<HttpAnswer, HttpAnswer> {
    segment("userId", user_id, validate::user_id)?;
    let connections = user_connection_ids(services, user_id)
        .await
        .map_err(unavailable)?;
    let groups = services
        .memberships
        .user_groups(user_id, crate::clock::now_seconds())
        .await
        .map_err(unavailable)?;
    let status = if connections.is_empty() { 404 } else { 200 };
    Ok(HttpAnswer::ok(
        status,
        json!({
            "userId": user_id,
            "exists": !connections.is_empty(),
            "connections": connections.len(),
            "groups": groups,
        }),
    ))
}
