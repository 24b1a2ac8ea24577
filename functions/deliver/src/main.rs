//! deliver Lambda (SQS): wiring only; the logic is `switchboard::handlers::deliver`.

use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::deliver::handle_deliveries;
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let services = Wiring::load().await.services().await?;
    let services = &services;
    lambda::run("deliver", move |event: SqsEvent| {
        handle_deliveries(services, event)
    })
    .await
}
