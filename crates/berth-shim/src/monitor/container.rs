//! The container's backend: libcontainer in this process (create, start, exec, delete,
//! and turning its errors into a message and Docker's exit code), or an external runtime
//! binary ([`super::oci_cli`]); [`Backend`] gives the monitor one face for both.
//! Everything here forks. libcontainer does not reset the signal mask of the processes it
//! makes, so its executor does ([`CleanSignals`]); `std::process::Command`, which runs the
//! external runtime, resets it itself. libcontainer 0.7 drops the container's seccomp
//! filter from an exec'd process's spec, so the executor loads it there too (compiled
//! once per container: [`super::exec_seccomp`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_sys::seccomp::SeccompProgram;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::{Capability, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use super::oci_cli::{ExecCommand, OciCli, RuntimeCommand};
pub use super::request::{ChildStdio, Op};

/// libcontainer's default executor, after undoing what the monitor's signal set-up would
/// leak into the container: the blocked SIGCHLD (for the signalfd) and Rust's ignored
/// SIGPIPE, both inherited across `execve`.
#[derive(Clone)]
struct CleanSignals;

impl Executor for CleanSignals {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        SigSet::all()
            .thread_unblock()
            .map_err(|e| ExecutorError::Other(e.to_string()))?;
        berth_sys::process::restore_default_signal(Signal::SIGPIPE)
            .map_err(|e| ExecutorError::Other(e.to_string()))?;
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// [`CleanSignals`] for an exec'd process, which first loads the container's seccomp
/// filter, compiled once per container ([`super::exec_seccomp`]; runc gives exec'd
/// processes the container's filter, libcontainer 0.7's tenant builder leaves it out).
/// Loading a filter needs `CAP_SYS_ADMIN` or `no_new_privs`: by now the process has its
/// final capabilities, so one without `CAP_SYS_ADMIN` gets `no_new_privs` first (runc
/// loads it before dropping capabilities instead, which libcontainer offers no hook for).
#[derive(Clone)]
struct ExecWithSeccomp(Option<Arc<SeccompProgram>>);

impl Executor for ExecWithSeccomp {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(program) = &self.0 {
            let process = spec.process().as_ref();
            let nnp = process.and_then(|p| p.no_new_privileges()) == Some(true);
            let admin = process
                .and_then(|p| p.capabilities().as_ref())
                .and_then(|c| c.effective().as_ref())
                .is_some_and(|e| e.contains(&Capability::SysAdmin));
            let set_nnp = || {
                nix::sys::prctl::set_no_new_privs()
                    .map_err(|e| ExecutorError::Other(format!("no_new_privs: {e}")))
            };
            if !nnp && !admin {
                set_nnp()?;
            }
            if program.load().is_err() {
                set_nnp()?;
                program
                    .load()
                    .map_err(|e| ExecutorError::Other(format!("seccomp: {e}")))?;
            }
        }
        CleanSignals.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        CleanSignals.validate(spec)
    }
}

fn with_stdio(b: ContainerBuilder, stdio: ChildStdio) -> ContainerBuilder {
    with_stdio_as(b, stdio, CleanSignals)
}

fn with_stdio_as(
    b: ContainerBuilder,
    stdio: ChildStdio,
    executor: impl Executor + 'static,
) -> ContainerBuilder {
    let b = b.with_executor(executor);
    match stdio {
        ChildStdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => b.with_stdin(stdin).with_stdout(stdout).with_stderr(stderr),
        ChildStdio::Console(path) => b.with_console_socket(Some(path)),
    }
}

/// An error with its sources, one line.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

/// Creates container `id` from `bundle` with state under `root`; init waits for `start`.
pub fn create(
    id: &str,
    root: &Path,
    bundle: &Path,
    stdio: ChildStdio,
) -> Result<Container, String> {
    let builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(root)
        .map_err(|e| describe(&e))?;
    with_stdio(builder, stdio)
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| describe(&e))
}

/// Init's pid (libcontainer speaks an older nix).
pub fn init_pid(c: &Container) -> Option<Pid> {
    c.pid().map(|p| Pid::from_raw(p.as_raw()))
}

