//! `$disconnect` Lambda: wiring only; the logic is `switchboard::handlers::disconnect`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::DynamoStore;
use switchboard::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let store = DynamoStore::new(aws::dynamodb(&aws::load().await), table);
    let store = &store;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handle_disconnect(store, &event.payload).await)
        },
    ))
    .await
}
