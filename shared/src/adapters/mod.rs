//! Implementations of the [`crate::ports`] traits.

pub mod dynamodb;
pub mod management_api;
pub mod memory;
pub mod sqs;
