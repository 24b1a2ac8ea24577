//! deliver Lambda (SQS): wiring only; the logic is `switchboard::handlers::deliver`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::deliver::handle_deliveries;
use switchboard::metrics::{self, Emf};

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let services = aws::Wiring::load().await.services().await?;
    let services = &services;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            metrics::measure(&Emf, "deliver", handle_deliveries(services, event.payload)).await,
        )
    }))
    .await
}
