//! HTTP on one port: the WebSocket endpoint, the Management API
//! (`/@connections/{id}`, with or without a stage prefix) and the queue endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::access::{
    UNAUTHORIZED, host_allowed, is_json, is_websocket_endpoint, needs_json, origin_allowed,
    presented,
};
use crate::answers::{error_answer, json_error};
use crate::config::{MAX_QUEUE_MESSAGE_BYTES, MAX_REQUEST_BODY_BYTES};
use crate::demo::is_demo_page;
use crate::events::iso_time;
use crate::management::Refusal;
use crate::stack::{Stack, too_large_for_sqs};
use crate::websocket;

pub(crate) async fn serve(
    listener: TcpListener,
    stack: Arc<Stack>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = Router::new()
        .route("/", get(websocket::upgrade))
        .route("/{stage}", get(websocket::upgrade))
        .route(
            "/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .route(
            "/{stage}/@connections/{id}",
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .route(crate::metrics::PATH, get(metrics))
        .route(MANAGEMENT_STATS_PATH, get(management_stats))
        .route("/queues/{queue}", post(enqueue))
        .route("/queues/{queue}/dead-letters", get(dead_letters))
        .route(
            "/queues/{queue}/dead-letters/redrive",
            post(redrive_dead_letters),
        )
        // The server HTTP API (on AWS: an API Gateway HTTP API with AWS_IAM).
        .route("/send", post(http_api))
        .route("/notify", post(http_api))
        .route("/negotiate", post(http_api))
        .route("/connections/{id}", get(http_api).delete(http_api))
        .route("/users/{id}", get(http_api))
        .route("/users/{id}/connections", delete(http_api))
        .route("/groups/{group}", get(http_api))
        .route(
            "/groups/{group}/connections/{id}",
            put(http_api).delete(http_api),
        )
        .route("/groups/{group}/users/{id}", put(http_api).delete(http_api))
        .merge(crate::demo::routes())
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .layer(middleware::from_fn_with_state(stack.clone(), require_key))
        .layer(middleware::from_fn_with_state(
            stack.clone(),
            guard_browsers,
        ))
        .layer(middleware::from_fn(json_errors))
        .with_state(stack);
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await;
    if let Err(e) = result {
        error!(error = %e, "server failed");
    }
}

/// `GET /metrics`: what the handlers counted, in the Prometheus text format
/// (behind the API key like every operator endpoint when the stack has one).
async fn metrics(State(stack): State<Arc<Stack>>) -> Response {
    for (name, producer) in stack.producers.named() {
        if let Some(dead) = producer.dead_letters() {
            stack.metrics.sync_dead_letters(name, dead.len() as u64);
        }
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        stack.metrics.render(),
    )
        .into_response()
}

/// Where the Management API's counts are served as JSON.
pub(crate) const MANAGEMENT_STATS_PATH: &str = "/management/stats";

/// `GET /management/stats`: the Management API's answers and the virtual
/// connections' tally, as JSON (behind the API key when the stack has one).
async fn management_stats(State(stack): State<Arc<Stack>>) -> Response {
    (
        [("content-type", "application/json")],
        json!(stack.management_stats()).to_string(),
    )
        .into_response()
}

/// The error API Gateway's Management API answers: the SDKs read the type from `x-amzn-ErrorType`.
fn refused(refusal: Refusal) -> Response {
    let body = json!({ "message": refusal.message }).to_string();
    let mut response = (refusal.status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static(refusal.error_type),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// Middleware: every error answer is JSON. The router's own refusals (no
/// route, wrong method, a body over [`MAX_REQUEST_BODY_BYTES`], a path that
/// does not decode) come as plain text; they are rewritten in the shape of
/// the endpoint, keeping their status and headers such as `Allow`.
async fn json_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is over {MAX_REQUEST_BODY_BYTES} bytes")
        }
        StatusCode::NOT_FOUND if text.is_empty() => "no such endpoint".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED if text.is_empty() => {
            "this endpoint does not take this method".to_owned()
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        _ => text,
    };
    let mut answer = error_answer(&path, status, message);
    for (name, value) in &parts.headers {
        if name != "content-type" && name != "content-length" {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

fn connection_id(params: &HashMap<String, String>) -> &str {
    params.get("id").map(String::as_str).unwrap_or_default()
}

async fn post_to_connection(
    State(stack): State<Arc<Stack>>,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let posted = stack.management.post(connection_id(&params), &body).await;
    match posted.answer() {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => refused(refusal),
    }
}

async fn get_connection(
    State(stack): State<Arc<Stack>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let Some(connection) = stack.connections.get(connection_id(&params)) else {
        return refused(Refusal::GONE);
    };
    let context = &connection.context;
    let mut identity = json!({ "SourceIp": context.source_ip });
    if let Some(agent) = &context.user_agent {
        identity["UserAgent"] = json!(agent);
    }
    let body = json!({
        "ConnectedAt": iso_time(context.connected_at_ms),
        "Identity": identity,
        "LastActiveAt": iso_time(connection.last_active_ms()),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn delete_connection(
    State(stack): State<Arc<Stack>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    if stack.management.delete(connection_id(&params)) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        refused(Refusal::GONE)
    }
}

fn unknown_queue(name: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!(
            "unknown queue \"{}\"; the queues are notify-user, notify-connection and commands",
            switchboard::protocol::quote(name)
        ),
    )
}

/// `POST /queues/{queue}`: the request body is the SQS message body.
async fn enqueue(
    State(stack): State<Arc<Stack>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(producer) = stack.producers.writable(&name) else {
        return unknown_queue(&name);
    };
    // What SendMessage refuses, refused here too, on the in-memory queues as on SQS.
    if body.len() > MAX_QUEUE_MESSAGE_BYTES {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, too_large_for_sqs(body.len()));
    }
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "the body is not UTF-8 text".into()),
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return json_error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}; nothing was enqueued"),
        );
    }
    match producer.send(text.to_owned()).await {
        Ok(message_id) => {
            info!(queue = %name, message_id, "enqueued");
            (
                StatusCode::ACCEPTED,
                [("content-type", "application/json")],
                json!({ "messageId": message_id }).to_string(),
            )
                .into_response()
        }
        Err(e) => json_error(StatusCode::BAD_GATEWAY, format!("could not enqueue: {e}")),
    }
}

