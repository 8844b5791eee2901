//! The [`Runtime`] trait: what the engine asks of an OCI runtime backend, one container at
//! a time. [`crate::ShimRuntime`] is the real implementation (the engine's unit tests use
//! a fake): its shim runs each container
//! through the embedded libcontainer or through an external runtime binary (runc), as
//! [`ContainerStart::runtime`] says, and serves every later request the same way.
//!
//! # Contract
//!
//! - **Create.** [`Runtime::create`] writes the bundle and returns once the container's
//!   init exists (running, unless [`ContainerStart::defer_start`]). The engine has already
//!   mounted the rootfs (the spec's `root.path`) and prepared the network namespace.
//! - **Reaping.** The backend's monitor reaps init and records the exit; the engine learns
//!   it through [`Runtime::wait`] (or [`Runtime::state`] after a restart). Nothing in the
//!   daemon is a parent of a container process.
//! - **Survival.** Containers and monitors outlive the daemon; after a restart the engine
//!   calls [`Runtime::list`] and [`Runtime::state`] to reattach.
//! - **Cleanup.** When init exits the backend removes the container's cgroups and its own
//!   state. [`Runtime::delete`] removes the exec directory once the container has
//!   stopped; the engine unmounts the rootfs (first) and removes the cgroup parents and
//!   the log.

use std::future::Future;
use std::pin::Pin;

use berth_shim_protocol::{ExecProcess, ExecState, ExitRecord, ExternalRuntime, LogOptions, State};
use oci_spec::runtime::Spec;
use tokio::net::UnixStream;

use crate::RuntimeError;

/// What [`Runtime::create`] needs.
#[derive(Debug, Clone)]
pub struct ContainerStart {
    pub id: String,
    pub spec: Spec,
    /// json-file log; `None` discards output.
    pub log: Option<LogOptions>,
    /// `OpenStdin`.
    pub open_stdin: bool,
    /// `StdinOnce`.
    pub stdin_once: bool,
    /// Create only; [`Runtime::start`] starts (so a client can attach first).
    pub defer_start: bool,
    /// The external OCI runtime (runc) that runs this container; `None`: the embedded
    /// libcontainer. Either way the same shim monitors it.
    pub runtime: Option<ExternalRuntime>,
}

/// The container is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Init's pid on the host.
    pub pid: i32,
    /// The monitor's pid.
    pub shim_pid: i32,
}

/// Which streams an attach carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// What every [`Runtime`] method returns: a boxed future, so that the engine can hold any
/// runtime as `Arc<dyn Runtime>` (the shim client, or a fake in tests). One allocation per
/// call, next to a unix-socket round trip to the shim.
pub type RuntimeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RuntimeError>> + Send + 'a>>;

/// The operations on one container: everything the engine asks of a runtime. Every
/// method names the container by id.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// Writes the bundle and creates the container; starts it unless deferred. A process
    /// that cannot run is [`RuntimeError::StartFailed`] with Docker's exit code.
    fn create(&self, req: ContainerStart) -> RuntimeFuture<'_, Started>;

    /// Starts a container created with `defer_start`.
    fn start<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// The container's state; a stopped one carries its [`ExitRecord`].
    fn state<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, State>;

    /// Signals init, or with `all` every process of the container.
    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> RuntimeFuture<'a, ()>;

    /// Resolves when the container has exited.
    fn wait<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ExitRecord>;

    /// A connection carrying the container's streams: Docker's multiplexed frames
    /// without a tty, raw bytes with one; what is written to it goes to stdin. The server
    /// splices it to the client's upgraded connection.
    fn attach<'a>(&'a self, id: &'a str, streams: AttachStreams) -> RuntimeFuture<'a, UnixStream>;

    /// Sets the terminal size.
    fn resize<'a>(&'a self, id: &'a str, width: u16, height: u16) -> RuntimeFuture<'a, ()>;

    /// Freezes every process of the container.
    fn pause<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// Thaws a paused container.
    fn resume<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// Closes the container's log file and opens its path again (CRI log rotation).
    fn reopen_log<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// Starts a process in the running container; with `attach`, also returns its streams.
    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec_id: &'a str,
        process: ExecProcess,
        attach: bool,
    ) -> RuntimeFuture<'a, (i32, Option<UnixStream>)>;

    /// An exec's pid, whether it runs, and its exit code.
    fn exec_state<'a>(&'a self, id: &'a str, exec_id: &'a str) -> RuntimeFuture<'a, ExecState>;

    /// Resolves when the exec has exited, with its exit code; NotRunning if the
    /// container (and with it the process) went first.
    fn exec_wait<'a>(&'a self, id: &'a str, exec_id: &'a str) -> RuntimeFuture<'a, ExecState>;

    /// Sets an exec's terminal size.
    fn exec_resize<'a>(
        &'a self,
        id: &'a str,
        exec_id: &'a str,
        width: u16,
        height: u16,
    ) -> RuntimeFuture<'a, ()>;

    /// Removes what the backend keeps for a stopped container. Refuses a running one.
    fn delete<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()>;

    /// The containers the backend knows (running or with an uncollected exit).
    fn list(&self) -> RuntimeFuture<'_, Vec<String>>;
}
