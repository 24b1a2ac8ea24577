//! deliver Lambda (SQS): wiring only; the logic is `switchboard::handlers::deliver`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::deliver::handle_deliveries;
use switchboard::metrics::{self, Emf};
use switchboard::retry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let services = aws::Wiring::load().await.services().await?;
    let services = &services;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Retries inside the invocation stop in time for the function's deadline.
        let deadline = retry::deadline_from_epoch_millis(event.context.deadline);
        let handled = handle_deliveries(services, event.payload);
        let handled = retry::with_deadline(deadline, handled);
        Ok::<_, Error>(metrics::measure(&Emf, "deliver", handled).await)
    }))
    .await
}
