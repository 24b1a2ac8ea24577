//! The HTTP API a command talks to: the deployed stack's (an API Gateway HTTP
//! API with `AWS_IAM`: every request signed with SigV4 from the standard
//! credential chain) or the local stack's (plain HTTP on loopback, with the
//! stack's API key when it has one). One request at a time, through the AWS
//! SDK's own HTTP client, with a timeout to connect and to read.

use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use switchboard::adapters::sigv4::Signer;

use crate::CliError;

/// The default address of `--local`.
pub const DEFAULT_LOCAL_URL: &str = "http://127.0.0.1:3001";

/// How long a request may take to connect, and then to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer read (the HTTP API's answers are small JSON documents).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// What every path segment is encoded with: all but unreserved characters
/// (connection ids hold `/`, `+` and `=`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One path segment, percent-encoded.
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// How requests are authorised.
#[derive(Clone, Debug)]
pub enum Auth {
    /// The local stack: `Authorization: Bearer <key>` when it has a key.
    Local { api_key: Option<String> },
    /// The deployed HTTP API: SigV4 for `execute-api` in `region`.
    SigV4 {
        credentials: Option<SharedCredentialsProvider>,
        region: String,
    },
}

/// An HTTP API: its base URL (no trailing `/`) and how to authorise.
#[derive(Clone, Debug)]
pub struct Api {
    pub base: String,
    pub auth: Auth,
    connector: SharedHttpConnector,
}

/// An answer: its status and its JSON body (`null` when empty or not JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error message the API put in its body (`{"error":{"message"}}` or `{"error":"…"}`).
    pub fn error_message(&self) -> String {
        let error = &self.body["error"];
        error["message"]
            .as_str()
            .or_else(|| error.as_str())
            .or_else(|| self.body["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the answer was {}", self.body))
    }
}

/// The SDK's HTTP connector (rustls on ring; plain `http://` too).
pub fn connector() -> SharedHttpConnector {
    let settings = HttpConnectorSettings::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build();
    let sleep = aws_smithy_async::rt::sleep::default_async_sleep();
    SharedHttpConnector::new(switchboard::aws::https_connector(settings, sleep))
}

/// `url` as it may be shown: credentials in it (`http://user:secret@host`)
/// become `***`, so no error or log line repeats them.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

impl Api {
    /// The local stack at `url`: loopback or not, its scheme must be http(s).
    pub fn local(url: &str, api_key: Option<String>) -> Result<Api, CliError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--local {:?}: give the stack's address as http://HOST:PORT",
                redacted(url)
            )));
        }
        Ok(Api {
            base,
            auth: Auth::Local { api_key },
            connector: connector(),
        })
    }

    /// The deployed HTTP API at `url`, signed for `region` with `credentials`.
    pub fn signed(
        url: &str,
        region: String,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Api {
        Api {
            base: url.trim_end_matches('/').to_owned(),
            auth: Auth::SigV4 {
                credentials,
                region,
            },
            connector: connector(),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.auth, Auth::Local { .. })
    }

    /// `method` `path_and_query` (which starts with `/`) with an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CliError> {
        let uri = format!("{}{path_and_query}", self.base);
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut headers: Vec<(String, String)> = Vec::new();
        if !body.is_empty() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        match &self.auth {
            Auth::Local { api_key } => {
                if let Some(key) = api_key {
                    headers.push(("authorization".into(), format!("Bearer {key}")));
                }
            }
            Auth::SigV4 {
                credentials,
                region,
            } => {
                let signed =
                    sign_request(credentials.as_ref(), region, method, &uri, &body).await?;
                headers.extend(signed);
            }
        }
        let mut request = Request::new(SdkBody::from(body));
        request
            .set_method(method)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        request
            .set_uri(uri.as_str())
            .map_err(|e| CliError::Usage(format!("bad URL {}: {e}", redacted(&uri))))?;
        for (name, value) in headers {
            request.headers_mut().insert(name, value);
        }
        let exchange = async {
            let response = self
                .connector
                .call(request)
                .await
                .map_err(|e| self.unreachable(chain(&e)))?;
            let status = response.status().as_u16();
            // Read chunk by chunk, so an endless answer costs at most the limit.
            let mut stream = ByteStream::new(response.into_body());
            let mut bytes = Vec::new();
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| self.unreachable(format!("the answer was cut: {e}")))?
            {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_ANSWER_BYTES {
                    return Err(CliError::BadAnswer {
                        place: self.place(),
                        url: redacted(&self.base),
                        what: format!("more than {MAX_ANSWER_BYTES} bytes (read no further)"),
                    });
                }
            }
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok(Answer { status, body })
        };
        tokio::time::timeout(CONNECT_TIMEOUT + READ_TIMEOUT, exchange)
            .await
            .map_err(|_| self.unreachable("no answer in time".into()))?
    }

    fn place(&self) -> &'static str {
        if self.is_local() {
            "the local stack"
        } else {
            "the HTTP API"
        }
    }

    fn unreachable(&self, what: String) -> CliError {
        CliError::Unreachable {
            place: self.place(),
            url: redacted(&self.base),
            what,
        }
    }
}

