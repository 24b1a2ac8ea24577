//! notify-user Lambda (SQS): wiring only; the logic is `switchboard::handlers::notify_user`.

use std::sync::Arc;

use switchboard::adapters::no_gateway::NoGateway;
use switchboard::adapters::no_memberships::NoMemberships;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::enqueue::EnqueuePolicy;
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::history::HistorySettings;
use switchboard::lambda::{self, Error};
use switchboard::services::{Services, Settings};
use switchboard::wiring::Wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
    let settings = Settings {
        enqueue: EnqueuePolicy::from_env()?,
        ..Settings::default()
    };
    let services = Services::new(
        Arc::new(wiring.store()?),
        // notify-user reads no memberships and posts to no connection: stand-ins that refuse every call, no SDK clients.
        Arc::new(NoMemberships),
        Arc::new(NoGateway),
        // Its fan-out goes to the NotifyConnection queue.
        Arc::new(wiring.queue("NOTIFY_CONNECTION_QUEUE_URL")?),
        settings,
    );
    let history_settings = HistorySettings::from_env()?;
    // HISTORY_TABLE unset: no history (every connection gets the data itself).
    let services = match wiring.history() {
        Some(history) => services.with_history(Arc::new(history), history_settings),
        None => services.with_history_settings(history_settings),
    };
    let services = &services;
    lambda::run("notify-user", move |event: SqsEvent| async move {
        notify_user_batch(services, event).await.into_response()
    })
    .await
}
