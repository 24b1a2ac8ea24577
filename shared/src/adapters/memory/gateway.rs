//! [`Gateway`] in memory: a set of open connections; posts to others answer 410, as API Gateway does.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{Gateway, GatewayError};
use crate::sync::lock;

#[derive(Default)]
struct GatewayState {
    open: BTreeSet<String>,
    delivered: BTreeMap<String, Vec<String>>,
    scripted: HashMap<String, VecDeque<GatewayError>>,
    posts: usize,
    /// Count posts without keeping their frames (benchmarks).
    discard: bool,
}

/// A gateway with a set of open connections: posts to others answer 410, as
/// API Gateway does. Tests can script errors per connection.
#[derive(Default)]
pub struct MemoryGateway {
    state: Mutex<GatewayState>,
}

impl MemoryGateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// A gateway that counts posts but keeps no frames, for benchmarks that
    /// post millions of times.
    pub fn discarding() -> Self {
        let gateway = Self::default();
        lock(&gateway.state).discard = true;
        gateway
    }

    pub fn open(&self, connection_id: &str) {
        lock(&self.state).open.insert(connection_id.to_owned());
    }

    /// The next post to `connection_id` fails with `error`, before it is delivered.
    pub fn fail_next(&self, connection_id: &str, error: GatewayError) {
        lock(&self.state)
            .scripted
            .entry(connection_id.to_owned())
            .or_default()
            .push_back(error);
    }

    /// Frames delivered to `connection_id`, in order.
    pub fn delivered(&self, connection_id: &str) -> Vec<String> {
        lock(&self.state)
            .delivered
            .get(connection_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many posts were attempted in all.
    pub fn posts(&self) -> usize {
        lock(&self.state).posts
    }

    pub fn is_open(&self, connection_id: &str) -> bool {
        lock(&self.state).open.contains(connection_id)
    }
}

#[async_trait]
impl Gateway for MemoryGateway {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> Result<(), GatewayError> {
        let mut state = lock(&self.state);
        state.posts += 1;
        if let Some(error) = state
            .scripted
            .get_mut(connection_id)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        if !state.open.contains(connection_id) {
            return Err(GatewayError::Gone);
        }
        if state.discard {
            return Ok(());
        }
        let text = String::from_utf8_lossy(data).into_owned();
        state
            .delivered
            .entry(connection_id.to_owned())
            .or_default()
            .push(text);
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError> {
        if lock(&self.state).open.remove(connection_id) {
            Ok(())
        } else {
            Err(GatewayError::Gone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gateway_answers_gone_for_unknown_connections() {
        let gateway = MemoryGateway::new();
        gateway.open("c1");
        gateway.post_to_connection("c1", b"hi").await.unwrap();
        assert_eq!(
            gateway.post_to_connection("c2", b"hi").await,
            Err(GatewayError::Gone)
        );
        assert_eq!(gateway.delivered("c1"), ["hi"]);
        gateway.delete_connection("c1").await.unwrap();
        assert_eq!(
            gateway.delete_connection("c1").await,
            Err(GatewayError::Gone)
        );
    }
}
