//! [`Services`]: the ports and settings the handlers run on, wired once per
//! function (by `wiring::Wiring` on AWS, by the local stack, by the tests).

use std::sync::Arc;

use std::time::Duration;

use crate::enqueue::EnqueuePolicy;
use crate::groups::names::Grants;
use crate::history::HistorySettings;
use crate::ports::{ConnectionStore, Gateway, History, MembershipStore, MessageQueue, SentLog};
use crate::posting::PostingPolicy;
use crate::rate::Rate;
use crate::upstream::Upstream;

/// Everything the group-aware handlers use: the ports and the settings. The
/// Deliveries queue is where every fan-out (group sends, broadcasts, client
/// events, presence events) hands out batches of connections, and where the
/// deliver worker puts its retries.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn ConnectionStore>,
    pub memberships: Arc<dyn MembershipStore>,
    pub gateway: Arc<dyn Gateway>,
    pub deliveries: Arc<dyn MessageQueue>,
    /// Where posted message ids are remembered; `None` turns idempotency off.
    pub sent_log: Option<Arc<dyn SentLog>>,
    /// Where streams keep their history; `None` keeps none (see [`crate::history`]).
    pub history: Option<Arc<dyn History>>,
    pub settings: Arc<Settings>,
    /// Where upstream events go and the synchronous hooks (default: nowhere, none).
    pub upstream: Arc<Upstream>,
}

impl Services {
    /// The services on these ports with `settings`: no sent log (idempotency
    /// off), no history and no upstream sinks, until [`Services::with_sent_log`],
    /// [`Services::with_history`] and [`Services::with_upstream`] add them. The
    /// one constructor of the functions' wiring, the local stack and the tests.
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        memberships: Arc<dyn MembershipStore>,
        gateway: Arc<dyn Gateway>,
        deliveries: Arc<dyn MessageQueue>,
        settings: Settings,
    ) -> Self {
        Services {
            store,
            memberships,
            gateway,
            deliveries,
            sent_log: None,
            history: None,
            settings: Arc::new(settings),
            upstream: Default::default(),
        }
    }

    /// Where posted message ids are remembered.
    pub fn with_sent_log(self, sent_log: Arc<dyn SentLog>) -> Self {
        Services {
            sent_log: Some(sent_log),
            ..self
        }
    }

    /// Streams keep their history in `history`, as `settings` says.
    pub fn with_history(self, history: Arc<dyn History>, settings: HistorySettings) -> Self {
        Services {
            history: Some(history),
            ..self.with_history_settings(settings)
        }
    }

    /// `settings` for history, without a history store (none is kept).
    pub fn with_history_settings(mut self, settings: HistorySettings) -> Self {
        Arc::make_mut(&mut self.settings).history = settings;
        self
    }

    /// Upstream events go to `upstream`'s sinks, and its hooks are asked.
    pub fn with_upstream(self, upstream: Arc<Upstream>) -> Self {
        Services { upstream, ..self }
    }
}

/// Tuning and policy shared by the handlers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Groups whose joins and leaves are announced (`PRESENCE_GROUPS`).
    pub presence: Grants,
    /// Client events (`publish`) one user may send per window, over all their
    /// connections (a token bucket: see [`crate::rate`]).
    pub publish_limit: u32,
    pub publish_window: Duration,
    /// The other client limits: actions, presence changes, connections per user.
    pub limits: Limits,
    /// The most groups one connection may be in at once (`MAX_GROUPS_PER_CONNECTION`).
    pub max_groups_per_connection: u32,
    /// The most users a presence group may have (`MAX_PRESENCE_MEMBERS`):
    /// the next user's join is refused ([`crate::membership`]).
    pub max_presence_members: u32,
    pub enqueue: EnqueuePolicy,
    pub posting: PostingPolicy,
    /// Which streams keep history, and for how long (see [`crate::history`]).
    pub history: HistorySettings,
}

/// The default cap on a connection's groups (API Gateway has none; Pusher
/// allows 100 channels per connection, Azure Web PubSub's groups are unbounded).
pub const DEFAULT_MAX_GROUPS_PER_CONNECTION: u32 = 100;

/// The default cap on a presence group's users, as Pusher's on a presence
/// channel's members: every join and leave is a fan-out to the whole group.
pub const DEFAULT_MAX_PRESENCE_MEMBERS: u32 = 100;

/// The default presence-enabled groups: every group named `presence:…`.
pub const DEFAULT_PRESENCE_GROUPS: &str = "presence:*";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            presence: Grants::parse(&[DEFAULT_PRESENCE_GROUPS]).unwrap_or_default(),
            publish_limit: 10,
            publish_window: Duration::from_secs(1),
            limits: Limits::default(),
            max_groups_per_connection: DEFAULT_MAX_GROUPS_PER_CONNECTION,
            max_presence_members: DEFAULT_MAX_PRESENCE_MEMBERS,
            enqueue: EnqueuePolicy::default(),
            posting: PostingPolicy::default(),
            history: HistorySettings::default(),
        }
    }
}

impl Settings {
    /// The publish limit as a [`Rate`].
    pub fn publish_rate(&self) -> Rate {
        Rate::new(self.publish_limit, self.publish_window)
    }
}

/// Client limits besides `publish` (see [`crate::limits`]): every client
/// action per connection and per user, presence changes per group and user,
/// and open connections per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Actions (`subscribe`, `unsubscribe`, `publish`, `presence`) per connection.
    pub connection_actions: Rate,
    /// Actions and handshakes per user, over all their connections.
    pub user_actions: Rate,
    /// `subscribe`/`unsubscribe` of one user in one presence group.
    pub presence_changes: Rate,
    /// Open connections per user; the next handshake is refused with 429.
    pub max_connections_per_user: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connection_actions: Rate::new(20, Duration::from_secs(1)),
            user_actions: Rate::new(40, Duration::from_secs(1)),
            presence_changes: Rate::new(10, Duration::from_secs(60)),
            max_connections_per_user: 10,
        }
    }
}