/// Lets a created container's init exec the process, during set-up (an external
/// runtime's command is waited for, within its bound).
pub fn start(backend: &mut Backend) -> Result<(), String> {
    match backend {
        Backend::Embedded { container, .. } => container.start().map_err(|e| describe(&e)),
        Backend::External { cli, .. } => cli.start(),
    }
}

/// Removes the container's cgroups and libcontainer state; kills what is left.
/// Used after a failed `build()` too (DESIGN: `Container::load` + `delete(true)`).
pub fn delete(root: &Path, id: &str) -> Result<(), String> {
    let dir = root.join(id);
    if !dir.exists() {
        return Ok(());
    }
    let mut c = Container::load(dir).map_err(|e| describe(&e))?;
    c.delete(true).map_err(|e| describe(&e))
}

/// Runs `process.json` (an OCI `Process`) in container `id`'s namespaces and cgroup,
/// under the container's seccomp filter.
pub fn exec(root: &Path, id: &str, process: &Path, stdio: ChildStdio) -> Result<Pid, String> {
    let bundle = Container::load(root.join(id))
        .map_err(|e| describe(&e))?
        .bundle()
        .to_path_buf();
    let seccomp = super::exec_seccomp::for_bundle(&bundle)?;
    let builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(root)
        .map_err(|e| describe(&e))?;
    with_stdio_as(builder, stdio, ExecWithSeccomp(seccomp))
        .as_tenant()
        .with_detach(true)
        .with_process(Some(process))
        .build()
        .map(|pid| Pid::from_raw(pid.as_raw()))
        .map_err(|e| describe(&e))
}

/// How far [`Backend::begin`] got.
pub enum OpStarted {
    /// Done: libcontainer works in this process.
    Done(Result<(), String>),
    /// The runtime's command runs (see [`super::pending`]).
    Pending(RuntimeCommand),
}

/// How far [`Backend::exec`] got.
pub enum ExecStarted {
    /// The process runs.
    Now(Pid),
    /// The runtime's command that starts it runs.
    Pending(ExecCommand),
}

/// What runs the container.
pub enum Backend {
    /// libcontainer, state under `root`.
    Embedded { container: Container, root: PathBuf },
    /// An OCI runtime binary (runc); `init` as its pid file said.
    External { cli: OciCli, init: Pid },
}

impl Backend {
    pub fn init_pid(&self) -> Option<Pid> {
        match self {
            Backend::Embedded { container, .. } => init_pid(container),
            Backend::External { init, .. } => Some(*init),
        }
    }

    /// Starts `op`: libcontainer has made it on return; an external runtime's command is
    /// still running (see [`OciCli::spawn_op`]).
    pub fn begin(&mut self, op: Op) -> OpStarted {
        match self {
            Backend::Embedded { container, .. } => OpStarted::Done(match op {
                Op::Start => container.start().map_err(|e| describe(&e)),
                Op::Pause => container.pause().map_err(|e| describe(&e)),
                Op::Resume => container.resume().map_err(|e| describe(&e)),
            }),
            Backend::External { cli, .. } => match cli.spawn_op(op) {
                Ok(c) => OpStarted::Pending(c),
                Err(e) => OpStarted::Done(Err(e)),
            },
        }
    }

    /// Runs `process.json` in the container; `tag` is unique among this container's
    /// execs. libcontainer has started the process on return; an external runtime's
    /// command is still running (see [`OciCli::exec_spawn`]).
    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        stdio: ChildStdio,
        tag: &str,
    ) -> Result<ExecStarted, String> {
        match self {
            Backend::Embedded { root, .. } => exec(root, id, process, stdio).map(ExecStarted::Now),
            Backend::External { cli, .. } => cli
                .exec_spawn(process, stdio, tag)
                .map(ExecStarted::Pending),
        }
    }

    /// Removes the container's cgroups and the backend's state; kills what is left.
    pub fn delete(&mut self) -> Result<(), String> {
        match self {
            Backend::Embedded { container, .. } => container.delete(true).map_err(|e| describe(&e)),
            Backend::External { cli, .. } => cli.delete(),
        }
    }
}
