//! The client actions the actions function serves: `subscribe`,
//! `unsubscribe`, `publish` and `presence` (here), `recover` and `history`
//! ([`super::recover`], [`super::history`]). Each answers with one frame, the
//! route response.
//!
//! - `{"action":"subscribe","group":"notification:test","id":7}` (and
//!   `unsubscribe`) answers `{"type":"ack","id":7,"ok":true}` or
//!   `{"type":"ack","id":7,"ok":false,"error":{"code":…,"message":…}}`. Both
//!   are idempotent. The token's `subscribe` patterns must grant the group.
//!   A connection is in at most `max_groups_per_connection` groups: over it,
//!   `subscribe` answers `limit_exceeded` and writes nothing; so does a
//!   `subscribe` of a new user to a presence group that has
//!   `max_presence_members` users. An optional
//!   `seq` (an integer growing with every frame the connection sends) orders
//!   concurrent changes: a change applies only if its `seq` is newer than the
//!   last applied one for that group, so the last frame sent wins.
//! - `{"action":"publish","group":"conversation:42","data":…,"id":8}` sends
//!   `{"type":"message","from":"client","group":…,"userId":…,"data":…}` to every
//!   other member. The token's `publish` patterns must grant the group, the
//!   connection must be a member, and the user must be within the publish
//!   limit (`rate_limited` otherwise).
//! - `{"action":"event","event":"typing","data":…,"id":9}` sends a client
//!   event to the application (a `switchboard.message` upstream event). The
//!   token's `events` patterns must grant the name (none: `forbidden`), and
//!   it takes from the publish bucket like `publish`. With an event hook, the
//!   hook's answer comes back as `{"type":"ack","id":9,"ok":true,"data":…}`
//!   (a failed hook: `hook_failed`); without one, the event goes to the
//!   asynchronous sinks and the ack is plain.
//! - `{"action":"presence","group":g}` answers `{"type":"presence","group":g,
//!   "userIds":[…],"users":N,"connections":M,"truncated":false}`; members only.
//!
//! Every action takes from the connection's and the user's action buckets
//! first, and a `subscribe` or `unsubscribe` in a presence group from the
//! user's presence-change bucket for it ([`crate::limits`]); over any, the ack
//! is `rate_limited` and nothing changed.
//!
//! Permissions come from the connection record, which holds what the token
//! granted at `$connect`; nothing in the frame widens them. `id` is optional
//! (a string or a number) and echoed in every answer.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use serde_json::Value;
use tracing::{Instrument, info, warn};

use crate::fanout::send_to_group;
use crate::groups::Grants;
use crate::history::Stream;
use crate::limits::{take_action, take_history_read, take_presence_change, take_publish};
use crate::membership::{MembershipError, group_census, join_group_in_order, leave_group_in_order};
use crate::metrics::{self, Metric};
use crate::pacing::user_booker;
use crate::ports::{ConnectionRecord, Membership};
use crate::protocol::{
    ClientAction, ClientFrame, ErrorCode, PRESENCE_LIST_LIMIT, ServerFrame, client_message,
    event_answer, presence_answer, published_ack,
};
use crate::recorder::Recorder;
use crate::replies::{Refusal, response};
use crate::services::Services;
use crate::upstream::{
    self,
    hooks::{HookError, ask_event_hook},
};

/// Answers one client action frame from `connection_id`: the JSON text to send back.
pub async fn client_action(services: &Services, connection_id: &str, body: Option<&str>) -> String {
    let (id, action) = match ClientFrame::parse(body) {
        Ok(ClientFrame::Action { id, action }) => (id, action),
        Ok(ClientFrame::Other { action }) => {
            count_action("unknown", Some(ErrorCode::UnknownAction));
            return ServerFrame::unknown_action(&action).to_json();
        }
        Err(e) => {
            count_action("invalid", Some(ErrorCode::BadRequest));
            return ServerFrame::ack_error(None, ErrorCode::BadRequest, e.to_string()).to_json();
        }
    };
    let key = action.name();
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            count_action(key, Some(ErrorCode::BadRequest));
            return ServerFrame::ack_error(None, ErrorCode::BadRequest, e.to_string()).to_json();
        }
    };
    match answer(services, connection_id, action, id.clone()).await {
        Ok(text) => {
            count_action(key, None);
            text
        }
        Err(refusal) => {
            count_action(key, Some(refusal.code));
            refusal.ack(id).to_json()
        }
    }
}

