//! The external-runtime backend: an OCI runtime binary (runc; crun spells its commands the
//! same) driven through its command line, as containerd's runc shim drives it:
//!
//! ```text
//! <rt> [args] --root <dir>/runtime --log <dir>/runtime.log --log-format json \
//!      create --bundle B --pid-file P [--console-socket S] ID      then  start ID
//! <rt> … exec --detach --pid-file P --process process.json [--console-socket S] ID
//! <rt> … pause ID | resume ID | delete --force ID
//! ```
//!
//! What stays the monitor's: it is the subreaper (init and exec processes are re-parented
//! to it when the runtime's command exits, so it reaps them and sees their status), it
//! holds the stdio (pipes passed as the runtime's own stdio, which runc hands through to
//! the process, or the pty master sent to the console socket), and it signals and waits
//! through a pidfd. A failed command's text comes from the runtime's json log (runc writes
//! `{"level":"error","msg":…}` there), else from what it printed.
//!
//! No command is waited for without a bound: each runs in a process group of its own as
//! the subreaper of what it forks, and past [`OciCli::timeout`] (30 s, or
//! `$BERTH_SHIM_RUNTIME_TIMEOUT` seconds) it is killed with its tree and fails with
//! "<rt> <step> did not finish within Ns: killed". `create`, a start during set-up and
//! `delete` wait here, with that bound (no client is served then); `exec`, and a `start`,
//! `pause` or `resume` asked for on the control socket, are spawned and reaped by the
//! event loop ([`super::pending`]), which never waits for one.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_shim::ExternalRuntime;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::request::{ChildStdio, Op};
use super::sys;

/// The runtime's json log, in the container's exec directory.
const LOG_FILE: &str = "runtime.log";
/// The runtime's own stdout and stderr when they are not the process's.
const OUT_FILE: &str = "runtime.out";
/// At most this much of the runtime's output makes it into an error message.
const MESSAGE_MAX: usize = 4096;
/// How long a runtime command may run unless [`TIMEOUT_ENV`] says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds (1 to 3600) a runtime command may run; set on berthd, which the shim inherits
/// it from (tests make it short).
pub const TIMEOUT_ENV: &str = "BERTH_SHIM_RUNTIME_TIMEOUT";

/// The process's ends of its stdio pipes.
struct Pipes {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// A runtime command that runs as a watched child (see [`OciCli::spawn_op`]).
#[derive(Debug)]
pub struct RuntimeCommand {
    /// The command's pid, also its process group.
    pub pid: Pid,
    /// When it is killed if it has not ended (see [`OciCli::timeout`]).
    pub deadline: Instant,
    log_start: u64,
}

impl RuntimeCommand {
    /// Kills the command and what it forked (see [`kill_tree`]).
    pub fn kill(&self) {
        kill_tree(self.pid);
    }
}

/// Kills a runtime command and what it forked: its process group, and its descendants
/// (`runc init` makes a session of its own, but the command is their subreaper, see
/// [`sys::subreaper_after_spawn`]), children first so that none is orphaned to us alive.
pub fn kill_tree(pid: Pid) {
    for d in sys::descendants(pid).into_iter().rev() {
        let _ = kill(d, Signal::SIGKILL);
    }
    if let Err(e) = killpg(pid, Signal::SIGKILL) {
        tracing::debug!(error = %e, %pid, "kill runtime command");
    }
}

/// A running `<rt> exec` command (see [`OciCli::exec_spawn`]).
#[derive(Debug)]
pub struct ExecCommand {
    /// The command's pid, also its process group.
    pub pid: Pid,
    /// When it is killed if it has not ended (see [`OciCli::timeout`]).
    pub deadline: Instant,
    pid_file: PathBuf,
    log_start: u64,
}

impl Drop for ExecCommand {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.pid_file);
    }
}

/// One container in an external runtime.
#[derive(Debug)]
pub struct OciCli {
    rt: ExternalRuntime,
    id: String,
    /// `--root`: the runtime's state directory.
    root: PathBuf,
    dir: PathBuf,
    timeout: Duration,
}

