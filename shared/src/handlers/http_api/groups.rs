//! `/groups/{group}`: add or remove a connection or a user-level membership,
//! and the group's existence and counts.

use serde_json::json;

use super::connections::{no_such_connection, require_connection};
use super::fields::{object, segment, ttl_seconds};
use super::{HttpAnswer, unavailable};
use crate::command_runner::execute;
use crate::membership::group_census;
use crate::protocol::{Command, USER_GROUP_MAX_TTL_SECONDS};
use crate::services::Services;
use crate::validate;

/// `PUT`/`DELETE /groups/{group}/connections/{connectionId}`: 404 for a
/// connection that does not exist, on both verbs.
pub(super) async fn connection_membership(
    services: &Services,
    add: bool,
    group: &str,
    connection_id: &str,
) -> Result<HttpAnswer, HttpAnswer> {
    let group = segment("group", group, validate::group)?;
    let connection_id = segment("connectionId", connection_id, validate::connection_id)?;
    if !add {
        require_connection(services, &connection_id).await?;
    }
    let command = if add {
        Command::AddConnectionToGroup {
            connection_id: connection_id.clone(),
            group: group.clone(),
        }
    } else {
        Command::RemoveConnectionFromGroup {
            connection_id: connection_id.clone(),
            group: group.clone(),
        }
    };
    let changed = execute(services, command).await?;
    if add && changed == 0 {
        return Err(no_such_connection(&connection_id));
    }
    Ok(HttpAnswer::ok(
        200,
        json!({ "group": group, "connectionId": connection_id, "member": add, "changed": changed > 0 }),
    ))
}

/// `PUT`/`DELETE /groups/{group}/users/{userId}`; `PUT` takes an optional `{"ttlSeconds":…}`.
pub(super) async fn user_membership(
    services: &Services,
    add: bool,
    group: &str,
    user_id: &str,
    body: Option<&str>,
) -> Result<HttpAnswer, HttpAnswer> {
    let group = segment("group", group, validate::group)?;
    let user_id = segment("userId", user_id, validate::user_id)?;
    let command = if add {
        let ttl_seconds = ttl_seconds(&object(body)?, USER_GROUP_MAX_TTL_SECONDS)?;
        Command::AddUserToGroup {
            user_id: user_id.clone(),
            group: group.clone(),
            ttl_seconds,
        }
    } else {
        Command::RemoveUserFromGroup {
            user_id: user_id.clone(),
            group: group.clone(),
        }
    };
    let connections = execute(services, command).await?;
    Ok(HttpAnswer::ok(
        200,
        json!({ "group": group, "userId": user_id, "member": add, "connections": connections }),
    ))
}

/// `GET /groups/{group}`: 404 when no connection is in it.
pub(super) async fn get_group(services: &Services, group: &str) -> Result<HttpAnswer, HttpAnswer> {
    let group = segment("group", group, validate::group)?;
    let (users, connections) = group_census(services, &group).await.map_err(unavailable)?;
    let status = if connections == 0 { 404 } else { 200 };
    Ok(HttpAnswer::ok(
        status,
        json!({
            "group": group,
            "exists": connections > 0,
            "connections": connections,
            "users": users.len(),
        }),
    ))
}