/// Counts one client action (a route key, or `invalid`/`unknown`) by its
/// outcome: `ok` or the ack's error code.
fn count_action(action: &'static str, error: Option<ErrorCode>) {
    let outcome = match error {
        None => "ok",
        Some(ErrorCode::BadRequest) => "bad_request",
        Some(ErrorCode::UnknownAction) => "unknown_action",
        Some(ErrorCode::Forbidden) => "forbidden",
        Some(ErrorCode::Unavailable) => "unavailable",
        Some(ErrorCode::RateLimited) => "rate_limited",
        Some(ErrorCode::LimitExceeded) => "limit_exceeded",
        Some(ErrorCode::HookFailed) => "hook_failed",
    };
    tracing::debug!(action, outcome, "client action answered");
    metrics::count(Metric::ClientActions, &[action, outcome], 1);
}

/// Answers one action. A refused field is answered where the action comes to
/// it: the name of the group or event before anything else, the rest after
/// the connection's checks ([`checked_in`]).
async fn answer(
    services: &Services,
    connection_id: &str,
    action: ClientAction,
    id: Option<Value>,
) -> Result<String, Refusal> {
    let join = matches!(action, ClientAction::Subscribe { .. });
    match action {
        ClientAction::Subscribe { group, seq } | ClientAction::Unsubscribe { group, seq } => {
            let group = group?;
            let record = checked_in(services, connection_id).await?;
            subscription(services, &record, join, &group, seq?, id).await
        }
        ClientAction::Publish { group, data } => {
            let group = group?;
            let record = checked_in(services, connection_id).await?;
            publish(services, &record, &group, data, id).await
        }
        ClientAction::Presence { group } => {
            let group = group?;
            let record = checked_in(services, connection_id).await?;
            presence(services, &record, &group, id).await
        }
        ClientAction::Event { name, data } => {
            let name = name?;
            let record = checked_in(services, connection_id).await?;
            client_event(services, &record, &name, &data, id).await
        }
        ClientAction::Recover { streams, batch } => {
            let record = reading_history(services, connection_id).await?;
            super::recover::recover(services, &record, streams?, batch.checked()?, id).await
        }
        ClientAction::History {
            stream,
            limit,
            batch,
        } => {
            let record = reading_history(services, connection_id).await?;
            let limit = limit.within(services.settings.history.recover_limit);
            super::history::history(services, &record, stream?, limit?, batch.checked()?, id).await
        }
    }
}

/// The checks every action starts with: the connection's record (what its
/// token granted at `$connect`), then a take from the connection's and the
/// user's action buckets.
async fn checked_in(services: &Services, connection_id: &str) -> Result<ConnectionRecord, Refusal> {
    let record = registered(services, connection_id).await?;
    take_action(services, connection_id, &record.user_id)
        .await
        .map_err(|e| Refusal::limited(connection_id, e))?;
    Ok(record)
}

/// [`checked_in`], then a take from the user's bucket of history reads
/// (`recover`, `history`).
async fn reading_history(
    services: &Services,
    connection_id: &str,
) -> Result<ConnectionRecord, Refusal> {
    let record = checked_in(services, connection_id).await?;
    take_history_read(services, &record.user_id)
        .await
        .map_err(|e| Refusal::limited(connection_id, e))?;
    Ok(record)
}

