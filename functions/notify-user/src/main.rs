//! notify-user Lambda (SQS): wiring only; the logic is `switchboard::handlers::notify_user`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::DynamoStore;
use switchboard::adapters::sqs::SqsQueue;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::NotifyUserOptions;
use switchboard::handlers::notify_user::handle_notify_user;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = config::required("TABLE_NAME")?;
    let queue_url = config::required("NOTIFY_CONNECTION_QUEUE_URL")?;
    let options = NotifyUserOptions::from_env()?;
    let sdk = aws::load().await;
    let store = DynamoStore::new(aws::lazy_dynamodb(&sdk), table);
    let queue = SqsQueue::new(aws::lazy_sqs(&sdk), queue_url);
    let (store, queue, options) = (&store, &queue, &options);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_notify_user(store, queue, options, event.payload).await)
    }))
    .await
}
