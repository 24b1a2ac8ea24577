//! `$disconnect` Lambda: wiring only; the logic is `switchboard::handlers::disconnect`.

use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
    let upstream = wiring.upstream()?;
    let services = wiring
        .services_without_posts()?
        .with_upstream(upstream.into());
    let services = &services;
    lambda::run(
        "disconnect",
        move |event: ApiGatewayWebsocketProxyRequest| async move {
            handle_disconnect(services, &event).await
        },
    )
    .await
}
