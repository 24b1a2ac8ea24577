//! Group membership with presence: joining, leaving and forgetting a
//! connection, and a group's census.
//!
//! Every join and leave goes through [`join_group`] and [`leave_group`], so a
//! presence-enabled group announces a user exactly once on their first
//! connection joining and once after their last one left, whatever caused it
//! (token groups at `$connect`, `subscribe`, a command, a disconnect).
//!
//! Announcements are under the user's presence-change limit for the group
//! ([`crate::limits`]): `subscribe` and `unsubscribe` take their token
//! before anything changes (over the limit they are refused); a join at
//! `$connect` takes it at the announcement, and over the limit the
//! connection still joins but is not announced, and the [`Counter::Unannounced`]
//! mark it leaves keeps the leave that ends that stay unannounced too. A
//! leave whose join was announced is always announced (members are never
//! left believing a user is online); at `$disconnect` its token is booked
//! ahead. Commands are the application's and are not limited.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use tracing::{info, warn};

use crate::clock::now_seconds;
use crate::connection::RECORD_TTL;
use crate::fanout::{FanoutError, send_to_group};
use crate::limits::{LimitError, charge_presence_change, take_presence_change};
use crate::pacing::user_booker;
use crate::ports::{Counter, Membership, MembershipWrite, StoreError, pages};
use crate::posting::is_gone;
use crate::protocol::{PresenceEvent, presence_frame};
use crate::services::Services;

/// When presence counters may expire: they outlive every connection that
/// could still decrement them.
fn counter_expiry() -> i64 {
    now_seconds() + RECORD_TTL.as_secs() as i64
}

/// Why a connection could not join a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The connection is in as many groups as it may be.
    #[error("a connection may be in at most {limit} groups; leave one first")]
    LimitExceeded { limit: u32 },
    /// The presence group has as many users as it may have, and the user is
    /// not one of them.
    #[error("the presence group \"{group}\" is full: at most {limit} users may be in it")]
    GroupFull { group: String, limit: u32 },
    #[error(transparent)]
    Fanout(#[from] FanoutError),
}

impl From<StoreError> for MembershipError {
    fn from(e: StoreError) -> Self {
        MembershipError::Fanout(e.into())
    }
}

/// Adds the membership; true if it is new. See [`join_group_in_order`].
pub async fn join_group(
    services: &Services,
    membership: &Membership,
    opening: bool,
) -> Result<bool, MembershipError> {
    Ok(matches!(
        join_group_in_order(services, membership, opening, None).await?,
        MembershipWrite::Changed(())
    ))
}

/// Adds the membership unless a client frame with a newer `seq` already
/// decided this group (see [`MembershipStore`](crate::ports::MembershipStore)).
///
/// A membership holds one of the connection's
/// [`max_groups_per_connection`](crate::services::Settings) slots: a connection
/// at the cap gets [`MembershipError::LimitExceeded`] and nothing is written
/// (joining a group it is already in still succeeds). A presence group
/// holds at most [`max_presence_members`](crate::services::Settings) users: a
/// new user's join past it gets [`MembershipError::GroupFull`] and nothing is
/// written.
///
/// In a presence group, a user's first connection announces a `join` to the
/// group. The user's connection counter moves by exactly one per change of a
/// membership, so in whatever order concurrent changes reach it, the last
/// announcement about a user and the counters end as the memberships do.
///
/// `opening` is true during `$connect`: API Gateway does not accept posts to a
/// connection before `$connect` returns, so the announcement skips it.
pub async fn join_group_in_order(
    services: &Services,
    membership: &Membership,
    opening: bool,
    seq: Option<u64>,
) -> Result<MembershipWrite<()>, MembershipError> {
    let memberships = &services.memberships;
    let connection_id = membership.connection_id.as_str();
    if services.settings.presence.allows(&membership.group) {
        room_for(services, membership).await?;
    }
    let limit = services.settings.max_groups_per_connection;
    let slot = memberships
        .take_group_slot(connection_id, limit, membership.expires_at)
        .await?;
    if !slot
        && !memberships
            .is_member(&membership.group, connection_id)
            .await?
    {
        return Err(MembershipError::LimitExceeded { limit });
    }
    let write = memberships.join_in_order(membership, seq).await;
    match (&write, slot) {
        // Joined without a slot: a concurrent leave emptied it meanwhile.
        // Count it, so the slots stay equal to the memberships.
        (Ok(MembershipWrite::Changed(())), false) => {
            memberships
                .take_group_slot(connection_id, u32::MAX, membership.expires_at)
                .await?;
        }
        (Ok(MembershipWrite::Changed(())), true) | (_, false) => {}
        (_, true) => {
            if let Err(e) = memberships.release_group_slot(connection_id).await {
                warn!(connection_id, error = %e, "could not give a group slot back");
            }
        }
    }
    let write = write?;
    if write == MembershipWrite::Changed(()) && services.settings.presence.allows(&membership.group)
    {
        let charge = if opening {
            Charge::AtAnnouncement
        } else {
            Charge::Caller
        };
        arrive(services, membership, charge).await?;
    }
    Ok(write)
}

