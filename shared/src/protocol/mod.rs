//! Wire formats: client frames, server frames and queue messages.
//!
//! One place parses client frames and one place renders what a client receives,
//! so every route answers malformed input the same way. Everything is
//! re-exported here: callers name `crate::protocol::X`, not the file it lives in.
//! - [`frames`]: client frames in, server frames out (errors, acks, close, presence);
//! - [`messages`]: queue bodies (NotifyUser, NotifyConnection, Deliveries batches)
//!   and the message frames they deliver;
//! - [`command_messages`]: Commands queue messages and their parser.
//!
//! Field rules (ids, reasons, ttls) live in [`crate::validate`]; the limits are
//! re-exported here for the callers that name them through this module.

pub mod command_messages;
pub mod frames;
pub mod messages;

pub use command_messages::*;
pub use frames::*;
pub use messages::*;

pub use crate::validate::{MAX_MESSAGE_ID_BYTES, MAX_REASON_BYTES, MAX_USER_ID_BYTES};
