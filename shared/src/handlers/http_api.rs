//! The server HTTP API: sends, group management, close, existence checks and
//! negotiate. On AWS it sits behind an API Gateway HTTP API with `AWS_IAM`
//! authorisation; on the local stack it is plain HTTP on the same port. Both
//! call [`route`].
//!
//! | method and path | does |
//! |---|---|
//! | `POST /send` | one target (`connectionId`, `userId`, `group`, `userId`+`group`, `all`) and `data`; `excludeConnectionIds` with `group` or `all` |
//! | `POST /notify` | seed 004's `{"user_id":…,"event_name":…,"message":…}`: `message` to the user's connections in group `event_name` |
//! | `PUT`/`DELETE /groups/{group}/connections/{connectionId}` | add or remove a connection |
//! | `PUT`/`DELETE /groups/{group}/users/{userId}` | add (optional `{"ttlSeconds":…}`) or remove a user-level membership |
//! | `DELETE /connections/{connectionId}?reason=…` | close a connection |
//! | `DELETE /users/{userId}/connections?reason=…` | close all of a user's connections |
//! | `GET /connections/{id}`, `/users/{id}`, `/groups/{group}` | existence and counts (404 when absent) |
//! | `POST /negotiate` | a short-lived token and the WebSocket URL that carries it |
//!
//! Path segments are percent-decoded (connection ids may hold `/`, `+`, `=`).
//! A bad request is 400 with `{"error":{"code":"bad_request","field":…,"message":…}}`.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tracing::{error, info, warn};

use crate::auth::{Claims, MAX_GROUPS, mint};
use crate::commands::{CommandError, execute};
use crate::config::NegotiateSettings;
use crate::fanout::{FanoutError, user_connection_ids};
use crate::groups::membership::group_census;
use crate::groups::{Pattern, validate_group};
use crate::protocol::{
    Command, MAX_REASON_BYTES, MAX_USER_ID_BYTES, MessageError, USER_GROUP_MAX_TTL_SECONDS,
};
use crate::services::Services;

/// An HTTP answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Value,
}

impl HttpAnswer {
    fn ok(status: u16, body: Value) -> Self {
        HttpAnswer { status, body }
    }

    fn error(status: u16, code: &str, field: Option<&str>, message: impl Into<String>) -> Self {
        let mut error = json!({ "code": code, "message": message.into() });
        if let (Some(field), Some(map)) = (field, error.as_object_mut()) {
            map.insert("field".into(), json!(field));
        }
        HttpAnswer {
            status,
            body: json!({ "error": error }),
        }
    }

