//! Virtual connections (`--virtual-connections N`): connections that exist in
//! the stores the handlers read, made by the real `$connect` handler, whose
//! posts the Management API accepts and counts without a socket. They let one
//! machine hold the records of a million connections and measure a fan-out to
//! all of them; real sockets connect beside them as usual.
//!
//! Connection `i` has the id `virtual-{i}` (`-` is not in API Gateway's id
//! alphabet, so no real id looks like one), belongs to user
//! `virtual-user-{i / per_user}` and, when groups are asked for, to group
//! `virtual:{i / group_size}` (by its token's `groups` claim, as a client
//! would join at `$connect`). Posts are counted in two `Vec<AtomicU32>`
//! indexed by `i` (received, delivered): eight bytes per connection, no map.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use switchboard::auth::{SecretError, TokenSecret, TokenVerifier, claims_for, mint};
use switchboard::clock::now_millis;
use switchboard::handlers::connect::connect;
use switchboard::services::Services;
use tracing::info;

use crate::events::{self, ConnectionContext};

/// The prefix of every virtual connection id.
pub const PREFIX: &str = "virtual-";

/// How many virtual connections, over how many users and groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtualSpread {
    /// Virtual connections (0: none).
    pub connections: usize,
    /// Users they belong to (0: one user per connection).
    pub users: usize,
    /// Groups (0: none).
    pub groups: usize,
    /// Members per group (0: the connections spread evenly over `groups`).
    pub group_size: usize,
}

impl VirtualSpread {
    /// Connections per user (the last user may have fewer).
    pub fn per_user(&self) -> usize {
        let users = if self.users == 0 {
            self.connections
        } else {
            self.users
        };
        self.connections.div_ceil(users.max(1)).max(1)
    }

    /// Members per group (the last group may have fewer).
    pub fn group_size(&self) -> usize {
        match (self.groups, self.group_size) {
            (0, _) => 0,
            (_, 0) => self.connections.div_ceil(self.groups).max(1),
            (_, size) => size,
        }
    }

    /// The id of connection `index`.
    pub fn id(index: usize) -> String {
        format!("{PREFIX}{index}")
    }

    /// The user of connection `index`.
    pub fn user(&self, index: usize) -> String {
        format!("virtual-user-{}", index / self.per_user())
    }

    /// The group of connection `index`, if it is in one.
    pub fn group(&self, index: usize) -> Option<String> {
        let size = self.group_size();
        let group = index.checked_div(size)?;
        (group < self.groups).then(|| format!("virtual:{group}"))
    }

    /// How many connections are in `virtual:{group}`.
    pub fn members_of(&self, group: usize) -> usize {
        let size = self.group_size();
        if group >= self.groups || size == 0 {
            return 0;
        }
        self.connections.saturating_sub(group * size).min(size)
    }
}

/// Why the virtual connections could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VirtualError {
    #[error(
        "--virtual-connections {connections} over --virtual-users {users} is {per_user} connections \
         per user; $connect admits at most --max-connections-per-user {cap}: raise it or add users"
    )]
    OverUserCap {
        connections: usize,
        users: usize,
        per_user: usize,
        cap: u32,
    },
    #[error("virtual connection {id}: $connect refused it: {reason}")]
    Refused { id: String, reason: String },
    #[error("cannot sign the virtual connections' tokens: {0}")]
    Token(String),
}

/// The virtual connections of a running stack and what was posted to them.
#[derive(Default)]
pub struct VirtualConnections {
    spread: VirtualSpread,
    received: Vec<AtomicU32>,
    delivered: Vec<AtomicU32>,
    gone: Vec<AtomicBool>,
    /// Connections with at least one delivered post.
    reached: AtomicU64,
}

impl VirtualConnections {
    pub fn new(spread: VirtualSpread) -> Self {
        let n = spread.connections;
        VirtualConnections {
            spread,
            received: (0..n).map(|_| AtomicU32::new(0)).collect(),
            delivered: (0..n).map(|_| AtomicU32::new(0)).collect(),
            gone: (0..n).map(|_| AtomicBool::new(false)).collect(),
            reached: AtomicU64::new(0),
        }
    }

    pub fn spread(&self) -> VirtualSpread {
        self.spread
    }

