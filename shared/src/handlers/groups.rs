//! Memberships with presence, and fan-out through the Deliveries queue.
//!
//! Every join and leave goes through [`join_group`] and [`leave_group`], so a
//! presence-enabled group announces a user exactly once on their first
//! connection joining and once after their last one left, whatever caused it
//! (token groups at `$connect`, `subscribe`, a command, a disconnect).
//!
//! Every fan-out goes through [`enqueue_frame`]: one finished frame for up to
//! [`crate::protocol::DELIVERY_BATCH`] connections per Deliveries message, ten messages per
//! SendMessageBatch call.

use std::collections::HashSet;

use tracing::{info, warn};

use crate::clock::now_seconds;
use crate::handlers::Services;
use crate::handlers::connect::RECORD_TTL;
use crate::handlers::enqueue::{EnqueueError, enqueue_all};
use crate::ports::{Counter, MAX_BATCH, Membership, StoreError};
use crate::protocol::{DELIVERY_BATCH, DeliveryBatch, MessageError, PresenceEvent, presence_frame};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Hands `frame` to the deliver workers for every connection in `ids`;
/// returns how many connections it addressed.
pub async fn enqueue_frame(
    services: &Services,
    frame: &str,
    ids: &[String],
    message_id: Option<&str>,
) -> Result<usize, FanoutError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let bodies = DeliveryBatch::bodies(frame, ids, message_id)?;
    enqueue_all(&*services.deliveries, bodies, &services.settings.enqueue).await?;
    Ok(ids.len())
}

/// Collects connection ids from pages of any size and hands them to the
/// deliver workers in full SendMessageBatch calls (10 messages of 100
/// connections), so N connections cost ceil(N/100) Deliveries messages and
/// ceil(N/1000) calls however the reads were paged. Memory stays bounded by
/// one call's worth of ids plus one page.
pub struct Fanout<'a> {
    services: &'a Services,
    frame: &'a str,
    excluded: HashSet<&'a str>,
    pending: Vec<String>,
    addressed: usize,
    message_id: Option<&'a str>,
}

impl<'a> Fanout<'a> {
    /// Ids per flush: one full SendMessageBatch call.
    const FLUSH: usize = DELIVERY_BATCH * MAX_BATCH;

    pub fn new(services: &'a Services, frame: &'a str, exclude: &'a [String]) -> Self {
        Fanout {
            services,
            frame,
            excluded: exclude.iter().map(String::as_str).collect(),
            pending: Vec::new(),
            addressed: 0,
            message_id: None,
        }
    }

    /// Carries the message's idempotency `id` to the deliver workers.
    pub fn with_message_id(mut self, message_id: Option<&'a str>) -> Self {
        self.message_id = message_id;
        self
    }

    /// Adds a page of connection ids (excluded ones are dropped).
    pub async fn push(&mut self, ids: impl IntoIterator<Item = String>) -> Result<(), FanoutError> {
        let excluded = &self.excluded;
        self.pending
            .extend(ids.into_iter().filter(|id| !excluded.contains(id.as_str())));
        while self.pending.len() >= Self::FLUSH {
            let rest = self.pending.split_off(Self::FLUSH);
            let full = std::mem::replace(&mut self.pending, rest);
            self.addressed +=
                enqueue_frame(self.services, self.frame, &full, self.message_id).await?;
        }
        Ok(())
    }

    /// Hands out the rest; returns how many connections were addressed.
    pub async fn finish(mut self) -> Result<usize, FanoutError> {
        let rest = std::mem::take(&mut self.pending);
        self.addressed += enqueue_frame(self.services, self.frame, &rest, self.message_id).await?;
        Ok(self.addressed)
    }
}

/// Sends `frame` to every member of `group` except `exclude`, page by page;
/// returns how many connections it addressed.
pub async fn send_to_group(
    services: &Services,
    group: &str,
    frame: &str,
    exclude: &[String],
    message_id: Option<&str>,
) -> Result<usize, FanoutError> {
    let mut fanout = Fanout::new(services, frame, exclude).with_message_id(message_id);
    let mut after: Option<String> = None;
    loop {
        let page = services
            .memberships
            .group_members(group, after.as_deref())
            .await?;
        fanout
            .push(
                page.members
                    .into_iter()
                    .map(|(connection_id, _)| connection_id),
            )
            .await?;
        match page.next {
            Some(next) => after = Some(next),
            None => return fanout.finish().await,
        }
    }
}

/// Every connection id of `user_id`, across pages.
pub async fn user_connection_ids(
    services: &Services,
    user_id: &str,
) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = services
            .store
            .user_connections(user_id, after.as_deref())
            .await?;
        ids.extend(page.connection_ids);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ids),
        }
    }
}

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

/// How long after `$connect` a 410 may mean "not open yet" rather than "gone":
/// API Gateway refuses posts until `$connect` returns (at most its 29 s
/// integration timeout), while the record and memberships exist from the start.
pub const CONNECT_GRACE_MS: i64 = 60_000;

/// Whether a record connected so recently that a 410 for it means "not open yet".
pub fn is_opening(record: &crate::ports::ConnectionRecord, now_ms: i64) -> bool {
    now_ms - record.connected_at_ms < CONNECT_GRACE_MS
}

/// Forgets a connection a post found gone (410), unless it is still opening:
/// then the post raced its `$connect`, and forgetting would orphan a live
/// connection. Returns whether it was forgotten.
pub async fn forget_gone(services: &Services, connection_id: &str) -> Result<bool, FanoutError> {
    let now_ms = crate::clock::now_millis();
    if let Some(record) = services.store.get_connection(connection_id).await?
        && is_opening(&record, now_ms)
    {
        info!(connection_id, "410 while the connection is opening; kept");
        return Ok(false);
    }
    forget(services, connection_id).await?;
    Ok(true)
}