/// An error with its sources: "io error: Connection refused (os error 111)".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: error chains are short, but nothing promises they end.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The SigV4 headers for one request to `execute-api`.
async fn sign_request(
    credentials: Option<&SharedCredentialsProvider>,
    region: &str,
    method: &str,
    uri: &str,
    body: &str,
) -> Result<Vec<(String, String)>, CliError> {
    let no_credentials = |e: String| CliError::Credentials(e);
    let credentials = credentials
        .ok_or_else(|| no_credentials("none found in the standard chain".into()))?
        .provide_credentials()
        .await
        .map_err(|e| no_credentials(e.to_string()))?;
    let headers: [(&str, &str); 1] = [("content-type", "application/json")];
    let headers = if body.is_empty() {
        &headers[..0]
    } else {
        &headers[..]
    };
    Signer {
        credentials: &credentials,
        region,
        service: "execute-api",
    }
    .headers(method, uri, headers, body.as_bytes())
    .map_err(|e| CliError::Credentials(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_never_shown() {
        assert_eq!(
            redacted("http://admin:secret@127.0.0.1:3001/x?y=1"),
            "http://***@127.0.0.1:3001/x?y=1"
        );
        assert_eq!(redacted("http://token@host"), "http://***@host");
        assert_eq!(redacted("http://127.0.0.1:3001"), "http://127.0.0.1:3001");
        assert_eq!(redacted("http://host/a@b"), "http://host/a@b");
        assert_eq!(redacted("not a url"), "not a url");
    }

    /// `--local=http://admin:secret@…` printed the password in every error (issue 25, defect 9).
    #[tokio::test]
    async fn an_unreachable_stack_is_named_without_its_credentials() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        let api = Api::local("http://admin:s3cret-pass@127.0.0.1:9", None).unwrap();
        let error = api.call("GET", "/users/alice", None).await.unwrap_err();
        let shown = error.to_string();
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(shown.contains("http://***@127.0.0.1:9"), "{shown}");
        let usage = Api::local("ftp://admin:s3cret-pass@host", None).unwrap_err();
        assert!(!usage.to_string().contains("s3cret-pass"), "{usage}");
    }

    #[test]
    fn connection_ids_are_one_path_segment() {
        assert_eq!(segment("f97y/eM+ZD=="), "f97y%2FeM%2BZD%3D%3D");
        assert_eq!(segment("chat:42"), "chat%3A42");
        assert_eq!(segment("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn error_messages_come_from_either_shape() {
        let answer = |body| Answer { status: 400, body };
        assert_eq!(
            answer(serde_json::json!({"error":{"code":"bad_request","message":"no"}}))
                .error_message(),
            "no"
        );
        assert_eq!(
            answer(serde_json::json!({"error":"gone"})).error_message(),
            "gone"
        );
        assert_eq!(answer(Value::Null).error_message(), "the answer was null");
    }
}
