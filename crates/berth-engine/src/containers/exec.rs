//! `docker exec`: exec instances (create, start, inspect, resize) and the container's own
//! terminal resize.
//!
//! As in dockerd, exec instances live only in the daemon's memory, tied to their
//! container: a restarted daemon forgets them (the processes themselves belong to the
//! container's shim and keep running), and removing the container drops them. The shim
//! starts the process and carries its streams; the server splices them to the client
//! exactly as for attach, watching a tty exec's input for its detach keys. Whether an exec
//! still runs, and its exit code, are asked of the shim when someone inspects it.
//!
//! Ended execs are pruned as moby's `execCommandGC` does (`daemon/exec.go`): every
//! [`GC_INTERVAL`] an exec that no longer runs (or never started, its container gone
//! from running) is marked `CanRemove`, and one marked at the tick before is forgot, so
//! an exited exec stays inspectable for 5 to 10 minutes. Beyond moby, a container keeps
//! at most [`ENDED_KEPT`] ended execs (the longest ended go first), so a flood of execs
//! inside one interval cannot grow the table without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_runtime::RuntimeError;
use berth_runtime::{start_failure_exit_code, ExecProcess};
use serde_json::{json, Map, Value};
use tokio::net::UnixStream;
use tracing::Instrument;

use super::{names, rid, rt_err, Pending};
use crate::{Engine, EngineError};

/// One exec instance as `POST /containers/{id}/exec` made it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// As sent (`ctrl-p,ctrl-q`); checked when the instance is made.
    pub detach_keys: String,
}

impl ExecConfig {
    /// Reads Docker's `ExecConfig` body; unknown fields are ignored, wrong types refused.
    pub fn from_body(body: &Map<String, Value>) -> Result<ExecConfig, EngineError> {
        let strings = |k: &str| -> Result<Vec<String>, EngineError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) if k == "Cmd" => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(String::from).ok_or_else(|| {
                            EngineError::InvalidArgument(format!("{k}: expected strings"))
                        })
                    })
                    .collect(),
                Some(_) => Err(EngineError::InvalidArgument(format!(
                    "{k}: expected a list of strings"
                ))),
            }
        };
        let string = |k: &str| -> Result<String, EngineError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(EngineError::InvalidArgument(format!(
                    "{k}: expected a string"
                ))),
            }
        };
        let boolean = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
        let cfg = ExecConfig {
            cmd: strings("Cmd")?,
            env: strings("Env")?,
            working_dir: string("WorkingDir")?,
            user: string("User")?,
            privileged: boolean("Privileged"),
            tty: boolean("Tty"),
            attach_stdin: boolean("AttachStdin"),
            attach_stdout: boolean("AttachStdout"),
            attach_stderr: boolean("AttachStderr"),
            detach_keys: string("DetachKeys")?,
        };
        // moby `daemon/exec.go`: an empty command is refused at create.
        if cfg.cmd.is_empty() {
            return Err(EngineError::InvalidArgument(
                "No exec command specified".into(),
            ));
        }
        if let Some(bad) = cfg.env.iter().find(|e| e.is_empty() || e.starts_with('=')) {
            return Err(EngineError::InvalidArgument(format!(
                "invalid environment variable: {bad:?}"
            )));
        }
        if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
            return Err(EngineError::InvalidArgument(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                cfg.working_dir
            )));
        }
        Ok(cfg)
    }
}

/// How often ended execs are marked, then forgot (moby's `execCommandGC` ticker).
pub(crate) const GC_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Ended execs a container keeps at most between two collections.
pub(crate) const ENDED_KEPT: usize = 256;

/// Execs created and not started yet that a container may hold. dockerd has no bound: a
/// client could create execs without end and grow the daemon's memory; a running
/// container keeps its unstarted execs until it stops (the collection forgets them then).
pub(crate) const PENDING_KEPT: usize = 1024;

/// What happened to an exec so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    started: bool,
    running: bool,
    pid: i32,
    exit_code: Option<i32>,
}

#[derive(Debug)]
struct ExecEntry {
    id: String,
    container_id: String,
    config: ExecConfig,
    /// [`ExecConfig::detach_keys`] parsed; empty when none were given.
    detach_keys: Vec<u8>,
    progress: Mutex<Progress>,
    /// Marked by a collection: forgot at the next one (moby's `CanRemove`).
    can_remove: AtomicBool,
    /// When its end was first seen, as a count of ends (orders the ended execs).
    ended_seq: AtomicU64,
}

