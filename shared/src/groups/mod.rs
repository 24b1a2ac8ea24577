//! Groups: their names and permission patterns ([`names`], re-exported here)
//! and membership with presence ([`membership`]).

pub mod membership;
pub mod names;

pub use names::*;
