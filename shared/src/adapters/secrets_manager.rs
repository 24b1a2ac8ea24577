//! The token keys from AWS Secrets Manager: one SigV4-signed `GetSecretValue`
//! request (protocol `awsJson1_1`) through the SDK's own HTTPS connector and
//! signer.
//!
//! Not the `aws-sdk-secretsmanager` crate: connect and api are within about
//! 60 KB of Lambda's 6,000,000-byte bootstrap limit, and a whole SDK client
//! (its config, endpoint rules and error types) for one call per container
//! does not fit; this file reuses code every bootstrap links already
//! (`aws-sigv4`, the hyper/rustls connector). Not the Parameters and Secrets
//! Lambda Extension either: a region-specific layer, a second process in
//! every container and its own cold start, for the same one call. docs/authentication.md,
//! "Token keys on AWS", says why.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::SharedHttpConnector;
use tracing::info;

use super::aws_json::AwsJsonClient;

use crate::auth::{SecretError, TokenKeys};

/// How long the whole request may take (connect, TLS, answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A Secrets Manager endpoint and what signs requests to it.
#[derive(Clone, Debug)]
pub struct SecretsManager {
    connector: SharedHttpConnector,
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    endpoint: String,
}

impl SecretsManager {
    /// `endpoint` overrides `https://secretsmanager.{region}.amazonaws.com`
    /// (`.com.cn` in the China regions).
    pub fn new(
        connector: SharedHttpConnector,
        credentials: Option<SharedCredentialsProvider>,
        region: &str,
        endpoint: Option<&str>,
    ) -> Self {
        let endpoint = match endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None if region.starts_with("cn-") => {
                format!("https://secretsmanager.{region}.amazonaws.com.cn")
            }
            None => format!("https://secretsmanager.{region}.amazonaws.com"),
        };
        SecretsManager {
            connector,
            credentials,
            region: region.to_owned(),
            endpoint,
        }
    }

    /// The token keys in secret `secret_id` (see [`TokenKeys::from_json`]).
    pub async fn token_keys(&self, secret_id: &str) -> Result<TokenKeys, SecretError> {
        let text = tokio::time::timeout(REQUEST_TIMEOUT, self.secret_string(secret_id))
            .await
            .map_err(|_| {
                SecretError::Unavailable(format!(
                    "GetSecretValue took longer than {REQUEST_TIMEOUT:?}"
                ))
            })??;
        let keys = TokenKeys::from_json(&text)?;
        info!(
            current = keys.current.kid().unwrap_or(""),
            previous = keys.previous.as_ref().and_then(|k| k.kid()).unwrap_or(""),
            "token keys loaded"
        );
        Ok(keys)
    }

    /// `GetSecretValue`'s `SecretString` (the AWSCURRENT version).
    pub async fn secret_string(&self, secret_id: &str) -> Result<String, SecretError> {
        let bytes = self
            .call(
                "GetSecretValue",
                serde_json::json!({ "SecretId": secret_id }).to_string(),
            )
            .await?;
        // `serde_json::Value` (linked already) rather than derived structs:
        // the bootstraps are within bytes of their limit.
        let answer: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| SecretError::Unavailable("GetSecretValue's answer is not JSON".into()))?;
        match answer.get("SecretString") {
            Some(serde_json::Value::String(text)) => Ok(text.clone()),
            _ => Err(SecretError::Invalid(
                "the secret has no SecretString (binary secrets are not read)".into(),
            )),
        }
    }

    /// One signed Secrets Manager request (`operation` with the JSON `body`),
    /// and the answer's body when it is 200 ([`AwsJsonClient::call`]).
    pub async fn call(&self, operation: &str, body: String) -> Result<Vec<u8>, SecretError> {
        AwsJsonClient {
            connector: self.connector.clone(),
            credentials: self.credentials.clone(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            service: "secretsmanager",
            target_prefix: "secretsmanager",
        }
        .call(operation, body)
        .await
        .map_err(SecretError::Unavailable)
    }
}