impl ExecEntry {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ended(&self) -> bool {
        self.progress().exit_code.is_some()
    }
}

/// The daemon's exec instances, by ID.
#[derive(Debug, Default)]
pub(crate) struct Execs {
    map: Mutex<HashMap<String, Arc<ExecEntry>>>,
    /// Ends seen so far: the order of ended execs.
    ends: AtomicU64,
}

impl Execs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ExecEntry>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, exec: Arc<ExecEntry>) {
        let cid = exec.container_id.clone();
        let mut map = self.map();
        map.insert(exec.id.clone(), exec);
        Self::cap_ended(&mut map, &cid, ENDED_KEPT);
    }

    /// Inserts a newly created exec unless its container already holds `cap` execs that
    /// were created and never started; `Err` gives the count.
    fn insert_created(&self, exec: Arc<ExecEntry>, cap: usize) -> Result<(), usize> {
        let pending = {
            let map = self.map();
            map.values()
                .filter(|e| e.container_id == exec.container_id && !e.progress().started)
                .count()
        };
        if pending >= cap {
            return Err(pending);
        }
        self.insert(exec);
        Ok(())
    }

    /// Records that `exec` has ended (once), for the order in which ended execs go.
    fn ended(&self, exec: &ExecEntry) {
        let seq = self.ends.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = exec
            .ended_seq
            .compare_exchange(0, seq, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Forgets the longest-ended execs of `container_id` past the `keep` latest.
    fn cap_ended(map: &mut HashMap<String, Arc<ExecEntry>>, container_id: &str, keep: usize) {
        let mut ended: Vec<(u64, String)> = map
            .values()
            .filter(|e| e.container_id == container_id && e.ended())
            .map(|e| (e.ended_seq.load(Ordering::Relaxed), e.id.clone()))
            .collect();
        if ended.len() <= keep {
            return;
        }
        // An end not recorded yet (0) counts as the oldest.
        ended.sort_unstable();
        let drop = ended.len() - keep;
        for (_, id) in ended.into_iter().take(drop) {
            map.remove(&id);
        }
    }

    /// One collection (moby's `execCommandGC` tick): forgets the execs marked at the
    /// tick before, and marks those no longer live: ended, or never started while their
    /// container does not run (`running` says which do). Returns how many it forgot.
    pub(crate) fn collect(&self, running: impl Fn(&str) -> bool) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, e| !e.can_remove.load(Ordering::Relaxed));
        let forgot = before - map.len();
        for e in map.values() {
            let live = {
                let p = e.progress();
                if p.exit_code.is_some() {
                    false
                } else {
                    p.started || running(&e.container_id)
                }
            };
            if !live {
                e.can_remove.store(true, Ordering::Relaxed);
            }
        }
        forgot
    }

    /// `ExecIDs` of a container's inspect: its execs not known to have ended, or null.
    pub(crate) fn ids(&self, container_id: &str) -> Option<Vec<String>> {
        let ids: Vec<String> = self
            .map()
            .values()
            .filter(|e| e.container_id == container_id && e.progress().exit_code.is_none())
            .map(|e| e.id.clone())
            .collect();
        (!ids.is_empty()).then_some(ids)
    }

    /// Drops the instances of a removed container (dockerd forgets them with it).
    pub(crate) fn forget_container(&self, container_id: &str) {
        self.map().retain(|_, e| e.container_id != container_id);
    }

    fn get(&self, id: &str) -> Result<Arc<ExecEntry>, EngineError> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("No such exec instance: {id}")))
    }
}

/// Runs [`Execs::collect`] every [`GC_INTERVAL`] while the containers exist.
pub(crate) fn spawn_gc(c: Weak<super::Containers>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(GC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is now
        loop {
            tick.tick().await;
            let Some(c) = c.upgrade() else { return };
            // Asked before the exec table is locked: no lock is held across the two.
            let running: std::collections::HashSet<String> = c
                .entries()
                .into_iter()
                .filter_map(|e| {
                    let r = e.rec();
                    r.running().then(|| r.id.clone())
                })
                .collect();
            let forgot = c.execs.collect(|id| running.contains(id));
            if forgot > 0 {
                tracing::debug!(forgot, "exec instances collected");
            }
        }
    });
}

