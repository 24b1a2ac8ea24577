//! commands Lambda (SQS): wiring only; the logic is `switchboard::handlers::commands`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::commands::handle_commands;
use switchboard::metrics::{self, Emf};

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let services = aws::Wiring::load().await.services_with_history().await?;
    let services = &services;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            metrics::measure(&Emf, "commands", handle_commands(services, event.payload)).await,
        )
    }))
    .await
}
