//! `POST /negotiate`: mints a short-lived token, and the WebSocket URL that
//! carries it, for a user id and grants that `$connect` will accept.

use std::time::Duration;

use serde_json::json;
use tracing::error;

use super::HttpAnswer;
use super::fields::{object, required, strings, ttl_seconds};
use crate::auth::{Claims, mint_for};
use crate::config::NegotiateSettings;
use crate::validate;

/// The fields are held to the rules the token verifier applies to the claims
/// they become, so a token negotiate mints is one `$connect` accepts.
pub(super) async fn negotiate(
    config: &NegotiateSettings,
    body: Option<&str>,
) -> Result<HttpAnswer, HttpAnswer> {
    let keys = config.secret.keys().await.map_err(|e| {
        error!(error = %e, "negotiate refused: no usable token secret");
        HttpAnswer::error(
            500,
            "misconfigured",
            None,
            "the server has no usable token secret",
        )
    })?;
    let map = object(body)?;
    let user_id = required(&map, "userId", validate::user_id)?;
    let groups = strings(&map, "groups")?;
    validate::group_list("groups", &groups)?;
    let subscribe = strings(&map, "subscribe")?;
    validate::pattern_list("subscribe", &subscribe)?;
    let publish = strings(&map, "publish")?;
    validate::pattern_list("publish", &publish)?;
    let events = strings(&map, "events")?;
    validate::pattern_list("events", &events)?;
    let ttl = ttl_seconds(&map, config.max_ttl.as_secs())?
        .map_or(config.default_ttl, Duration::from_secs);
    let now = crate::clock::now_seconds() as u64;
    let claims = Claims {
        sub: user_id,
        exp: now + ttl.as_secs(),
        iat: Some(now),
        groups,
        subscribe,
        publish,
        events,
    };
    let token = mint_for(&keys.current, &claims, &config.policy).map_err(|e| {
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
