//! commands Lambda (SQS): wiring only; the logic is `switchboard::handlers::commands`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::dynamodb::DynamoMemberships;
use switchboard::adapters::sqs::SqsQueue;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::NotifyUserOptions;
use switchboard::handlers::commands::handle_commands;
use switchboard::{aws, config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let memberships_table = config::required("MEMBERSHIPS_TABLE")?;
    let deliveries_url = config::required("DELIVERIES_QUEUE_URL")?;
    let options = NotifyUserOptions::from_env()?;
    let sdk = aws::load().await;
    let memberships = DynamoMemberships::new(aws::dynamodb(&sdk), memberships_table);
    let deliveries = SqsQueue::new(aws::sqs(&sdk), deliveries_url);
    let (memberships, deliveries, options) = (&memberships, &deliveries, &options);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_commands(memberships, deliveries, options, event.payload).await)
    }))
    .await
}
