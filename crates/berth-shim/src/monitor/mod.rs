//! The monitor behind `berth-shim`: a single-threaded `poll(2)` loop around one container.
//!
//! - `main`: reads the options, forks; the parent relays the child's [`StartReply`] and
//!   exits, the child detaches (`setsid`, stdio on `/dev/null`, child subreaper), moves
//!   into the shims' cgroup (`<cgroup-parent>/shims` in every hierarchy, out of the
//!   daemon's, so that stopping the daemon's service cgroup leaves shims and containers
//!   running) before it forks anything, and becomes the monitor. What it forks starts
//!   there; the runtime moves the container's init into the container's own cgroup.
//! - [`setup`]: bundle fix-ups, stdio, create/start through the [`container::Backend`]:
//!   libcontainer in this process, or an external runtime binary such as runc
//!   ([`oci_cli`]) when the options name one.
//! - [`state`]: the [`state::Monitor`] every part acts on (container, [`process`]es,
//!   [`conn`]ections, [`pending`] runtime commands); it depends on none of the parts
//!   below, which import it and never each other in a circle.
//! - [`event_loop`]: output to the log and attached clients, reaping, and the exit record.
//! - [`control`]: what each request on the control socket does.
//! - [`settle`]: external runtime commands that have not ended (execs, and the one start,
//!   pause or resume in progress); the loop never waits for one (a container can make
//!   `runc exec` block, a runtime can hang in any step), and bounds each.
//!
//! Who reaps: the monitor reaps init, exec processes and any orphan re-parented to it (with
//! an external runtime, init and execs become its children when the runtime's command
//! exits), and waits for the runtime's commands; the daemon reaps only the short-lived
//! launcher. Who cleans up: the monitor deletes the container's cgroups and runtime state,
//! its socket and pid file; the daemon removes the exec directory (bundle, `exit.json`,
//! the runtime's log), the rootfs mount and the log.

mod cgroups;
mod conn;
mod container;
mod control;
mod event_loop;
mod exec_prune;
mod exec_seccomp;
mod journald;
mod jsonlog;
mod line_sink;
mod logwriter;
mod oci_cli;
mod pending;
mod process;
mod request;
mod settle;
mod setup;
mod state;
mod stdio;
mod sys;
mod syslog;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use berth_shim::{ExitRecord, StartOptions, StartReply, EXIT_FILE, PID_FILE, SHIM_LOG_FILE};
use nix::fcntl::OFlag;
use nix::unistd::ForkResult;

/// Runs the launcher; returns its exit status.
pub fn main() -> i32 {
    let mut input = String::new();
    let opts = io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<StartOptions>(&input).map_err(|e| e.to_string()));
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return print_reply(&failed(format!("bad start options: {e}"), 128)),
    };
    let (r, w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return print_reply(&failed(format!("pipe: {e}"), 128)),
    };
    match sys::fork() {
        Err(e) => print_reply(&failed(format!("fork: {e}"), 128)),
        Ok(ForkResult::Parent { .. }) => {
            drop(w);
            // One line, not to EOF: a created (not yet started) init still holds its
            // inherited copy of the pipe until it execs.
            let mut buf = String::new();
            let reply = io::BufRead::read_line(&mut io::BufReader::new(File::from(r)), &mut buf)
                .ok()
                .and_then(|_| serde_json::from_str::<StartReply>(&buf).ok())
                .unwrap_or_else(|| {
                    failed(
                        format!("shim exited before reporting (see {SHIM_LOG_FILE})"),
                        128,
                    )
                });
            print_reply(&reply)
        }
        Ok(ForkResult::Child) => {
            drop(r);
            std::process::exit(monitor(opts, w))
        }
    }
}

fn failed(message: String, exit_code: i32) -> StartReply {
    StartReply::Failed { message, exit_code }
}

fn print_reply(reply: &StartReply) -> i32 {
    let mut out = io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, reply);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
    match reply {
        StartReply::Started { .. } => 0,
        StartReply::Failed { .. } => 1,
    }
}

/// The detached monitor: never returns to `main`'s caller.
fn monitor(opts: StartOptions, ready: OwnedFd) -> i32 {
    // Whatever the daemon leaked to us must not reach the container.
    sys::close_fds_from(3, &[ready.as_raw_fd()]);
    if let Err(e) = detach(&opts) {
        send_ready(ready, &failed(format!("detach: {e}"), 128));
        return 1;
    }
    let layout = cgroups::Layout::read().unwrap_or_default();
    let joined = opts.shim_cgroup.as_deref().map(|p| {
        let (joined, errors) = cgroups::join(&layout, p);
        for e in errors {
            tracing::warn!(error = %e, "cannot join the shim cgroup");
        }
        joined
    });
    // Last acts: out of our cgroup (the daemon may remove it), then the pid file goes:
    // its absence says this monitor is done.
    let leave = |joined: Option<cgroups::Joined>| {
        if let Some(j) = joined {
            j.leave();
        }
        let _ = fs::remove_file(opts.dir.join(PID_FILE));
    };
    match setup::start(&opts, layout) {
        Ok(mut m) => {
            send_ready(
                ready,
                &StartReply::Started {
                    pid: m.init_pid(),
                    shim_pid: std::process::id() as i32,
                },
            );
            // The loop leaves it before its socket goes (the daemon's sign that it is done).
            m.joined = joined;
            m.run();
            leave(None);
            0
        }
        Err(f) => {
            tracing::error!(container_id = %opts.id, error = %f.message, "start failed");
            let record = ExitRecord {
                exit_code: f.exit_code,
                signal: None,
                oom_killed: false,
                started_at: None,
                finished_at: berth_shim::timefmt::rfc3339_nano(std::time::SystemTime::now()),
                error: Some(f.message.clone()),
            };
            if let Err(e) = sys::write_record(
                &opts.dir.join(EXIT_FILE),
                &serde_json::to_vec(&record).unwrap_or_default(),
            ) {
                tracing::error!(error = %e, "cannot write exit.json");
            }
            // Out of our cgroup before answering: the daemon may remove it right away.
            leave(joined);
            send_ready(ready, &failed(f.message, f.exit_code));
            1
        }
    }
}

fn send_ready(ready: OwnedFd, reply: &StartReply) {
    let mut line = serde_json::to_vec(reply).unwrap_or_default();
    line.push(b'\n');
    let _ = File::from(ready).write_all(&line);
}

/// New session, stdio on `/dev/null` (the daemon reads the launcher's stdout to EOF),
/// child subreaper, `/` as working directory, diagnostics to `shim.log`.
fn detach(opts: &StartOptions) -> io::Result<()> {
    nix::unistd::setsid()?;
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    sys::set_child_subreaper()?;
    std::env::set_current_dir("/")?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.dir.join(SHIM_LOG_FILE))?;
    let level = if opts.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .try_init();
    Ok(())
}
