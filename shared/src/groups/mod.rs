//! Groups: their names and the permission patterns tokens grant ([`names`],
//! re-exported here). Membership is [`crate::membership`].

pub mod names;

pub use names::*;
