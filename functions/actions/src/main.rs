//! The client group actions Lambda (`subscribe`, `unsubscribe`, `publish`,
//! `presence` routes): wiring only; the logic is `switchboard::handlers::actions`.

use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::actions::handle_client_action;
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
    // `recover` and `history` read the history, `publish` appends to it, and
    // `event` goes to the upstream sinks.
    let upstream = wiring.upstream()?;
    let services = wiring
        .services_with_history()
        .await?
        .with_upstream(upstream.into());
    let services = &services;
    lambda::run(
        "actions",
        move |event: ApiGatewayWebsocketProxyRequest| async move {
            handle_client_action(services, &event).await
        },
    )
    .await
}