    fn bad(field: &str, message: impl Into<String>) -> Self {
        Self::error(400, "bad_request", Some(field), message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::error(404, "not_found", None, message)
    }
}

impl From<CommandError> for HttpAnswer {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Message(MessageError::TooLarge { .. })
            | CommandError::Fanout(FanoutError::Message(MessageError::TooLarge { .. })) => {
                HttpAnswer::bad("data", e.to_string())
            }
            CommandError::Message(e) => HttpAnswer::bad("body", e.to_string()),
            CommandError::Gateway(e) => {
                warn!(error = %e, "Management API call failed");
                HttpAnswer::error(502, "bad_gateway", None, e.to_string())
            }
            CommandError::Fanout(e) => unavailable(e),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> HttpAnswer {
    error!(error = %e, "HTTP API request failed");
    HttpAnswer::error(
        503,
        "unavailable",
        None,
        "a backing service failed; try again",
    )
}

/// The request's JSON object, or a 400 naming `body`.
fn object(body: Option<&str>) -> Result<Map<String, Value>, HttpAnswer> {
    let text = body.filter(|b| !b.trim().is_empty()).unwrap_or("{}");
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(HttpAnswer::bad("body", "the body must be a JSON object")),
        Err(e) => Err(HttpAnswer::bad(
            "body",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// An optional string field: 400 naming it if it is not a non-empty string.
fn string_field(map: &Map<String, Value>, field: &str) -> Result<Option<String>, HttpAnswer> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(HttpAnswer::bad(
            field,
            format!("\"{field}\" must not be empty"),
        )),
        Some(Value::String(s)) if s.len() > MAX_USER_ID_BYTES => Err(HttpAnswer::bad(
            field,
            format!("\"{field}\" is longer than {MAX_USER_ID_BYTES} bytes"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(HttpAnswer::bad(
            field,
            format!("\"{field}\" must be a string"),
        )),
    }
}

fn group_field(map: &Map<String, Value>, field: &str) -> Result<Option<String>, HttpAnswer> {
    let group = string_field(map, field)?;
    if let Some(group) = &group {
        validate_group(group).map_err(|e| HttpAnswer::bad(field, e.to_string()))?;
    }
    Ok(group)
}

fn strings_field(map: &Map<String, Value>, field: &str) -> Result<Vec<String>, HttpAnswer> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(HttpAnswer::bad(
                    field,
                    format!("\"{field}\" must be an array of strings"),
                )),
            })
            .collect(),
        Some(_) => Err(HttpAnswer::bad(
            field,
            format!("\"{field}\" must be an array of strings"),
        )),
    }
}

fn data_field(map: &Map<String, Value>, field: &str) -> Result<Box<RawValue>, HttpAnswer> {
    let value = map
        .get(field)
        .ok_or_else(|| HttpAnswer::bad(field, format!("\"{field}\" is required")))?;
    serde_json::value::to_raw_value(value).map_err(|e| HttpAnswer::bad(field, e.to_string()))
}

fn ttl_field(map: &Map<String, Value>, max: u64) -> Result<Option<u64>, HttpAnswer> {
    match map.get("ttlSeconds") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(ttl) if (1..=max).contains(&ttl) => Ok(Some(ttl)),
            _ => Err(HttpAnswer::bad(
                "ttlSeconds",
                format!("\"ttlSeconds\" must be an integer from 1 to {max}"),
            )),
        },
    }
}

fn reason(query: &HashMap<String, String>) -> Result<Option<String>, HttpAnswer> {
    match query.get("reason") {
        Some(r) if r.len() > MAX_REASON_BYTES => Err(HttpAnswer::bad(
            "reason",
            format!("\"reason\" is longer than {MAX_REASON_BYTES} bytes"),
        )),
        r => Ok(r.cloned()),
    }
}

fn path_group(segment: &str) -> Result<String, HttpAnswer> {
    validate_group(segment).map_err(|e| HttpAnswer::bad("group", e.to_string()))?;
    Ok(segment.to_owned())
}

/// Answers one request. `path` is the raw path (percent-encoded segments).
pub async fn route(
    services: &Services,
    config: &NegotiateSettings,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    body: Option<&str>,
) -> HttpAnswer {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let answer = dispatch(services, config, method, &segments, query, body)
        .await
        .unwrap_or_else(|e| e);
    info!(method, path, status = answer.status, "HTTP API");
    answer
}

