//! Containers: one file per operation (`create`, `start`, `attach` and `wait`, `stop` and
//! `kill`, `remove`, `query` for inspect/list/logs, `exec`, `archive`, `update`, `pause`,
//! `stats`) over the store (`store`: each container's [`Entry`] and record, lookup,
//! recovery at start, the exit task) and the pieces a start assembles (`spec`, `mounts`,
//! `host_opts`, `security_opts`, `lifecycle` for restart policies, `rootfs` for its
//! mount); a container's cgroup files are read and written through `berth-cgroups`. The
//! runtime and the rootfs mounter are the drivers berthd hands in ([`crate::Drivers`]);
//! the unit tests (`tests`) run the engine over fakes of both.
//!
//! The rootfs is an overlay mounted at `<exec-root>/containers/<id>/rootfs` while the
//! container runs; one task per running container waits on the runtime, records the exit,
//! unmounts and honours `AutoRemove`.

mod apparmor;
mod archive;
mod attach;
mod create;
mod create_fields;
mod cri;
mod exec;
#[cfg(test)]
mod fake;
pub mod fs_views;
#[cfg(test)]
mod fuzz;
pub(crate) mod health;
mod host_opts;
mod image_users;
mod init_layer;
mod lifecycle;
mod links;
mod list_filters;
mod logs;
pub(crate) mod mount_file;
pub(crate) mod mounts;
pub(crate) mod names;
mod pause;
mod process;
mod query;
mod record;
mod remove;
pub mod rootfs;
mod security_opts;
mod spec;
mod start;
mod stats;
mod stop;
mod store;
#[cfg(test)]
mod tests;
mod untar;
mod update;
mod userdb;
mod workdir;

use std::future::Future;
use std::pin::Pin;

use berth_runtime::RuntimeError;

pub use berth_runtime::AttachStreams;
pub use exec::{ExecConfig, ExecStart};
pub use health::HealthAction;
pub use logs::LogsOptions;
pub use stats::Top;

use crate::EngineError;

pub use attach::WaitCondition;
pub use create::{created_json, Created};
pub(crate) use query::net_peer;
pub(crate) use store::Containers;
use store::{AttachWaiter, Entry};

/// A future the server awaits after it has answered (attach, wait).
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send>>;

/// Checks the daemon's `log-driver` and `log-opts` as a container's would be checked.
pub(crate) fn check_log_defaults(config: &crate::EngineConfig) -> Result<(), EngineError> {
    let mut hc = berth_api_types::container::HostConfig::default();
    logs::settle_log_config(&mut hc, &config.log_driver, &config.log_opts)
        .map_err(|e| EngineError::InvalidArgument(format!("log-driver/log-opts: {e}")))
}

/// The runtime's name for a container: a 24-hex prefix of its ID, so that
/// `<exec-root>/containers/<rid>/shim.sock` fits a unix socket path.
fn rid(id: &str) -> &str {
    id.get(..24).unwrap_or(id)
}

fn rt_err(e: RuntimeError) -> EngineError {
    use berth_runtime::ErrorKind as K;
    match e.kind() {
        K::InvalidArgument => EngineError::InvalidArgument(e.to_string()),
        K::NotFound => EngineError::NotFound(e.to_string()),
        K::Conflict | K::NotRunning => EngineError::Conflict(e.to_string()),
        K::Internal => EngineError::Internal(e.to_string()),
    }
}

fn no_such(name: &str) -> EngineError {
    EngineError::NotFound(format!("No such container: {name}"))
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

fn not_running(id: &str) -> EngineError {
    EngineError::Conflict(format!("Container {id} is not running"))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
