//! Builds the events API Gateway sends to WebSocket routes and the events
//! Lambda's SQS event source sends, field for field.

use std::collections::HashMap;

use axum::http::HeaderMap;
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::aws_lambda_events::query_map::QueryMap;
use switchboard::aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use switchboard::clock::now_millis;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::ids;

/// The API id the local stack reports in events.
pub const API_ID: &str = "local";

/// What stays the same for every event of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at_ms: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub domain_name: String,
    pub stage: String,
}

/// API Gateway's `requestTime`, e.g. `22/Nov/2026:21:00:00 +0000`.
fn request_time(ms: i64) -> String {
    format_ms(
        ms,
        format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"),
    )
}

/// An ISO-8601 timestamp with milliseconds, as the Management API answers: `2026-11-22T21:00:00.123Z`.
pub fn iso_time(ms: i64) -> String {
    format_ms(
        ms,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"),
    )
}

/// `ms` (milliseconds since the Unix epoch, UTC) in `format`; empty if out of range.
fn format_ms(ms: i64, format: &[BorrowedFormatItem<'_>]) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

fn base_event(
    context: &ConnectionContext,
    route_key: &str,
    event_type: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let now = now_millis();
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let c = &mut event.request_context;
    c.route_key = Some(route_key.to_owned());
    c.event_type = Some(event_type.to_owned());
    c.connection_id = Some(context.connection_id.clone());
    c.connected_at = context.connected_at_ms;
    c.request_time_epoch = now;
    c.request_time = Some(request_time(now));
    c.request_id = Some(ids::request_id());
    c.extended_request_id = c.request_id.clone();
    c.message_direction = Some("IN".into());
    c.domain_name = Some(context.domain_name.clone());
    c.stage = Some(context.stage.clone());
    c.apiid = Some(API_ID.into());
    c.identity.source_ip = Some(context.source_ip.clone());
    c.identity.user_agent = context.user_agent.clone();
    event
}

/// The `$connect` event, with the handshake's headers and query string, single- and multi-valued.
pub fn connect(
    context: &ConnectionContext,
    headers: &HeaderMap,
    raw_query: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(context, "$connect", "CONNECT");
    let mut single = HeaderMap::new();
    for (name, value) in headers {
        // As API Gateway does, the single-valued map keeps the last value of a repeated header.
        single.insert(name.clone(), value.clone());
    }
    event.headers = single;
    event.multi_value_headers = headers.clone();
    if let Some(query) = raw_query.filter(|q| !q.is_empty()) {
        let mut multi: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            multi
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        let single: HashMap<String, String> = multi
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.last()?.clone())))
            .collect();
        event.query_string_parameters = QueryMap::from(single);
        event.multi_value_query_string_parameters = QueryMap::from(multi);
    }
    event
}

/// A `MESSAGE` event for `route_key` carrying the frame's text.
pub fn message(
    context: &ConnectionContext,
    route_key: &str,
    body: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(context, route_key, "MESSAGE");
    event.request_context.message_id = Some(ids::request_id());
    event.body = Some(body.to_owned());
    event
}

/// The `$disconnect` event with the close status code and reason.
pub fn disconnect(
    context: &ConnectionContext,
    status_code: u16,
    reason: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(context, "$disconnect", "DISCONNECT");
    event.request_context.disconnect_status_code = Some(i64::from(status_code));
    event.request_context.disconnect_reason = Some(reason.to_owned());
    event
}

/// One message as Lambda's SQS event source hands it over.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at_ms: i64,
    pub first_received_at_ms: i64,
    /// String message attributes.
    pub attributes: Vec<(String, String)>,
}

/// An `SqsEvent` for a batch from the queue called `queue`.
pub fn sqs(queue: &str, messages: &[QueuedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = HashMap::from([
                (
                    "ApproximateReceiveCount".into(),
                    m.receive_count.to_string(),
                ),
                ("SentTimestamp".into(), m.sent_at_ms.to_string()),
                (
                    "ApproximateFirstReceiveTimestamp".into(),
                    m.first_received_at_ms.to_string(),
                ),
                ("SenderId".into(), "LOCAL".into()),
            ]);
            record.message_attributes = m
                .attributes
                .iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.data_type = Some("String".into());
                    attribute.string_value = Some(value.clone());
                    (name.clone(), attribute)
                })
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{queue}"));
            record.aws_region = Some("local".into());
            record
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_use_api_gateways_formats() {
        assert_eq!(
            request_time(1_795_381_200_123),
            "22/Nov/2026:21:00:00 +0000"
        );
        assert_eq!(iso_time(1_795_381_200_123), "2026-11-22T21:00:00.123Z");
    }

    #[test]
    fn connect_events_carry_query_and_headers_single_and_multi() {
        let context = ConnectionContext {
            connection_id: "c1".into(),
            connected_at_ms: 1,
            source_ip: "127.0.0.1".into(),
            user_agent: Some("ua".into()),
            domain_name: "127.0.0.1:3001".into(),
            stage: "local".into(),
        };
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        let event = connect(&context, &headers, Some("token=abc%3D&tag=a&tag=b"));
        assert_eq!(event.query_string_parameters.first("token"), Some("abc="));
        assert_eq!(event.query_string_parameters.first("tag"), Some("b"));
        assert_eq!(
            event.multi_value_query_string_parameters.all("tag"),
            Some(vec!["a", "b"])
        );
        assert_eq!(event.headers.get("x-a").unwrap(), "2");
        assert_eq!(event.multi_value_headers.get_all("x-a").iter().count(), 2);
        assert_eq!(event.request_context.route_key.as_deref(), Some("$connect"));
        assert_eq!(event.request_context.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(event.request_context.apiid.as_deref(), Some(API_ID));
    }
}
