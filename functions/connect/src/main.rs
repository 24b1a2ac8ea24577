//! `$connect` Lambda: wiring only; the logic is `switchboard::handlers::connect`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::connect::handle_connect;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let verifier = config::token_verifier();
    if let Err(e) = &verifier {
        lambda_runtime::tracing::error!(error = %e, "every connection will be refused");
    }
    let services = aws::Wiring::load().await.services().await?;
    let (services, verifier) = (&services, &verifier);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_connect(services, verifier, &event.payload).await)
        },
    ))
    .await
}
