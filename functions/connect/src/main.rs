//! `$connect` Lambda: wiring only; the logic is `switchboard::handlers::connect`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::auth::{TokenPolicy, TokenVerifier};
use switchboard::aws;
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::connect::handle_connect;
use switchboard::metrics::{self, Emf};
use switchboard::retry;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let policy = TokenPolicy::from_env()?;
    let wiring = aws::Wiring::load().await;
    // Read on the first connection (TOKEN_SECRET_ARN), not during init; an
    // unreadable secret refuses connections with 500 until a read succeeds.
    let keys = wiring.token_keys();
    let services = wiring.producer_services().await?;
    let (services, keys, policy) = (&services, &keys, &policy);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let verifier = keys
                .keys()
                .await
                .map(|k| TokenVerifier::with_keys(k, policy));
            if let Err(e) = &verifier {
                switchboard::tracing::error!(error = %e, "no token keys: connection refused");
            }
            // The connect hook's wait ends in time for the function's deadline.
            let deadline = retry::deadline_from_epoch_millis(event.context.deadline);
            let handled = handle_connect(services, &verifier, &event.payload);
            let handled = retry::with_deadline(deadline, handled);
            Ok::<_, Error>(metrics::measure(&Emf, "connect", handled).await)
        },
    ))
    .await
}
