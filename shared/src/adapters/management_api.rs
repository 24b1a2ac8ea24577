//! The API Gateway Management API (`POST`/`DELETE /@connections/{id}`): one
//! SigV4-signed request per call through the SDK's own signer (`aws-sigv4`)
//! and HTTPS connector (hyper 1 and rustls, [`crate::aws::https_connector`]).
//!
//! Not the `aws-sdk-apigatewaymanagement` client: its request pipeline
//! (interceptors, endpoint rules, retry strategy, stalled-stream protection,
//! identity cache, user agent) costs about three times the CPU of the signed
//! POST itself on every post, and at 128 MB (a fourteenth of a vCPU) that CPU
//! bounds how fast one instance can post (BENCHMARKS.md, "CPU per post").
//! What the client did that a post needs is here: credentials from the
//! chain (session tokens and refresh included), the attempt timeout, retries
//! of throttling, 5xx, timeouts and transport errors with exponential backoff
//! and full jitter, and the error mapping from the status and
//! `x-amzn-ErrorType`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_types::byte_stream::ByteStream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::sigv4::Signer;
use crate::lazy::Lazy;
use crate::ports::{Gateway, GatewayError};

/// The connection id [`ManagementApi::warm_up`] posts to: 7 characters with a
/// `-`, never a real one.
pub const WARM_UP_CONNECTION_ID: &str = "warm-up";

/// Credentials that expire this soon are refreshed before a request (the
/// SDK's identity cache uses the same margin).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The longest wait between two attempts (the SDK's standard retry cap).
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// A path label: everything but RFC 3986's unreserved characters is
/// percent-encoded, as the SDK encodes `{connectionId}`.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A stage's Management API endpoint and how to call it: built by
/// [`crate::aws::management_api`].
#[derive(Clone, Debug)]
pub struct Client {
    connector: SharedHttpConnector,
    credentials: Option<SharedCredentialsProvider>,
    cached: Arc<tokio::sync::Mutex<Option<Credentials>>>,
    region: Option<String>,
    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, no trailing `/`.
    endpoint: String,
    attempt_timeout: Duration,
    attempts: u32,
    backoff: Duration,
}

impl Client {
    /// `attempts` (at least 1) of at most `attempt_timeout` each, the waits
    /// between them random in `[0, backoff × 2^(n-1)]`.
    pub fn new(
        connector: SharedHttpConnector,
        credentials: Option<SharedCredentialsProvider>,
        region: Option<String>,
        endpoint: &str,
        attempt_timeout: Duration,
        attempts: u32,
        backoff: Duration,
    ) -> Self {
        Client {
            connector,
            credentials,
            cached: Arc::default(),
            region,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            attempt_timeout,
            attempts: attempts.max(1),
            backoff,
        }
    }

