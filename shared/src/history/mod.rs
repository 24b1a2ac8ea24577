//! History and recovery: a **stream** (one user's messages, or one group's)
//! keeps its recent messages so a client that was away can get what it
//! missed.
//!
//! - [`streams`] (rules): stream names, epochs, the `stream`/`offset`/`epoch`
//!   stamp on a message frame.
//! - [`log`] (logic): which streams keep history, and appending a message
//!   before it is fanned out.
//! - [`recovery`] (logic): reading a stream back for the `recover` and
//!   `history` actions, and telling when it cannot be recovered.
//!
//! Every message appended to a stream gets an **offset** (a u64, strictly
//! increasing within the stream, 1 for the first) and carries the stream's
//! **epoch** (a random string, new whenever the stream's counter is new or
//! was lost). A client that holds the last (offset, epoch) it saw recovers
//! exactly what it missed, or learns (`recovered:false`) that it cannot.

pub mod log;
pub mod recovery;
pub mod streams;

pub use log::{Recorder, keeps};
pub use streams::{Stream, new_epoch, stamp};
