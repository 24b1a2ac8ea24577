//! `$default` Lambda: wiring only; the logic is `switchboard::handlers::default`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::default::handle_default;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_default(&event.payload))
        },
    ))
    .await
}
