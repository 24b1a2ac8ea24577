//! `$connect` Lambda: wiring only; the logic is `switchboard::handlers::connect`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::{DynamoMemberships, DynamoStore};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::connect::handle_connect;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let memberships_table = config::required("MEMBERSHIPS_TABLE")?;
    let verifier = config::token_verifier();
    if let Err(e) = &verifier {
        lambda_runtime::tracing::error!(error = %e, "every connection will be refused");
    }
    let dynamodb = aws::dynamodb(&aws::load().await);
    let store = DynamoStore::new(dynamodb.clone(), table);
    let memberships = DynamoMemberships::new(dynamodb, memberships_table);
    let (store, memberships, verifier) = (&store, &memberships, &verifier);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_connect(store, memberships, verifier, &event.payload).await)
        },
    ))
    .await
}
