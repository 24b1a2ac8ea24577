//! The server HTTP API Lambda (API Gateway HTTP API, payload 2.0, `AWS_IAM`):
//! wiring only; the logic is `switchboard::handlers::http_api`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use switchboard::config::NegotiateSettings;
use switchboard::handlers::http_api::handle_http;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let http = NegotiateSettings::from_env()?;
    if let Err(e) = &http.secret {
        lambda_runtime::tracing::error!(error = %e, "negotiate will answer 500");
    }
    let services = aws::Wiring::load().await.services().await?;
    let (services, http) = (&services, &http);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(handle_http(services, http, event.payload).await)
        },
    ))
    .await
}