async fn dispatch(
    services: &Services,
    config: &NegotiateSettings,
    method: &str,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: Option<&str>,
) -> Result<HttpAnswer, HttpAnswer> {
    match (method, segments) {
        ("POST", ["send"]) => send(services, body).await,
        ("POST", ["notify"]) => notify(services, body).await,
        ("POST", ["negotiate"]) => negotiate(config, body),
        (m @ ("PUT" | "DELETE"), ["groups", group, "connections", id]) => {
            connection_membership(services, m == "PUT", group, id).await
        }
        (m @ ("PUT" | "DELETE"), ["groups", group, "users", user]) => {
            user_membership(services, m == "PUT", group, user, body).await
        }
        ("DELETE", ["connections", id]) => {
            let command = Command::CloseConnection {
                connection_id: (*id).to_owned(),
                reason: reason(query)?,
            };
            execute(services, command).await?;
            Ok(HttpAnswer::ok(
                200,
                json!({ "connectionId": id, "closed": true }),
            ))
        }
        ("DELETE", ["users", user, "connections"]) => {
            let command = Command::CloseUserConnections {
                user_id: (*user).to_owned(),
                reason: reason(query)?,
            };
            let closed = execute(services, command).await?;
            Ok(HttpAnswer::ok(
                200,
                json!({ "userId": user, "closed": closed }),
            ))
        }
        ("GET", ["connections", id]) => get_connection(services, id).await,
        ("GET", ["users", user]) => get_user(services, user).await,
        ("GET", ["groups", group]) => get_group(services, group).await,
        (_, ["send" | "notify" | "negotiate"]) => Err(HttpAnswer::error(
            405,
            "method_not_allowed",
            None,
            format!("{method} is not allowed here; use POST"),
        )),
        _ => Err(HttpAnswer::not_found(format!(
            "no route for {method} /{}",
            segments.join("/")
        ))),
    }
}

async fn send(services: &Services, body: Option<&str>) -> Result<HttpAnswer, HttpAnswer> {
    let map = object(body)?;
    let data = data_field(&map, "data")?;
    let connection_id = string_field(&map, "connectionId")?;
    let user_id = string_field(&map, "userId")?;
    let group = group_field(&map, "group")?;
    let all = match map.get("all") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(HttpAnswer::bad("all", "\"all\" must be true or false")),
    };
    let exclude = strings_field(&map, "excludeConnectionIds")?;
    let id = string_field(&map, "id")?;
    if let Some(id) = &id {
        crate::protocol::validate_message_id(id)
            .map_err(|e| HttpAnswer::bad("id", e.to_string()))?;
    }
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

async fn notify(services: &Services, body: Option<&str>) -> Result<HttpAnswer, HttpAnswer> {
    let map = object(body)?;
    let user_id = match map.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_USER_ID_BYTES => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(HttpAnswer::bad(
                "user_id",
                "\"user_id\" is required: a number or a non-empty string",
            ));
        }
    };
    let group = group_field(&map, "event_name")?
        .ok_or_else(|| HttpAnswer::bad("event_name", "\"event_name\" is required"))?;
    let data = data_field(&map, "message")?;
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

async fn connection_membership(
    services: &Services,
    add: bool,
    group: &str,
    connection_id: &str,
) -> Result<HttpAnswer, HttpAnswer> {
    let group = path_group(group)?;
    let command = if add {
        Command::AddConnectionToGroup {
            connection_id: connection_id.to_owned(),
            group: group.clone(),
        }
    } else {
        Command::RemoveConnectionFromGroup {
            connection_id: connection_id.to_owned(),
            group: group.clone(),
        }
    };
    let changed = execute(services, command).await?;
    if add && changed == 0 {
        return Err(HttpAnswer::not_found(format!(
            "connection \"{connection_id}\" does not exist"
        )));
    }
    Ok(HttpAnswer::ok(
        200,
        json!({ "group": group, "connectionId": connection_id, "member": add, "changed": changed > 0 }),
    ))
}

async fn user_membership(
    services: &Services,
    add: bool,
    group: &str,
    user_id: &str,
    body: Option<&str>,
) -> Result<HttpAnswer, HttpAnswer> {
    let group = path_group(group)?;
    if user_id.len() > MAX_USER_ID_BYTES {
        return Err(HttpAnswer::bad(
            "userId",
            format!("the user id is longer than {MAX_USER_ID_BYTES} bytes"),
        ));
    }
    let command = if add {
        let ttl_seconds = ttl_field(&object(body)?, USER_GROUP_MAX_TTL_SECONDS)?;
        Command::AddUserToGroup {
            user_id: user_id.to_owned(),
            group: group.clone(),
            ttl_seconds,
        }
    } else {
        Command::RemoveUserFromGroup {
            user_id: user_id.to_owned(),
            group: group.clone(),
        }
    };
    let connections = execute(services, command).await?;
    Ok(HttpAnswer::ok(
        200,
        json!({ "group": group, "userId": user_id, "member": add, "connections": connections }),
    ))
}

