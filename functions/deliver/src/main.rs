//! deliver Lambda (SQS): wiring only; the logic is `switchboard::handlers::deliver`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::{DynamoMemberships, DynamoStore};
use switchboard::adapters::management_api::ManagementApi;
use switchboard::adapters::sqs::SqsQueue;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::{NotifyConnectionOptions, NotifyUserOptions};
use switchboard::handlers::FanoutPorts;
use switchboard::handlers::deliver::handle_deliveries;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let memberships_table = config::required("MEMBERSHIPS_TABLE")?;
    let deliveries_url = config::required("DELIVERIES_QUEUE_URL")?;
    let endpoint = config::required("WEBSOCKET_ENDPOINT")?;
    let posting = NotifyConnectionOptions::from_env()?;
    let enqueueing = NotifyUserOptions::from_env()?;
    let sdk = aws::load().await;
    let dynamodb = aws::dynamodb(&sdk);
    let store = DynamoStore::new(dynamodb.clone(), table);
    let memberships = DynamoMemberships::new(dynamodb, memberships_table);
    let gateway = ManagementApi::new(aws::management_api(
        &sdk,
        &endpoint,
        posting.post_timeout,
        posting.post_attempts,
    ));
    let retries = SqsQueue::new(aws::sqs(&sdk), deliveries_url);
    let ports = FanoutPorts {
        store: &store,
        memberships: &memberships,
        gateway: &gateway,
        deliveries: &retries,
    };
    let (ports, posting, enqueueing) = (&ports, &posting, &enqueueing);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_deliveries(ports, posting, enqueueing, event.payload).await)
    }))
    .await
}
