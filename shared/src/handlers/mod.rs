//! One module per route or queue, and nothing else. Each takes the real
//! Lambda event type and the ports it needs, so the Lambdas and the local
//! stack run the same code.

pub mod actions;
pub mod commands;
pub mod connect;
pub mod default;
pub mod deliver;
pub mod disconnect;
pub mod history;
pub mod http_api;
pub mod notify_connection;
pub mod notify_user;
pub mod ping;
pub mod recover;
pub mod upstream;
