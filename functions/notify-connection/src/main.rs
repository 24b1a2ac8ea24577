//! notify-connection Lambda (SQS): wiring only; the logic is
//! `switchboard::handlers::notify_connection`.

use std::sync::Arc;

use switchboard::adapters::no_memberships::NoMemberships;
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::lambda::{self, Error};
use switchboard::posting::PostingPolicy;
use switchboard::retry;
use switchboard::services::{Services, Settings};
use switchboard::wiring::Wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
    let store = Arc::new(wiring.store()?);
    let policy = PostingPolicy::from_env()?;
    let gateway = wiring.gateway(&policy).await?;
    let services = Services::new(
        store.clone(),
        // notify-connection reads no memberships: a stand-in that refuses every call, no SDK client.
        Arc::new(NoMemberships),
        Arc::new(gateway),
        // A failed record is handed back to this function's own queue for a try in seconds.
        Arc::new(wiring.queue("NOTIFY_CONNECTION_QUEUE_URL")?),
        Settings {
            posting: policy,
            ..Settings::default()
        },
    )
    // Idempotency records live in the connections table.
    .with_sent_log(store);
    // Posts in flight in this instance, learnt across its invocations.
    let limit = retry::AdaptiveLimit::new(services.settings.posting.concurrency);
    let (services, limit) = (&services, &limit);
    lambda::run("notify-connection", move |event: SqsEvent| {
        handle_notify_connection(services, limit, event)
    })
    .await
}
