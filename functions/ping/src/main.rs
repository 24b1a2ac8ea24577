//! `ping` Lambda: wiring only; the logic is `switchboard::handlers::ping`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::ping::handle_ping;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_ping(&event.payload))
        },
    ))
    .await
}