/// Whether the user may be in the presence group: they are already (another
/// connection of theirs is in it), or it has fewer than
/// [`max_presence_members`](crate::services::Settings) users. Read before
/// anything is written (one read, two when the group is full), so joins of
/// new users racing for the last place may each find it free.
async fn room_for(services: &Services, membership: &Membership) -> Result<(), MembershipError> {
    let memberships = &services.memberships;
    let group = &membership.group;
    let limit = services.settings.max_presence_members;
    if memberships.counter(group, &Counter::OnlineUsers).await? < i64::from(limit) {
        return Ok(());
    }
    let user = Counter::UserConnections(membership.user_id.clone());
    if memberships.counter(group, &user).await? > 0 {
        return Ok(());
    }
    Err(MembershipError::GroupFull {
        group: group.clone(),
        limit,
    })
}

/// Where the token of a presence change's announcement comes from (the
/// user's presence-change bucket for the group, [`crate::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// The caller answers for the limit: `subscribe` and `unsubscribe` took
    /// the token already; the application's commands and connections found
    /// gone are not limited. The change is announced.
    Caller,
    /// Taken at the announcement (`$connect`, `$disconnect`): a join over the limit is not announced, nor is the leave
    /// that ends that stay; the leave of an announced join always is, its
    /// token booked ahead.
    AtAnnouncement,
}

/// A membership of a presence group was added: if it is the user's first
/// connection in the group, the user is counted online and, within the
/// limit, announced.
async fn arrive(
    services: &Services,
    membership: &Membership,
    charge: Charge,
) -> Result<(), MembershipError> {
    let memberships = &services.memberships;
    let group = &membership.group;
    let user_id = &membership.user_id;
    let expires = counter_expiry();
    let user = Counter::UserConnections(user_id.clone());
    if memberships.add_to_counter(group, &user, 1, expires).await? != 1 {
        return Ok(());
    }
    let online = memberships
        .add_to_counter(group, &Counter::OnlineUsers, 1, expires)
        .await?;
    let unannounced = Counter::Unannounced(user_id.clone());
    if charge == Charge::AtAnnouncement {
        match take_presence_change(services, group, user_id).await {
            Ok(()) => {}
            Err(LimitError::Exceeded(_)) => {
                // Marked, so the leave that ends this stay is not announced either.
                memberships
                    .swap_counter(group, &unannounced, 0, 1, expires)
                    .await?;
                info!(group, %user_id, online, "presence join not announced: over the presence-change limit");
                return Ok(());
            }
            Err(LimitError::Store(e)) => return Err(e.into()),
        }
    }
    // A mark left by joins and leaves that crossed each other goes.
    memberships
        .swap_counter(group, &unannounced, 1, 0, expires)
        .await?;
    // API Gateway does not accept posts to a connection before its
    // `$connect` returns: the announcement skips it.
    let skip = if charge == Charge::AtAnnouncement {
        std::slice::from_ref(&membership.connection_id)
    } else {
        &[]
    };
    let frame = presence_frame(PresenceEvent::Join, user_id, group, online);
    let booker = user_booker(user_id);
    let addressed = send_to_group(services, group, &frame, skip, None, Some(&booker))
        .await
        .map_err(MembershipError::Fanout)?;
    info!(group, %user_id, online, addressed, "presence join");
    Ok(())
}

/// Removes the membership; true if there was one. See [`leave_group_in_order`].
pub async fn leave_group(
    services: &Services,
    group: &str,
    connection_id: &str,
) -> Result<bool, FanoutError> {
    Ok(matches!(
        leave_group_in_order(services, group, connection_id, None).await?,
        MembershipWrite::Changed(_)
    ))
}

/// Removes the membership unless a client frame with a newer `seq` already
/// decided this group; with `seq`, a tombstone keeps it. In a presence
/// group, a user's last connection leaving announces a `leave` to the group
/// (when the user's counter reaches exactly zero: see [`join_group_in_order`]),
/// unless the join that began the stay was not announced.
pub async fn leave_group_in_order(
    services: &Services,
    group: &str,
    connection_id: &str,
    seq: Option<u64>,
) -> Result<MembershipWrite<String>, FanoutError> {
    leave(services, group, connection_id, seq, Charge::Caller).await
}

