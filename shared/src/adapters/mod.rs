//! Implementations of the [`crate::ports`] traits, and the token keys' store
//! ([`secrets_manager`]).

pub mod aws_json;
pub mod call_log;
pub mod dynamodb;
pub mod eventbridge;
pub mod http;
pub mod jwks;
pub mod management_api;
pub mod memory;
pub mod no_gateway;
pub mod no_memberships;
pub mod secrets_manager;
pub mod sigv4;
pub mod sqs;
