//! notify-user Lambda (SQS): wiring only; the logic is `switchboard::handlers::notify_user`.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard::adapters::memory::MemoryMemberships;
use switchboard::aws;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::config::{EnqueuePolicy, HistorySettings, Settings};
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::metrics::{self, Emf};
use switchboard::ports::History;
use switchboard::services::Services;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = aws::Wiring::load().await;
    let settings = Settings {
        enqueue: EnqueuePolicy::from_env()?,
        history: HistorySettings::from_env()?,
        ..Settings::default()
    };
    let services = Services {
        store: Arc::new(wiring.store()?),
        // notify-user reads no memberships and posts to no connection: stand-ins, no SDK clients.
        memberships: Arc::new(MemoryMemberships::new()),
        gateway: Arc::new(aws::NoGateway),
        // Its fan-out goes to the NotifyConnection queue.
        deliveries: Arc::new(wiring.queue("NOTIFY_CONNECTION_QUEUE_URL")?),
        sent_log: None,
        // HISTORY_TABLE unset: no history (every connection gets the data itself).
        history: wiring.history().map(|h| Arc::new(h) as Arc<dyn History>),
        settings: Arc::new(settings),
        upstream: Default::default(),
    };
    let services = &services;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let handled = notify_user_batch(services, event.payload);
        Ok::<_, Error>(
            metrics::measure(&Emf, "notify-user", handled)
                .await
                .into_response(),
        )
    }))
    .await
}
