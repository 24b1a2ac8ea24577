//! Reading a request's fields (JSON body, path segments, query): each shape
//! check here, each value rule in [`crate::validate`], so a bad value gets the
//! words it gets on every other surface. A refusal is 400 naming the field.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::HttpAnswer;
use crate::validate::{self, FieldError};

/// A value rule from the kit: the field's name, its value.
pub(super) type Rule = fn(&'static str, &str) -> Result<(), FieldError>;

impl From<FieldError> for HttpAnswer {
    fn from(e: FieldError) -> Self {
        HttpAnswer::bad(e.field(), e.to_string())
    }
}

/// The request's JSON object (an empty body is `{}`), or a 400 naming `body`.
pub(super) fn object(body: Option<&str>) -> Result<Map<String, Value>, HttpAnswer> {
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

/// An optional string field: absent or `null` is `None`, any other non-string a 400.
pub(super) fn string<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, HttpAnswer> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(HttpAnswer::bad(
            field,
            format!("\"{field}\" must be a string"),
        )),
    }
}

/// An optional string field held to `rule`.
pub(super) fn checked(
    map: &Map<String, Value>,
    field: &'static str,
    rule: Rule,
) -> Result<Option<String>, HttpAnswer> {
    let Some(value) = string(map, field)? else {
        return Ok(None);
    };
    rule(field, value)?;
    Ok(Some(value.to_owned()))
}

/// A required string field held to `rule`.
pub(super) fn required(
    map: &Map<String, Value>,
    field: &'static str,
    rule: Rule,
) -> Result<String, HttpAnswer> {
    checked(map, field, rule)?
        .ok_or_else(|| HttpAnswer::bad(field, format!("\"{field}\" is required")))
}

/// The optional message `id`. Refused in the Commands queue's words (the same
/// error a command with this `id` gets).
pub(super) fn message_id(map: &Map<String, Value>) -> Result<Option<String>, HttpAnswer> {
    let Some(id) = string(map, "id")? else {
        return Ok(None);
    };
    crate::protocol::validate_message_id(id).map_err(|e| HttpAnswer::bad("id", e.to_string()))?;
    Ok(Some(id.to_owned()))
}

/// An optional array of strings (absent or `null` is empty).
pub(super) fn strings(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Vec<String>, HttpAnswer> {
    let not_strings = || HttpAnswer::bad(field, format!("\"{field}\" must be an array of strings"));
    match map.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(not_strings))
            .collect(),
        Some(_) => Err(not_strings()),
    }
}

/// A required field of any JSON value, as the data to send.
pub(super) fn data(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Box<RawValue>, HttpAnswer> {
    let value = map
        .get(field)
        .ok_or_else(|| HttpAnswer::bad(field, format!("\"{field}\" is required")))?;
    serde_json::value::to_raw_value(value).map_err(|e| HttpAnswer::bad(field, e.to_string()))
}

/// The optional `ttlSeconds`, from 1 to `max`.
pub(super) fn ttl_seconds(map: &Map<String, Value>, max: u64) -> Result<Option<u64>, HttpAnswer> {
    match map.get("ttlSeconds") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Ok(Some(validate::ttl_value("ttlSeconds", value, max)?)),
    }
}

/// The optional close `reason` from the query string.
pub(super) fn reason(query: &HashMap<String, String>) -> Result<Option<String>, HttpAnswer> {
    let reason = query.get("reason");
    if let Some(reason) = reason {
        validate::reason("reason", reason)?;
    }
    Ok(reason.cloned())
}

/// A (percent-decoded) path segment held to `rule`.
pub(super) fn segment(field: &'static str, value: &str, rule: Rule) -> Result<String, HttpAnswer> {
    rule(field, value)?;
    Ok(value.to_owned())
}