/// `GET /queues/{queue}/dead-letters`
async fn dead_letters(State(stack): State<Arc<Stack>>, Path(name): Path<String>) -> Response {
    let Some(producer) = stack.producers.any(&name) else {
        return unknown_queue(&name);
    };
    match producer.dead_letters() {
        Some(letters) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            serde_json::to_string(&letters).unwrap_or_else(|_| "[]".into()),
        )
            .into_response(),
        None => json_error(
            StatusCode::NOT_IMPLEMENTED,
            "with --aws-endpoint the dead letters are in the SQS dead-letter queues; read them there".into(),
        ),
    }
}

/// `POST /queues/{queue}/dead-letters/redrive[?max=N]`: moves up to `max`
/// (default and at most 10,000) dead letters back into the queue, oldest first.
async fn redrive_dead_letters(
    State(stack): State<Arc<Stack>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    const MAX_REDRIVE: usize = 10_000;
    let Some(producer) = stack.producers.any(&name) else {
        return unknown_queue(&name);
    };
    let max = match query.get("max").map(|m| m.parse::<usize>()) {
        None => MAX_REDRIVE,
        Some(Ok(max)) if (1..=MAX_REDRIVE).contains(&max) => max,
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("\"max\" must be an integer from 1 to {MAX_REDRIVE}"),
            );
        }
    };
    match producer.redrive(max) {
        Some(moved) => {
            info!(queue = %name, moved, "dead letters redriven");
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                json!({ "queue": name, "moved": moved }).to_string(),
            )
                .into_response()
        }
        None => json_error(
            StatusCode::NOT_IMPLEMENTED,
            "with --aws-endpoint the dead letters are in the SQS dead-letter queues; redrive them there".into(),
        ),
    }
}

/// The server HTTP API: the same `route` the HTTP API Lambda runs.
async fn http_api(
    State(stack): State<Arc<Stack>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = match std::str::from_utf8(&body) {
        Ok("") => None,
        Ok(text) => Some(text),
        Err(_) => {
            return json_error(StatusCode::BAD_REQUEST, "the body is not UTF-8 text".into());
        }
    };
    // API Gateway's integration: the request to the api function's start.
    stack.config.aws_latency.route.wait().await;
    let request = switchboard::handlers::http_api::route(
        &stack.services,
        &stack.http,
        method.as_str(),
        uri.path(),
        &query,
        body,
    );
    let answer = switchboard::metrics::measure(&*stack.metrics, "api", request).await;
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        answer.body.to_string(),
    )
        .into_response()
}

/// Middleware: lets a request through when no key is required, when it is
/// for the WebSocket endpoint or the demo page's static files, or when it
/// presents the key; 401 otherwise.
/// Middleware, before the key: a `Host` that could be rebound (403), a foreign
/// `Origin` (403, the WebSocket handshake included) and a JSON route's body
/// that does not say it is JSON (415) are refused before anything runs
/// ([`crate::access`]).
pub(crate) async fn guard_browsers(
    State(stack): State<Arc<Stack>>,
    request: Request,
    next: Next,
) -> Response {
    // Owned copies: a borrow of the request (its body is not Sync) must not live across the await.
    let (host, origin, content_type, has_body) = {
        let header = |name: &str| -> Option<String> {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let has_body = header("content-length").is_some_and(|l| l.trim() != "0")
            || header("transfer-encoding").is_some();
        (
            header("host").unwrap_or_default(),
            header("origin"),
            header("content-type"),
            has_body,
        )
    };
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let config = &stack.config;
    if !host_allowed(&host, &config.allowed_hosts) {
        info!(%method, "refused: a Host that could be a rebound DNS name");
        return error_answer(
            &path,
            StatusCode::FORBIDDEN,
            "this stack answers only to an IP address, localhost or a name given with \
             --allowed-host (a DNS name could be rebound to this machine by another site)"
                .into(),
        );
    }
    if let Some(origin) = &origin
        && !origin_allowed(origin, &host, &config.allowed_origins)
    {
        info!(%method, "refused: a page of another site");
        return error_answer(
            &path,
            StatusCode::FORBIDDEN,
            "pages of other sites may not call this stack: list the page's origin with \
             --allowed-origin (pages served from this machine may)"
                .into(),
        );
    }
    if needs_json(&method, &path, has_body) && !is_json(content_type.as_deref()) {
        return error_answer(
            &path,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with Content-Type: application/json (curl: --json)".into(),
        );
    }
    next.run(request).await
}

pub(crate) async fn require_key(
    State(stack): State<Arc<Stack>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = &stack.api_key else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if is_websocket_endpoint(request.method(), path)
        || is_demo_page(request.method(), path)
        || presented(request.headers()).is_some_and(|p| key.admits(p))
    {
        return next.run(request).await;
    }
    info!(method = %request.method(), "refused: no valid API key");
    let mut response = error_answer(path, StatusCode::UNAUTHORIZED, UNAUTHORIZED.into());
    response
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    response
}
