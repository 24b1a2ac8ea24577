//! upstream Lambda (SQS, the Upstream queue): wiring only; the logic is
//! `switchboard::handlers::upstream`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::upstream::handle_upstream;
use switchboard::metrics::{self, Emf};

// One request at a time, I/O-bound: the current-thread runtime (a smaller bootstrap).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let sender = aws::Wiring::load().await.webhook_sender()?;
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            metrics::measure(&Emf, "upstream", handle_upstream(sender, event.payload)).await,
        )
    }))
    .await
}
