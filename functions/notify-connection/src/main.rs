//! notify-connection Lambda (SQS): wiring only; the logic is
//! `switchboard::handlers::notify_connection`.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::DynamoStore;
use switchboard::adapters::management_api::ManagementApi;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::NotifyConnectionOptions;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let endpoint = config::required("WEBSOCKET_ENDPOINT")?;
    let sdk = aws::load().await;
    let store = DynamoStore::new(aws::lazy_dynamodb(&sdk), table);
    // Idempotency records live in the connections table.
    let options = NotifyConnectionOptions::from_env()?.with_sent_log(Arc::new(store.clone()));
    let gateway = ManagementApi::new(aws::lazy_management_api(&sdk, &endpoint, &options));
    if options.warm_connections {
        gateway.warm_up().await;
    }
    let (store, gateway, options) = (&store, &gateway, &options);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_notify_connection(store, gateway, options, event.payload).await)
    }))
    .await
}
