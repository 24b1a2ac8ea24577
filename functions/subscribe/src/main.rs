//! `subscribe` and `unsubscribe` Lambda: wiring only; the logic is
//! `switchboard::handlers::subscribe`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::{DynamoMemberships, DynamoStore};
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::subscribe::handle_subscription;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let memberships_table = config::required("MEMBERSHIPS_TABLE")?;
    let dynamodb = aws::dynamodb(&aws::load().await);
    let store = DynamoStore::new(dynamodb.clone(), table);
    let memberships = DynamoMemberships::new(dynamodb, memberships_table);
    let (store, memberships) = (&store, &memberships);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_subscription(store, memberships, &event.payload).await)
        },
    ))
    .await
}
