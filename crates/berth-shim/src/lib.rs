//! The shim ↔ daemon contract: the types `berth-runtime` and the `berth-shim` binary both
//! speak, and a small blocking client. The monitor itself lives in the binary
//! (`src/monitor/`), so users of these types do not build libcontainer (feature `monitor`).
//!
//! # Lifecycle
//!
//! 1. The daemon writes `<bundle>/config.json`, runs `berth-shim` with one JSON
//!    [`StartOptions`] on its stdin and reads one JSON [`StartReply`] from its stdout. The
//!    process the daemon started forks the real monitor, relays its reply and exits (status 0
//!    when the container was created, 1 otherwise), so the daemon never has a long-lived
//!    child to reap and the monitor survives the daemon. The daemon must wait for that
//!    short-lived process.
//! 2. The monitor (`setsid`, child subreaper, its own cgroup when asked) creates the container
//!    through libcontainer (or the external runtime of [`StartOptions::runtime`]), starts
//!    it unless [`StartOptions::defer_start`], writes [`PID_FILE`] and serves [`Request`]s
//!    on the unix socket [`SOCKET_NAME`] in [`StartOptions::dir`], one JSON line each way
//!    per request ([`client::Client`]).
//! 3. When the container's init exits, the monitor drains its output (at most
//!    [`DRAIN_TIMEOUT_MS`]), reads the OOM counter, deletes the container (cgroup and
//!    libcontainer state), writes [`EXIT_FILE`] atomically, answers every pending
//!    [`Request::Wait`], closes attach streams, removes [`SOCKET_NAME`], leaves its cgroup,
//!    removes [`PID_FILE`] (its absence means the monitor is done) and exits. `exit.json` is the durable record: a daemon that finds no socket (or a
//!    closed connection) reads it. The daemon removes the directory when it removes the
//!    container; the monitor never deletes the bundle, the rootfs or the log.
//! 4. A failed create or start still writes [`EXIT_FILE`] (exit code 127, 126 or 128 and the
//!    error), replies [`StartReply::Failed`] and leaves nothing else behind.

#![forbid(unsafe_code)]

pub mod client;
pub mod protocol;
pub mod timefmt;

pub use protocol::*;
