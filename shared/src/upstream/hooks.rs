//! The synchronous hooks: `connect` (may refuse a handshake, or set the
//! user and grants) and `event` (answers a client's event). Both POST a
//! CloudEvent in structured mode, signed like the webhook (see
//! [`crate::webhook`] and [`super::delivery::signed_request_headers`]), and wait at most the hook's timeout, and
//! never so long that the invocation has less than [`HOOK_RESERVE`] left
//! ([`crate::retry::within_invocation`]): a hook that does not answer in time
//! has failed, and the handler still answers (refuses, or lets the connection
//! in with `CONNECT_HOOK_FAIL_OPEN`) before Lambda ends the invocation.

use std::time::Duration;

use serde_json::Value;

use crate::auth::SecretError;
use crate::validate::{self, FieldError};

use super::delivery::signed_request_headers;
use super::{CloudEvent, Hook, HttpAnswer, PostError, Upstream, no_client};

/// What a hook leaves of the invocation for the rest of the handler (storing
/// the connection, the answer).
pub const HOOK_RESERVE: Duration = Duration::from_secs(1);

pub use super::events::CONNECT_TYPE;

/// The largest hook answer read (an event hook's answer goes back to the
/// client in one frame, which API Gateway caps at 128 KB).
pub const MAX_ANSWER_BYTES: usize = 96 * 1024;

/// Why a hook did not answer yes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The application refused (401 or 403 from a connect hook).
    #[error("the hook refused with {0}")]
    Refused(u16),
    /// The hook could not answer: a timeout, no connection, or a 5xx. Only
    /// this may fail open.
    #[error("the hook failed: {0}")]
    Failed(String),
    /// The hook answered with a status that is neither an acceptance nor a
    /// refusal (a 3xx, a 4xx other than 401 and 403): an answer, so it never
    /// fails open; the handshake is refused as for a failure.
    #[error("the hook answered {0}, which neither accepts nor refuses")]
    Unexpected(u16),
    /// The hook answered 2xx with a body that is not a valid answer.
    #[error("the hook's answer is invalid: {0}")]
    InvalidAnswer(String),
    /// No webhook secret: nothing is sent unsigned.
    #[error("cannot sign the hook request: {0}")]
    Secret(#[from] SecretError),
}

impl From<PostError> for HookError {
    fn from(e: PostError) -> Self {
        HookError::Failed(e.to_string())
    }
}

/// What a connect hook may set: each field present replaces the token's.
/// Validated exactly like token claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectAnswer {
    pub user_id: Option<String>,
    pub groups: Option<Vec<String>>,
    pub subscribe: Option<Vec<String>>,
    pub publish: Option<Vec<String>>,
    pub events: Option<Vec<String>>,
}

impl ConnectAnswer {
    /// The answer's JSON object: `userId` a string, the others lists of
    /// strings, no other field. (Read through `Value`, which every function
    /// links already, rather than a derived deserializer.)
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Err("the answer must be a JSON object".into());
        };
        let mut answer = ConnectAnswer::default();
        for (key, value) in map {
            let strings = || -> Result<Vec<String>, String> {
                value
                    .as_array()
                    .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                    .ok_or_else(|| format!("\"{key}\" must be a list of strings"))
            };
            match key.as_str() {
                "userId" => match &value {
                    Value::String(user) => answer.user_id = Some(user.clone()),
                    _ => return Err("\"userId\" must be a string".into()),
                },
                "groups" => answer.groups = Some(strings()?),
                "subscribe" => answer.subscribe = Some(strings()?),
                "publish" => answer.publish = Some(strings()?),
                "events" => answer.events = Some(strings()?),
                _ => {
                    return Err(format!(
                        "unknown field \"{}\"",
                        crate::protocol::quote(&key)
                    ));
                }
            }
        }
        answer.check().map_err(|e| e.to_string())?;
        Ok(answer)
    }

    fn check(&self) -> Result<(), FieldError> {
        if let Some(user_id) = &self.user_id {
            validate::user_id("userId", user_id)?;
        }
        if let Some(groups) = &self.groups {
            validate::group_list("groups", groups)?;
        }
        for (field, patterns) in [
            ("subscribe", &self.subscribe),
            ("publish", &self.publish),
            ("events", &self.events),
        ] {
            if let Some(patterns) = patterns {
                validate::pattern_list(field, patterns)?;
            }
        }
        Ok(())
    }
}

