//! Error answers in the shape of each endpoint: the Management API's, the
//! queue endpoints' and the HTTP API's, written once for the server and the
//! API-key check.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer in the shape of the endpoint `path` belongs to: the
/// Management API's (`{"message":…}` and `x-amzn-ErrorType`), the queue
/// endpoints' (`{"error":"…"}`) or the HTTP API's (`{"error":{"code","message"}}`).
pub(crate) fn error_answer(path: &str, status: StatusCode, message: String) -> Response {
    if path.contains("/@connections/") || path.starts_with("@connections/") {
        let error_type = match status {
            StatusCode::UNAUTHORIZED => "UnauthorizedException",
            StatusCode::FORBIDDEN => "ForbiddenException",
            StatusCode::NOT_FOUND => "NotFoundException",
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLargeException",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedException",
            s if s.is_server_error() => "InternalServerErrorException",
            _ => "BadRequestException",
        };
        let mut response = (status, json!({ "message": message }).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        return response;
    }
    if path.starts_with("/queues/") {
        return json_error(status, message);
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": { "code": code, "message": message } }).to_string(),
    )
        .into_response()
}

pub(crate) fn json_error(status: StatusCode, message: String) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": message }).to_string(),
    )
        .into_response()
}
