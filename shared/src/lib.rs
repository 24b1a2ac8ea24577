//! Switchboard: serverless WebSocket push for AWS.
//!
//! The library holds everything the Lambda functions and the local stack
//! share, layered bottom-up:
//! - rules and wire formats: [`clock`], [`sync`], [`lazy`], [`validate`],
//!   [`protocol`], [`auth`], [`groups`], [`connection`], [`routes`],
//!   [`rate`] (the token bucket), [`history`] (streams, epochs, the stamp);
//! - [`ports`]: the small traits the logic depends on (connection store,
//!   memberships, queue, gateway, sent log, history);
//! - policies, each with the code it governs ([`enqueue::EnqueuePolicy`],
//!   [`posting::PostingPolicy`], [`history::HistorySettings`],
//!   [`upstream::UpstreamSettings`]), and [`services`] (the ports and
//!   [`services::Settings`] a handler runs on);
//! - logic: [`fanout`], [`membership`], [`recorder`], [`recovery`], [`posting`], [`batch`],
//!   [`command_runner`], [`replies`], [`limits`], and [`handlers`] (one module per
//!   route or queue);
//! - [`config`]: the one reader of the environment (each policy's `from_env`);
//! - [`metrics`]: counters per invocation, written as CloudWatch EMF lines;
//! - [`adapters`]: DynamoDB, SQS, API Gateway Management API and in-memory
//!   implementations of the ports;
//! - [`webhook`]: the signature on every request to the application, and
//!   [`webhook::verify`] for Rust receivers; [`upstream`]: upstream events,
//!   their sinks and the synchronous hooks;
//! - [`aws`]: SDK clients and connectors; [`wiring`]: the one wiring builder
//!   every function uses; [`lambda`]: the skeleton every function's main shares.

pub mod adapters;
pub mod auth;
pub mod aws;
pub mod batch;
pub mod clock;
pub mod command_runner;
pub mod config;
pub mod connection;
pub mod enqueue;
pub mod fanout;
pub mod groups;
pub mod handlers;
pub mod history;
pub mod lambda;
pub mod lazy;
pub mod limits;
pub mod logs;
pub mod membership;
pub mod metrics;
pub mod oidc;
pub mod pacing;
pub mod ports;
pub mod posting;
pub mod protocol;
pub mod rate;
pub mod recorder;
pub mod recovery;
pub mod replies;
pub mod retry;
pub mod routes;
pub mod services;
pub mod sync;
pub mod upstream;
pub mod validate;
pub mod webhook;
pub mod wiring;

/// Re-exported so callers build events with the same types the handlers take.
pub use aws_lambda_events;
pub use tracing;
