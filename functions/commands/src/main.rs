//! commands Lambda (SQS): wiring only; the logic is `switchboard::handlers::commands`.

use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::commands::handle_commands;
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let services = Wiring::load().await.services_with_history().await?;
    let services = &services;
    lambda::run("commands", move |event: SqsEvent| {
        handle_commands(services, event)
    })
    .await
}
