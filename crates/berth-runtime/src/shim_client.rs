//! [`ShimRuntime`]: the [`Runtime`] over `berth-shim` processes, one per container, in
//! `<exec-root>/containers/<id>/` (bundle, `shim.sock`, `shim.pid`, `exit.json`).
//!
//! A request is one JSON line to `shim.sock` and one back. A shim that is gone has left
//! `exit.json`; this client answers from it, so callers do not care whether the container
//! exited before or after they asked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_shim_protocol::{
    ErrorKind as ShimErrorKind, ExecProcess, ExecState, ExitRecord, Request, Response,
    StartOptions, StartReply, State, Status, EXIT_FILE, SOCKET_NAME,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::exit_hub::ExitHub;
use crate::runtime::{AttachStreams, ContainerStart, Runtime, RuntimeFuture, Started};
use crate::RuntimeError;

/// The libcontainer backend: spawns `berth-shim` per container.
#[derive(Debug, Clone)]
pub struct ShimRuntime {
    shim: PathBuf,
    exec_root: PathBuf,
    shim_cgroup: Option<String>,
    debug: bool,
    /// Where the shims report exits (one socket for all containers).
    exits: Arc<ExitHub>,
}

impl ShimRuntime {
    /// `shim` is the `berth-shim` binary; containers live under `<exec_root>/containers`.
    pub fn new(shim: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> ShimRuntime {
        let exec_root = exec_root.into();
        ShimRuntime {
            shim: shim.into(),
            exits: Arc::new(ExitHub::new(&exec_root)),
            exec_root,
            shim_cgroup: None,
            debug: false,
        }
    }

    /// The cgroup shims move into (not the daemon's, so stopping the daemon's service
    /// does not stop them), e.g. `/berth/shims`.
    pub fn with_shim_cgroup(mut self, path: impl Into<String>) -> ShimRuntime {
        self.shim_cgroup = Some(path.into());
        self
    }

    /// libcontainer debug output in each `shim.log`.
    pub fn with_debug(mut self, debug: bool) -> ShimRuntime {
        self.debug = debug;
        self
    }

    /// A container's exec directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    fn checked_dir(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            || id.starts_with('.')
        {
            return Err(RuntimeError::InvalidArgument(format!(
                "invalid container id: {id:?}"
            )));
        }
        Ok(self.dir(id))
    }

    /// The exit record a finished shim left, if any.
    async fn exit_record(&self, dir: &Path) -> Result<Option<ExitRecord>, RuntimeError> {
        let path = dir.join(EXIT_FILE);
        match tokio::fs::read(&path).await {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| RuntimeError::Internal(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::io("read", &path, e)),
        }
    }

    /// Connects to the shim; `Ok(None)` when it has gone (socket missing or dead).
    async fn connect(&self, id: &str) -> Result<Option<UnixStream>, RuntimeError> {
        let dir = self.checked_dir(id)?;
        match UnixStream::connect(dir.join(SOCKET_NAME)).await {
            Ok(s) => Ok(Some(s)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        // A shim that is exiting resets connections still in its backlog.
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                if dir.exists() {
                    Ok(None)
                } else {
                    Err(RuntimeError::NotFound(id.to_string()))
                }
            }
            Err(e) => Err(RuntimeError::io("connect", &dir.join(SOCKET_NAME), e)),
        }
    }

    /// One request, one response; `None` if the shim is gone or went away meanwhile.
    async fn call(
        &self,
        id: &str,
        req: &Request,
    ) -> Result<Option<(Response, BufReader<UnixStream>)>, RuntimeError> {
        let Some(stream) = self.connect(id).await? else {
            return Ok(None);
        };
        let mut r = BufReader::new(stream);
        let mut line =
            serde_json::to_vec(req).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        line.push(b'\n');
        if r.get_mut().write_all(&line).await.is_err() {
            return Ok(None);
        }
        let mut buf = String::new();
        match r.read_line(&mut buf).await {
            Ok(0) | Err(_) => Ok(None),
            Ok(_) => {
                let resp = serde_json::from_str(&buf).map_err(|e| {
                    RuntimeError::Internal(format!("bad answer from shim of {id}: {e}"))
                })?;
                Ok(Some((resp, r)))
            }
        }
    }

