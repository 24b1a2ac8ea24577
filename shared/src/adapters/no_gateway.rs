//! [`NoGateway`]: the gateway of the functions that never post.

use crate::ports::{Gateway, GatewayError};

/// The gateway of the functions that never post (connect, disconnect): a
/// call would be a bug, and fails loudly instead of posting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGateway;

#[async_trait::async_trait]
impl Gateway for NoGateway {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        _data: &[u8],
    ) -> Result<(), GatewayError> {
        tracing::error!(connection_id, "this function does not post to connections");
        Err(GatewayError::Forbidden(
            "this function does not post to connections".into(),
        ))
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError> {
        tracing::error!(connection_id, "this function does not close connections");
        Err(GatewayError::Forbidden(
            "this function does not close connections".into(),
        ))
    }
}
