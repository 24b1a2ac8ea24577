//! `$default` Lambda: wiring only; the logic is `switchboard::handlers::default`.

use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::default::handle_default;
use switchboard::lambda::{self, Error};

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    lambda::run_uncounted(|event: ApiGatewayWebsocketProxyRequest| handle_default(&event)).await
}