    /// The stopped state from `exit.json`, or NotFound when there is none either.
    async fn stopped(&self, id: &str) -> Result<ExitRecord, RuntimeError> {
        let dir = self.checked_dir(id)?;
        self.exit_record(&dir).await?.ok_or_else(|| {
            RuntimeError::Internal(format!(
                "the shim of container {id} is gone without an exit record"
            ))
        })
    }

    async fn simple(&self, id: &str, req: Request) -> Result<(), RuntimeError> {
        match self.call(id, &req).await? {
            Some((Response::Ok, _)) => Ok(()),
            Some((other, _)) => Err(unexpected(id, other)),
            None => Err(not_running(id)),
        }
    }

    /// A request whose answer switches the connection to a stream (attach, exec): the
    /// answer is read a byte at a time so that no stream byte is consumed with it.
    async fn call_streaming(
        &self,
        id: &str,
        req: &Request,
    ) -> Result<Option<(Response, UnixStream)>, RuntimeError> {
        let Some(mut stream) = self.connect(id).await? else {
            return Ok(None);
        };
        let mut line =
            serde_json::to_vec(req).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        line.push(b'\n');
        if stream.write_all(&line).await.is_err() {
            return Ok(None);
        }
        let mut answer = Vec::new();
        loop {
            match stream.read_u8().await {
                Ok(b'\n') => break,
                Ok(b) if answer.len() < 64 * 1024 => answer.push(b),
                Ok(_) => {
                    return Err(RuntimeError::Internal(format!(
                        "overlong answer from shim of {id}"
                    )))
                }
                Err(_) => return Ok(None),
            }
        }
        let resp = serde_json::from_slice(&answer)
            .map_err(|e| RuntimeError::Internal(format!("bad answer from shim of {id}: {e}")))?;
        Ok(Some((resp, stream)))
    }
}

/// The [`Runtime`] requests as inherent async methods (the trait impl at the end boxes
/// them): pause, resume and the exec requests first.
impl ShimRuntime {
    /// Freezes every process of the container.
    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(id, Request::Pause).await
    }

    /// Thaws a paused container.
    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(id, Request::Resume).await
    }

    /// Closes the container's log file and opens its path again.
    pub async fn reopen_log(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(id, Request::ReopenLog).await
    }

    /// Resolves when the exec has exited, with its exit code; NotRunning if the
    /// container (and with it the process) went first.
    pub async fn exec_wait(&self, id: &str, exec_id: &str) -> Result<ExecState, RuntimeError> {
        let req = Request::ExecWait {
            exec_id: exec_id.to_string(),
        };
        match self.call(id, &req).await? {
            Some((Response::Exec(e), _)) => Ok(e),
            Some((other, _)) => Err(unexpected(id, other)),
            None => Err(not_running(id)),
        }
    }

    /// Sets an exec's terminal size.
    pub async fn exec_resize(
        &self,
        id: &str,
        exec_id: &str,
        width: u16,
        height: u16,
    ) -> Result<(), RuntimeError> {
        let req = Request::ExecResize {
            exec_id: exec_id.to_string(),
            width,
            height,
        };
        self.simple(id, req).await
    }
}

fn not_running(id: &str) -> RuntimeError {
    RuntimeError::NotRunning(format!("Container {id} is not running"))
}

fn unexpected(id: &str, r: Response) -> RuntimeError {
    match r {
        Response::Error { kind, message } => match kind {
            ShimErrorKind::InvalidArgument => RuntimeError::InvalidArgument(message),
            ShimErrorKind::NotRunning => RuntimeError::NotRunning(message),
            ShimErrorKind::NotFound => RuntimeError::NotFound(message),
            ShimErrorKind::Conflict => RuntimeError::Conflict(message),
            ShimErrorKind::Internal => RuntimeError::Internal(message),
        },
        other => RuntimeError::Internal(format!("unexpected answer from shim of {id}: {other:?}")),
    }
}

/// Whether any mount lies at or under `dir` (then `remove_dir_all` would reach into it).
/// How often, and how far apart, a busy container directory is removed again.
const REMOVE_BUSY_RETRIES: u32 = 20;
const REMOVE_BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

fn has_mounts_under(dir: &Path) -> bool {
    berth_sys::mount::mount_points().map_or(true, |m| m.iter().any(|p| p.starts_with(dir)))
}

