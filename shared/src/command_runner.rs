//! Executing server operations (the Commands queue's bodies and the HTTP
//! API's requests): sends, group changes and closes. The Commands queue
//! handler ([`crate::handlers::commands`]) parses a body and calls
//! [`run_command`]; the HTTP API builds a [`Command`] and calls [`execute`].
//!
//! Sends never post from here: they resolve their target to connection ids
//! (a group's members page by page, a user's connections, the 16 broadcast
//! shards) and hand them to the deliver workers, [`crate::protocol::DELIVERY_BATCH`] connections
//! per Deliveries message. A group of 10,000 costs 100 Deliveries messages in
//! 10 SendMessageBatch calls, not 10,000 invocations.

use futures::TryStreamExt;
use tracing::info;

use crate::clock::now_seconds;
use crate::connection::RECORD_TTL;
use crate::fanout::{
    Fanout, FanoutError, enqueue_frame, send_to_group, user_connection_ids, user_envelope_ids,
};
use crate::history::Stream;
use crate::membership::{MembershipError, join_group, leave_group};
use crate::pacing::{group_booker, user_booker};
use crate::ports::{GatewayError, Membership, SHARDS, StoreError, pages};
use crate::protocol::{
    Command, MessageError, USER_GROUP_DEFAULT_TTL_SECONDS, close_frame, group_message,
    server_message,
};
use crate::recorder::{Appended, Recorder};
use crate::services::Services;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Fanout(#[from] FanoutError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A connection is at its cap of groups; retrying cannot help.
    #[error("{0}")]
    LimitExceeded(String),
}

