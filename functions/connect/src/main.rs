//! `$connect` Lambda: wiring only; the logic is `switchboard::handlers::connect`.

use std::sync::Arc;

use switchboard::auth::{TokenIssuers, TokenPolicy, TokenVerifier};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::connect::handle_connect;
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let policy = TokenPolicy::from_env()?;
    let wiring = Wiring::load().await;
    // Read on the first connection (TOKEN_SECRET_ARN), not during init; an
    // unreadable secret refuses connections with 500 until a read succeeds.
    let keys = wiring.token_keys();
    // OIDC issuers (OIDC_ISSUERS): their keys are fetched on the first token
    // of each and cached while the instance is warm.
    let oidc = wiring
        .oidc(&policy)?
        .map(|oidc| oidc as Arc<dyn TokenIssuers>);
    let upstream = wiring.upstream()?;
    let services = wiring
        .services_without_posts()?
        .with_upstream(upstream.into());
    let (services, keys, policy, oidc) = (&services, &keys, &policy, &oidc);
    lambda::run(
        "connect",
        move |event: ApiGatewayWebsocketProxyRequest| async move {
            let verifier = keys
                .keys()
                .await
                .map(|k| TokenVerifier::with_keys(k, policy).with_issuers(oidc.clone()));
            if let Err(e) = &verifier {
                switchboard::tracing::error!(error = %e, "no token keys: connection refused");
            }
            handle_connect(services, &verifier, &event).await
        },
    )
    .await
}