/// The bundle's `config.json`, through `berth_sys::fs::replace` off the async workers: a
/// reader (the shim, runc) sees the old file or the whole new one. Not fsynced: the bundle
/// is written again at each start, and nothing runs from it after the machine restarts.
async fn write_atomic(path: &Path, data: Vec<u8>) -> Result<(), RuntimeError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || berth_sys::fs::replace(&p, &data, 0o644))
        .await
        .map_err(|e| RuntimeError::Internal(format!("writing {}: {e}", path.display())))?
        .map_err(|e| RuntimeError::io("write", path, e))
}

/// The rest of the [`Runtime`] requests.
impl ShimRuntime {
    pub async fn create(&self, req: ContainerStart) -> Result<Started, RuntimeError> {
        let dir = self.checked_dir(&req.id)?;
        if dir.join(SOCKET_NAME).exists() || dir.join(EXIT_FILE).exists() {
            return Err(RuntimeError::Conflict(format!(
                "container {} already exists",
                req.id
            )));
        }
        let bundle = dir.join("bundle");
        tokio::fs::create_dir_all(&bundle)
            .await
            .map_err(|e| RuntimeError::io("create", &bundle, e))?;
        let config =
            serde_json::to_vec(&req.spec).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        write_atomic(&bundle.join("config.json"), config).await?;
        let opts = StartOptions {
            id: req.id.clone(),
            dir: dir.clone(),
            bundle,
            log: req.log,
            open_stdin: req.open_stdin,
            stdin_once: req.stdin_once,
            defer_start: req.defer_start,
            shim_cgroup: self.shim_cgroup.clone(),
            debug: self.debug,
            runtime: req.runtime,
            exit_notify: self.exits.socket().await,
        };
        let input = serde_json::to_vec(&opts).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        let mut cmd = tokio::process::Command::new(&self.shim);
        berth_sys::rlimit::keep_nofile_for_child(cmd.as_std_mut());
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| RuntimeError::io("spawn", &self.shim, e))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(&input)
            .await
            .map_err(|e| RuntimeError::io("write to", &self.shim, e))?;
        drop(stdin);
        let mut out = Vec::new();
        let mut stdout = child.stdout.take().expect("piped");
        stdout
            .read_to_end(&mut out)
            .await
            .map_err(|e| RuntimeError::io("read from", &self.shim, e))?;
        // The launcher exits right after answering; reap it.
        let _ = child.wait().await;
        match serde_json::from_slice::<StartReply>(&out) {
            Ok(StartReply::Started { pid, shim_pid }) => Ok(Started { pid, shim_pid }),
            Ok(StartReply::Failed { message, exit_code }) => {
                Err(RuntimeError::StartFailed { message, exit_code })
            }
            Err(e) => Err(RuntimeError::Internal(format!(
                "bad answer from {}: {e}: {:?}",
                self.shim.display(),
                String::from_utf8_lossy(&out)
            ))),
        }
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(id, Request::Start).await
    }

    pub async fn state(&self, id: &str) -> Result<State, RuntimeError> {
        match self.call(id, &Request::State).await? {
            Some((Response::State(s), _)) => Ok(s),
            Some((other, _)) => Err(unexpected(id, other)),
            None => {
                let exit = self.stopped(id).await?;
                Ok(State {
                    id: id.to_string(),
                    status: Status::Stopped,
                    pid: 0,
                    shim_pid: 0,
                    tty: false,
                    started_at: exit.started_at.clone(),
                    exit: Some(exit),
                    exit_notify: false,
                })
            }
        }
    }

    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        self.simple(id, Request::Kill { signal, all }).await
    }

    /// Resolves with the container's exit record once it has exited. A shim that reports
    /// exits on the hub's socket is asked for its state once and then costs the daemon
    /// no descriptor while it runs; one that does not (started by an older release) is
    /// waited on over a connection it answers at the exit.
    pub async fn wait(&self, id: &str) -> Result<ExitRecord, RuntimeError> {
        if self.exits.socket().await.is_some() {
            let exited = self.exits.register(id);
            // The answer alone: the connection closes here, not after the exit.
            let answer = self.call(id, &Request::State).await?.map(|(r, _)| r);
            match answer {
                Some(Response::State(s)) if s.exit_notify => {
                    let _ = exited.await;
                    return self.stopped(id).await;
                }
                Some(Response::State(_)) => {}
                Some(other) => return Err(unexpected(id, other)),
                None => return self.stopped(id).await,
            }
        }
        self.wait_connected(id).await
    }

    /// Waits on a connection the shim answers when the container exits.
    async fn wait_connected(&self, id: &str) -> Result<ExitRecord, RuntimeError> {
        match self.call(id, &Request::Wait).await? {
            Some((Response::Exit(e), _)) => Ok(e),
            Some((other, _)) => Err(unexpected(id, other)),
            None => self.stopped(id).await,
        }
    }

    pub async fn attach(&self, id: &str, s: AttachStreams) -> Result<UnixStream, RuntimeError> {
        let req = Request::Attach {
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
        };
        match self.call_streaming(id, &req).await? {
            Some((Response::Ok, stream)) => Ok(stream),
            Some((other, _)) => Err(unexpected(id, other)),
            None => Err(not_running(id)),
        }
    }

    pub async fn resize(&self, id: &str, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.simple(id, Request::Resize { width, height }).await
    }

    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: ExecProcess,
        attach: bool,
    ) -> Result<(i32, Option<UnixStream>), RuntimeError> {
        let req = Request::Exec {
            exec_id: exec_id.to_string(),
            process,
            attach,
        };
        match self.call_streaming(id, &req).await? {
            Some((Response::ExecStarted { pid }, stream)) => Ok((pid, attach.then_some(stream))),
            Some((other, _)) => Err(unexpected(id, other)),
            None => Err(not_running(id)),
        }
    }

    pub async fn exec_state(&self, id: &str, exec_id: &str) -> Result<ExecState, RuntimeError> {
        match self
            .call(
                id,
                &Request::ExecState {
                    exec_id: exec_id.to_string(),
                },
            )
            .await?
        {
            Some((Response::Exec(e), _)) => Ok(e),
            Some((other, _)) => Err(unexpected(id, other)),
            None => Err(not_running(id)),
        }
    }

    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.checked_dir(id)?;
        if let Some((Response::State(s), _)) = self.call(id, &Request::State).await? {
            if s.status != Status::Stopped {
                return Err(RuntimeError::Conflict(format!(
                    "cannot remove container {id}: container is running: stop the container before removing"
                )));
            }
            return Err(RuntimeError::Conflict(format!(
                "container {id} is still stopping"
            )));
        }
        let probe = dir.clone();
        let mounted = tokio::task::spawn_blocking(move || has_mounts_under(&probe))
            .await
            .unwrap_or(true);
        if mounted {
            return Err(RuntimeError::Conflict(format!(
                "container {id}: something is still mounted under {}",
                dir.display()
            )));
        }
        // A process of the container that is still leaving (its mount namespace being torn
        // down) can keep a directory busy for a moment after the shim reported the exit:
        // try again, a bounded number of times, before giving up. Under load this was seen
        // (EBUSY) and left the directory behind, so the next start found "already exists".
        let mut attempt = 0;
        loop {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(RuntimeError::NotFound(id.to_string()))
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::ResourceBusy
                        && attempt < REMOVE_BUSY_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(REMOVE_BUSY_PAUSE).await;
                }
                Err(e) => return Err(RuntimeError::io("remove", &dir, e)),
            }
        }
    }

    pub async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let root = self.exec_root.join("containers");
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&root).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RuntimeError::io("read", &root, e)),
        };
        while let Some(e) = rd
            .next_entry()
            .await
            .map_err(|e| RuntimeError::io("read", &root, e))?
        {
            if let Some(name) = e.file_name().to_str() {
                if e.path().join("bundle").is_dir() {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

impl Runtime for ShimRuntime {
    fn create(&self, req: ContainerStart) -> RuntimeFuture<'_, Started> {
        Box::pin(ShimRuntime::create(self, req))
    }

    fn start<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::start(self, id))
    }

    fn state<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, State> {
        Box::pin(ShimRuntime::state(self, id))
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::kill(self, id, signal, all))
    }

    fn wait<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ExitRecord> {
        Box::pin(ShimRuntime::wait(self, id))
    }

    fn attach<'a>(&'a self, id: &'a str, streams: AttachStreams) -> RuntimeFuture<'a, UnixStream> {
        Box::pin(ShimRuntime::attach(self, id, streams))
    }

    fn resize<'a>(&'a self, id: &'a str, width: u16, height: u16) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::resize(self, id, width, height))
    }

    fn pause<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::pause(self, id))
    }

    fn resume<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::resume(self, id))
    }

    fn reopen_log<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::reopen_log(self, id))
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec_id: &'a str,
        process: ExecProcess,
        attach: bool,
    ) -> RuntimeFuture<'a, (i32, Option<UnixStream>)> {
        Box::pin(ShimRuntime::exec(self, id, exec_id, process, attach))
    }

    fn exec_state<'a>(&'a self, id: &'a str, exec_id: &'a str) -> RuntimeFuture<'a, ExecState> {
        Box::pin(ShimRuntime::exec_state(self, id, exec_id))
    }

    fn exec_wait<'a>(&'a self, id: &'a str, exec_id: &'a str) -> RuntimeFuture<'a, ExecState> {
        Box::pin(ShimRuntime::exec_wait(self, id, exec_id))
    }

    fn exec_resize<'a>(
        &'a self,
        id: &'a str,
        exec_id: &'a str,
        width: u16,
        height: u16,
    ) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::exec_resize(self, id, exec_id, width, height))
    }

    fn delete<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(ShimRuntime::delete(self, id))
    }

    fn list(&self) -> RuntimeFuture<'_, Vec<String>> {
        Box::pin(ShimRuntime::list(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unmounts what the test mounted, even when an assertion fails.
    struct Mounted(std::path::PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = berth_sys::mount::unmount(&self.0, true);
        }
    }

    #[test]
    fn a_mount_under_a_directory_with_a_space_is_seen() {
        // mountinfo writes the space as `\040`: it must be read back as a space.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("exec root");
        let target = dir.join("m");
        std::fs::create_dir_all(&target).unwrap();
        assert!(!has_mounts_under(&dir));
        berth_sys::mount::mount_shm(&target, 4096).unwrap();
        let _guard = Mounted(target);
        assert!(has_mounts_under(&dir));
    }

    #[tokio::test]
    async fn the_bundle_config_is_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("config.json");
        write_atomic(&p, b"{}".to_vec()).await.unwrap();
        write_atomic(&p, b"{\"a\":1}".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "a temp file was left behind");
    }

    #[tokio::test]
    async fn bad_ids_and_missing_containers() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = ShimRuntime::new("/nonexistent/berth-shim", tmp.path());
        for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(129)] {
            assert!(
                matches!(rt.state(bad).await, Err(RuntimeError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            rt.state("nope").await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            rt.delete("nope").await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(rt.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn answers_from_exit_json_when_the_shim_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = ShimRuntime::new("/nonexistent/berth-shim", tmp.path());
        let dir = rt.dir("c1");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        assert!(
            matches!(rt.wait("c1").await, Err(RuntimeError::Internal(_))),
            "no record yet"
        );
        let rec = r#"{"exit_code":3,"finished_at":"2024-01-01T00:00:00Z"}"#;
        std::fs::write(dir.join(EXIT_FILE), rec).unwrap();
        assert_eq!(rt.wait("c1").await.unwrap().exit_code, 3);
        let s = rt.state("c1").await.unwrap();
        assert_eq!((s.status, s.exit.unwrap().exit_code), (Status::Stopped, 3));
        assert!(matches!(
            rt.kill("c1", 9, false).await,
            Err(RuntimeError::NotRunning(_))
        ));
        assert_eq!(rt.list().await.unwrap(), vec!["c1".to_string()]);
        rt.delete("c1").await.unwrap();
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn create_reports_a_missing_shim_binary() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = ShimRuntime::new("/nonexistent/berth-shim", tmp.path());
        let req = ContainerStart {
            id: "c1".into(),
            spec: Default::default(),
            log: None,
            open_stdin: false,
            stdin_once: false,
            defer_start: false,
            runtime: None,
        };
        assert!(matches!(
            rt.create(req).await,
            Err(RuntimeError::Io { what: "spawn", .. })
        ));
    }
}
