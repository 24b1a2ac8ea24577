//! notify-user Lambda (SQS): wiring only; the logic is `switchboard::handlers::notify_user`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::EnqueuePolicy;
use switchboard::handlers::notify_user::handle_notify_user;
use switchboard::metrics::{self, Emf};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let wiring = aws::Wiring::load().await;
    let store = wiring.store()?;
    let queue = wiring.queue("NOTIFY_CONNECTION_QUEUE_URL")?;
    let policy = EnqueuePolicy::from_env()?;
    let (store, queue, policy) = (&store, &queue, &policy);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            metrics::measure(
                &Emf,
                "notify-user",
                handle_notify_user(store, queue, policy, event.payload),
            )
            .await,
        )
    }))
    .await
}
