//! Switchboard's local stack: the whole WebSocket API on one machine.
//!
//! It emulates API Gateway's WebSocket semantics (the handshake is held while
//! `$connect` runs, route selection on `$request.body.action`, route
//! responses, 128 KB messages, 32 KB frames, idle and maximum-duration
//! timeouts, `$disconnect`), serves the Management API on the same port, and
//! drives the queue handlers with SQS semantics. It calls the same handler
//! code as the Lambdas.
//!
//! From the bottom up: `logs` (text or JSON lines), `ids` and `events` (what API Gateway and SQS hand a
//! handler), `config`, `connections`, `queues` and `producer`, `management`
//! (the Management API's post and delete), `storage`, `stack` (the shared
//! state and [`RunningStack`]), `websocket`, `server` (HTTP on one port),
//! `access` (the API key a stack listening beyond loopback requires), `metrics`
//! (`GET /metrics`, Prometheus text), `demo`
//! (the demo page), `emulation` (AWS's account throttle and each hop's
//! latency), `delayed` (DynamoDB's latency around the stores) and `virtual_connections` (connections without sockets, for scale runs),
//! and `start`, which wires them.

mod access;
mod answers;
pub mod config;
pub mod connections;
pub mod delayed;
pub mod demo;
pub mod emulation;
pub mod events;
pub mod ids;
pub mod logs;
mod management;
pub mod metrics;
mod producer;
pub mod queues;
mod server;
mod stack;
mod start;
mod storage;
pub mod virtual_connections;
mod websocket;

pub use access::UNAUTHORIZED;
pub use config::StartError;
pub use config::{
    Backend, Config, GatewayMode, IDLE_TIMEOUT, MAX_DURATION, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES,
    MAX_QUEUE_MESSAGE_BYTES, MAX_REQUEST_BODY_BYTES, OUTBOUND_LIMIT_BYTES, UpstreamConfig,
};
pub use stack::{ManagementStats, RunningStack};
pub use start::start;
