//! The webhook secret: given (the local stack's `--webhook-secret`,
//! `WEBHOOK_SECRET` in tests) or read from Secrets Manager on first use (AWS,
//! `WEBHOOK_SECRET_ARN`), as the token keys are. The secret stands for a
//! signing key ([`crate::webhook::key_from_secret`]: `whsec_<base64>` or raw
//! bytes). Missing, short or malformed fails closed: nothing is sent unsigned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::auth::SecretError;
use crate::webhook::key_from_secret;

type Load = Box<dyn Fn() -> BoxFuture<'static, Result<String, SecretError>> + Send + Sync>;

/// The secret every upstream request is signed with.
#[derive(Clone)]
pub struct WebhookSecret(Arc<Inner>);

enum Inner {
    Ready(Result<Vec<u8>, SecretError>),
    Lazy {
        value: tokio::sync::OnceCell<Vec<u8>>,
        failed: std::sync::Mutex<Option<(Instant, SecretError)>>,
        load: Load,
    },
}

/// After a failed load, how long its error is answered before the next try.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

impl Default for WebhookSecret {
    /// No secret: every signed request fails closed.
    fn default() -> Self {
        WebhookSecret(Arc::new(Inner::Ready(Err(SecretError::Invalid(
            "no webhook secret is configured (WEBHOOK_SECRET_ARN on AWS, --webhook-secret locally)"
                .into(),
        )))))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

fn checked(secret: Vec<u8>) -> Result<Vec<u8>, SecretError> {
    key_from_secret(&secret).map_err(|e| SecretError::Invalid(e.to_string()))
}

impl WebhookSecret {
    /// A secret given as it is (see [`key_from_secret`]).
    pub fn given(secret: impl Into<Vec<u8>>) -> Self {
        WebhookSecret(Arc::new(Inner::Ready(checked(secret.into()))))
    }

    /// A secret read by `load` on first use.
    pub fn lazy<F>(load: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: std::future::Future<Output = Result<String, SecretError>> + Send + 'static,
    {
        WebhookSecret(Arc::new(Inner::Lazy {
            value: tokio::sync::OnceCell::new(),
            failed: std::sync::Mutex::new(None),
            load: Box::new(move || Box::pin(load())),
        }))
    }

    /// The signing key, loading the secret on first use.
    pub async fn bytes(&self) -> Result<&[u8], SecretError> {
        match &*self.0 {
            Inner::Ready(secret) => secret.as_deref().map_err(Clone::clone),
            Inner::Lazy {
                value,
                failed,
                load,
            } => {
                if let Some(value) = value.get() {
                    return Ok(value);
                }
                if let Ok(failed) = failed.lock() {
                    if let Some((at, e)) = &*failed {
                        if at.elapsed() < RETRY_INTERVAL {
                            return Err(e.clone());
                        }
                    }
                }
                let result = value
                    .get_or_try_init(|| async { checked(load().await?.into_bytes()) })
                    .await;
                if let (Err(e), Ok(mut failed)) = (&result, failed.lock()) {
                    *failed = Some((Instant::now(), e.clone()));
                }
                result.map(Vec::as_slice)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_or_short_secrets_fail_closed() {
        assert!(WebhookSecret::default().bytes().await.is_err());
        assert_eq!(
            WebhookSecret::given("short").bytes().await,
            Err(SecretError::Invalid(
                "the webhook secret is 5 bytes; at least 32 are required".into()
            ))
        );
        let good = "s".repeat(32);
        assert_eq!(
            WebhookSecret::given(good.clone()).bytes().await.unwrap(),
            good.as_bytes()
        );
        let lazy = WebhookSecret::lazy(move || {
            let good = good.clone();
            async move { Ok(good) }
        });
        assert_eq!(lazy.bytes().await.unwrap().len(), 32);
        // The spec's form is the key its base64 decodes to.
        let whsec = crate::webhook::whsec(&[7; 24]);
        assert_eq!(WebhookSecret::given(whsec).bytes().await.unwrap(), &[7; 24]);
        assert_eq!(
            WebhookSecret::given("whsec_!!").bytes().await,
            Err(SecretError::Invalid(
                "the webhook secret starts with whsec_ but the rest is not base64".into()
            ))
        );
    }
}
