//! [`Services`]: the ports and settings the handlers run on, wired once per
//! function (by `aws::Wiring` on AWS, by the local stack, by the tests).

use std::sync::Arc;

use crate::config::Settings;
use crate::ports::{ConnectionStore, Gateway, History, MembershipStore, MessageQueue, SentLog};
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
