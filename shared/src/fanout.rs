//! Fan-out: handing one finished frame to the deliver workers for many
//! connections ([`Fanout`], [`enqueue_frame`], [`send_to_group`]), the
//! connections read page by page with [`crate::ports::pages`].
//!
//! Every fan-out goes through [`enqueue_frame`]: one finished frame for up to
//! [`crate::protocol::DELIVERY_BATCH`] connections per Deliveries message, ten messages per
//! SendMessageBatch call.

use futures::TryStreamExt;
use std::collections::HashSet;

use crate::enqueue::{EnqueueError, enqueue_all};
use crate::ports::{MAX_BATCH, StoreError, pages};
use crate::protocol::{DELIVERY_BATCH, DeliveryBatch, MessageError};
use crate::services::Services;

/// Why a fan-out (or notify-user's per-connection enqueue) failed.
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
/// returns how many connections it addressed. `booker` is whom it is for, as
/// the post budget's fair share counts it ([`crate::pacing`]).
pub async fn enqueue_frame(
    services: &Services,
    frame: &str,
    ids: &[String],
    message_id: Option<&str>,
    booker: Option<&str>,
) -> Result<usize, FanoutError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let bodies = DeliveryBatch::bodies(frame, ids, message_id, booker)?;
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
    booker: Option<&'a str>,
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
            booker: None,
        }
    }

    /// Whom the frame is for, as the post budget's fair share counts it.
    pub fn with_booker(mut self, booker: Option<&'a str>) -> Self {
        self.booker = booker;
        self
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
            self.addressed += enqueue_frame(
                self.services,
                self.frame,
                &full,
                self.message_id,
                self.booker,
            )
            .await?;
        }
        Ok(())
    }

    /// Hands out the rest; returns how many connections were addressed.
    pub async fn finish(mut self) -> Result<usize, FanoutError> {
        let rest = std::mem::take(&mut self.pending);
        self.addressed += enqueue_frame(
            self.services,
            self.frame,
            &rest,
            self.message_id,
            self.booker,
        )
        .await?;
        Ok(self.addressed)
    }
}

/// Sends `frame` to every member of `group` except `exclude`, page by page;
/// returns how many connections it addressed. `booker`: see [`enqueue_frame`].
pub async fn send_to_group(
    services: &Services,
    group: &str,
    frame: &str,
    exclude: &[String],
    message_id: Option<&str>,
    booker: Option<&str>,
) -> Result<usize, FanoutError> {
    let memberships = &services.memberships;
    let mut members = std::pin::pin!(pages(move |after| async move {
        let page = memberships.group_members(group, after.as_deref()).await?;
        Ok::<_, StoreError>((page.members, page.next))
    }));
    let mut fanout = Fanout::new(services, frame, exclude)
        .with_message_id(message_id)
        .with_booker(booker);
    while let Some(page) = members.try_next().await? {
        fanout
            .push(page.into_iter().map(|(connection_id, _)| connection_id))
            .await?;
    }
    fanout.finish().await
}

/// Every connection id of `user_id`, across pages.
pub async fn user_connection_ids(
    services: &Services,
    user_id: &str,
) -> Result<Vec<String>, StoreError> {
    let store = &services.store;
    pages(move |after| async move {
        let page = store.user_connections(user_id, after.as_deref()).await?;
        Ok::<_, StoreError>((page.connection_ids, page.next))
    })
    .try_concat()
    .await
}

/// Every connection id of `user_id` that asked for enveloped user messages.
pub async fn user_envelope_ids(
    services: &Services,
    user_id: &str,
) -> Result<HashSet<String>, StoreError> {
    let store = &services.store;
    let ids: Vec<String> = pages(move |after| async move {
        let page = store
            .user_envelope_connections(user_id, after.as_deref())
            .await?;
        Ok::<_, StoreError>((page.connection_ids, page.next))
    })
    .try_concat()
    .await?;
    Ok(ids.into_iter().collect())
}
