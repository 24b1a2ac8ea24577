//! The server HTTP API Lambda (API Gateway HTTP API, payload 2.0, `AWS_IAM`):
//! wiring only; the logic is `switchboard::handlers::http_api`.

use switchboard::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use switchboard::config::NegotiateSettings;
use switchboard::handlers::http_api::handle_http;
use switchboard::lambda::{self, Error};
use switchboard::services::Services;
use switchboard::wiring::Wiring;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
    // The token keys are read by the first negotiate (TOKEN_SECRET_ARN), not
    // during init; without them negotiate answers 500 and the rest works.
    let http = NegotiateSettings::from_env(wiring.token_keys())?;
    // Sends go through the Deliveries queue, whose deliver worker keeps the
    // sent log: api never reads it, and without it BatchGetItem stays out of
    // this bootstrap (at its size target).
    let services = Services {
        sent_log: None,
        ..wiring.services_with_history().await?
    };
    let (services, http) = (&services, &http);
    lambda::run("api", move |event: ApiGatewayV2httpRequest| {
        handle_http(services, http, event)
    })
    .await
}
