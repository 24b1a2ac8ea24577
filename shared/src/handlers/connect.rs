//! `$connect`: authenticate the token, admit the user under the connection
//! cap and the user's action limit ([`crate::limits::admit_connection`]),
//! ask the connect hook if there is one ([`crate::upstream::hooks`]), then
//! record the connection and emit `connected` upstream.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::http::header::USER_AGENT;
use tracing::{Instrument, error, info, warn};

use crate::auth::{AuthError, Claims, SecretError, TokenVerifier, token_from_request};
use crate::connection::{BadEnvelope, ENVELOPE_PARAMETER, RECORD_TTL, wants_envelope};
use crate::fanout::FanoutError;
use crate::limits::{Exceeded, LimitError, admit_connection};
use crate::membership::{MembershipError, join_group};
use crate::metrics::{self, Metric};
use crate::ports::{ConnectionRecord, Membership, StoreError};
use crate::replies::response;
use crate::services::Services;
use crate::upstream::{
    self, Hook,
    hooks::{HookError, ask_connect_hook},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] AuthError),
    #[error("server misconfigured: {0}")]
    Misconfigured(#[from] SecretError),
    #[error("the event has no connection id")]
    NoConnectionId,
    /// Over the per-user connection cap or the user's action limit.
    #[error("{0}")]
    Limited(Exceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fanout(#[from] FanoutError),
    /// The `envelope` query parameter is not one of its values.
    #[error(transparent)]
    BadEnvelope(#[from] BadEnvelope),
    /// The connect hook answered 401 or 403: the handshake gets that status.
    #[error("the connect hook refused the connection ({0})")]
    HookRefused(u16),
    /// The connect hook timed out, failed or answered nonsense (and does not fail open).
    /// (The reason is logged, not shown to the client.)
    #[error("the connect hook failed")]
    HookFailed(String),
    /// The token's `groups` claim names more groups than a connection may be in.
    #[error("the token names {count} groups; a connection may be in at most {limit}")]
    TooManyGroups { count: usize, limit: u32 },
}

impl ConnectError {
    /// The HTTP status API Gateway answers the handshake with.
    pub fn status(&self) -> u16 {
        match self {
            // An OIDC issuer's keys cannot be fetched: not the token's fault.
            ConnectError::Unauthorized(e) if e.is_unavailable() => 503,
            ConnectError::Unauthorized(_) => 401,
            ConnectError::TooManyGroups { .. } => 403,
            ConnectError::NoConnectionId | ConnectError::BadEnvelope(_) => 400,
            ConnectError::Limited(_) => 429,
            ConnectError::HookRefused(status) => *status,
            ConnectError::HookFailed(_) => 502,
            ConnectError::Misconfigured(_) | ConnectError::Store(_) | ConnectError::Fanout(_) => {
                500
            }
        }
    }

    /// The `Reason` dimension of [`Metric::ConnectsRejected`].
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectError::Unauthorized(e) if e.is_unavailable() => "keys_unavailable",
            ConnectError::Unauthorized(_) => "unauthorized",
            ConnectError::Misconfigured(_) => "misconfigured",
            ConnectError::NoConnectionId | ConnectError::BadEnvelope(_) => "bad_request",
            ConnectError::Limited(_) => "rate_limited",
            ConnectError::TooManyGroups { .. } => "too_many_groups",
            ConnectError::HookRefused(_) => "hook_refused",
            ConnectError::HookFailed(_) => "hook_failed",
            ConnectError::Store(_) | ConnectError::Fanout(_) => "unavailable",
        }
    }
}

/// Authenticates the request, joins the token's `groups` and the user's
/// user-level groups, and stores the connection record.
pub async fn connect(
    services: &Services,
    verifier: &Result<TokenVerifier, SecretError>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ConnectionRecord, ConnectError> {
    let verifier = verifier.as_ref().map_err(|e| e.clone())?;
    let context = &event.request_context;
    let connection_id = context
        .connection_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(ConnectError::NoConnectionId)?;
    let token = token_from_request(&event.query_string_parameters, &event.headers)?;
    let mut claims = verifier.authenticate(token).await?;
    let envelope = wants_envelope(event.query_string_parameters.first(ENVELOPE_PARAMETER))?;
    // Before anything is written: a refused handshake leaves nothing behind.
    // The token's user is charged before the hook is asked (a flood never
    // reaches it), and the user the hook names after it.
    admit(services, &claims.sub).await?;

    let source_ip = context
        .identity
        .source_ip
        .clone()
        .filter(|ip| !ip.is_empty());
    let user_agent = event
        .headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| context.identity.user_agent.clone())
        .filter(|ua| !ua.is_empty());
    if let Some(hook) = &services.upstream.connect_hook {
        let token_user = claims.sub.clone();
        ask_hook(
            services,
            hook,
            &connection_id,
            &mut claims,
            &source_ip,
            &user_agent,
        )
        .await?;
        if claims.sub != token_user {
            // The caps and the handshake bucket are the final user's too.
            admit(services, &claims.sub).await?;
        }
    }

    let connected_at_ms = if context.connected_at > 0 {
        context.connected_at
    } else {
        crate::clock::now_millis()
    };
    let record = ConnectionRecord {
        connection_id,
        user_id: claims.sub,
        connected_at_ms,
        expires_at: connected_at_ms / 1000 + RECORD_TTL.as_secs() as i64,
        source_ip,
        user_agent,
        groups: claims.groups,
        subscribe: claims.subscribe,
        publish: claims.publish,
        envelope,
        events: claims.events,
    };
    // The token's groups all join (but a full presence group), or the
    // handshake is refused: a token that names more groups than the cap is
    // the issuer's mistake.
    let limit = services.settings.max_groups_per_connection;
    let mut groups: Vec<String> = Vec::with_capacity(record.groups.len());
    for group in &record.groups {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
    }
    if groups.len() > limit as usize {
        return Err(ConnectError::TooManyGroups {
            count: groups.len(),
            limit,
        });
    }
    let token_groups = groups.len();
    // User-level groups (added by the server for this user) join too, as
    // far as the cap allows: a server-side add never locks a user out.
    for group in services
        .memberships
        .user_groups(&record.user_id, connected_at_ms / 1000)
        .await?
    {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    // Memberships first: if anything fails the handshake is refused, and what
    // was written expires by TTL with no record pointing at it.
    let mut joined = Vec::with_capacity(groups.len());
    for (index, group) in groups.into_iter().enumerate() {
        let membership = Membership {
            group,
            connection_id: record.connection_id.clone(),
            user_id: record.user_id.clone(),
            expires_at: record.expires_at,
        };
        match join_group(services, &membership, true).await {
            Ok(_) => joined.push(membership.group),
            Err(MembershipError::LimitExceeded { limit }) if index >= token_groups => {
                warn!(connection_id = %record.connection_id, group = %membership.group, limit,
                    "user-level group not joined: the connection is at its cap of groups");
            }
            Err(MembershipError::LimitExceeded { .. }) => {
                return Err(ConnectError::TooManyGroups {
                    count: token_groups,
                    limit,
                });
            }
            // A full presence group does not lock the user out: the
            // connection is made without it.
            Err(e @ MembershipError::GroupFull { .. }) => {
                warn!(connection_id = %record.connection_id, group = %membership.group, error = %e,
                    "presence group not joined: it is full");
            }
            Err(MembershipError::Fanout(e)) => return Err(e.into()),
        }
    }
    services.store.put_connection(&record).await?;
    if services.upstream.has_sinks() {
        let event = upstream::events::connected(&upstream::events::Connected {
            connection_id: &record.connection_id,
            user_id: &record.user_id,
            groups: &joined,
            source_ip: record.source_ip.as_deref(),
            user_agent: record.user_agent.as_deref(),
            connected_at_ms,
        });
        services.upstream.emit(&event).await;
    }
    Ok(record)
}

/// [`admit_connection`] for `user_id`, its refusals as the handshake's.
async fn admit(services: &Services, user_id: &str) -> Result<(), ConnectError> {
    admit_connection(services, user_id)
        .await
        .map_err(|e| match e {
            LimitError::Exceeded(exceeded) => ConnectError::Limited(exceeded),
            LimitError::Store(e) => ConnectError::Store(e),
        })
}

/// Asks the connect hook about verified `claims`; its answer replaces the
/// claims it names. A refusal is the handshake's status; a failure refuses
/// too, unless the hook fails open.
async fn ask_hook(
    services: &Services,
    hook: &Hook,
    connection_id: &str,
    claims: &mut Claims,
    source_ip: &Option<String>,
    user_agent: &Option<String>,
) -> Result<(), ConnectError> {
    let request = serde_json::json!({
        "connectionId": connection_id,
        "userId": claims.sub,
        "groups": claims.groups,
        "subscribe": claims.subscribe,
        "publish": claims.publish,
        "events": claims.events,
        "sourceIp": source_ip,
        "userAgent": user_agent,
    });
    match ask_connect_hook(
        &services.upstream,
        hook,
        connection_id,
        &claims.sub,
        &request,
    )
    .await
    {
        Ok(answer) => {
            if let Some(user_id) = answer.user_id {
                claims.sub = user_id;
            }
            for (field, value) in [
                (&mut claims.groups, answer.groups),
                (&mut claims.subscribe, answer.subscribe),
                (&mut claims.publish, answer.publish),
                (&mut claims.events, answer.events),
            ] {
                if let Some(value) = value {
                    *field = value;
                }
            }
            Ok(())
        }
        Err(HookError::Refused(status)) => Err(ConnectError::HookRefused(status)),
        Err(HookError::Secret(e)) => Err(ConnectError::Misconfigured(e)),
        Err(HookError::Failed(reason)) if hook.fail_open => {
            warn!(
                connection_id,
                reason, "connect hook failed; letting the connection in (fail open)"
            );
            Ok(())
        }
        Err(e) => {
            warn!(connection_id, error = %e, "connect hook failed; refusing the connection");
            Err(ConnectError::HookFailed(e.to_string()))
        }
    }
}

/// The `$connect` route: 200 and a stored record, or the error's status and nothing stored.
pub async fn handle_connect(
    services: &Services,
    verifier: &Result<TokenVerifier, SecretError>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    connect_route(services, verifier, event).await.0
}

/// [`handle_connect`], also returning the stored record when the connection was accepted.
pub async fn connect_route(
    services: &Services,
    verifier: &Result<TokenVerifier, SecretError>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> (ApiGatewayProxyResponse, Option<ConnectionRecord>) {
    let connection_id = event.request_context.connection_id.as_deref().unwrap_or("");
    let span = tracing::info_span!("route", route = "$connect", connection_id);
    match connect(services, verifier, event)
        .instrument(span.clone())
        .await
    {
        Ok(record) => {
            let _span = span.enter();
            metrics::count(Metric::ConnectsAccepted, &[], 1);
            info!(user_id = %record.user_id, "connected");
            (response(200, None), Some(record))
        }
        Err(e) => {
            let _span = span.enter();
            metrics::count(Metric::ConnectsRejected, &[e.reason()], 1);
            match &e {
                ConnectError::Unauthorized(_)
                | ConnectError::Limited(_)
                | ConnectError::HookRefused(_) => {
                    warn!(connection_id, error = %e, "connection refused")
                }
                _ => error!(error = %e, "connect failed"),
            }
            let body = serde_json::json!({ "message": e.to_string() }).to_string();
            (response(e.status(), Some(body)), None)
        }
    }
}
