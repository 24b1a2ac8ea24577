//! [`HttpPoster`] on the AWS SDK's own HTTP client (hyper 1 and rustls on
//! ring, [`crate::aws::https_connector`]): the hooks and the webhook sender
//! add no HTTP or TLS stack to the bootstraps. Plain `http://` works too (the
//! local stack, a receiver on loopback).

use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_async::rt::sleep::SharedAsyncSleep;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::lazy::Lazy;
use crate::upstream::hooks::MAX_ANSWER_BYTES;
use crate::upstream::{HttpAnswer, HttpPoster, PostError};

/// POSTs through the SDK's connector, built on the first POST: building it
/// loads the root certificates, which would otherwise cost every cold start
/// of a function that may post (connect with a hook, the upstream sender)
/// whether or not it posts (BENCHMARKS.md, "Cold start").
#[derive(Clone, Debug)]
pub struct SdkPoster {
    connector: Lazy<SharedHttpConnector>,
}

impl SdkPoster {
    /// A client whose connect and read timeouts are `timeout` (each request
    /// is also bounded as a whole by the timeout it is given).
    pub fn new(timeout: Duration, sleep: Option<SharedAsyncSleep>) -> Self {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .build();
        SdkPoster {
            connector: Lazy::new(move || {
                SharedHttpConnector::new(crate::aws::https_connector(
                    settings.clone(),
                    sleep.clone(),
                ))
            }),
        }
    }

    /// Whether the connector has been built (by a first POST).
    pub fn is_built(&self) -> bool {
        self.connector.is_built()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::HttpPoster;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Init builds nothing (no root certificates at cold start); the first
    /// POST builds the connector and goes through.
    #[tokio::test]
    async fn the_connector_is_built_by_the_first_post_not_by_new() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 4096];
            let _ = socket.read(&mut buffer).await.unwrap();
            socket
                .write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
        });
        let poster = SdkPoster::new(Duration::from_secs(5), None);
        assert!(!poster.is_built());
        let answer = poster
            .post(
                &format!("http://{addr}/hook"),
                &[],
                b"{}".to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 204);
        assert!(poster.is_built());
        server.await.unwrap();
    }
}
