//! `$default` Lambda: wiring only; the logic is `switchboard::handlers::default`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::default::handle_default;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_default(&event.payload))
        },
    ))
    .await
}
