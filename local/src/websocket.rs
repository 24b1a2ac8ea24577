//! The WebSocket side of API Gateway: handshake, route selection, route
//! responses, limits, timeouts and `$disconnect`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header::{HOST, USER_AGENT};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use switchboard::aws_lambda_events::encodings::Body;
use switchboard::clock::now_millis;
use switchboard::handlers::actions::handle_client_action;
use switchboard::handlers::connect::connect_route;
use switchboard::handlers::default::handle_default;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::handlers::ping::handle_ping;
use switchboard::metrics::measure;
use switchboard::routes::{self, RouteFunction};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::config::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, MIN_OUTBOUND_LIMIT_BYTES};
use crate::connections::{Connection, Outbound, Unsent};
use crate::events::{self, ConnectionContext};
use crate::ids;
use crate::stack::Stack;

/// The read buffer each socket starts with (tungstenite grows it for a larger frame).
const READ_BUFFER_BYTES: usize = 4096;

/// `$request.body.action`: a JSON object whose string `action` names a route
/// ([`routes::action_route`]) goes there; anything else goes to `$default`.
pub(crate) fn select_route(text: &str) -> &'static str {
    let action = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("action")?.as_str().map(str::to_owned));
    action
        .and_then(|a| routes::action_route(&a).map(|route| route.key))
        .unwrap_or("$default")
}

/// `GET /` or `GET /{stage}` with an upgrade: the handshake waits for `$connect`.
pub(crate) async fn upgrade(
    State(stack): State<Arc<Stack>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return (
                StatusCode::UPGRADE_REQUIRED,
                format!(
                    "{rejection}. This is Switchboard's WebSocket endpoint: connect with a WebSocket client, \
                     e.g. websocat \"ws://{}{}?token=…\"\n",
                    headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:3001"),
                    uri.path()
                ),
            )
                .into_response();
        }
    };
    let stage = uri.path().trim_matches('/');
    let context = ConnectionContext {
        connection_id: ids::connection_id(),
        connected_at_ms: now_millis(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        domain_name: headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        stage: if stage.is_empty() {
            stack.config.stage.clone()
        } else {
            stage.to_owned()
        },
    };
    let event = events::connect(&context, &headers, query.as_deref());
    // Each route integration: the frame (here the handshake) to the handler's start.
    stack.config.aws_latency.route.wait().await;
    let connecting = connect_route(&stack.services, &stack.verifier, &event);
    let (response, record) = measure(&*stack.metrics, "connect", connecting).await;
    let status = u16::try_from(response.status_code).unwrap_or(500);
    let Some(record) = record.filter(|_| (200..300).contains(&status)) else {
        info!(connection_id = %context.connection_id, status, "handshake rejected");
        let body = match response.body {
            Some(Body::Text(text)) => text,
            _ => String::new(),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, [("content-type", "application/json")], body).into_response();
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let limit = stack.config.outbound_limit.max(MIN_OUTBOUND_LIMIT_BYTES);
    let connection = Arc::new(Connection::new(context, record.user_id, tx, limit));
    // The connection exists from here on, as on API Gateway once $connect returned 2xx.
    stack.connections.insert(connection.clone());
    let (failed_stack, failed_connection) = (stack.clone(), connection.clone());
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // tungstenite's defaults (128 KiB each) cost an idle connection about
        // 140 KiB of RSS; client frames are small, and a large one grows the buffer.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_failed_upgrade(move |e| {
            warn!(error = %e, "upgrade failed after $connect");
            tokio::spawn(async move {
                finish(&failed_stack, &failed_connection, 1006, "upgrade failed").await;
            });
        })
        .on_upgrade(move |socket| serve(stack, connection, socket, rx))
}

type Sink = SplitSink<WebSocket, Message>;

async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

/// A read error that API Gateway answers with 1009: a message over 128 KB or a frame over 32 KB.
fn is_too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

