//! The server HTTP API Lambda (API Gateway HTTP API, payload 2.0, `AWS_IAM`):
//! wiring only; the logic is `switchboard::handlers::http_api`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use switchboard::handlers::http_api::{
    HttpApiConfig, NEGOTIATE_DEFAULT_TTL, NEGOTIATE_MAX_TTL, handle_http,
};
use switchboard::{auth, aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let secret = auth::TokenSecret::from_optional(std::env::var("TOKEN_SECRET").ok());
    if let Err(e) = &secret {
        lambda_runtime::tracing::error!(error = %e, "negotiate will answer 500");
    }
    let http = HttpApiConfig {
        websocket_url: config::required("WEBSOCKET_URL")?,
        secret,
        default_ttl: std::time::Duration::from_secs(config::optional(
            "NEGOTIATE_DEFAULT_TTL_SECONDS",
            NEGOTIATE_DEFAULT_TTL.as_secs(),
        )?),
        max_ttl: std::time::Duration::from_secs(config::optional(
            "NEGOTIATE_MAX_TTL_SECONDS",
            NEGOTIATE_MAX_TTL.as_secs(),
        )?),
    };
    let services = aws::services(&aws::load().await).await?;
    let (services, http) = (&services, &http);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(handle_http(services, http, event.payload).await)
        },
    ))
    .await
}