async fn leave(
    services: &Services,
    group: &str,
    connection_id: &str,
    seq: Option<u64>,
    charge: Charge,
) -> Result<MembershipWrite<String>, FanoutError> {
    let memberships = &services.memberships;
    let write = memberships
        .leave_in_order(group, connection_id, seq, counter_expiry())
        .await?;
    let MembershipWrite::Changed(user_id) = &write else {
        return Ok(write);
    };
    memberships.release_group_slot(connection_id).await?;
    if services.settings.presence.allows(group) {
        depart(services, group, user_id, charge).await?;
    }
    Ok(write)
}

/// A membership of a presence group was removed: if it was the user's last
/// connection in the group, the user is counted offline and the leave
/// announced, unless the join that began the stay was not.
async fn depart(
    services: &Services,
    group: &str,
    user_id: &str,
    charge: Charge,
) -> Result<(), FanoutError> {
    let memberships = &services.memberships;
    let expires = counter_expiry();
    let user = Counter::UserConnections(user_id.to_owned());
    // Exactly zero: a count below zero means a join has not been counted
    // yet, and that join will find 0, not 1, and announce nothing.
    if memberships
        .add_to_counter(group, &user, -1, expires)
        .await?
        != 0
    {
        return Ok(());
    }
    let online = memberships
        .add_to_counter(group, &Counter::OnlineUsers, -1, expires)
        .await?
        .max(0);
    let unannounced = Counter::Unannounced(user_id.to_owned());
    if memberships
        .swap_counter(group, &unannounced, 1, 0, expires)
        .await?
    {
        info!(
            group,
            user_id, online, "presence leave not announced: its join was not"
        );
        return Ok(());
    }
    if charge == Charge::AtAnnouncement
        && let Err(e) = charge_presence_change(services, group, user_id).await
    {
        warn!(group, user_id, error = %e, "could not charge a presence leave; announcing it");
    }
    let frame = presence_frame(PresenceEvent::Leave, user_id, group, online);
    let booker = user_booker(user_id);
    let addressed = send_to_group(services, group, &frame, &[], None, Some(&booker)).await?;
    info!(group, user_id, online, addressed, "presence leave");
    Ok(())
}

/// Deletes the connection record and every membership (and tombstone) of
/// the connection; returns how many items it deleted.
///
/// Presence groups are left one by one, so their counters and `leave`
/// announcements stay exact; then every item goes in BatchWriteItem calls of
/// [`MEMBERSHIP_DELETE_BATCH`](crate::ports::MEMBERSHIP_DELETE_BATCH), each retried a bounded number of rounds. A
/// connection is in at most `max_groups_per_connection` groups, so the
/// presence part is bounded too; what cannot be deleted expires by TTL.
///
/// At `$disconnect` (`disconnecting`), each announced leave takes a token
/// from the user's presence-change bucket for the group ([`Charge::AtAnnouncement`]).
pub async fn forget(
    services: &Services,
    connection_id: &str,
    disconnecting: bool,
) -> Result<usize, FanoutError> {
    let charge = if disconnecting {
        Charge::AtAnnouncement
    } else {
        Charge::Caller
    };
    services.store.delete_connection(connection_id).await?;
    let memberships = &services.memberships;
    let items = memberships.connection_items(connection_id).await?;
    let mut first_error = None;
    for group in items
        .iter()
        .filter(|group| services.settings.presence.allows(group))
    {
        // Leave every group even if one fails; report the first failure.
        if let Err(e) = leave(services, group, connection_id, None, charge).await {
            warn!(connection_id, group, error = %e, "could not leave a group");
            first_error.get_or_insert(e);
        }
    }
    match memberships.delete_memberships(connection_id, &items).await {
        Ok(calls) => info!(
            connection_id,
            items = items.len(),
            calls,
            "memberships deleted"
        ),
        Err(e) => {
            warn!(connection_id, error = %e, "could not delete every membership; TTL will");
            first_error.get_or_insert(e.into());
        }
    }
    if let Err(e) = memberships.forget_group_slots(connection_id).await {
        first_error.get_or_insert(e.into());
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(items.len()),
    }
}

/// Forgets a connection a post found gone (410), record and memberships,
/// unless it is still opening. Returns whether it was forgotten.
pub async fn forget_gone(services: &Services, connection_id: &str) -> Result<bool, FanoutError> {
    if !is_gone(&*services.store, connection_id).await? {
        return Ok(false);
    }
    forget(services, connection_id, false).await?;
    Ok(true)
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
