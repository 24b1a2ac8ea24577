//! The one place that builds AWS SDK configuration and clients.
//!
//! Everything goes through `aws_config`'s default chain, so the standard
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides point the same
//! binaries at moto, LocalStack or the local stack.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region, credentials and endpoint overrides from the environment.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// A Management API client for one stage, e.g.
/// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
/// Each attempt is bounded by `attempt_timeout`, so a stalled post becomes a
/// retryable failure instead of eating the function's whole timeout.
pub fn management_api(
    config: &SdkConfig,
    endpoint: &str,
    attempt_timeout: Duration,
    max_attempts: u32,
) -> aws_sdk_apigatewaymanagement::Client {
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(attempt_timeout)
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

/// The handlers' services on AWS, from `TABLE_NAME`, `MEMBERSHIPS_TABLE`,
/// `DELIVERIES_QUEUE_URL`, `WEBSOCKET_ENDPOINT` and [`crate::config::settings`].
/// Building clients makes no network call; the first request does.
pub fn services(
    config: &SdkConfig,
) -> Result<crate::handlers::Services, crate::config::ConfigError> {
    use std::sync::Arc;

    use crate::adapters::dynamodb::{DynamoMemberships, DynamoStore};
    use crate::adapters::management_api::ManagementApi;
    use crate::adapters::sqs::SqsQueue;
    use crate::config::required;

    let settings = crate::config::settings()?;
    let dynamodb = dynamodb(config);
    let gateway = ManagementApi::new(management_api(
        config,
        &required("WEBSOCKET_ENDPOINT")?,
        settings.posting.post_timeout,
        settings.posting.post_attempts,
    ));
    Ok(crate::handlers::Services {
        store: Arc::new(DynamoStore::new(dynamodb.clone(), required("TABLE_NAME")?)),
        memberships: Arc::new(DynamoMemberships::new(
            dynamodb,
            required("MEMBERSHIPS_TABLE")?,
        )),
        gateway: Arc::new(gateway),
        deliveries: Arc::new(SqsQueue::new(
            sqs(config),
            required("DELIVERIES_QUEUE_URL")?,
        )),
        settings: Arc::new(settings),
    })
}
