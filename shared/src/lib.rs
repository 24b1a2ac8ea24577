//! Switchboard: serverless WebSocket push for AWS.
//!
//! The library holds everything the Lambda functions and the local stack share:
//! - [`protocol`]: the frames clients send and receive, and the queue message shapes;
//! - [`validate`]: the rule for each field from an untrusted source (ids, reasons, ttls, groups);
//! - [`auth`]: client token verification (HS256, pinned) and minting;
//! - [`ports`]: the small traits handlers depend on (connection store, queue, gateway);
//! - [`adapters`]: DynamoDB, SQS, API Gateway Management API and in-memory implementations;
//! - [`handlers`]: one module per route or queue, holding the logic;
//! - [`config`] and [`aws`]: the one place that reads the environment and builds AWS clients.

pub mod adapters;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod groups;
pub mod handlers;
pub mod lazy;
pub mod ports;
pub mod protocol;
pub mod sync;
pub mod validate;

/// Re-exported so callers build events with the same types the handlers take.
pub use aws_lambda_events;
