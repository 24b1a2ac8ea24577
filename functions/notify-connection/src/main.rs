//! notify-connection Lambda (SQS): wiring only; the logic is
//! `switchboard::handlers::notify_connection`.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::PostingPolicy;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::metrics::{self, Emf};
use switchboard::posting::Posting;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = aws::Wiring::load().await;
    let store = wiring.store()?;
    let policy = PostingPolicy::from_env()?;
    let gateway = wiring.gateway(&policy).await?;
    // Idempotency records live in the connections table.
    let posting = Posting::from(policy).with_sent_log(Arc::new(store.clone()));
    let (store, gateway, posting) = (&store, &gateway, &posting);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            metrics::measure(
                &Emf,
                "notify-connection",
                handle_notify_connection(store, gateway, posting, event.payload),
            )
            .await,
        )
    }))
    .await
}