impl From<MembershipError> for CommandError {
    fn from(e: MembershipError) -> Self {
        match e {
            MembershipError::LimitExceeded { .. } | MembershipError::GroupFull { .. } => {
                CommandError::LimitExceeded(e.to_string())
            }
            MembershipError::Fanout(e) => CommandError::Fanout(e),
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        CommandError::Fanout(e.into())
    }
}

/// Parses and runs one command; returns how many connections it addressed.
pub async fn run_command(services: &Services, body: Option<&str>) -> Result<usize, CommandError> {
    run_queued_command(services, body, None).await
}

/// [`run_command`] for a queue message: `message_id` (SQS's) keys the
/// history append of a command without an `id`, so a redelivery does not
/// append twice.
pub async fn run_queued_command(
    services: &Services,
    body: Option<&str>,
    message_id: Option<&str>,
) -> Result<usize, CommandError> {
    execute_keyed(services, Command::parse(body)?, message_id).await
}

/// Runs one command; returns how many connections it addressed.
///
/// On error SQS retries the whole command, so connections already handed to
/// the workers may get the message twice: delivery is at least once.
pub async fn execute(services: &Services, command: Command) -> Result<usize, CommandError> {
    execute_keyed(services, command, None).await
}

/// [`execute`]; a send to a stream that keeps history is appended to it
/// first (see [`crate::history`]), keyed by the command's `id`, else by
/// `queue_key`.
pub async fn execute_keyed(
    services: &Services,
    command: Command,
    queue_key: Option<&str>,
) -> Result<usize, CommandError> {
    match command {
        Command::SendToGroup {
            group,
            data,
            exclude_connection_ids,
            id,
        } => {
            // A frame no client could receive fails once, here.
            let mut frame = group_message(&group, &data)?;
            let key = id.as_deref().or(queue_key);
            if let Some(appended) =
                append(services, &Stream::Group(group.clone()), key, &frame).await?
            {
                frame = appended.stamped;
            }
            Ok(send_to_group(
                services,
                &group,
                &frame,
                &exclude_connection_ids,
                id.as_deref(),
                Some(&group_booker(&group)),
            )
            .await?)
        }
        Command::SendToUser {
            user_id,
            group,
            data,
            id: message_id,
        } => {
            let frame = server_message(group.as_deref(), &data)?;
            let key = message_id.as_deref().or(queue_key);
            // A send to the user within a group is kept in no stream: the
            // user stream is read by every connection of the user, in the
            // group or not, and the group stream by every member.
            let appended = match &group {
                None => append(services, &Stream::User(user_id.clone()), key, &frame).await?,
                Some(_) => None,
            };
            let mut ids = user_connection_ids(services, &user_id).await?;
            if let Some(group) = &group {
                // A user has few connections: one membership read each.
                let mut members = Vec::with_capacity(ids.len());
                for id in ids {
                    if services.memberships.is_member(group, &id).await? {
                        members.push(id);
                    }
                }
                ids = members;
            }
            let booker = user_booker(&user_id);
            let booker = Some(booker.as_str());
            let Some(appended) = appended.filter(|_| !ids.is_empty()) else {
                let id = message_id.as_deref();
                return Ok(enqueue_frame(services, &frame, &ids, id, booker).await?);
            };
            // Connections that asked for envelopes get the stamped frame.
            let enveloped = user_envelope_ids(services, &user_id).await?;
            let (stamped, plain): (Vec<String>, Vec<String>) =
                ids.into_iter().partition(|id| enveloped.contains(id));
            let id = message_id.as_deref();
            Ok(enqueue_frame(services, &frame, &plain, id, booker).await?
                + enqueue_frame(services, &appended.stamped, &stamped, id, booker).await?)
        }
        Command::SendToConnection {
            connection_id,
            data,
            id,
        } => {
            let frame = server_message(None, &data)?;
            Ok(enqueue_frame(services, &frame, &[connection_id], id.as_deref(), None).await?)
        }
        Command::Broadcast {
            data,
            exclude_connection_ids,
            id,
        } => {
            let frame = server_message(None, &data)?;
            broadcast(services, &frame, &exclude_connection_ids, id.as_deref()).await
        }
        Command::AddConnectionToGroup {
            connection_id,
            group,
        } => {
            let Some(record) = services.store.get_connection(&connection_id).await? else {
                info!(connection_id, group, "connection gone; nothing to add");
                return Ok(0);
            };
            let membership = Membership {
                group,
                connection_id,
                user_id: record.user_id,
                expires_at: record.expires_at,
            };
            join_group(services, &membership, false).await?;
            Ok(1)
        }
        Command::RemoveConnectionFromGroup {
            connection_id,
            group,
        } => Ok(usize::from(
            leave_group(services, &group, &connection_id).await?,
        )),
        Command::AddUserToGroup {
            user_id,
            group,
            ttl_seconds,
        } => {
            let ttl = ttl_seconds.unwrap_or(USER_GROUP_DEFAULT_TTL_SECONDS);
            let now = now_seconds();
            services
                .memberships
                .add_user_group(&user_id, &group, now.saturating_add(ttl as i64))
                .await?;
            // Connections open now join here; later ones join at $connect.
            let ids = user_connection_ids(services, &user_id).await?;
            let mut full = 0;
            for connection_id in &ids {
                let membership = Membership {
                    group: group.clone(),
                    connection_id: connection_id.clone(),
                    user_id: user_id.clone(),
                    expires_at: now + RECORD_TTL.as_secs() as i64,
                };
                // A connection at its cap stays out; the others still join.
                match join_group(services, &membership, false).await {
                    Ok(_) => {}
                    Err(MembershipError::LimitExceeded { .. }) => full += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            if full > 0 {
                let limit = services.settings.max_groups_per_connection;
                return Err(CommandError::LimitExceeded(format!(
                    "the user-level group is stored, but {full} of the user's {} open connections \
                     are in {limit} groups (the most a connection may be in) and did not join",
                    ids.len()
                )));
            }
            Ok(ids.len())
        }
        Command::RemoveUserFromGroup { user_id, group } => {
            services
                .memberships
                .remove_user_group(&user_id, &group)
                .await?;
            let ids = user_connection_ids(services, &user_id).await?;
            let mut left = 0;
            for connection_id in &ids {
                left += usize::from(leave_group(services, &group, connection_id).await?);
            }
            Ok(left)
        }
        Command::CloseConnection {
            connection_id,
            reason,
        } => {
            close(services, &connection_id, reason.as_deref()).await?;
            Ok(1)
        }
        Command::CloseUserConnections { user_id, reason } => {
            let ids = user_connection_ids(services, &user_id).await?;
            for connection_id in &ids {
                close(services, connection_id, reason.as_deref()).await?;
            }
            Ok(ids.len())
        }
    }
}

/// Appends `frame` to `stream` if the stream keeps history and a history
/// store is wired.
async fn append(
    services: &Services,
    stream: &Stream,
    key: Option<&str>,
    frame: &str,
) -> Result<Option<Appended>, CommandError> {
    match Recorder::of(services) {
        Some(recorder) => Ok(recorder.append(stream, key, frame).await?),
        None => Ok(None),
    }
}

/// Sends `{"type":"close","reason":…}`, then closes the connection through
/// the Management API, which runs `$disconnect`. Already closed (410) is fine:
/// the command's goal holds.
async fn close(
    services: &Services,
    connection_id: &str,
    reason: Option<&str>,
) -> Result<(), GatewayError> {
    let frame = close_frame(reason);
    match services
        .gateway
        .post_to_connection(connection_id, frame.as_bytes())
        .await
    {
        Ok(()) | Err(GatewayError::Gone) => {}
        Err(e) => return Err(e),
    }
    match services.gateway.delete_connection(connection_id).await {
        Ok(()) | Err(GatewayError::Gone) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads the 16 broadcast shards in parallel, each page by page, and hands
/// every connection but the excluded ones to the deliver workers in full
/// batches across shards.
async fn broadcast(
    services: &Services,
    frame: &str,
    exclude: &[String],
    message_id: Option<&str>,
) -> Result<usize, CommandError> {
    let store = &services.store;
    let shards = (0..SHARDS).map(|shard| {
        Box::pin(pages(move |after| async move {
            let page = store.shard_connections(shard, after.as_deref()).await?;
            Ok::<_, StoreError>((page.connection_ids, page.next))
        }))
    });
    let mut shard_pages = futures::stream::select_all(shards);
    let mut fanout = Fanout::new(services, frame, exclude).with_message_id(message_id);
    while let Some(ids) = shard_pages.try_next().await? {
        fanout.push(ids).await?;
    }
    Ok(fanout.finish().await?)
}
