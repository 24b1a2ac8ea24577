//! notify-connection Lambda (SQS): wiring only; the logic is
//! `switchboard::handlers::notify_connection`.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::metrics::{self, Emf};
use switchboard::posting::Posting;
use switchboard::posting::PostingPolicy;
use switchboard::retry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = aws::Wiring::load().await;
    let store = wiring.store()?;
    let policy = PostingPolicy::from_env()?;
    let gateway = wiring.gateway(&policy).await?;
    // Idempotency records live in the connections table; a failed record is
    // handed back to this function's own queue for a try in seconds.
    let queue = wiring.queue("NOTIFY_CONNECTION_QUEUE_URL")?;
    let posting = Posting::from(policy)
        .with_sent_log(Arc::new(store.clone()))
        .with_queue(Arc::new(queue));
    let (store, gateway, posting) = (&store, &gateway, &posting);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Retries inside the invocation stop in time for the function's deadline.
        let deadline = retry::deadline_from_epoch_millis(event.context.deadline);
        let handled = handle_notify_connection(store, gateway, posting, event.payload);
        let handled = retry::with_deadline(deadline, handled);
        Ok::<_, Error>(metrics::measure(&Emf, "notify-connection", handled).await)
    }))
    .await
}