impl OciCli {
    /// Container `id` of runtime `rt`, with its state under `root` and its log and pid
    /// files in `dir` (the container's exec directory).
    pub fn new(rt: &ExternalRuntime, id: &str, dir: &Path, root: &Path) -> OciCli {
        OciCli {
            rt: rt.clone(),
            id: id.to_string(),
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            timeout: timeout_from(std::env::var(TIMEOUT_ENV).ok().as_deref()),
        }
    }

    /// The runtime's name, for messages.
    pub fn name(&self) -> &str {
        &self.rt.name
    }

    /// How long one runtime command may run before it is killed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The error of a command killed past [`OciCli::timeout`].
    pub fn timed_out(&self, sub: &str) -> String {
        format!(
            "{} {sub} did not finish within {}s: killed",
            self.rt.name,
            self.timeout.as_secs()
        )
    }

    /// `<rt> [args] --root R --log L --log-format json <sub>`; the caller adds the rest.
    fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.rt.path);
        cmd.args(&self.rt.args)
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.dir.join(LOG_FILE))
            .args(["--log-format", "json", sub]);
        cmd
    }

    /// Runs one command to completion. `stdio`: the process's own (runc passes its stdio
    /// through to a process without a terminal); else the runtime reads `/dev/null` and
    /// writes to [`OUT_FILE`]. `stderr_fallback`: where the runtime's stderr went, read
    /// for the message when its log says nothing.
    fn run(
        &self,
        sub: &str,
        cmd: Command,
        stdio: Option<Pipes>,
        stderr_fallback: Option<&File>,
    ) -> Result<(), String> {
        let c = self.spawn_watched(cmd, stdio)?;
        let (code, signal) = self.wait_bounded(&c).ok_or_else(|| self.timed_out(sub))?;
        self.outcome(
            sub,
            code == 0 && signal.is_none(),
            &status_text(code, signal),
            c.log_start,
            stderr_fallback,
        )
    }

    /// Starts `cmd` in a process group of its own, as the subreaper of what it forks, so
    /// that [`kill_tree`] reaches all of it.
    fn spawn_watched(
        &self,
        mut cmd: Command,
        stdio: Option<Pipes>,
    ) -> Result<RuntimeCommand, String> {
        cmd.process_group(0);
        sys::subreaper_after_spawn(&mut cmd);
        let (child, log_start) = self.spawn(cmd, stdio)?;
        let child = child.map_err(|e| self.spawn_error(&e))?;
        Ok(RuntimeCommand {
            // A pid fits an i32 (pid_max is at most 2^22).
            pid: Pid::from_raw(child.id() as i32),
            deadline: Instant::now() + self.timeout,
            log_start,
        })
    }

    /// Reaps the command within [`OciCli::timeout`]: how it ended (exit code as Docker
    /// reports it, signal), or `None` when it was killed for running too long.
    fn wait_bounded(&self, c: &RuntimeCommand) -> Option<(i32, Option<i32>)> {
        let ended = ended_within(c.pid, c.deadline);
        if !ended {
            tracing::warn!(pid = %c.pid, "a runtime command ran too long; killing it");
            c.kill();
        }
        let status = loop {
            match waitpid(c.pid, None) {
                Err(Errno::EINTR) => continue,
                Ok(WaitStatus::Exited(_, code)) => break (code, None),
                Ok(WaitStatus::Signaled(_, sig, _)) => break (128 + sig as i32, Some(sig as i32)),
                Ok(_) => continue,
                Err(_) => break (255, None),
            }
        };
        ended.then_some(status)
    }

    /// Starts one command with its stdio (see [`OciCli::run`]); also returns where the
    /// json log ended before it.
    fn spawn(
        &self,
        mut cmd: Command,
        stdio: Option<Pipes>,
    ) -> Result<(io::Result<Child>, u64), String> {
        let log_start = fs::metadata(self.dir.join(LOG_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        match stdio {
            Some(p) => {
                cmd.stdin(Stdio::from(p.stdin))
                    .stdout(Stdio::from(p.stdout))
                    .stderr(Stdio::from(p.stderr));
            }
            None => {
                let out_path = self.dir.join(OUT_FILE);
                let out = File::create(&out_path).map_err(|e| format!("{OUT_FILE}: {e}"))?;
                let err = out.try_clone().map_err(|e| format!("{OUT_FILE}: {e}"))?;
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::from(out))
                    .stderr(Stdio::from(err));
            }
        }
        let spawned = cmd.spawn();
        // Our copies of the process's stdio go now: the process keeps its own.
        drop(cmd);
        Ok((spawned, log_start))
    }

    /// A finished command's result: its error from the json log (written after
    /// `log_start`), else the last line it printed, else its `status`.
    fn outcome(
        &self,
        sub: &str,
        success: bool,
        status: &str,
        log_start: u64,
        stderr_fallback: Option<&File>,
    ) -> Result<(), String> {
        if success {
            return Ok(());
        }
        let message = log_error(&self.dir.join(LOG_FILE), log_start)
            .or_else(|| {
                let mut text = String::new();
                let f = match stderr_fallback {
                    Some(f) => f.try_clone().ok()?,
                    None => File::open(self.dir.join(OUT_FILE)).ok()?,
                };
                let _ = f.take(MESSAGE_MAX as u64).read_to_string(&mut text);
                last_line(&text)
            })
            .unwrap_or_else(|| format!("{} {sub} failed: {status}", self.rt.name));
        Err(message)
    }

    /// The runtime binary cannot be run: worded like Go's `fork/exec` error, which Docker
    /// clients map to 127 (not found) or 126 (permission denied).
    fn spawn_error(&self, e: &io::Error) -> String {
        let text = match e.raw_os_error() {
            Some(n) => {
                let desc = nix::errno::Errno::from_raw(n).desc();
                let mut c = desc.chars();
                match c.next() {
                    Some(first) => first.to_lowercase().chain(c).collect(),
                    None => String::new(),
                }
            }
            None => e.to_string(),
        };
        format!(
            "OCI runtime {:?}: fork/exec {}: {text}",
            self.rt.name,
            self.rt.path.display()
        )
    }

    fn read_pid(&self, file: &Path) -> Result<Pid, String> {
        let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let _ = fs::remove_file(file);
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .map(Pid::from_raw)
            .ok_or_else(|| format!("{}: no pid in {text:?}", file.display()))
    }

    /// Creates the container from `bundle`; its init waits for [`OciCli::start`].
    /// `stderr_fallback`: our end of the process's stderr pipe, where runc also prints a
    /// failure.
    pub fn create(
        &self,
        bundle: &Path,
        stdio: ChildStdio,
        stderr_fallback: Option<&File>,
    ) -> Result<Pid, String> {
        let pid_file = self.dir.join("init.pid");
        let mut cmd = self.command("create");
        cmd.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        let pipes = with_stdio(&mut cmd, stdio);
        cmd.arg(&self.id);
        self.run("create", cmd, pipes, stderr_fallback)?;
        self.read_pid(&pid_file)
    }

    /// Lets the created container's init exec its process.
    pub fn start(&self) -> Result<(), String> {
        let mut cmd = self.command("start");
        cmd.arg(&self.id);
        self.run("start", cmd, None, None)
    }

    /// Starts `<rt> exec --detach` of `process` (an OCI process JSON) in the running
    /// container, in a process group of its own, and returns without waiting: the runtime
    /// reads files of the container (runc opens its `/etc/passwd`), which may block it
    /// for ever. The monitor reaps it and then calls [`OciCli::exec_result`]. `tag` names
    /// its pid file.
    pub fn exec_spawn(
        &self,
        process: &Path,
        stdio: ChildStdio,
        tag: &str,
    ) -> Result<ExecCommand, String> {
        let pid_file = self.dir.join(format!("exec-{tag}.pid"));
        let _ = fs::remove_file(&pid_file);
        let mut cmd = self.command("exec");
        cmd.arg("--detach")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--process")
            .arg(process);
        let pipes = with_stdio(&mut cmd, stdio);
        cmd.arg(&self.id);
        let c = self.spawn_watched(cmd, pipes)?;
        Ok(ExecCommand {
            pid: c.pid,
            deadline: c.deadline,
            pid_file,
            log_start: c.log_start,
        })
    }

    /// The exec's process once its `exec` command ended (`success`: it exited 0; `status`:
    /// how it ended, for the message).
    pub fn exec_result(
        &self,
        cmd: &ExecCommand,
        success: bool,
        status: &str,
    ) -> Result<Pid, String> {
        if let Err(m) = self.outcome("exec", success, status, cmd.log_start, None) {
            let _ = fs::remove_file(&cmd.pid_file);
            return Err(exec_reason(&m).to_string());
        }
        self.read_pid(&cmd.pid_file)
    }

    /// Starts `<rt> start|pause|resume ID` and returns without waiting (runc keeps its
    /// state in step with a pause); the monitor reaps it and then calls
    /// [`OciCli::op_result`].
    pub fn spawn_op(&self, op: Op) -> Result<RuntimeCommand, String> {
        let mut cmd = self.command(op.name());
        cmd.arg(&self.id);
        self.spawn_watched(cmd, None)
    }

    /// The result of `op`'s command once it ended (`success`: it exited 0; `status`: how
    /// it ended, for the message).
    pub fn op_result(
        &self,
        op: Op,
        c: &RuntimeCommand,
        success: bool,
        status: &str,
    ) -> Result<(), String> {
        self.outcome(op.name(), success, status, c.log_start, None)
    }

    /// Removes the container's cgroups and the runtime's state, killing what is left.
    /// A container the runtime does not know is already deleted.
    pub fn delete(&self) -> Result<(), String> {
        if !self.root.join(&self.id).exists() {
            return Ok(());
        }
        let mut cmd = self.command("delete");
        cmd.arg("--force").arg(&self.id);
        self.run("delete", cmd, None, None)
    }
}

