//! Support for Syncline's end-to-end suites and benchmarks.
//!
//! - [`api`]: a client for the server's HTTP API.
//! - [`server`]: runs the real `syncline-server` binary on a loopback port, reads its log and
//!   metrics, and stops it by process id (SIGTERM or SIGKILL).
//! - [`native`]: helpers for suites that drive the native client library.
//! - [`radicale`]: a real CalDAV server (Radicale) on loopback.
//! - [`receiver`]: a webhook receiver on loopback that fails on purpose.
//! - [`tokens`]: access tokens for servers with an `[auth]` section.
//! - [`peer`]: a protocol peer over a real WebSocket that creates, changes and opens documents
//!   and waits for the server's durable acknowledgement; also sends raw messages and frames.
//!
//! The suites in `tests/tests/` use real components only: the real binary, real redb files, and
//! real WebSockets.

pub mod api;
pub mod native;
pub mod peer;
pub mod radicale;
pub mod receiver;
pub mod server;
pub mod tokens;