/// `POST /exec/{id}/start` before the stream: whether the process has a tty, and the
/// start itself, already under way when `exec_start` returns (the server answers 101 or
/// 200 meanwhile; a start nobody awaits still runs the process). The start yields the
/// process's streams unless detached.
pub struct ExecStart {
    pub tty: bool,
    /// The sequence that ends the client's attachment, leaving the process running: set
    /// for a tty exec with stdin (moby scans only those, `container/stream/attach.go`).
    pub detach_keys: Option<Vec<u8>>,
    pub start: Pending<Option<UnixStream>>,
}

/// The `DetachKeys` of an exec's inspect: moby keeps the parsed bytes, and Go's JSON
/// writes bytes in standard base64 (`ctrl-p,ctrl-q` reads `EBE=`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The ID of a container an exec may run in: running and not paused (moby
/// `daemon/exec.go`'s `getActiveContainer`, checked at create and again at start).
fn exec_target(entry: &super::Entry) -> Result<String, EngineError> {
    let r = entry.rec();
    if !r.running() {
        return Err(EngineError::Conflict(format!(
            "container {} is not running",
            r.id
        )));
    }
    if r.state.paused {
        return Err(EngineError::Conflict(format!(
            "Container {} is paused, unpause the container before exec",
            r.id
        )));
    }
    Ok(r.id.clone())
}

/// Docker's words for an exec that could not start, so the CLI shows the cause
/// (moby `daemon/exec.go`, the containerd error translated).
fn exec_failed(message: &str) -> String {
    let hint = super::start::failure_hint(message, start_failure_exit_code(message));
    format!(
        "OCI runtime exec failed: exec failed: unable to start container process: {message}{hint}: unknown"
    )
}

