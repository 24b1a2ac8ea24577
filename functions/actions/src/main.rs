//! The client group actions Lambda (`subscribe`, `unsubscribe`, `publish`,
//! `presence` routes): wiring only; the logic is `switchboard::handlers::actions`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::actions::handle_client_action;
use switchboard::metrics::{self, Emf};
use switchboard::retry;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let services = aws::Wiring::load().await.actions_services().await?;
    let services = &services;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            // The event hook's wait ends in time for the function's deadline.
            let deadline = retry::deadline_from_epoch_millis(event.context.deadline);
            let handled = handle_client_action(services, &event.payload);
            let handled = retry::with_deadline(deadline, handled);
            Ok::<_, Error>(metrics::measure(&Emf, "actions", handled).await)
        },
    ))
    .await
}
