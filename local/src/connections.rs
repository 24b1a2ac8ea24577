//! The open WebSocket connections, by connection id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
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

pub struct Connection {
    pub context: ConnectionContext,
    pub user_id: String,
    last_active_ms: AtomicI64,
    tx: mpsc::UnboundedSender<Outbound>,
}

impl Connection {
    pub fn new(
        context: ConnectionContext,
        user_id: String,
        tx: mpsc::UnboundedSender<Outbound>,
    ) -> Self {
        let now = context.connected_at_ms;
        Connection {
            context,
            user_id,
            last_active_ms: AtomicI64::new(now),
            tx,
        }
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Queues a frame for the socket; false if the socket task has ended.
    pub fn send(&self, message: Outbound) -> bool {
        self.tx.send(message).is_ok()
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
