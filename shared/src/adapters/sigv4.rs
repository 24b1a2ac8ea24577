//! SigV4 signing of one request, written once for the three places that sign
//! their own requests through the SDK's signer (`aws-sigv4`): the Management
//! API adapter, the AWS JSON-protocol client and the operator CLI's calls to
//! the HTTP API.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;

/// Why a request could not be signed (a malformed URI or header, never a
/// credential: those are not in the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SigningError(String);

/// What a request to `service` in `region` is signed with.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    /// The signing name, e.g. `execute-api`, `events`.
    pub service: &'a str,
}

impl Signer<'_> {
    /// The headers SigV4 adds (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` with session credentials) to a `method` request
    /// for `uri` carrying `headers` (signed too) and `body`, signed now.
    pub fn headers(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SigningError> {
        let failed = |e: &dyn std::fmt::Display| SigningError(e.to_string());
        let identity = Identity::from(self.credentials.clone());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let signable = SignableRequest::new(
            method,
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }

    /// The `method` request for `uri` with `headers` and `body` (none when
    /// empty), signed now ([`Signer::headers`]): what the SDK's connector sends.
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Request, SigningError> {
        let signed = self.headers(method, uri, headers, body)?;
        let failed = |e: &dyn std::fmt::Display| SigningError(e.to_string());
        let mut request = Request::new(if body.is_empty() {
            SdkBody::empty()
        } else {
            SdkBody::from(body)
        });
        request.set_method(method).map_err(|e| failed(&e))?;
        request.set_uri(uri).map_err(|e| failed(&e))?;
        // `try_insert`: a value a header cannot hold is an error, never a panic.
        for (name, value) in headers {
            request
                .headers_mut()
                .try_insert((*name).to_owned(), (*value).to_owned())
                .map_err(|e| failed(&e))?;
        }
        for (name, value) in signed {
            request
                .headers_mut()
                .try_insert(name, value)
                .map_err(|e| failed(&e))?;
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_credentials_sign_with_their_token() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "t");
        let signer = Signer {
            credentials: &credentials,
            region: "eu-west-1",
            service: "execute-api",
        };
        let headers = signer
            .headers(
                "POST",
                "https://abc.execute-api.eu-west-1.amazonaws.com/prod/@connections/x%3D",
                &[("content-type", "application/octet-stream")],
                b"hello",
            )
            .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let authorization = get("authorization").expect("signed");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && authorization.contains("/eu-west-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(authorization.contains("content-type"), "{authorization}");
        assert_eq!(get("x-amz-security-token"), Some("token"));
        assert!(get("x-amz-date").is_some());
        assert!(
            signer.headers("POST", "not a uri", &[], b"").is_err(),
            "a malformed URI is refused"
        );
    }
}
