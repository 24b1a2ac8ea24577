//! The open WebSocket connections, by connection id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use crate::events::ConnectionContext;

/// What the stack asks a connection's socket task to do.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    /// Send a close frame with this code and reason, then end the connection.
    Close(u16, String),
}

/// What a queued message costs on top of its bytes (the queue's node, the
/// frame's header): a flood of tiny messages is bounded too.
pub const PER_MESSAGE_BYTES: usize = 64;

impl Outbound {
    /// What the message counts against the connection's outbound bound.
    fn cost(&self) -> usize {
        match self {
            Outbound::Text(text) => text.len() + PER_MESSAGE_BYTES,
            Outbound::Binary(bytes) => bytes.len() + PER_MESSAGE_BYTES,
            // A close always gets through: it is how a stuck connection ends.
            Outbound::Close(..) => 0,
        }
    }
}

/// Why a message was not queued for a connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// The socket task has ended.
    Closed,
    /// The client is not reading: the outbound queue is at its bound.
    Full,
}

pub struct Connection {
    pub context: ConnectionContext,
    pub user_id: String,
    last_active_ms: AtomicI64,
    tx: mpsc::UnboundedSender<Outbound>,
    /// Bytes (with [`PER_MESSAGE_BYTES`] each) queued and not yet taken by the socket task.
    queued: AtomicUsize,
    limit: usize,
}

impl Connection {
    /// A connection whose outbound queue holds at most `limit` bytes.
    pub fn new(
        context: ConnectionContext,
        user_id: String,
        tx: mpsc::UnboundedSender<Outbound>,
        limit: usize,
    ) -> Self {
        let now = context.connected_at_ms;
        Connection {
            context,
            user_id,
            last_active_ms: AtomicI64::new(now),
            tx,
            queued: AtomicUsize::new(0),
            limit,
        }
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Queues a frame for the socket, within the outbound bound.
    pub fn send(&self, message: Outbound) -> Result<(), Unsent> {
        let cost = message.cost();
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                let total = queued.checked_add(cost)?;
                (cost == 0 || total <= self.limit).then_some(total)
            })
            .map_err(|_| Unsent::Full)?;
        self.tx.send(message).map_err(|_| {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            Unsent::Closed
        })
    }

    /// The socket task took `message` off the queue.
    pub(crate) fn dequeued(&self, message: &Outbound) {
        self.queued.fetch_sub(message.cost(), Ordering::AcqRel);
    }

    /// Bytes waiting in the outbound queue (each message plus [`PER_MESSAGE_BYTES`]).
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[derive(Default)]
pub struct Connections {
    map: RwLock<HashMap<String, Arc<Connection>>>,
}

impl Connections {
    pub fn insert(&self, connection: Arc<Connection>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection.context.connection_id.clone(), connection);
    }

    pub fn remove(&self, connection_id: &str) -> Option<Arc<Connection>> {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection_id)
    }

    pub fn get(&self, connection_id: &str) -> Option<Arc<Connection>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(connection_id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