/// Waits for a started exec to exit: records its exit code and emits `exec_die`.
async fn watch_exec(c: Arc<super::Containers>, exec: Arc<ExecEntry>) {
    let code = match c.runtime.exec_wait(rid(&exec.container_id), &exec.id).await {
        Ok(s) => s.exit_code.unwrap_or(0),
        // The container went first; the kernel killed the rest of its pid namespace.
        Err(_) => 137,
    };
    {
        let mut p = exec.progress();
        p.running = false;
        p.exit_code.get_or_insert(code);
    }
    c.execs.ended(&exec);
    if let Ok(entry) = c.get(&exec.container_id) {
        let code = code.to_string();
        c.emit(
            &entry.rec(),
            "exec_die",
            &[("execID", &exec.id), ("exitCode", &code)],
        );
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`: a new exec instance of a running container.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn exec_create(
        &self,
        container: &str,
        body: &Map<String, Value>,
    ) -> Result<String, EngineError> {
        let c = &self.containers;
        let entry = c.subject(container)?;
        let config = ExecConfig::from_body(body)?;
        let cid = exec_target(&entry)?;
        // moby `daemon/exec.go` checks the keys after the container, and answers 500.
        let detach_keys = if config.detach_keys.is_empty() {
            Vec::new()
        } else {
            berth_api_types::detach::parse(&config.detach_keys).map_err(|_| {
                EngineError::Internal(format!(
                    "Invalid escape keys ({}) provided",
                    config.detach_keys
                ))
            })?
        };
        let id = names::new_id()?;
        let exec = Arc::new(ExecEntry {
            id: id.clone(),
            container_id: cid.clone(),
            config,
            detach_keys,
            progress: Mutex::new(Progress::default()),
            can_remove: AtomicBool::new(false),
            ended_seq: AtomicU64::new(0),
        });
        let action = format!("exec_create: {}", exec.config.cmd.join(" "));
        c.execs
            .insert_created(exec, PENDING_KEPT)
            .map_err(|n| {
                EngineError::Conflict(format!(
                    "container {cid} has {n} exec instances created and not started: start them, or stop the container, before creating more"
                ))
            })?;
        c.emit(&entry.rec(), &action, &[("execID", &id)]);
        tracing::info!(exec_id = %id, "exec created");
        Ok(id)
    }

    /// `POST /exec/{id}/start`; `tty` (the request's `Tty`) overrides the instance's.
    #[tracing::instrument(skip_all, fields(exec_id = ?exec_id, container_id = tracing::field::Empty))]
    pub async fn exec_start(
        &self,
        exec_id: &str,
        detach: bool,
        tty: Option<bool>,
    ) -> Result<ExecStart, EngineError> {
        let c = self.containers.clone();
        let exec = c.execs.get(exec_id)?;
        tracing::Span::current()
            .record("container_id", tracing::field::display(&exec.container_id));
        {
            let mut p = exec.progress();
            if p.exit_code.is_some() {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {} has already run",
                    exec.id
                )));
            }
            if p.started {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {} is already running",
                    exec.id
                )));
            }
            p.started = true;
        }
        let tty = tty.unwrap_or(exec.config.tty) || exec.config.tty;
        let detach_keys =
            (tty && exec.config.attach_stdin && !detach).then(|| exec.detach_keys.clone());
        let start = async move {
            let result = Self::exec_run(&c, &exec, detach, tty).await;
            if result.is_err() {
                // moby sets 126 for a process that could not start (127: not found).
                {
                    let mut p = exec.progress();
                    p.running = false;
                    p.exit_code.get_or_insert(126);
                }
                c.execs.ended(&exec);
            }
            result
        };
        // Under way now, not once the caller awaits it: the server answers 101 and waits
        // for the client to read it (berth-server's `peer`, a 1 ms timer at least) while
        // the shim starts the process, instead of before.
        let task = tokio::spawn(start.instrument(tracing::Span::current()));
        let start = async move {
            task.await
                .map_err(|e| EngineError::Internal(format!("exec start: {e}")))?
        };
        Ok(ExecStart {
            tty,
            detach_keys,
            start: Box::pin(start),
        })
    }

    /// Starts the process of `exec` in its container (the part after the answer).
    async fn exec_run(
        c: &Arc<super::Containers>,
        exec: &Arc<ExecEntry>,
        detach: bool,
        tty: bool,
    ) -> Result<Option<UnixStream>, EngineError> {
        let entry = c.get(&exec.container_id)?;
        let cid = exec_target(&entry)?;
        let cfg = &exec.config;
        // The user database the container's process sees (never the host's).
        let users = if cfg.user.is_empty() {
            super::userdb::UserDb::default()
        } else {
            let process = super::process::of_record(&entry.rec().clone())?;
            super::userdb::UserDb::of_process(process).await?
        };
        // moby's `execSetPlatformOpt`: a user of its own gets `getUser`'s groups (primary,
        // memberships, the container's GroupAdd); none keeps the container's process user.
        let user = if cfg.user.is_empty() {
            users.resolve_user("")?
        } else {
            users.user(&cfg.user, &entry.rec().host_config.group_add.strings())?
        };
        // Another user's HOME, unless the exec or the container sets one (see `with_home`).
        let container_env: Vec<String> = entry.rec().config.env.strings();
        let env = if cfg.user.is_empty() || super::userdb::sets_home(&container_env) {
            cfg.env.clone()
        } else {
            super::spec::with_home(cfg.env.clone(), &users, user.uid)
        };
        let process = ExecProcess {
            args: cfg.cmd.clone(),
            env,
            cwd: (!cfg.working_dir.is_empty()).then(|| cfg.working_dir.clone()),
            uid: (!cfg.user.is_empty()).then_some(user.uid),
            gid: (!cfg.user.is_empty()).then_some(user.gid),
            additional_gids: user.additional_gids,
            tty,
            stdin: cfg.attach_stdin && !detach,
            privileged: cfg.privileged,
            capabilities: if cfg.privileged {
                berth_runtime::spec::ALL_CAPS
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            } else {
                Vec::new()
            },
        };
        match c.runtime.exec(rid(&cid), &exec.id, process, !detach).await {
            Ok((pid, stream)) => {
                *exec.progress() = Progress {
                    started: true,
                    running: true,
                    pid,
                    exit_code: None,
                };
                tracing::info!(pid, "exec started");
                let action = format!("exec_start: {}", cfg.cmd.join(" "));
                c.emit(&entry.rec(), &action, &[("execID", &exec.id)]);
                // Outlives the request (a detached exec): a span of its own.
                let span = tracing::info_span!(parent: None, "exec_watch", container_id = %cid, exec_id = %exec.id);
                tokio::spawn(watch_exec(c.clone(), exec.clone()).instrument(span));
                Ok(stream)
            }
            Err(RuntimeError::Internal(message))
            | Err(RuntimeError::StartFailed { message, .. }) => {
                let mut p = exec.progress();
                p.running = false;
                p.exit_code = Some(match start_failure_exit_code(&message) {
                    127 => 127,
                    _ => 126,
                });
                Err(EngineError::Internal(exec_failed(&message)))
            }
            Err(e) => Err(rt_err(e)),
        }
    }

    /// A client typed the detach keys on an exec's stream: moby's `exec_detach` event
    /// (`daemon/exec.go`).
    pub fn exec_detached(&self, exec_id: &str) {
        let c = &self.containers;
        let Ok(exec) = c.execs.get(exec_id) else {
            return;
        };
        if let Ok(entry) = c.get(&exec.container_id) {
            c.emit(&entry.rec(), "exec_detach", &[("execID", &exec.id)]);
        }
    }

    /// A client typed the detach keys on a container's attach stream: moby's `detach`
    /// event (`daemon/attach.go`).
    pub fn container_detached(&self, name: &str) {
        let c = &self.containers;
        if let Ok(entry) = c.get(name) {
            c.emit(&entry.rec(), "detach", &[]);
        }
    }

    /// `GET /exec/{id}/json`, in Docker's shape.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<Value, EngineError> {
        let c = &self.containers;
        let exec = c.execs.get(exec_id)?;
        let known = *exec.progress();
        if known.running {
            match c
                .runtime
                .exec_state(rid(&exec.container_id), &exec.id)
                .await
            {
                Ok(s) => {
                    let mut p = exec.progress();
                    p.running = s.running;
                    p.exit_code = s.exit_code;
                }
                // The container (and with it the process) is gone; the kernel killed
                // what was left of its pid namespace.
                Err(RuntimeError::NotRunning(_)) | Err(RuntimeError::NotFound(_)) => {
                    let mut p = exec.progress();
                    p.running = false;
                    p.exit_code.get_or_insert(137);
                }
                Err(e) => return Err(rt_err(e)),
            }
            if exec.ended() {
                c.execs.ended(&exec);
            }
        }
        let p = *exec.progress();
        let cfg = &exec.config;
        // moby `ContainerExecInspect`: on Linux `privileged` is always present, `user`
        // only when set.
        let (entrypoint, arguments) = cfg
            .cmd
            .split_first()
            .map_or(("", &[][..]), |(e, a)| (e.as_str(), a));
        let mut process = json!({
            "tty": cfg.tty,
            "entrypoint": entrypoint,
            "arguments": arguments,
            "privileged": cfg.privileged,
        });
        if !cfg.user.is_empty() {
            process["user"] = json!(cfg.user);
        }
        Ok(json!({
            "ID": exec.id,
            "Running": p.running,
            "ExitCode": p.exit_code,
            "ProcessConfig": process,
            "OpenStdin": cfg.attach_stdin,
            "OpenStderr": cfg.attach_stderr,
            "OpenStdout": cfg.attach_stdout,
            "CanRemove": exec.can_remove.load(Ordering::Relaxed),
            "ContainerID": exec.container_id,
            "DetachKeys": base64(&exec.detach_keys),
            "Pid": p.pid,
        }))
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(
        &self,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let c = &self.containers;
        let exec = c.execs.get(exec_id)?;
        if !exec.progress().running {
            return Err(EngineError::Conflict(format!(
                "Exec {} is not running",
                exec.id
            )));
        }
        c.runtime
            .exec_resize(rid(&exec.container_id), &exec.id, width, height)
            .await
            .map_err(rt_err)
    }

    /// `POST /containers/{id}/resize`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_resize(
        &self,
        name: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let c = &self.containers;
        let (entry, id) = c.running_subject(name)?;
        // containerd's resize of a process without a console does nothing and succeeds,
        // so dockerd answers 200 (and logs the event) for a container without a tty.
        if entry.rec().tty() {
            c.runtime
                .resize(rid(&id), width, height)
                .await
                .map_err(rt_err)?;
        }
        let (h, w) = (height.to_string(), width.to_string());
        c.emit(&entry.rec(), "resize", &[("height", &h), ("width", &w)]);
        Ok(())
    }
}

impl super::Containers {
    /// Starts a healthcheck probe as moby's `cmdProbe` does: an exec instance of the
    /// container (in its `ExecIDs` while it runs; `exec_create`, `exec_start` and
    /// `exec_die` events) running `cmd` as the container's user, stdout and stderr
    /// attached, no tty. Returns the exec's ID, its pid and its multiplexed output.
    pub(super) async fn start_probe(
        self: &Arc<Self>,
        entry: &super::Entry,
        cmd: Vec<String>,
    ) -> Result<(String, i32, Option<UnixStream>), EngineError> {
        let cid = exec_target(entry)?;
        let user = entry.rec().config.user.or_default();
        let id = names::new_id()?;
        let exec = Arc::new(ExecEntry {
            id: id.clone(),
            container_id: cid,
            config: ExecConfig {
                cmd,
                user,
                attach_stdout: true,
                attach_stderr: true,
                ..ExecConfig::default()
            },
            detach_keys: Vec::new(),
            progress: Mutex::new(Progress {
                started: true,
                ..Progress::default()
            }),
            can_remove: AtomicBool::new(false),
            ended_seq: AtomicU64::new(0),
        });
        self.execs.insert(exec.clone());
        let action = format!("exec_create: {}", exec.config.cmd.join(" "));
        self.emit(&entry.rec(), &action, &[("execID", &id)]);
        match Engine::exec_run(self, &exec, false, false).await {
            Ok(stream) => {
                let pid = exec.progress().pid;
                Ok((id, pid, stream))
            }
            Err(e) => {
                {
                    let mut p = exec.progress();
                    p.running = false;
                    p.exit_code.get_or_insert(126);
                }
                self.execs.ended(&exec);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn entry(id: &str, container: &str) -> Arc<ExecEntry> {
        Arc::new(ExecEntry {
            id: id.into(),
            container_id: container.into(),
            config: ExecConfig::default(),
            detach_keys: Vec::new(),
            progress: Mutex::new(Progress::default()),
            can_remove: AtomicBool::new(false),
            ended_seq: AtomicU64::new(0),
        })
    }

    fn end(execs: &Execs, e: &ExecEntry, code: i32) {
        e.progress().exit_code = Some(code);
        execs.ended(e);
    }

    #[test]
    fn created_and_unstarted_execs_are_capped_per_container() {
        let execs = Execs::default();
        for i in 0..3 {
            execs
                .insert_created(entry(&format!("p{i}"), "c1"), 3)
                .unwrap();
        }
        assert_eq!(execs.insert_created(entry("p3", "c1"), 3), Err(3));
        // Another container has its own count; a started exec no longer counts.
        execs.insert_created(entry("q0", "c2"), 3).unwrap();
        execs.map()["p0"].progress().started = true;
        execs.insert_created(entry("p3", "c1"), 3).unwrap();
        assert_eq!(execs.map().len(), 5);
    }

    #[test]
    fn ended_execs_are_marked_then_forgot_at_the_next_collection() {
        let execs = Execs::default();
        let (ran, runs, idle, orphan) = (
            entry("ran", "c1"),
            entry("runs", "c1"),
            entry("idle", "c1"),
            entry("orphan", "c2"),
        );
        for e in [&ran, &runs, &idle, &orphan] {
            execs.insert(e.clone());
        }
        runs.progress().started = true;
        end(&execs, &ran, 0);
        let running = |id: &str| id == "c1";
        // First tick: the ended one and the never-started one of a stopped container are
        // marked (inspect shows CanRemove), nothing is forgot yet.
        assert_eq!(execs.collect(running), 0);
        assert!(ran.can_remove.load(Ordering::Relaxed));
        assert!(orphan.can_remove.load(Ordering::Relaxed));
        assert!(!runs.can_remove.load(Ordering::Relaxed));
        assert!(!idle.can_remove.load(Ordering::Relaxed));
        assert!(execs.get("ran").is_ok());
        // `runs` ends between the ticks: marked now, forgot at the tick after.
        end(&execs, &runs, 1);
        assert_eq!(execs.collect(running), 2);
        assert!(execs.get("ran").is_err() && execs.get("orphan").is_err());
        assert!(execs.get("runs").is_ok() && execs.get("idle").is_ok());
        assert_eq!(execs.collect(running), 1);
        assert!(execs.get("runs").is_err());
        // Created, never started, container running: kept as long as that lasts.
        assert_eq!(execs.collect(running), 0);
        assert!(execs.get("idle").is_ok());
    }

    #[test]
    fn a_container_keeps_its_latest_ended_execs_only() {
        let execs = Execs::default();
        let other = entry("other", "c2");
        execs.insert(other.clone());
        end(&execs, &other, 0);
        let running = entry("running", "c1");
        running.progress().started = true;
        execs.insert(running);
        for i in 0..ENDED_KEPT + 10 {
            let e = entry(&format!("e{i}"), "c1");
            execs.insert(e.clone());
            end(&execs, &e, 0);
        }
        // Inserts trim: the 10 longest ended go, the rest and others stay.
        execs.insert(entry("new", "c1"));
        assert_eq!(execs.map().len(), ENDED_KEPT + 3);
        for i in 0..10 {
            assert!(execs.get(&format!("e{i}")).is_err(), "e{i}");
        }
        for id in ["e10", "running", "new", "other"] {
            assert!(execs.get(id).is_ok(), "{id}");
        }
        let last = format!("e{}", ENDED_KEPT + 9);
        assert!(execs.get(&last).is_ok());
    }

    #[test]
    fn exec_config_refuses_bad_input() {
        for (b, want) in [
            (json!({}), "No exec command specified"),
            (json!({"Cmd": []}), "No exec command specified"),
            (json!({"Cmd": null}), "No exec command specified"),
            (json!({"Cmd": [1]}), "Cmd"),
            (json!({"Cmd": ["sh"], "Env": "A=1"}), "Env"),
            (json!({"Cmd": ["sh"], "Env": ["=x"]}), "invalid environment"),
            (json!({"Cmd": ["sh"], "WorkingDir": "rel"}), "absolute path"),
            (json!({"Cmd": ["sh"], "User": 3}), "User"),
        ] {
            let err = ExecConfig::from_body(&body(b.clone())).unwrap_err();
            assert!(err.to_string().contains(want), "{b}: {err}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{b}");
        }
    }

    #[test]
    fn exec_config_reads_docker_fields() {
        let c = ExecConfig::from_body(&body(json!({
            "Cmd": ["sh", "-c", "id"], "Env": ["A=1"], "WorkingDir": "/tmp", "User": "1:2",
            "Tty": true, "AttachStdin": true, "AttachStdout": true, "AttachStderr": false,
            "DetachKeys": "ctrl-x", "Privileged": true, "Unknown": {"x": 1}
        })))
        .unwrap();
        assert_eq!(c.cmd, ["sh", "-c", "id"]);
        assert_eq!(
            (c.env.len(), c.working_dir.as_str(), c.user.as_str()),
            (1, "/tmp", "1:2")
        );
        assert!(c.tty && c.attach_stdin && c.attach_stdout && !c.attach_stderr && c.privileged);
        assert_eq!(c.detach_keys, "ctrl-x");
        // A bare string command is one argument, as Go's strslice decodes it.
        let c = ExecConfig::from_body(&body(json!({"Cmd": "date"}))).unwrap();
        assert_eq!(c.cmd, ["date"]);
    }

    #[test]
    fn detach_keys_inspect_as_go_encodes_bytes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(&[16, 17]), "EBE=");
        assert_eq!(base64(&[1, b'b']), "AWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"abcd"), "YWJjZA==");
    }

    #[test]
    fn exec_failures_are_worded_like_docker() {
        let m = exec_failed("executable 'nope' not found in $PATH");
        assert!(
            m.starts_with("OCI runtime exec failed: exec failed:"),
            "{m}"
        );
        assert!(m.contains("executable file not found in $PATH"), "{m}");
        assert!(m.ends_with(": unknown"));
        assert!(exec_failed("Permission denied").contains("Permission denied"));
    }

    /// The shim is asked to run the process when the start is made, not when its caller
    /// first awaits it: the server answers 101 and waits for the client to read it
    /// meanwhile (issue 14's exec regression: that wait came first, 1 to 2 ms).
    #[tokio::test]
    async fn the_runtime_is_asked_before_the_start_is_awaited() {
        let w = super::super::tests::world().await;
        let id = w.create(json!({})).await;
        assert!(w.engine.container_start(&id).await.unwrap());
        let exec_id = w
            .engine
            .exec_create(&id, &body(json!({"Cmd": ["true"], "AttachStdout": true})))
            .await
            .unwrap();
        let started = w.engine.exec_start(&exec_id, false, None).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while w.fake.count("exec", &id) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the runtime was not asked: {:?}",
                w.fake.calls()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The fake runs no process: the start reports the runtime's refusal.
        let e = started.start.await.err().unwrap();
        assert!(e.to_string().contains("runs no execs"), "{e}");
        let inspect = w.engine.exec_inspect(&exec_id).await.unwrap();
        assert_eq!(inspect["ExitCode"], 126);
    }
}