/// The process's stdio on the runtime's command line: pipes become the runtime's own
/// stdio, a pty adds `--console-socket`.
fn with_stdio(cmd: &mut Command, stdio: ChildStdio) -> Option<Pipes> {
    match stdio {
        ChildStdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => Some(Pipes {
            stdin,
            stdout,
            stderr,
        }),
        ChildStdio::Console(path) => {
            cmd.arg("--console-socket").arg(path);
            None
        }
    }
}

/// Whether child `pid` has ended by `deadline` (it is not reaped: the caller does).
fn ended_within(pid: Pid, deadline: Instant) -> bool {
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        // Only a pid that is no process of ours fails; nothing to wait for.
        Err(e) => {
            tracing::warn!(error = %e, %pid, "pidfd of a runtime command");
            return true;
        }
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = left.as_millis().clamp(1, 60_000) as i32;
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&pidfd),
            PollFlags::POLLIN,
        )];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) if n > 0 => return true,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, %pid, "poll a runtime command");
                return true;
            }
        }
    }
}

/// How a command ended, worded like Go's `ProcessState.String`.
pub fn status_text(code: i32, signal: Option<i32>) -> String {
    match signal {
        Some(s) => format!("signal: {s}"),
        None => format!("exit status {code}"),
    }
}

/// The bound on a runtime command: [`TIMEOUT_ENV`]'s seconds when it holds 1 to 3600,
/// else [`DEFAULT_TIMEOUT`].
fn timeout_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// runc says "exec failed: unable to start container process: <why>"; the daemon puts
/// Docker's own words in front of <why>, as for the embedded runtime.
fn exec_reason(m: &str) -> &str {
    let m = m.strip_prefix("exec failed: ").unwrap_or(m);
    m.strip_prefix("unable to start container process: ")
        .unwrap_or(m)
}

