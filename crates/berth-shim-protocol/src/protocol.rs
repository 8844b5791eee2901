//! Wire types between the daemon and a shim: start options and reply (stdin/stdout of the
//! launcher), control requests and responses (JSON lines on `shim.sock`), the exit record
//! (`exit.json`), the json-file log line; the attach stream framing is Docker's
//! (`berth_api_types::stdcopy`), re-exported here.
//!
//! Unknown fields are ignored in every type, so a newer daemon can talk to an older shim
//! that survived an upgrade.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The control socket, in [`StartOptions::dir`].
pub const SOCKET_NAME: &str = "shim.sock";
/// The monitor's pid, decimal, in [`StartOptions::dir`].
pub const PID_FILE: &str = "shim.pid";
/// The [`ExitRecord`] once the container has exited, in [`StartOptions::dir`].
pub const EXIT_FILE: &str = "exit.json";
/// The monitor's own diagnostics (libcontainer errors), in [`StartOptions::dir`].
pub const SHIM_LOG_FILE: &str = "shim.log";
/// How long the monitor keeps reading output after init exited (processes outside the
/// container's pid namespace may hold the pipes open).
pub const DRAIN_TIMEOUT_MS: u64 = 2000;
/// Docker's json-file driver splits lines longer than this into partial entries
/// (moby `daemon/logger/copier.go`, `defaultBufSize`).
pub const LOG_LINE_MAX: usize = 16 * 1024;

/// The gzip comment of a compressed rotated log: this prefix, then `INODE:MTIME_NS` of
/// the file before compression (a reader following the log finds later files by them).
pub const LOG_GZ_INO: &str = "berth-ino=";

/// What the daemon hands the shim on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOptions {
    /// The container id (libcontainer's id too).
    pub id: String,
    /// The container's exec directory: socket, pid file, exit record, runtime state.
    pub dir: PathBuf,
    /// The OCI bundle (holds `config.json`; its `root.path` may be absolute).
    pub bundle: PathBuf,
    /// Where the json-file log goes; `None` discards output (log driver `none`).
    #[serde(default)]
    pub log: Option<LogOptions>,
    /// Keep the container's stdin open as a pipe (`OpenStdin`); else it reads `/dev/null`.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client closes its input.
    #[serde(default)]
    pub stdin_once: bool,
    /// Create only; the process starts on [`Request::Start`] (attach before start).
    #[serde(default)]
    pub defer_start: bool,
    /// A cgroup path (e.g. `/berth/shims`) the monitor moves itself into in every
    /// hierarchy, so that it is not in the daemon's cgroup; created when missing, and
    /// removed at exit when empty.
    #[serde(default)]
    pub shim_cgroup: Option<String>,
    /// Log libcontainer's debug output to `shim.log`.
    #[serde(default)]
    pub debug: bool,
    /// Run the container through this external OCI runtime (runc, crun) instead of the
    /// embedded libcontainer; `None`: the embedded one.
    #[serde(default)]
    pub runtime: Option<ExternalRuntime>,
    /// A unix datagram socket of the daemon's ([`EXIT_NOTIFY_SOCKET`] in its exec root):
    /// once the exit record is written, the monitor sends the container id there, so
    /// that the daemon waits for every container's exit on one socket instead of holding
    /// a connection to each shim. The daemon may be gone: then nobody hears it, and the
    /// daemon that comes back reads the exit record.
    #[serde(default)]
    pub exit_notify: Option<PathBuf>,
}

/// The daemon's exit-notification socket, in its exec root (see
/// [`StartOptions::exit_notify`]).
pub const EXIT_NOTIFY_SOCKET: &str = "exits.sock";

/// An OCI runtime binary the monitor drives through its command line
/// (`create`/`start`/`exec`/`pause`/`resume`/`delete`, as runc spells them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRuntime {
    /// The daemon's name for it (`runc`), for messages.
    pub name: String,
    /// The binary: absolute, or a name looked up in `PATH`.
    pub path: PathBuf,
    /// Global options put before every command (daemon.json `runtimeArgs`).
    #[serde(default)]
    pub args: Vec<String>,
}

/// json-file log settings (`--log-opt max-size`, `max-file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    pub path: PathBuf,
    /// How each line is written; an older daemon sends none: json-file.
    #[serde(default)]
    pub format: LogFormat,
    /// Rotate when the file would grow past this many bytes; `None` never rotates.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// How many files to keep, the live one included (`path`, `path.1`, …); at least 1.
    #[serde(default = "one")]
    pub max_files: u32,
    /// Gzip each rotated file (`path.1.gz`, …), the `local` driver's default.
    #[serde(default)]
    pub compress: bool,
    /// json-file's `attrs` of every line (`--log-opt labels`, `env`, their `-regex`
    /// forms, `tag`), settled by the engine at start, keys sorted and unique; empty: no
    /// `attrs` key, as dockerd writes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<(String, String)>,
    /// Where the lines go instead of `path` (the `journald` and `syslog` drivers);
    /// `None`: the file.
    #[serde(default)]
    pub sink: Option<LogSink>,
}

