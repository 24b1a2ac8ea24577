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
//! | `DELETE /connections/{connectionId}?reason=…` | close a connection (404 when it does not exist) |
//! | `DELETE /users/{userId}/connections?reason=…` | close all of a user's connections (404 when there is none) |
//! | `GET /connections/{id}`, `/users/{id}`, `/groups/{group}` | existence and counts (404 when absent) |
//! | `POST /negotiate` | a short-lived token and the WebSocket URL that carries it |
//!
//! Path segments are percent-decoded (connection ids may hold `/`, `+`, `=`).
//! A bad request is 400 with `{"error":{"code":"bad_request","field":…,"message":…}}`;
//! every verb holds the same field to the same rule (a path's `userId`,
//! `connectionId`, `group` included) and answers a connection that does not
//! exist with 404 `{"error":{"code":"not_found",…}}` (`GET` answers its
//! existence check, `{"exists":false}`, with the same 404 status).
//!
//! This file holds the router and the answers; each resource has its file:
//! [`send`] (`/send`, `/notify`), [`groups`], [`connections`], [`users`],
//! [`negotiate`] (token minting), and [`fields`] reads request fields through
//! the rules in [`crate::validate`].

use std::collections::HashMap;
use tracing::Instrument;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::command_runner::CommandError;
use crate::config::NegotiateSettings;
use crate::fanout::FanoutError;
use crate::protocol::MessageError;
use crate::services::Services;

mod connections;
mod fields;
mod groups;
mod negotiate;
mod send;
mod users;

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
            CommandError::LimitExceeded(message) => {
                HttpAnswer::error(409, "limit_exceeded", None, message)
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

/// Answers one request. `path` is the raw path (percent-encoded segments).
/// Its log lines carry the method and path (`route`; never the body).
pub async fn route(
    services: &Services,
    config: &NegotiateSettings,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    body: Option<&str>,
) -> HttpAnswer {
    let span = tracing::info_span!("request", route = %format_args!("{method} {path}"));
    answer_request(services, config, method, path, query, body)
        .instrument(span)
        .await
}

async fn answer_request(
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
    // The path is client input: logged cut to a short prefix, like any quote.
    info!(method, path = %crate::protocol::quote(path), status = answer.status, "HTTP API");
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
        ("POST", ["send"]) => send::send(services, body).await,
        ("POST", ["notify"]) => send::notify(services, body).await,
        ("POST", ["negotiate"]) => negotiate::negotiate(config, body).await,
        (m @ ("PUT" | "DELETE"), ["groups", group, "connections", id]) => {
            groups::connection_membership(services, m == "PUT", group, id).await
        }
        (m @ ("PUT" | "DELETE"), ["groups", group, "users", user]) => {
            groups::user_membership(services, m == "PUT", group, user, body).await
        }
        ("DELETE", ["connections", id]) => connections::close(services, id, query).await,
        ("DELETE", ["users", user, "connections"]) => {
            users::close_connections(services, user, query).await
        }
        ("GET", ["connections", id]) => connections::get(services, id).await,
        ("GET", ["users", user]) => users::get(services, user).await,
        ("GET", ["groups", group]) => groups::get_group(services, group).await,
        (_, ["send" | "notify" | "negotiate"]) => Err(HttpAnswer::error(
            405,
            "method_not_allowed",
            None,
            format!("{method} is not allowed here; use POST"),
        )),
        _ => Err(HttpAnswer::not_found(format!(
            "no route for {} /{}",
            crate::protocol::quote(method),
            crate::protocol::quote(&segments.join("/"))
        ))),
    }
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