async fn post_signed(
    upstream: &Upstream,
    hook: &Hook,
    event: &CloudEvent,
) -> Result<HttpAnswer, HookError> {
    let key = upstream.secret.bytes().await?;
    let body = event.body();
    let headers = signed_request_headers(key, event, &body);
    let http = upstream.http.as_ref().ok_or_else(no_client)?;
    let timeout = crate::retry::within_invocation(hook.timeout, HOOK_RESERVE);
    let mut answer = http.post(&hook.url, &headers, body, timeout).await?;
    if answer.body.len() > MAX_ANSWER_BYTES {
        answer.body.truncate(0);
        return Err(HookError::InvalidAnswer(format!(
            "longer than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    Ok(answer)
}

/// Asks the connect hook about a verified handshake. `request` is the
/// `data` of the `switchboard.connect` event the hook receives (the verified
/// claims and the connection's details).
/// 2xx accepts (an empty body keeps the token's claims); 401 and 403 refuse.
pub async fn ask_connect_hook(
    upstream: &Upstream,
    hook: &Hook,
    connection_id: &str,
    user_id: &str,
    request: &Value,
) -> Result<ConnectAnswer, HookError> {
    let event = super::events::connect(connection_id, user_id, request.clone());
    let answer = post_signed(upstream, hook, &event).await?;
    match answer.status {
        200..=299 => {}
        401 | 403 => return Err(HookError::Refused(answer.status)),
        status @ 500..=599 => {
            return Err(HookError::Failed(format!("the hook answered {status}")));
        }
        status => return Err(HookError::Unexpected(status)),
    }
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConnectAnswer::default());
    }
    ConnectAnswer::parse(&answer.body).map_err(HookError::InvalidAnswer)
}

/// Asks the event hook to answer a client's `message` event: its 2xx body
/// as JSON (an empty body is `null`, a body that is not JSON a string).
pub async fn ask_event_hook(
    upstream: &Upstream,
    hook: &Hook,
    event: &CloudEvent,
) -> Result<Value, HookError> {
    let answer = post_signed(upstream, hook, event).await?;
    if !(200..300).contains(&answer.status) {
        return Err(HookError::Failed(format!(
            "the event hook answered {}",
            answer.status
        )));
    }
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_answers_are_validated_like_token_claims() {
        let parse = |text: &str| ConnectAnswer::parse(text.as_bytes());
        assert_eq!(
            parse(r#"{"userId":"bob","subscribe":["chat:*"],"events":[]}"#),
            Ok(ConnectAnswer {
                user_id: Some("bob".into()),
                subscribe: Some(vec!["chat:*".into()]),
                events: Some(vec![]),
                ..ConnectAnswer::default()
            })
        );
        assert_eq!(parse("{}"), Ok(ConnectAnswer::default()));
        assert_eq!(parse("[1]"), Err("the answer must be a JSON object".into()));
        assert_eq!(
            parse(r#"{"userId":7}"#),
            Err("\"userId\" must be a string".into())
        );
        assert_eq!(
            parse(r#"{"groups":"a"}"#),
            Err("\"groups\" must be a list of strings".into())
        );
        assert_eq!(
            parse(r#"{"admin":true}"#),
            Err("unknown field \"admin\"".into())
        );
        assert!(parse(r#"{"publish":["chat*"]}"#).is_err());
        assert!(parse(r#"{"userId":""}"#).is_err());
        assert!(parse(r#"{"groups":["bad name"]}"#).is_err());
    }
}
