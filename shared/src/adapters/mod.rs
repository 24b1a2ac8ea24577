//! Implementations of the [`crate::ports`] traits, and the token keys' store
//! ([`secrets_manager`]).

pub mod dynamodb;
pub mod management_api;
pub mod memory;
pub mod secrets_manager;
pub mod sqs;