    /// The chain's credentials, asked again only when they are about to expire.
    async fn credentials(&self) -> Result<Credentials, GatewayError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| GatewayError::Unreachable("no AWS credentials".into()))?;
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry().is_none_or(|expiry| {
                expiry
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
            })
        };
        if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| GatewayError::Unreachable(format!("no AWS credentials: {e}")))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// `method` on `@connections/{connection_id}` with `body`, retried by the policy.
    async fn call(
        &self,
        method: &'static str,
        connection_id: &str,
        body: &[u8],
    ) -> Result<u16, GatewayError> {
        let mut attempt = 1;
        loop {
            let outcome = tokio::time::timeout(
                self.attempt_timeout,
                self.attempt(method, connection_id, body),
            )
            .await
            .unwrap_or(Err(GatewayError::Timeout));
            match outcome {
                Err(error) if error.is_transient() && attempt < self.attempts => {
                    let ceiling = self
                        .backoff
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(MAX_BACKOFF);
                    tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// One signed request: the status when it is 2xx.
    async fn attempt(
        &self,
        method: &'static str,
        connection_id: &str,
        body: &[u8],
    ) -> Result<u16, GatewayError> {
        let credentials = self.credentials().await?;
        let region = self
            .region
            .as_deref()
            .ok_or_else(|| GatewayError::Unreachable("no AWS region".into()))?;
        let uri = format!(
            "{}/@connections/{}",
            self.endpoint,
            utf8_percent_encode(connection_id, LABEL)
        );
        // A blob payload's media type, as the SDK sent it.
        let headers: &[(&str, &str)] = if method == "POST" {
            &[("content-type", "application/octet-stream")]
        } else {
            &[]
        };
        let request = Signer {
            credentials: &credentials,
            region,
            service: "execute-api",
        }
        .request(method, &uri, headers, body)
        .map_err(|e| GatewayError::Unreachable(e.to_string()))?;
        let response = self.connector.call(request).await.map_err(|e| {
            if e.is_timeout() {
                GatewayError::Timeout
            } else {
                GatewayError::Unreachable(chain(&e))
            }
        })?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|t| t.split(':').next().unwrap_or_default().to_owned());
        let bytes = ByteStream::new(response.into_body()).collect().await;
        if (200..300).contains(&status) {
            return Ok(status);
        }
        let bytes = match bytes {
            Ok(bytes) => bytes.into_bytes(),
            Err(_) if status >= 500 => {
                return Err(GatewayError::Server {
                    status,
                    message: "unreadable response".into(),
                });
            }
            Err(_) => {
                return Err(GatewayError::Unreachable(format!(
                    "unreadable response with status {status}"
                )));
            }
        };
        Err(classify(status, error_type.as_deref(), &bytes))
    }
}

/// An error and its sources, `: `-separated (a TLS failure says why).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps an error answer to a [`GatewayError`] by the error type API Gateway
/// sent (`x-amzn-ErrorType`, else the body's `__type`), falling back to the
/// HTTP status for types it does not name.
fn classify(status: u16, error_type: Option<&str>, body: &[u8]) -> GatewayError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = error_type.map(str::to_owned).or_else(|| {
        json["__type"]
            .as_str()
            .and_then(|t| t.rsplit('#').next())
            .map(|t| t.split(':').next().unwrap_or_default().to_owned())
    });
    let message = json["message"]
        .as_str()
        .or_else(|| json["Message"].as_str())
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect::<String>();
    match (code.as_deref(), status) {
        (Some("GoneException"), _) | (_, 410) => GatewayError::Gone,
        (Some("LimitExceededException"), _) | (_, 429) => GatewayError::Throttled(message),
        (Some("ForbiddenException"), _) | (_, 403) => GatewayError::Forbidden(message),
        (Some("PayloadTooLargeException"), _) | (_, 413) => GatewayError::PayloadTooLarge(message),
        (_, status) if status >= 500 => GatewayError::Server { status, message },
        (code, status) => GatewayError::Rejected {
            status,
            message: format!("{}: {message}", code.unwrap_or("unknown error")),
        },
    }
}

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
        let status = match self.client.call("POST", WARM_UP_CONNECTION_ID, &[]).await {
            Ok(status) => status.to_string(),
            Err(GatewayError::Gone) => "410".to_owned(),
            Err(
                GatewayError::Throttled(_)
                | GatewayError::Forbidden(_)
                | GatewayError::PayloadTooLarge(_),
            ) => "4xx".to_owned(),
            Err(GatewayError::Rejected { status, .. } | GatewayError::Server { status, .. }) => {
                status.to_string()
            }
            Err(other) => {
                tracing::warn!(
                    error = %other,
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

#[async_trait]
impl Gateway for ManagementApi {
    async fn post_to_connection(
        &self,
        connection_id: &str,
        data: &[u8],
    ) -> Result<(), GatewayError> {
        self.client.call("POST", connection_id, data).await?;
        Ok(())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<(), GatewayError> {
        self.client.call("DELETE", connection_id, &[]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_and_statuses_map_as_the_sdk_mapped_them() {
        assert_eq!(
            classify(410, Some("GoneException"), b""),
            GatewayError::Gone
        );
        assert_eq!(
            classify(429, None, br#"{"message":"Rate exceeded"}"#),
            GatewayError::Throttled("Rate exceeded".into())
        );
        assert_eq!(
            classify(
                400,
                None,
                br#"{"__type":"com.amazon#BadRequestException","Message":"bad id"}"#
            ),
            GatewayError::Rejected {
                status: 400,
                message: "BadRequestException: bad id".into()
            }
        );
        assert_eq!(
            classify(503, None, b"<html>"),
            GatewayError::Server {
                status: 503,
                message: String::new()
            }
        );
    }

    #[test]
    fn connection_ids_are_encoded_as_one_path_label() {
        assert_eq!(
            utf8_percent_encode("LCK8ZcMxoAMCFdA=/x", LABEL).to_string(),
            "LCK8ZcMxoAMCFdA%3D%2Fx"
        );
    }
}
