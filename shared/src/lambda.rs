//! The skeleton every function's main shares: the Lambda runtime's loop
//! around one handler, each invocation within its deadline and measured.
//! Each main keeps its own wiring (and its own runtime flavour): it calls
//! [`crate::logs::init`], builds what its handler needs, and hands the
//! handler to [`run`] (or, for the routes that count nothing, [`run_uncounted`]).

use std::future::Future;

pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics::{self, Emf};
use crate::retry;

/// Serves `handler` until the runtime stops: each invocation runs within its
/// deadline ([`retry::with_deadline`]: in-invocation retries and hook waits
/// end in time) and is counted as `name` ([`metrics::measure`]: one EMF line).
pub async fn run<E, R, F, Fut>(name: &'static str, handler: F) -> Result<(), Error>
where
    E: DeserializeOwned + Send,
    R: Serialize,
    F: Fn(E) -> Fut,
    Fut: Future<Output = R>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        let deadline = retry::deadline_from_epoch_millis(event.context.deadline);
        let handled = retry::with_deadline(deadline, handler(event.payload));
        Ok::<_, Error>(metrics::measure(&Emf, name, handled).await)
    }))
    .await
}

/// Serves `handler`, whose answers take no I/O and count nothing (ping, default).
pub async fn run_uncounted<E, R, F>(handler: F) -> Result<(), Error>
where
    E: DeserializeOwned + Send,
    R: Serialize,
    F: Fn(E) -> R,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        Ok::<_, Error>(handler(event.payload))
    }))
    .await
}