/// The connection's record: what its token granted at `$connect`.
async fn registered(services: &Services, connection_id: &str) -> Result<ConnectionRecord, Refusal> {
    match services.store.get_connection(connection_id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(Refusal::forbidden("the connection is not registered")),
        Err(e) => Err(Refusal::unavailable(
            connection_id,
            "cannot read the connection record",
            e,
        )),
    }
}

/// Whether the token's `patterns` grant `name`; `refused` is the message if not.
fn granted(
    patterns: &[String],
    name: &str,
    refused: impl FnOnce() -> String,
) -> Result<(), Refusal> {
    // Patterns were validated at $connect; a record whose patterns no longer parse grants nothing.
    if Grants::parse(patterns).unwrap_or_default().allows(name) {
        Ok(())
    } else {
        Err(Refusal::forbidden(refused()))
    }
}

/// A take from the user's publish bucket, for a client event (`publish`, `event`).
async fn publish_token(services: &Services, record: &ConnectionRecord) -> Result<(), Refusal> {
    take_publish(services, &record.user_id)
        .await
        .map_err(|e| Refusal::limited(&record.connection_id, e))
}

/// `event`: a client event for the application.
async fn client_event(
    services: &Services,
    record: &ConnectionRecord,
    name: &str,
    data: &Value,
    id: Option<Value>,
) -> Result<String, Refusal> {
    let connection_id = record.connection_id.as_str();
    granted(&record.events, name, || {
        format!("the token does not allow you to send the event \"{name}\"")
    })?;
    publish_token(services, record).await?;
    let event = upstream::events::message(connection_id, &record.user_id, name, data, id.as_ref());
    let upstream = &services.upstream;
    match &upstream.event_hook {
        Some(hook) => match ask_event_hook(upstream, hook, &event).await {
            Ok(answer) => {
                info!(connection_id, user_id = %record.user_id, event = name, "event answered by the hook");
                Ok(event_answer(id, &answer))
            }
            Err(e) => {
                warn!(connection_id, event = name, error = %e, "event hook failed");
                // The client learns what happened, never where the hook is.
                let message = match e {
                    HookError::Failed(m) if m.starts_with("the event hook answered") => m,
                    HookError::Failed(_) | HookError::Refused(_) => {
                        "the event hook did not answer".to_owned()
                    }
                    HookError::InvalidAnswer(_) => {
                        "the event hook's answer is too large".to_owned()
                    }
                    HookError::Secret(_) => "the event hook is not configured".to_owned(),
                    HookError::Unexpected(status) => format!("the event hook answered {status}"),
                };
                Err(Refusal::new(ErrorCode::HookFailed, message))
            }
        },
        None => {
            upstream.emit(&event).await;
            info!(connection_id, user_id = %record.user_id, event = name, "event sent upstream");
            Ok(ServerFrame::ack_ok(id).to_json())
        }
    }
}

async fn subscription(
    services: &Services,
    record: &ConnectionRecord,
    join: bool,
    group: &str,
    seq: Option<u64>,
    id: Option<Value>,
) -> Result<String, Refusal> {
    granted(&record.subscribe, group, || {
        let verb = if join {
            "subscribe to"
        } else {
            "unsubscribe from"
        };
        format!("the token does not allow you to {verb} \"{group}\"")
    })?;
    let connection_id = record.connection_id.as_str();
    take_presence_change(services, group, &record.user_id)
        .await
        .map_err(|e| Refusal::limited(connection_id, e))?;
    let result = if join {
        let membership = Membership {
            group: group.to_owned(),
            connection_id: connection_id.to_owned(),
            user_id: record.user_id.clone(),
            expires_at: record.expires_at,
        };
        join_group_in_order(services, &membership, false, seq)
            .await
            .map(|write| write.outcome())
    } else {
        leave_group_in_order(services, group, connection_id, seq)
            .await
            .map(|write| write.outcome())
            .map_err(MembershipError::Fanout)
    };
    let outcome = result.map_err(|e| match e {
        MembershipError::LimitExceeded { limit } => Refusal::new(
            ErrorCode::LimitExceeded,
            format!("a connection may be in at most {limit} groups; leave one before joining \"{group}\""),
        ),
        e @ MembershipError::GroupFull { .. } => {
            Refusal::new(ErrorCode::LimitExceeded, e.to_string())
        }
        MembershipError::Fanout(e) => {
            Refusal::unavailable(connection_id, "cannot change the membership", e)
        }
    })?;
    info!(connection_id, user_id = %record.user_id, group, join, seq, outcome, "subscription");
    Ok(ServerFrame::ack_ok(id).to_json())
}

