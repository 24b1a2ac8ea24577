//! [`HttpPoster`] on the AWS SDK's own HTTP client (hyper 1 and rustls on
//! ring, the connector the wiring gives it): the hooks and the webhook sender
//! add no HTTP or TLS stack to the bootstraps. Plain `http://` works too (the
//! local stack, a receiver on loopback).

use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::upstream::hooks::MAX_ANSWER_BYTES;
use crate::upstream::{HttpAnswer, HttpPoster, PostError};

/// POSTs through an SDK connector: the wiring gives it one built on the
/// first POST ([`crate::aws::poster`]), so loading the root certificates
/// costs no cold start of a function that may post (connect with a hook, the
/// upstream sender) whether or not it posts (BENCHMARKS.md, "Cold start").
#[derive(Clone, Debug)]
pub struct SdkPoster {
    connector: SharedHttpConnector,
}

impl SdkPoster {
    pub fn new(connector: SharedHttpConnector) -> Self {
        SdkPoster { connector }
    }

    async fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<HttpAnswer, PostError> {
        let transport = |e: String| PostError::Transport(e);
        let mut request = Request::new(SdkBody::from(body));
        request
            .set_method("POST")
            .map_err(|e| transport(e.to_string()))?;
        request
            .set_uri(url)
            .map_err(|e| transport(format!("bad URL: {e}")))?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert((*name).to_owned(), value.clone());
        }
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| transport(format!("the answer was cut: {e}")))?
            .into_bytes();
        let mut body = bytes.to_vec();
        // Longer than any answer is read: the caller refuses it by its length.
        body.truncate(MAX_ANSWER_BYTES + 1);
        Ok(HttpAnswer { status, body })
    }
}

#[async_trait]
impl HttpPoster for SdkPoster {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<HttpAnswer, PostError> {
        tokio::time::timeout(timeout, self.send(url, headers, body))
            .await
            .map_err(|_| PostError::Timeout(timeout))?
    }
}
