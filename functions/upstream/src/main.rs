//! upstream Lambda (SQS, the Upstream queue): wiring only; the logic is
//! `switchboard::handlers::upstream`.

use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::upstream::handle_upstream;
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let sender = Wiring::load().await.webhook_sender()?;
    let sender = &sender;
    lambda::run("upstream", move |event: SqsEvent| {
        handle_upstream(sender, event)
    })
    .await
}
