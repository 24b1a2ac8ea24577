//! `POST /send` (one target and `data`) and `POST /notify` (seed 004's shape).

use serde_json::{Value, json};

use super::HttpAnswer;
use super::fields::{checked, data, message_id, object, required, strings};
use crate::command_runner::execute;
use crate::protocol::Command;
use crate::services::Services;
use crate::validate;

/// `POST /send`: `connectionId`, `userId`, `group`, `userId`+`group` or `all`,
/// with `data`; `excludeConnectionIds` with `group` or `all`. 202 with the
/// number of connections addressed.
pub(super) async fn send(
    services: &Services,
    body: Option<&str>,
) -> Result<HttpAnswer, HttpAnswer> {
    let map = object(body)?;
    let data = data(&map, "data")?;
    let connection_id = checked(&map, "connectionId", validate::connection_id)?;
    let user_id = checked(&map, "userId", validate::user_id)?;
    let group = checked(&map, "group", validate::group)?;
    let all = match map.get("all") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(HttpAnswer::bad("all", "\"all\" must be true or false")),
    };
    let exclude = strings(&map, "excludeConnectionIds")?;
    let id = message_id(&map)?;
    let command = match (connection_id, user_id, group, all) {
        (Some(connection_id), None, None, false) => Command::SendToConnection {
            connection_id,
            data,
            id,
        },
        (None, Some(user_id), group, false) => Command::SendToUser {
            user_id,
            group,
            data,
            id,
        },
        (None, None, Some(group), false) => Command::SendToGroup {
            group,
            data,
            exclude_connection_ids: exclude.clone(),
            id,
        },
        (None, None, None, true) => Command::Broadcast {
            data,
            exclude_connection_ids: exclude.clone(),
            id,
        },
        (None, None, None, false) => {
            return Err(HttpAnswer::bad(
                "target",
                "name one target: connectionId, userId, group, userId and group, or all",
            ));
        }
        _ => {
            return Err(HttpAnswer::bad(
                "target",
                "name exactly one target: connectionId, userId, group, userId and group, or all",
            ));
        }
    };
    if !exclude.is_empty()
        && !matches!(
            command,
            Command::SendToGroup { .. } | Command::Broadcast { .. }
        )
    {
        return Err(HttpAnswer::bad(
            "excludeConnectionIds",
            "\"excludeConnectionIds\" applies to group and all sends only",
        ));
    }
    let addressed = execute(services, command).await?;
    Ok(HttpAnswer::ok(202, json!({ "addressed": addressed })))
}

/// `POST /notify`: `{"user_id":…,"event_name":…,"message":…}` sends `message`
/// to the user's connections in group `event_name`.
pub(super) async fn notify(
    services: &Services,
    body: Option<&str>,
) -> Result<HttpAnswer, HttpAnswer> {
    let map = object(body)?;
    let user_id = match map.get("user_id") {
        Some(Value::String(s)) => {
            validate::user_id("user_id", s)?;
            s.clone()
        }
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(HttpAnswer::bad(
                "user_id",
                "\"user_id\" is required: a number or a non-empty string",
            ));
        }
    };
    let group = required(&map, "event_name", validate::group)?;
    let data = data(&map, "message")?;
    let addressed = execute(
        services,
        Command::SendToUser {
            user_id,
            group: Some(group),
            data,
            id: None,
        },
    )
    .await?;
    Ok(HttpAnswer::ok(202, json!({ "addressed": addressed })))
}
