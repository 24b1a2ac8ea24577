//! [`Fetch`] on the AWS SDK's own HTTP client (hyper 1 and rustls on ring):
//! the OIDC discovery and JWKS documents come through the connector the
//! hooks use, so verifying an issuer's tokens adds no HTTP or TLS stack to
//! connect's bootstrap. Plain `http://` works too (loopback issuers: the
//! settings allow nothing else, see [`crate::oidc`]).

use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::oidc::{Fetch, MAX_DOCUMENT_BYTES};

/// GETs documents through an SDK connector (the wiring gives it one built on
/// the first request: no root certificates loaded at init).
#[derive(Clone, Debug)]
pub struct SdkFetcher {
    connector: SharedHttpConnector,
}

impl SdkFetcher {
    pub fn new(connector: SharedHttpConnector) -> Self {
        SdkFetcher { connector }
    }

    async fn send(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut request = Request::new(SdkBody::empty());
        request.set_method("GET").map_err(|e| e.to_string())?;
        request.set_uri(url).map_err(|e| format!("bad URL: {e}"))?;
        request.headers_mut().insert("accept", "application/json");
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("GET {url} answered {status}"));
        }
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_DOCUMENT_BYTES) {
            return Err(format!(
                "GET {url}: the document is over {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| format!("GET {url}: the answer was cut: {e}"))?
            .into_bytes();
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "GET {url}: the document is over {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        Ok(bytes.to_vec())
    }
}

#[async_trait]
impl Fetch for SdkFetcher {
    async fn get(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        tokio::time::timeout(timeout, self.send(url))
            .await
            .map_err(|_| format!("GET {url}: no answer within {} ms", timeout.as_millis()))?
    }
}