async fn publish(
    services: &Services,
    record: &ConnectionRecord,
    group: &str,
    data: Option<Value>,
    id: Option<Value>,
) -> Result<String, Refusal> {
    let connection_id = record.connection_id.as_str();
    let Some(data) = data else {
        return Err(Refusal::bad_request("the \"data\" field is required"));
    };
    granted(&record.publish, group, || {
        format!("the token does not allow you to publish to \"{group}\"")
    })?;
    let member = services
        .memberships
        .is_member(group, connection_id)
        .await
        .map_err(|e| Refusal::unavailable(connection_id, "cannot read the membership", e))?;
    if !member {
        return Err(Refusal::forbidden(format!(
            "join \"{group}\" before publishing to it"
        )));
    }
    publish_token(services, record).await?;
    let data =
        serde_json::value::to_raw_value(&data).map_err(|e| Refusal::bad_request(e.to_string()))?;
    let mut text = client_message(group, &record.user_id, &data)
        .map_err(|e| Refusal::bad_request(e.to_string()))?;
    // A group that keeps history gets the event first (no idempotency key:
    // a client that sends it again sends a new event).
    let mut kept = None;
    if let Some(recorder) = Recorder::of(services) {
        let stream = Stream::Group(group.to_owned());
        if let Some(appended) = recorder
            .append(&stream, None, &text)
            .await
            .map_err(|e| Refusal::unavailable(connection_id, "cannot keep a client event", e))?
        {
            text = appended.stamped;
            kept = Some((stream, appended.position));
        }
    }
    let booker = user_booker(&record.user_id);
    let addressed = send_to_group(
        services,
        group,
        &text,
        std::slice::from_ref(&record.connection_id),
        None,
        Some(&booker),
    )
    .await
    .map_err(|e| Refusal::unavailable(connection_id, "cannot fan out a client event", e))?;
    info!(connection_id, user_id = %record.user_id, group, addressed, "client event");
    Ok(match kept {
        Some((stream, position)) => {
            published_ack(id, &stream.name(), position.offset, &position.epoch)
        }
        None => ServerFrame::ack_ok(id).to_json(),
    })
}

async fn presence(
    services: &Services,
    record: &ConnectionRecord,
    group: &str,
    id: Option<Value>,
) -> Result<String, Refusal> {
    let connection_id = record.connection_id.as_str();
    let unavailable = |e| Refusal::unavailable(connection_id, "cannot read the group", e);
    if !services
        .memberships
        .is_member(group, connection_id)
        .await
        .map_err(unavailable)?
    {
        return Err(Refusal::forbidden(format!(
            "only members of \"{group}\" may ask for its presence"
        )));
    }
    let (users, connections) = group_census(services, group).await.map_err(unavailable)?;
    let listed: Vec<String> = users.iter().take(PRESENCE_LIST_LIMIT).cloned().collect();
    Ok(presence_answer(
        id,
        group,
        &listed,
        users.len(),
        connections,
    ))
}

/// The `subscribe`, `unsubscribe`, `publish`, `presence`, `recover`,
/// `history` and `event` routes: the answer is the route response.
pub async fn handle_client_action(
    services: &Services,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let connection_id = context.connection_id.as_deref().unwrap_or("");
    let route = context.route_key.as_deref().unwrap_or("");
    let span = tracing::info_span!("route", route, connection_id);
    let answer = client_action(services, connection_id, event.body.as_deref())
        .instrument(span)
        .await;
    response(200, Some(answer))
}