    pub fn len(&self) -> usize {
        self.spread.connections
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of a virtual connection id (`None` for any other id).
    pub fn index(&self, id: &str) -> Option<usize> {
        let digits = id.strip_prefix(PREFIX)?;
        // Canonical decimal only: "virtual-01" is not connection 1.
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        let index: usize = digits.parse().ok()?;
        (index < self.len()).then_some(index)
    }

    /// Counts a post received for connection `index`.
    pub(crate) fn received(&self, index: usize) {
        if let Some(count) = self.received.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether connection `index` is open (not deleted).
    pub fn is_open(&self, index: usize) -> bool {
        self.gone
            .get(index)
            .is_some_and(|gone| !gone.load(Ordering::Acquire))
    }

    /// Counts a delivered post to connection `index`.
    pub(crate) fn delivered(&self, index: usize) {
        if let Some(count) = self.delivered.get(index)
            && count.fetch_add(1, Ordering::Relaxed) == 0
        {
            self.reached.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks connection `index` gone (`DELETE @connections`): false if it already was.
    pub(crate) fn close(&self, index: usize) -> bool {
        self.gone
            .get(index)
            .is_some_and(|gone| !gone.swap(true, Ordering::AcqRel))
    }

    /// Posts received for `id` (answered or not); `None` if it is not virtual.
    pub fn posts_to(&self, id: &str) -> Option<u64> {
        let index = self.index(id)?;
        Some(u64::from(self.received[index].load(Ordering::Relaxed)))
    }

    /// What was delivered to the virtual connections.
    pub fn tally(&self) -> VirtualTally {
        let mut tally = VirtualTally {
            connections: self.len() as u64,
            reached: self.reached.load(Ordering::Relaxed),
            ..VirtualTally::default()
        };
        for count in &self.delivered {
            let count = u64::from(count.load(Ordering::Relaxed));
            tally.delivered += count;
            tally.most_to_one = tally.most_to_one.max(count);
        }
        tally.received = self
            .received
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .sum();
        tally.open = self
            .gone
            .iter()
            .filter(|g| !g.load(Ordering::Relaxed))
            .count() as u64;
        tally
    }

    /// Connections with at least one delivered post (cheap: one counter).
    pub fn reached(&self) -> u64 {
        self.reached.load(Ordering::Relaxed)
    }

    /// The context `$connect` and `$disconnect` see for connection `id`.
    pub(crate) fn context(id: String, stage: &str) -> ConnectionContext {
        ConnectionContext {
            connection_id: id,
            connected_at_ms: now_millis(),
            source_ip: "127.0.0.1".into(),
            user_agent: Some("switchboard-local virtual connection".into()),
            domain_name: "virtual".into(),
            stage: stage.to_owned(),
        }
    }

    /// Runs the real `$connect` for every virtual connection, so their
    /// records, indexes (user, broadcast shard) and memberships are exactly
    /// what a client's handshake writes. One token per (user, group).
    pub(crate) async fn connect_all(
        &self,
        services: &Services,
        secret: &TokenSecret,
        stage: &str,
    ) -> Result<(), VirtualError> {
        let spread = self.spread;
        if spread.connections == 0 {
            return Ok(());
        }
        let cap = services.settings.limits.max_connections_per_user;
        if spread.per_user() > cap as usize {
            return Err(VirtualError::OverUserCap {
                connections: spread.connections,
                users: spread.users,
                per_user: spread.per_user(),
                cap,
            });
        }
        let verifier: Result<TokenVerifier, SecretError> = Ok(TokenVerifier::new(secret));
        let headers = HeaderMap::new();
        let started = Instant::now();
        let mut token: Option<((String, Option<String>), String)> = None;
        for index in 0..spread.connections {
            let key = (spread.user(index), spread.group(index));
            if token.as_ref().is_none_or(|(k, _)| *k != key) {
                let claims = claims_for(
                    &key.0,
                    Duration::from_secs(24 * 3600),
                    key.1.iter().cloned().collect(),
                );
                let minted =
                    mint(secret, &claims).map_err(|e| VirtualError::Token(e.to_string()))?;
                token = Some((key, minted));
            }
            let Some((_, minted)) = &token else {
                continue;
            };
            let context = Self::context(VirtualSpread::id(index), stage);
            let query = format!("token={minted}");
            let event = events::connect(&context, &headers, Some(&query));
            connect(services, &verifier, &event)
                .await
                .map_err(|e| VirtualError::Refused {
                    id: context.connection_id.clone(),
                    reason: e.to_string(),
                })?;
            if index % 100_000 == 99_999 {
                info!(
                    made = index + 1,
                    of = spread.connections,
                    "virtual connections"
                );
            }
        }
        info!(
            connections = spread.connections,
            users = spread.connections.div_ceil(spread.per_user()),
            groups = spread.groups,
            seconds = started.elapsed().as_secs_f64(),
            "virtual connections made by $connect"
        );
        Ok(())
    }
}

/// Totals over the virtual connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualTally {
    pub connections: u64,
    pub open: u64,
    /// Posts received (answered or not).
    pub received: u64,
    /// Posts delivered (200).
    pub delivered: u64,
    /// Connections with at least one delivered post.
    pub reached: u64,
    /// The most posts delivered to one connection (1 after one send: no duplicates).
    pub most_to_one: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_users_and_groups() {
        let spread = VirtualSpread {
            connections: 10,
            users: 4,
            groups: 2,
            group_size: 4,
        };
        assert_eq!(spread.per_user(), 3);
        assert_eq!(spread.user(0), "virtual-user-0");
        assert_eq!(spread.user(9), "virtual-user-3");
        assert_eq!(spread.group(3), Some("virtual:0".into()));
        assert_eq!(spread.group(4), Some("virtual:1".into()));
        assert_eq!(spread.group(8), None);
        assert_eq!(spread.members_of(1), 4);
        let even = VirtualSpread {
            connections: 10,
            groups: 3,
            ..VirtualSpread::default()
        };
        assert_eq!((even.per_user(), even.group_size()), (1, 4));
        assert_eq!(even.members_of(2), 2);
        assert_eq!(even.group(9), Some("virtual:2".into()));
    }

    #[test]
    fn only_canonical_ids_in_range_are_virtual() {
        let virtuals = VirtualConnections::new(VirtualSpread {
            connections: 20,
            ..VirtualSpread::default()
        });
        assert_eq!(virtuals.index("virtual-0"), Some(0));
        assert_eq!(virtuals.index("virtual-19"), Some(19));
        for id in [
            "virtual-20",
            "virtual-01",
            "virtual-",
            "virtual--1",
            "f97yeeMZDoECGqg=",
        ] {
            assert_eq!(virtuals.index(id), None, "{id}");
        }
        virtuals.delivered(3);
        virtuals.delivered(3);
        assert!(virtuals.close(4));
        assert!(!virtuals.close(4));
        let tally = virtuals.tally();
        assert_eq!(
            (
                tally.reached,
                tally.delivered,
                tally.most_to_one,
                tally.open
            ),
            (1, 2, 2, 19)
        );
    }
}
