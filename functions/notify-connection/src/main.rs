//! notify-connection Lambda (SQS): wiring only; the logic is
//! `switchboard::handlers::notify_connection`.

use std::sync::Arc;

use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::lambda::{self, Error};
use switchboard::posting::{Posting, PostingPolicy};
use switchboard::wiring::Wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
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
    lambda::run("notify-connection", move |event: SqsEvent| {
        handle_notify_connection(store, gateway, posting, event)
    })
    .await
}
