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
        // Read chunk by chunk: a document past the limit is refused as soon
        // as it passes it, whatever its length header said (or without one).
        let mut stream = ByteStream::new(response.into_body());
        let mut document = Vec::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| format!("GET {url}: the answer was cut: {e}"))?
        {
            if document.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: the document is over {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            document.extend_from_slice(&chunk);
        }
        Ok(document)
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

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};

    use super::*;

    /// Answers every request with `status` and `body`, declaring its length or not.
    #[derive(Debug, Clone)]
    struct Answers {
        status: u16,
        body: Vec<u8>,
        declared: bool,
    }

    impl HttpConnector for Answers {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            assert_eq!(request.method(), "GET");
            let status = self.status.try_into().expect("a status");
            let mut response = HttpResponse::new(status, SdkBody::from(self.body.clone()));
            if self.declared {
                response
                    .headers_mut()
                    .insert("content-length", self.body.len().to_string());
            }
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    async fn get(status: u16, body: Vec<u8>, declared: bool) -> Result<Vec<u8>, String> {
        let fetcher = SdkFetcher::new(SharedHttpConnector::new(Answers {
            status,
            body,
            declared,
        }));
        fetcher
            .get("https://idp.example/jwks", Duration::from_secs(1))
            .await
    }

    #[tokio::test]
    async fn documents_are_read_only_when_200_and_within_the_limit() {
        assert_eq!(get(200, b"{}".to_vec(), true).await, Ok(b"{}".to_vec()));
        let at_limit = vec![b' '; MAX_DOCUMENT_BYTES];
        assert_eq!(get(200, at_limit.clone(), false).await, Ok(at_limit));
        assert_eq!(
            get(503, b"{}".to_vec(), true).await,
            Err("GET https://idp.example/jwks answered 503".into())
        );
        let over = format!(
            "GET https://idp.example/jwks: the document is over {MAX_DOCUMENT_BYTES} bytes"
        );
        for declared in [true, false] {
            assert_eq!(
                get(200, vec![b' '; MAX_DOCUMENT_BYTES + 1], declared).await,
                Err(over.clone()),
                "declared {declared}"
            );
        }
    }
}
