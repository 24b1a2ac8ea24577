//! Wire formats: client frames, server frames and queue messages.
//!
//! One place parses client frames and one place renders what a client receives,
//! so every route answers malformed input the same way. Everything is
//! re-exported here: callers name `crate::protocol::X`, not the file it lives in.
//! - [`client_frames`]: client frames in, each parsed once into a [`ClientFrame`];
//! - [`server_frames`]: the frames a client receives (errors, acks, close,
//!   presence, recovery and history markers), rendered by [`render`];
//! - [`messages`]: queue bodies (NotifyUser, NotifyConnection, Deliveries batches)
//!   and the message frames they deliver;
//! - [`command_messages`]: Commands queue messages and their parser.
//!
//! Field rules (ids, reasons, ttls) live in [`crate::validate`]; the limits are
//! re-exported here for the callers that name them through this module.

pub mod client_frames;
pub mod command_messages;
pub mod messages;
pub mod server_frames;

pub use client_frames::*;
pub use command_messages::*;
pub use messages::*;
pub use server_frames::*;

pub use crate::validate::{MAX_MESSAGE_ID_BYTES, MAX_REASON_BYTES, MAX_USER_ID_BYTES};
