//! The synchronous hooks: `connect` (may refuse a handshake, or set the
//! user and grants) and `event` (answers a client's event). Both POST signed
//! requests (see [`crate::webhook`]) and wait at most the hook's timeout.

use serde::Deserialize;
use serde_json::Value;

use crate::auth::SecretError;
use crate::validate::{self, FieldError};
use crate::webhook::{SIGNATURE_HEADER, sign};

use super::events::{SOURCE, SPEC_VERSION, rfc3339};
use super::{CloudEvent, Hook, HttpAnswer, PostError, Upstream, no_client};

/// The `ce-type` of a connect hook request.
pub const CONNECT_TYPE: &str = "switchboard.connect";

/// The largest hook answer read (an event hook's answer goes back to the
/// client in one frame, which API Gateway caps at 128 KB).
pub const MAX_ANSWER_BYTES: usize = 96 * 1024;

/// Why a hook did not answer yes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The application refused (401 or 403 from a connect hook).
    #[error("the hook refused with {0}")]
    Refused(u16),
    /// Timeout, unreachable, or a status that is not an answer (5xx, another 4xx).
    #[error("the hook failed: {0}")]
    Failed(String),
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectAnswer {
    pub user_id: Option<String>,
    pub groups: Option<Vec<String>>,
    pub subscribe: Option<Vec<String>>,
    pub publish: Option<Vec<String>>,
    pub events: Option<Vec<String>>,
}

impl ConnectAnswer {
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
    mut headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> Result<HttpAnswer, HookError> {
    let secret = upstream.secret.bytes().await?;
    headers.push((SIGNATURE_HEADER, sign(secret, &body)));
    let http = upstream.http.as_ref().ok_or_else(no_client)?;
    let mut answer = http.post(&hook.url, &headers, body, hook.timeout).await?;
    if answer.body.len() > MAX_ANSWER_BYTES {
        answer.body.truncate(0);
        return Err(HookError::InvalidAnswer(format!(
            "longer than {MAX_ANSWER_BYTES} bytes"
        )));
    }
    Ok(answer)
}

/// Asks the connect hook about a verified handshake. `request` is the JSON
/// the hook receives (the verified claims and the connection's details).
/// 2xx accepts (an empty body keeps the token's claims); 401 and 403 refuse.
pub async fn ask_connect_hook(
    upstream: &Upstream,
    hook: &Hook,
    connection_id: &str,
    user_id: &str,
    request: &Value,
) -> Result<ConnectAnswer, HookError> {
    let headers = vec![
        ("ce-specversion", SPEC_VERSION.to_owned()),
        ("ce-type", CONNECT_TYPE.to_owned()),
        ("ce-source", SOURCE.to_owned()),
        ("ce-id", format!("connect:{connection_id}")),
        ("ce-time", rfc3339(crate::clock::now_millis())),
        ("ce-connectionid", connection_id.to_owned()),
        ("ce-userid", user_id.to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    let answer = post_signed(upstream, hook, headers, request.to_string().into_bytes()).await?;
    match answer.status {
        200..=299 => {}
        401 | 403 => return Err(HookError::Refused(answer.status)),
        status => return Err(HookError::Failed(format!("the hook answered {status}"))),
    }
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConnectAnswer::default());
    }
    let parsed: ConnectAnswer = serde_json::from_slice(&answer.body)
        .map_err(|e| HookError::InvalidAnswer(e.to_string()))?;
    parsed
        .check()
        .map_err(|e| HookError::InvalidAnswer(e.to_string()))?;
    Ok(parsed)
}

/// Asks the event hook to answer a client's `message` event: its 2xx body
/// as JSON (an empty body is `null`, a body that is not JSON a string).
pub async fn ask_event_hook(
    upstream: &Upstream,
    hook: &Hook,
    event: &CloudEvent,
) -> Result<Value, HookError> {
    let answer = post_signed(
        upstream,
        hook,
        event.headers(),
        event.data_json().into_bytes(),
    )
    .await?;
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
