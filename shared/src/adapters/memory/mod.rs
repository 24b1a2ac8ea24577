//! In-memory adapters, one file per port: for tests and for the local stack's embedded defaults.
//!
//! They behave as the AWS services do where handlers can tell the difference
//! (idempotent deletes, paging, partial batch failures, 410 for unknown
//! connections), and let tests script failures.

mod connections;
mod gateway;
mod history;
mod memberships;
mod queue;
mod sent_log;

use std::ops::{Bound, RangeBounds};

pub use connections::MemoryStore;
pub use gateway::MemoryGateway;
pub use history::MemoryHistory;
pub use memberships::MemoryMemberships;
pub use queue::MemoryQueue;
pub use sent_log::MemorySentLog;

/// The keys of an ordered index keyed (partition, id) that follow `after` in
/// `partition` (from its start if `after` is `None`), and on past it.
fn following<P>(partition: P, after: Option<&str>) -> impl RangeBounds<(P, String)> {
    let start = match after {
        Some(id) => Bound::Excluded((partition, id.to_owned())),
        None => Bound::Included((partition, String::new())),
    };
    (start, Bound::Unbounded)
}

/// The first `page_size` items of `items` and, if more follow, the cursor
/// (as DynamoDB does, a full page carries a cursor even if nothing follows it).
fn page<T, F: Fn(&T) -> String>(
    mut items: Vec<T>,
    page_size: usize,
    key: F,
) -> (Vec<T>, Option<String>) {
    if items.len() > page_size {
        items.truncate(page_size);
        let next = items.last().map(key);
        (items, next)
    } else {
        (items, None)
    }
}
