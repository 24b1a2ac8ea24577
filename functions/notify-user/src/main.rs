//! notify-user Lambda (SQS): wiring only; the logic is `switchboard::handlers::notify_user`.

use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::enqueue::EnqueuePolicy;
use switchboard::handlers::notify_user::handle_notify_user_recorded;
use switchboard::history::{HistorySettings, Recorder};
use switchboard::lambda::{self, Error};
use switchboard::wiring::Wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard::logs::init();
    let wiring = Wiring::load().await;
    let store = wiring.store()?;
    let queue = wiring.queue("NOTIFY_CONNECTION_QUEUE_URL")?;
    let policy = EnqueuePolicy::from_env()?;
    // HISTORY_TABLE unset: no history (every message is delivered as before).
    let history = wiring.history();
    let settings = HistorySettings::from_env()?;
    let (store, queue, policy, history, settings) = (&store, &queue, &policy, &history, &settings);
    lambda::run("notify-user", move |event: SqsEvent| {
        let recorder = history
            .as_ref()
            .map(|history| Recorder { history, settings });
        handle_notify_user_recorded(store, queue, policy, recorder, event)
    })
    .await
}
