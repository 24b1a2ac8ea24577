//! One SigV4-signed AWS JSON-protocol request (`awsJson1_1`, `X-Amz-Target`)
//! through the SDK's own connector and signer: how Switchboard calls a
//! service it needs once or twice (Secrets Manager's `GetSecretValue`,
//! EventBridge's `PutEvents`) without linking a whole SDK client (config,
//! endpoint rules, error types) into bootstraps that are at their size target.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_types::byte_stream::ByteStream;

use super::sigv4::Signer;

/// A service endpoint and what signs requests to it.
#[derive(Clone, Debug)]
pub struct AwsJsonClient {
    pub connector: SharedHttpConnector,
    pub credentials: Option<SharedCredentialsProvider>,
    pub region: String,
    /// e.g. `https://events.eu-west-1.amazonaws.com`, no trailing `/`.
    pub endpoint: String,
    /// The signing name, e.g. `events`, `secretsmanager`.
    pub service: &'static str,
    /// The target prefix, e.g. `AWSEvents`, `secretsmanager`.
    pub target_prefix: &'static str,
}

/// The default endpoint of `service` in `region` (`.com.cn` in the China regions).
pub fn default_endpoint(service: &str, region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{service}.{region}.amazonaws.com.cn")
    } else {
        format!("https://{service}.{region}.amazonaws.com")
    }
}

impl AwsJsonClient {
    /// Calls `operation` with the JSON `body`: the answer's body when it is
    /// 200, otherwise a message with the service's error type and message
    /// (which never hold a secret value).
    pub async fn call(&self, operation: &str, body: String) -> Result<Vec<u8>, String> {
        let credentials = self
            .credentials
            .as_ref()
            .ok_or_else(|| "no AWS credentials".to_owned())?
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?;
        let uri = format!("{}/", self.endpoint);
        let target = format!("{}.{operation}", self.target_prefix);
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let request = Signer {
            credentials: &credentials,
            region: &self.region,
            service: self.service,
        }
        .request("POST", &uri, &headers, body.as_bytes())
        .map_err(|e| e.to_string())?;
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|e| format!("{operation} failed: {e}"))?;
        let status = response.status().as_u16();
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| format!("{operation}'s answer was cut: {e}"))?
            .into_bytes();
        if status != 200 {
            let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let kind = error["__type"].as_str().unwrap_or_default();
            let kind = kind.rsplit('#').next().unwrap_or_default();
            let message = error["message"]
                .as_str()
                .or_else(|| error["Message"].as_str())
                .unwrap_or_default();
            return Err(format!(
                "{operation} answered {status} {kind}: {}",
                message.chars().take(200).collect::<String>()
            ));
        }
        Ok(bytes.to_vec())
    }
}