async fn serve(
    stack: Arc<Stack>,
    connection: Arc<Connection>,
    socket: WebSocket,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = stack.shutdown.clone();
    let max_deadline = Instant::now() + stack.config.max_duration;
    let mut last_active = Instant::now();
    let (code, reason): (u16, String) = loop {
        let idle_deadline = last_active + stack.config.idle_timeout;
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_active = Instant::now();
                    connection.touch(now_millis());
                    tokio::spawn(route(stack.clone(), connection.clone(), text.to_string()));
                }
                Some(Ok(Message::Binary(_))) => {
                    // API Gateway does not take binary frames: it closes with 1003.
                    close(&mut sink, 1003, "Binary frames are not supported").await;
                    break (1003, "Binary frames are not supported".into());
                }
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or((1005, String::new()), |f| (f.code, f.reason.to_string()));
                }
                Some(Ok(_)) => {} // ping and pong frames are answered by the protocol layer
                Some(Err(e)) => {
                    if is_too_big(e) {
                        close(&mut sink, 1009, "Message too big").await;
                        break (1009, "Message too big".into());
                    }
                    break (1006, "Connection lost".into());
                }
                None => break (1006, "Connection lost".into()),
            },
            message = outbound.recv() => match message.inspect(|m| connection.dequeued(m)) {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break (1006, "Connection lost".into());
                    }
                }
                Some(Outbound::Binary(bytes)) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break (1006, "Connection lost".into());
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    close(&mut sink, code, &reason).await;
                    break (code, reason);
                }
                None => break (1011, "Internal error".into()),
            },
            _ = sleep_until(idle_deadline) => {
                close(&mut sink, 1001, "Going away").await;
                break (1001, "Idle timeout".into());
            }
            _ = sleep_until(max_deadline) => {
                close(&mut sink, 1001, "Going away").await;
                break (1001, "Maximum connection duration reached".into());
            }
            _ = stopped(&mut shutdown) => {
                close(&mut sink, 1001, "Going away").await;
                break (1001, "Server shutting down".into());
            }
        }
    };
    let _ = sink.close().await;
    // Posts from now on answer 410 rather than vanish into a socket that is gone.
    drop(outbound);
    finish(&stack, &connection, code, &reason).await;
}

async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Runs `$disconnect`, then forgets the connection. In that order, shutdown
/// (which waits for the registry to empty) also waits for every `$disconnect`.
async fn finish(stack: &Stack, connection: &Connection, code: u16, reason: &str) {
    let id = &connection.context.connection_id;
    let event = events::disconnect(&connection.context, code, reason);
    stack.config.aws_latency.route.wait().await;
    measure(
        &*stack.metrics,
        "disconnect",
        handle_disconnect(&stack.services, &event),
    )
    .await;
    stack.connections.remove(id);
    // Post counts are kept for open connections only, so the map stays bounded.
    if let Ok(mut posts) = stack.posts.lock() {
        posts.remove(id.as_str());
    }
    info!(connection_id = %id, user_id = %connection.user_id, code, reason, "disconnect");
}

/// Runs a text frame through its route and sends the route response back.
async fn route(stack: Arc<Stack>, connection: Arc<Connection>, text: String) {
    let route_key = select_route(&text);
    let event = events::message(&connection.context, route_key, &text);
    stack.config.aws_latency.route.wait().await;
    let response = match routes::function_of(route_key) {
        Some(RouteFunction::Ping) => handle_ping(&event),
        Some(RouteFunction::Actions) => {
            let action = handle_client_action(&stack.services, &event);
            measure(&*stack.metrics, "actions", action).await
        }
        _ => handle_default(&event),
    };
    info!(
        connection_id = %connection.context.connection_id,
        user_id = %connection.user_id,
        route = route_key,
        "route"
    );
    let Some(Body::Text(reply)) = response.body else {
        return;
    };
    if connection.send(Outbound::Text(reply)) == Err(Unsent::Full) {
        // The client is not reading its answers, so it cannot be waiting for this one.
        warn!(connection_id = %connection.context.connection_id, route = route_key, "route response dropped: the outbound queue is full");
    }
}

#[cfg(test)]
mod tests {
    use super::select_route;

    #[test]
    fn route_selection_follows_request_body_action() {
        assert_eq!(select_route(r#"{"action":"ping"}"#), "ping");
        assert_eq!(select_route(r#"{"action":"dance"}"#), "$default");
        assert_eq!(select_route(r#"{"action":7}"#), "$default");
        assert_eq!(select_route(r#"["ping"]"#), "$default");
        assert_eq!(select_route("ping"), "$default");
        assert_eq!(select_route(r#"{"action":"$connect"}"#), "$default");
    }
}
