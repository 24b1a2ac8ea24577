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
        let request = build_request(url, headers, body)?;
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

/// The POST request [`SdkPoster`] sends. A header that cannot hold its value
/// (a control character other than tab) is [`PostError::InvalidRequest`]:
/// `Headers::insert` would panic on it, and in a batch that panic would take
/// every other record with it (issue 25).
pub fn build_request(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Request, PostError> {
    let mut request = Request::new(SdkBody::from(body));
    request
        .set_method("POST")
        .map_err(|e| PostError::Transport(e.to_string()))?;
    request
        .set_uri(url)
        .map_err(|e| PostError::Transport(format!("bad URL: {e}")))?;
    for (name, value) in headers {
        request
            .headers_mut()
            .try_insert((*name).to_owned(), value.clone())
            .map_err(|_| {
                PostError::InvalidRequest(format!("the {name} header cannot hold its value"))
            })?;
    }
    Ok(request)
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
    use std::sync::{Arc, Mutex};

    use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};

    use super::*;

    /// Answers 200 to every request, and keeps the requests' headers.
    /// The headers of each request sent.
    type Sent = Arc<Mutex<Vec<Vec<(String, String)>>>>;

    #[derive(Debug, Clone, Default)]
    struct Answers200(Sent);

    impl HttpConnector for Answers200 {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            self.0.lock().unwrap().push(headers);
            let status = 200.try_into().expect("a status");
            HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::empty())))
        }
    }

    #[tokio::test]
    async fn a_header_that_cannot_be_built_is_an_error_and_nothing_is_sent() {
        let connector = Answers200::default();
        let poster = SdkPoster::new(SharedHttpConnector::new(connector.clone()));
        let timeout = Duration::from_secs(1);
        // Tab is the one control character a header value may hold.
        for byte in (0u8..0x20).chain([0x7f]).filter(|b| *b != b'\t') {
            let value = format!("message:c1:sp{}", char::from(byte));
            let result = poster
                .post(
                    "http://127.0.0.1:9/handler",
                    &[("ce-specversion", "1.0".into()), ("ce-id", value)],
                    b"{}".to_vec(),
                    timeout,
                )
                .await;
            assert_eq!(
                result,
                Err(PostError::InvalidRequest(
                    "the ce-id header cannot hold its value".into()
                )),
                "byte 0x{byte:02x}"
            );
        }
        assert!(connector.0.lock().unwrap().is_empty(), "nothing was sent");
        let sent = poster
            .post(
                "http://127.0.0.1:9/handler",
                &[("ce-id", "message:c1:sp".into())],
                b"{}".to_vec(),
                timeout,
            )
            .await;
        assert_eq!(sent.map(|a| a.status), Ok(200));
        assert_eq!(
            connector.0.lock().unwrap()[0],
            [("ce-id".to_owned(), "message:c1:sp".to_owned())]
        );
    }
}
