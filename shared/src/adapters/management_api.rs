//! The API Gateway Management API (`POST`/`DELETE /@connections/{id}`).

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::lazy::Lazy;
use crate::ports::{Gateway, GatewayError};

/// The connection id [`ManagementApi::warm_up`] posts to: 7 characters with a
/// `-`, never a real one.
pub const WARM_UP_CONNECTION_ID: &str = "warm-up";

#[derive(Clone, Debug)]
pub struct ManagementApi {
    client: Lazy<Client>,
}

impl ManagementApi {
    /// `client` must point at the stage's endpoint, see [`crate::aws::management_api`].
    pub fn new(client: impl Into<Lazy<Client>>) -> Self {
        ManagementApi {
            client: client.into(),
        }
    }

    /// Opens the connection to the endpoint ahead of the first post (loads the
    /// root certificates, resolves, connects, handshakes) and leaves it in the
    /// pool. It posts nothing to [`WARM_UP_CONNECTION_ID`], shaped unlike any id
    /// API Gateway issues (theirs are 16 base64 characters), with the operation
    /// and the permission the function already has; the answer, a 410 or any
    /// other, only proves the round trip. Bounded like a post (`POST_TIMEOUT_MS`
    /// per attempt, `POST_ATTEMPTS`); a failure is logged, and the first post
    /// then connects as usual.
    pub async fn warm_up(&self) {
        let started = std::time::Instant::now();
        let outcome = self
            .client
            .post_to_connection()
            .connection_id(WARM_UP_CONNECTION_ID)
            .data(Blob::new(Vec::new()))
            .send()
            .await;
        let status = match &outcome {
            Ok(_) => "200".to_owned(),
            Err(SdkError::ServiceError(context)) => context.raw().status().as_u16().to_string(),
            Err(other) => {
                tracing::warn!(
                    error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(other),
                    "could not open the Management API connection during init"
                );
                return;
            }
        };
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Management API connection warmed"
        );
    }
}

/// Maps an SDK failure to a [`GatewayError`] by the error code API Gateway
/// sent, falling back to the HTTP status for codes the model does not name.
fn classify<E, R>(error: SdkError<E, R>) -> GatewayError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HttpStatus,
{
    match error {
        SdkError::ServiceError(context) => {
            let status = context.raw().status_code();
            let err = context.err();
            let message = err.message().unwrap_or("").to_owned();
            match (err.code(), status) {
                (Some("GoneException"), _) | (_, 410) => GatewayError::Gone,
                (Some("LimitExceededException"), _) | (_, 429) => GatewayError::Throttled(message),
                (Some("ForbiddenException"), _) | (_, 403) => GatewayError::Forbidden(message),
                (Some("PayloadTooLargeException"), _) | (_, 413) => {
                    GatewayError::PayloadTooLarge(message)
                }
                (_, status) if status >= 500 => GatewayError::Server { status, message },
                (code, status) => GatewayError::Rejected {
                    status,
                    message: format!("{}: {message}", code.unwrap_or("unknown error")),
                },
            }
        }
        SdkError::TimeoutError(_) => GatewayError::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => GatewayError::Timeout,
        SdkError::ResponseError(context) => {
            let status = context.raw().status_code();
            if status >= 500 {
                GatewayError::Server {
                    status,
                    message: "unreadable response".into(),
                }
            } else {
                GatewayError::Unreachable(format!("unreadable response with status {status}"))
            }
        }
        other => GatewayError::Unreachable(
            aws_sdk_apigatewaymanagement::error::DisplayErrorContext(other).to_string(),
        ),
    }
}

/// The HTTP status of a raw response.
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_apigatewaymanagement::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[async_trait]
impl Gateway for ManagementApi {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> Result<(), GatewayError> {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
            .map_err(classify::<PostToConnectionError, _>)?;
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError> {
        self.client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map_err(classify::<DeleteConnectionError, _>)?;
        Ok(())
    }
}