/// A log driver that sends each line elsewhere than a file; everything the engine knows
/// (tag, names, extra fields) is settled before the shim starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "snake_case")]
pub enum LogSink {
    /// One native-protocol datagram per line to the journal's socket.
    Journald {
        socket: PathBuf,
        /// Sent with every line: CONTAINER_ID, CONTAINER_NAME, … and the extra attributes.
        fields: Vec<(String, String)>,
    },
    /// One syslog message per line.
    Syslog {
        /// `unix`, `unixgram`, `tcp` or `udp`.
        proto: String,
        /// A socket path, or `host:port`.
        address: String,
        format: SyslogFormat,
        /// The facility, already shifted (`daemon` is 24).
        facility: u8,
        tag: String,
        hostname: String,
    },
}

/// dockerd's `syslog-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// Empty `syslog-format`: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG` (srslog's Unix format).
    #[default]
    Unix,
    Rfc3164,
    Rfc5424,
    Rfc5424Micro,
}

fn one() -> u32 {
    1
}

/// The line format of a container's log file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Docker's json-file: `{"log","stream","time"}` per line.
    #[default]
    JsonFile,
    /// The Kubernetes CRI format: `<RFC3339Nano> <stream> <P|F> <text>` per line, `P` for
    /// a part of a longer line, `F` for a line's last (or only) part.
    Cri,
}

/// The launcher's one line on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StartReply {
    /// The container exists (and runs unless deferred).
    Started { pid: i32, shim_pid: i32 },
    /// Nothing runs; `exit_code` as Docker reports it (127 not found, 126 not executable,
    /// 128 any other start failure).
    Failed { message: String, exit_code: i32 },
}

/// One request per line on `shim.sock`. `Attach`, `Exec` with streams, and `Wait` keep the
/// connection: the first turns it into a stream, the last answers when the process exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Answers [`Response::State`].
    State,
    /// Starts a container created with `defer_start`.
    Start,
    /// Sends `signal` to init (through its pidfd), or with `all` to every process in the
    /// container's cgroup.
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    /// Answers [`Response::Exit`] once the container has exited (at once if it has).
    Wait,
    /// Answers [`Response::Ok`], then the connection carries the container's output
    /// ([`frame_header`] frames, or raw bytes with a tty) and takes raw stdin bytes.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    /// Sets the container's terminal size.
    Resize { width: u16, height: u16 },
    /// Closes the container's stdin pipe.
    CloseStdin,
    /// Starts a process in the container. Answers [`Response::ExecStarted`]; with
    /// `attach`, the connection then carries that process's streams like `Attach`.
    Exec {
        exec_id: String,
        process: ExecProcess,
        attach: bool,
    },
    /// Answers [`Response::Exec`].
    ExecState { exec_id: String },
    /// Sets an exec's terminal size.
    ExecResize {
        exec_id: String,
        width: u16,
        height: u16,
    },
    /// Answers [`Response::Exec`] once that exec has exited (at once if it has); the
    /// connection closes without an answer if the container exits first.
    ExecWait { exec_id: String },
    /// Freezes every process of the container (cgroup freezer); answers [`Response::Ok`].
    Pause,
    /// Thaws a paused container; answers [`Response::Ok`].
    Resume,
    /// Closes the container's log file and opens its path again (the kubelet renamed the
    /// CRI log to rotate it); answers [`Response::Ok`].
    ReopenLog,
}

/// A process to run in a running container (`docker exec`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecProcess {
    pub args: Vec<String>,
    /// `KEY=value`; replaces the container's environment when not empty.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    /// `docker exec --privileged`: the process gets [`ExecProcess::capabilities`] as its
    /// bounding, permitted and effective sets.
    #[serde(default)]
    pub privileged: bool,
    /// Capability names (`CAP_…`) a privileged exec gets; the daemon sends every one.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    State(State),
    Exit(ExitRecord),
    ExecStarted { pid: i32 },
    Exec(ExecState),
    Error { kind: ErrorKind, message: String },
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request does not parse or names something impossible.
    InvalidArgument,
    /// The container (or exec) is not running.
    NotRunning,
    /// No such exec.
    NotFound,
    /// Already started, already exists.
    Conflict,
    Internal,
}

/// The container as the shim sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub status: Status,
    /// Init's pid in the host's pid namespace.
    pub pid: i32,
    pub shim_pid: i32,
    pub tty: bool,
    /// RFC 3339 with nanoseconds, UTC.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub exit: Option<ExitRecord>,
    /// Whether this monitor reports its exit on [`StartOptions::exit_notify`] (monitors of
    /// older releases, still running after an upgrade, do not: they are waited for with
    /// [`Request::Wait`]).
    #[serde(default)]
    pub exit_notify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Running,
    /// Running, with every process frozen ([`Request::Pause`]).
    Paused,
    /// Init exited; the shim is finishing up.
    Stopped,
}