/// The message of the last `error` (or `fatal`) line written to the json log after
/// `start` bytes.
fn log_error(log: &Path, start: u64) -> Option<String> {
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    f.take(1 << 20).read_to_string(&mut text).ok()?;
    last_log_error(&text)
}

fn last_log_error(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .find(|m| !m.is_empty())
}

/// The last non-empty line, at most [`MESSAGE_MAX`] bytes.
fn last_line(text: &str) -> Option<String> {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let mut end = line.len().min(MESSAGE_MAX);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    Some(line[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_skip_other_levels_and_garbage() {
        assert_eq!(last_log_error(""), None);
        assert_eq!(last_log_error("not json\n{}\n"), None);
        let text = r#"{"level":"debug","msg":"nsexec started"}
{"level":"error","msg":"first"}
garbage
{"level":"warning","msg":"a warning"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"x\": executable file not found in $PATH"}
{"level":"info","msg":"later"}
"#;
        assert_eq!(
            last_log_error(text).as_deref(),
            Some("runc create failed: unable to start container process: exec: \"x\": executable file not found in $PATH")
        );
        assert_eq!(
            last_log_error(r#"{"level":"fatal","msg":"boom"}"#).as_deref(),
            Some("boom")
        );
        assert_eq!(last_log_error(r#"{"level":"error","msg":""}"#), None);
    }

    #[test]
    fn exec_reasons_lose_runc_prefixes() {
        assert_eq!(
            exec_reason("exec failed: unable to start container process: exec: \"x\": not found"),
            "exec: \"x\": not found"
        );
        assert_eq!(exec_reason("other"), "other");
    }

    #[test]
    fn last_line_trims_and_bounds() {
        assert_eq!(last_line(""), None);
        assert_eq!(last_line("\n  \n"), None);
        assert_eq!(last_line("a\nb  \n\n").as_deref(), Some("b"));
        let long = "é".repeat(MESSAGE_MAX);
        let got = last_line(&long).unwrap();
        assert!(got.len() <= MESSAGE_MAX && got.chars().all(|c| c == 'é'));
    }

    #[test]
    fn timeouts_from_the_environment() {
        assert_eq!(timeout_from(None), DEFAULT_TIMEOUT);
        assert_eq!(timeout_from(Some("5")), Duration::from_secs(5));
        assert_eq!(timeout_from(Some(" 7\n")), Duration::from_secs(7));
        for bad in ["0", "3601", "-1", "1.5", "", "x", "99999999999999999999"] {
            assert_eq!(timeout_from(Some(bad)), DEFAULT_TIMEOUT, "{bad:?}");
        }
    }

    /// A runtime that never exits is killed with what it forked, and the step fails
    /// naming it.
    #[test]
    fn a_hung_command_is_killed_past_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("hang");
        fs::write(
            &script,
            "sleep 1000 &\necho $! > \"$(dirname \"$0\")/child\"\nwait\n",
        )
        .unwrap();
        // Run by the shell, not exec'd: no ETXTBSY from a fork elsewhere in the tests.
        let rt = ExternalRuntime {
            name: "hang".into(),
            path: "/bin/sh".into(),
            args: vec![script.to_string_lossy().into_owned()],
        };
        let mut cli = OciCli::new(&rt, "c1", tmp.path(), &tmp.path().join("runtime"));
        cli.timeout = Duration::from_secs(2);
        assert_eq!(
            cli.start().unwrap_err(),
            "hang start did not finish within 2s: killed"
        );
        let child: i32 = fs::read_to_string(tmp.path().join("child"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed: gone, or a zombie for whoever it was orphaned to.
        let dead = || {
            fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dead() {
            assert!(
                Instant::now() < deadline,
                "the runtime's child {child} lives on"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn commands_put_global_options_first() {
        let rt = ExternalRuntime {
            name: "custom".into(),
            path: "/usr/sbin/runc".into(),
            args: vec!["--debug".into()],
        };
        let cli = OciCli::new(&rt, "c1", Path::new("/run/x"), Path::new("/run/x/runtime"));
        let mut cmd = cli.command("start");
        cmd.arg("c1");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(cmd.get_program(), "/usr/sbin/runc");
        assert_eq!(
            args,
            [
                "--debug",
                "--root",
                "/run/x/runtime",
                "--log",
                "/run/x/runtime.log",
                "--log-format",
                "json",
                "start",
                "c1"
            ]
        );
    }

    #[test]
    fn a_missing_binary_reads_as_not_found() {
        let tmp = std::env::temp_dir().join(format!("berth-oci-cli-{}", std::process::id()));
        fs::create_dir_all(&tmp).unwrap();
        let rt = ExternalRuntime {
            name: "vm".into(),
            path: "/nonexistent/vm-manager".into(),
            args: vec![],
        };
        let cli = OciCli::new(&rt, "c1", &tmp, &tmp.join("runtime"));
        let err = cli.start().unwrap_err();
        assert_eq!(
            err,
            "OCI runtime \"vm\": fork/exec /nonexistent/vm-manager: no such file or directory"
        );
        assert_eq!(berth_shim::start_failure_exit_code(&err), 127);
        // Delete of a container the runtime never made is a no-op.
        cli.delete().unwrap();
        let _ = fs::remove_dir_all(&tmp);
    }
}