async fn get_connection(services: &Services, id: &str) -> Result<HttpAnswer, HttpAnswer> {
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

async fn get_user(services: &Services, user_id: &str) -> Result<HttpAnswer, HttpAnswer> {
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

async fn get_group(services: &Services, group: &str) -> Result<HttpAnswer, HttpAnswer> {
    let group = path_group(group)?;
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

fn negotiate(config: &NegotiateSettings, body: Option<&str>) -> Result<HttpAnswer, HttpAnswer> {
    let secret = config.secret.as_ref().map_err(|e| {
        error!(error = %e, "negotiate refused: no usable token secret");
        HttpAnswer::error(
            500,
            "misconfigured",
            None,
            "the server has no usable token secret",
        )
    })?;
    let map = object(body)?;
    let user_id = string_field(&map, "userId")?
        .ok_or_else(|| HttpAnswer::bad("userId", "\"userId\" is required"))?;
    let groups = strings_field(&map, "groups")?;
    for group in &groups {
        validate_group(group)
            .map_err(|e| HttpAnswer::bad("groups", format!("\"{group}\": {e}")))?;
    }
    let mut patterns = Vec::new();
    for field in ["subscribe", "publish"] {
        let list = strings_field(&map, field)?;
        for pattern in &list {
            Pattern::parse(pattern)
                .map_err(|e| HttpAnswer::bad(field, format!("\"{pattern}\": {e}")))?;
        }
        patterns.push(list);
    }
    for (field, len) in [
        ("groups", groups.len()),
        ("subscribe", patterns[0].len()),
        ("publish", patterns[1].len()),
    ] {
        if len > MAX_GROUPS {
            return Err(HttpAnswer::bad(
                field,
                format!("at most {MAX_GROUPS} entries"),
            ));
        }
    }
    let ttl =
        ttl_field(&map, config.max_ttl.as_secs())?.map_or(config.default_ttl, Duration::from_secs);
    let now = crate::clock::now_seconds() as u64;
    let publish = patterns.pop().unwrap_or_default();
    let subscribe = patterns.pop().unwrap_or_default();
    let claims = Claims {
        sub: user_id,
        exp: now + ttl.as_secs(),
        iat: Some(now),
        groups,
        subscribe,
        publish,
    };
    let token = mint(secret, &claims).map_err(|e| {
        error!(error = %e, "cannot sign a token");
        HttpAnswer::error(500, "misconfigured", None, "cannot sign a token")
    })?;
    Ok(HttpAnswer::ok(
        200,
        json!({
            "url": format!("{}?token={token}", config.websocket_url),
            "token": token,
            "expiresAt": claims.exp,
        }),
    ))
}

/// The HTTP API function (payload format 2.0).
pub async fn handle_http(
    services: &Services,
    config: &NegotiateSettings,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let method = event.request_context.http.method.as_str().to_owned();
    let path = event
        .raw_path
        .clone()
        .or_else(|| event.request_context.http.path.clone())
        .unwrap_or_default();
    let query: HashMap<String, String> = event
        .query_string_parameters
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let body = match (&event.body, event.is_base64_encoded) {
        (Some(body), false) => Some(body.clone()),
        (Some(_), true) => {
            let answer = HttpAnswer::bad("body", "send the body as application/json text");
            return to_response(answer);
        }
        (None, _) => None,
    };
    to_response(route(services, config, &method, &path, &query, body.as_deref()).await)
}

fn to_response(answer: HttpAnswer) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(answer.status);
    response.headers = headers;
    response.body = Some(Body::Text(answer.body.to_string()));
    response
}