/// `exit.json`, and the answer to [`Request::Wait`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + signal (Docker's convention), or 127/126/128 when the
    /// process never ran.
    pub exit_code: i32,
    /// The signal that killed init, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The kernel's OOM killer fired in the container's cgroup.
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub started_at: Option<String>,
    pub finished_at: String,
    /// Why the process never ran.
    #[serde(default)]
    pub error: Option<String>,
}

/// An exec process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecState {
    pub exec_id: String,
    pub pid: i32,
    pub running: bool,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// One line of Docker's json-file log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds, UTC, trailing zeros trimmed like Go's `RFC3339Nano`.
    pub time: String,
}

pub use berth_api_types::stdcopy::{frame_header, Stream};

/// Every capability the kernel knows (through `CAP_CHECKPOINT_RESTORE`, Linux 5.9):
/// what `--privileged` and `--cap-add ALL` grant. Index = capability number.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's exit code when a process could not be started (moby
/// `daemon/start.go`, `translateContainerdStartErr`): 127 for a missing executable, 126 for
/// one that cannot be executed, 128 otherwise.
pub fn start_failure_exit_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied")
        || m.contains("does not have correct permissions")
        || m.contains("is a directory")
    {
        126
    } else {
        128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_reject_garbage_and_unknown_ops() {
        assert!(serde_json::from_str::<Request>("").is_err());
        assert!(serde_json::from_str::<Request>("{}").is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"kill"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"resize","width":-1,"height":2}"#).is_err()
        );
    }

    #[test]
    fn requests_round_trip_and_tolerate_unknown_fields() {
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":9,"extra":1}"#).unwrap();
        assert_eq!(
            r,
            Request::Kill {
                signal: 9,
                all: false
            }
        );
        for r in [
            Request::State,
            Request::Start,
            Request::Wait,
            Request::CloseStdin,
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: false,
            },
            Request::Resize {
                width: 80,
                height: 24,
            },
            Request::Exec {
                exec_id: "e".into(),
                process: ExecProcess {
                    args: vec!["sh".into()],
                    ..Default::default()
                },
                attach: true,
            },
            Request::ExecState {
                exec_id: "e".into(),
            },
            Request::Pause,
            Request::Resume,
            Request::ReopenLog,
            Request::ExecWait {
                exec_id: "e".into(),
            },
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert!(!s.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        }
    }

    #[test]
    fn responses_round_trip() {
        let exit = ExitRecord {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at: None,
            finished_at: "2024-01-01T00:00:00Z".into(),
            error: None,
        };
        for r in [
            Response::Ok,
            Response::Exit(exit.clone()),
            Response::Error {
                kind: ErrorKind::NotRunning,
                message: "x".into(),
            },
            Response::State(State {
                id: "c".into(),
                status: Status::Stopped,
                pid: 3,
                shim_pid: 2,
                tty: false,
                started_at: None,
                exit: Some(exit),
                exit_notify: true,
            }),
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Response>(&s).unwrap(), r);
        }
    }

    #[test]
    fn start_options_defaults() {
        let o: StartOptions =
            serde_json::from_str(r#"{"id":"a","dir":"/run/x","bundle":"/run/x/bundle"}"#).unwrap();
        assert!(o.log.is_none() && !o.open_stdin && !o.defer_start && o.shim_cgroup.is_none());
        assert!(o.runtime.is_none());
        let o: StartOptions = serde_json::from_str(
            r#"{"id":"a","dir":"/d","bundle":"/b","runtime":{"name":"runc","path":"runc"}}"#,
        )
        .unwrap();
        let rt = o.runtime.unwrap();
        assert_eq!((rt.name.as_str(), rt.args.len()), ("runc", 0));
        assert!(serde_json::from_str::<StartOptions>(
            r#"{"id":"a","dir":"/d","bundle":"/b","runtime":{"name":"runc"}}"#
        )
        .is_err());
        let l: LogOptions = serde_json::from_str(r#"{"path":"/l"}"#).unwrap();
        assert_eq!((l.max_size, l.max_files), (None, 1));
        assert!(serde_json::from_str::<StartOptions>(r#"{"id":"a"}"#).is_err());
    }

    #[test]
    fn start_failures_map_to_docker_exit_codes() {
        assert_eq!(
            start_failure_exit_code("executable 'nope' not found in $PATH"),
            127
        );
        assert_eq!(
            start_failure_exit_code("exec: No such file or directory"),
            127
        );
        assert_eq!(
            start_failure_exit_code(
                "executable 'x' at path '/x' does not have correct permissions"
            ),
            126
        );
        assert_eq!(start_failure_exit_code("Permission denied"), 126);
        assert_eq!(start_failure_exit_code("cgroup: invalid argument"), 128);
        assert_eq!(start_failure_exit_code(""), 128);
    }

    #[test]
    fn a_state_from_an_older_monitor_reports_no_exit_notification() {
        let old = r#"{"id":"c","status":"running","pid":3,"shim_pid":2,"tty":false}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert!(!state.exit_notify);
        let opts: StartOptions =
            serde_json::from_str(r#"{"id":"c","dir":"/d","bundle":"/b"}"#).unwrap();
        assert_eq!(opts.exit_notify, None);
    }
}
