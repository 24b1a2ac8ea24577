//! Group membership with presence: joining, leaving and forgetting a
//! connection, and a group's census.
//!
//! Every join and leave goes through [`join_group`] and [`leave_group`], so a
//! presence-enabled group announces a user exactly once on their first
//! connection joining and once after their last one left, whatever caused it
//! (token groups at `$connect`, `subscribe`, a command, a disconnect).

use std::collections::BTreeSet;

use futures::TryStreamExt;
use tracing::{info, warn};

use crate::clock::now_seconds;
use crate::connection::RECORD_TTL;
use crate::fanout::{FanoutError, pages, send_to_group};
use crate::ports::{Counter, Membership, StoreError};
use crate::protocol::{PresenceEvent, presence_frame};
use crate::services::Services;

/// When presence counters may expire: they outlive every connection that
/// could still decrement them.
fn counter_expiry() -> i64 {
    now_seconds() + RECORD_TTL.as_secs() as i64
}

/// Adds the membership; true if it is new. In a presence group, a user's
/// first connection announces a `join` to the group.
///
/// `opening` is true during `$connect`: API Gateway does not accept posts to a
/// connection before `$connect` returns, so the announcement skips it.
pub async fn join_group(
    services: &Services,
    membership: &Membership,
    opening: bool,
) -> Result<bool, FanoutError> {
    let new = services.memberships.join(membership).await?;
    if new && services.settings.presence.allows(&membership.group) {
        let memberships = &services.memberships;
        let expires = counter_expiry();
        let user = Counter::UserConnections(membership.user_id.clone());
        if memberships
            .add_to_counter(&membership.group, &user, 1, expires)
            .await?
            == 1
        {
            let online = memberships
                .add_to_counter(&membership.group, &Counter::OnlineUsers, 1, expires)
                .await?;
            let skip = if opening {
                std::slice::from_ref(&membership.connection_id)
            } else {
                &[]
            };
            let group = &membership.group;
            let frame = presence_frame(PresenceEvent::Join, &membership.user_id, group, online);
            let addressed = send_to_group(services, group, &frame, skip, None).await?;
            info!(group, user_id = %membership.user_id, online, addressed, "presence join");
        }
    }
    Ok(new)
}

/// Removes the membership; true if there was one. In a presence group, a
/// user's last connection leaving announces a `leave` to the group.
pub async fn leave_group(
    services: &Services,
    group: &str,
    connection_id: &str,
) -> Result<bool, FanoutError> {
    let Some(user_id) = services.memberships.leave(group, connection_id).await? else {
        return Ok(false);
    };
    if services.settings.presence.allows(group) {
        let memberships = &services.memberships;
        let expires = counter_expiry();
        let user = Counter::UserConnections(user_id.clone());
        if memberships
            .add_to_counter(group, &user, -1, expires)
            .await?
            <= 0
        {
            let online = memberships
                .add_to_counter(group, &Counter::OnlineUsers, -1, expires)
                .await?
                .max(0);
            let frame = presence_frame(PresenceEvent::Leave, &user_id, group, online);
            let addressed = send_to_group(services, group, &frame, &[], None).await?;
            info!(group, user_id, online, addressed, "presence leave");
        }
    }
    Ok(true)
}

/// Deletes the connection record and leaves every group the connection is in
/// (announcing presence leaves); returns how many groups it left.
pub async fn forget(services: &Services, connection_id: &str) -> Result<usize, FanoutError> {
    services.store.delete_connection(connection_id).await?;
    let groups = services
        .memberships
        .connection_groups(connection_id)
        .await?;
    let mut first_error = None;
    for group in &groups {
        // Leave every group even if one fails; report the first failure.
        if let Err(e) = leave_group(services, group, connection_id).await {
            warn!(connection_id, group, error = %e, "could not leave a group");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(groups.len()),
    }
}

/// The group's distinct user ids and its connection count, read page by page.
pub async fn group_census(
    services: &Services,
    group: &str,
) -> Result<(BTreeSet<String>, usize), StoreError> {
    let memberships = &services.memberships;
    let mut members = std::pin::pin!(pages(move |after| async move {
        let page = memberships.group_members(group, after.as_deref()).await?;
        Ok::<_, StoreError>((page.members, page.next))
    }));
    let mut users = BTreeSet::new();
    let mut connections = 0;
    while let Some(page) = members.try_next().await? {
        connections += page.len();
        users.extend(page.into_iter().map(|(_, user)| user));
    }
    Ok((users, connections))
}
