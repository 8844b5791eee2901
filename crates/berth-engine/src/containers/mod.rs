//! Containers: create, start, attach, wait, logs, kill, stop, delete, list, inspect.
//!
//! Each container is an [`Entry`]: its record (persisted atomically in
//! `<data-root>/containers/<id>/record.json`), a lock that serialises start and delete, a
//! watch channel that announces exits and removal, and the attaches waiting for a start.
//! The rootfs is an overlay mounted at `<exec-root>/containers/<id>/rootfs` while the
//! container runs; one task per running container waits on the runtime, records the exit,
//! unmounts and honours `AutoRemove`.

mod apparmor;
mod archive;
mod cgroup;
mod exec;
pub mod fs_views;
#[cfg(test)]
mod fuzz;
mod host_opts;
mod image_users;
mod lifecycle;
mod logs;
pub(crate) mod mounts;
mod names;
mod pause;
mod process;
mod record;
mod security_opts;
mod spec;
mod stats;
mod untar;
mod update;
mod userdb;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_runtime::{ContainerStart, ExternalRuntime, Runtime, RuntimeError, ShimRuntime};
use berth_shim::ExitRecord;
use serde_json::{json, Map, Value};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};

pub use berth_runtime::AttachStreams;
pub use exec::{ExecConfig, ExecStart};
pub use logs::LogsOptions;
pub use stats::Top;

use crate::events::EventBus;
use crate::system::now_rfc3339;
use crate::{Engine, EngineError, RuntimeChoice};
use record::Record;

/// A future the server awaits after it has answered (attach, wait).
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send>>;

#[derive(Debug, Clone, Copy, Default)]
struct Events {
    exits: u64,
    last_exit: i32,
    removed: bool,
}

type AttachWaiter = (
    AttachStreams,
    oneshot::Sender<Result<UnixStream, EngineError>>,
);

struct Entry {
    rec: Mutex<Record>,
    op: tokio::sync::Mutex<()>,
    events: watch::Sender<Events>,
    pending_attach: Mutex<Vec<AttachWaiter>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").finish_non_exhaustive()
    }
}

impl Entry {
    fn new(rec: Record) -> Arc<Entry> {
        Arc::new(Entry {
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            events: watch::channel(Events::default()).0,
            pending_attach: Mutex::new(Vec::new()),
        })
    }

    fn rec(&self) -> std::sync::MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The engine's container state: the runtime and the records.
#[derive(Debug)]
pub(crate) struct Containers {
    runtime: ShimRuntime,
    /// `--cgroup-parent`: each container's cgroup is `<parent>/<id>`.
    cgroup_parent: String,
    data: PathBuf,
    exec: PathBuf,
    map: Mutex<HashMap<String, Arc<Entry>>>,
    execs: exec::Execs,
    events: Arc<EventBus>,
    life: lifecycle::Supervisor,
    networks: Arc<crate::networks::Networks>,
}

/// `POST /containers/create`'s answer.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

/// `wait`'s `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// Checks the daemon's `log-driver` and `log-opts` as a container's would be checked.
pub(crate) fn check_log_defaults(config: &crate::EngineConfig) -> Result<(), EngineError> {
    let mut hc = serde_json::Map::new();
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

impl Containers {
    /// Loads the records on disk and reattaches to containers that were running.
    pub(crate) fn open(
        config: &crate::EngineConfig,
        events: Arc<EventBus>,
        networks: Arc<crate::networks::Networks>,
    ) -> Arc<Containers> {
        let data = config.data_root.join("containers");
        let exec = config.exec_root.join("containers");
        let _ = std::fs::create_dir_all(&data);
        let _ = std::fs::create_dir_all(&exec);
        let mut map = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(&data) {
            for e in rd.flatten() {
                // Views a killed daemon left mounted go first (nothing is live yet).
                fs_views::reap_views_at_start(&e.path());
                let path = e.path().join("record.json");
                match std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                {
                    Some(rec) => {
                        map.insert(rec.id.clone(), Entry::new(rec));
                    }
                    None => {
                        tracing::warn!(dir = %e.path().display(), "removing a half-made container");
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let c = Arc::new(Containers {
            runtime: ShimRuntime::new(&config.shim_binary, &config.exec_root)
                .with_shim_cgroup(config.shim_cgroup()),
            cgroup_parent: config.cgroup_parent.clone(),
            data,
            exec,
            map: Mutex::new(map),
            execs: Default::default(),
            events,
            life: Default::default(),
            networks,
        });
        let running: Vec<String> = c
            .entries()
            .into_iter()
            .filter(|e| e.rec().running())
            .map(|e| e.rec().id.clone())
            .collect();
        c.networks.forget_stale(&running);
        for e in c.entries().into_iter().filter(|e| e.rec().running()) {
            let (id, pid, filled) = {
                let mut r = e.rec();
                // A record from before start times were kept: its pid is taken for the
                // container's once, if that process is in the container's cgroup.
                let filled = r.state.start_time == 0;
                if filled {
                    let dirs = cgroup::Dirs::of(&c.cgroup_path(&r.id));
                    if dirs.pids().contains(&r.state.pid) {
                        r.state.start_time = process::start_time(r.state.pid);
                    }
                }
                (r.id.clone(), r.state.pid, filled)
            };
            if filled {
                c.persist_entry(&e);
            }
            // Verified against the recorded start time; each namespace the restore opens
            // through the handle is confirmed to be this process's.
            match berth_sys::pidfd::ProcessHandle::open(pid, e.rec().state.start_time) {
                Ok(init) => c.networks.restore(&id, &init),
                Err(err) => {
                    tracing::warn!(container_id = %id, error = %err, "not restoring the network of a container whose process is gone")
                }
            }
        }
        for id in running {
            c.clone().watch_exit(id);
        }
        c.thaw_at_start();
        c.boot_restarts();
        exec::spawn_gc(Arc::downgrade(&c));
        c
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn data_dir(&self, id: &str) -> PathBuf {
        self.data.join(id)
    }

    fn exec_dir(&self, id: &str) -> PathBuf {
        self.exec.join(rid(id))
    }

    fn rootfs(&self, id: &str) -> PathBuf {
        self.exec_dir(id).join("rootfs")
    }

    /// The host-side `/dev/shm` of a container with `IpcMode: shareable`.
    pub(crate) fn shm_dir(&self, id: &str) -> PathBuf {
        self.exec_dir(id).join("shm")
    }

    /// By full ID, name (with or without `/`), or unique ID prefix.
    fn get(&self, name: &str) -> Result<Arc<Entry>, EngineError> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get(name) {
            return Ok(e.clone());
        }
        let slash = format!("/{}", name.trim_start_matches('/'));
        if let Some(e) = map.values().find(|e| e.rec().name == slash) {
            return Ok(e.clone());
        }
        if !name.is_empty() {
            let found: Vec<_> = map
                .iter()
                .filter(|(id, _)| id.starts_with(name))
                .map(|(_, e)| e.clone())
                .collect();
            match found.len() {
                1 => return Ok(found[0].clone()),
                0 => {}
                _ => {
                    return Err(EngineError::InvalidArgument(format!(
                        "multiple IDs found with provided prefix: {name}"
                    )))
                }
            }
        }
        Err(no_such(name))
    }

    fn persist(&self, rec: &Record) -> Result<(), EngineError> {
        let path = self.data_dir(&rec.id).join("record.json");
        let bytes =
            serde_json::to_vec_pretty(rec).map_err(|e| EngineError::Internal(e.to_string()))?;
        berth_sys::fs::atomic_write(&path, &bytes, 0o600)
            .map_err(EngineError::io("cannot write", &path))
    }

    fn persist_entry(&self, e: &Entry) {
        let rec = e.rec().clone();
        if let Err(err) = self.persist(&rec) {
            tracing::error!(id = %rec.id, error = %err, "cannot persist container record");
        }
    }

    /// Unmounts the rootfs and removes the runtime's directory.
    async fn release(&self, id: &str) {
        self.networks.unplug(id);
        let rootfs = self.rootfs(id);
        if let Err(e) = berth_sys::mount::unmount(&rootfs, true) {
            tracing::warn!(id, error = %e, "cannot unmount the rootfs");
        }
        if let Err(e) = berth_sys::mount::unmount(&self.shm_dir(id), true) {
            tracing::warn!(id, error = %e, "cannot unmount the shareable /dev/shm");
        }
        match self.runtime.delete(rid(id)).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => tracing::warn!(id, error = %e, "runtime delete failed"),
        }
        let _ = std::fs::remove_dir_all(self.exec_dir(id));
    }

    /// The per-container exit task.
    fn watch_exit(self: Arc<Self>, id: String) {
        tokio::spawn(async move {
            let exit = match self.runtime.wait(rid(&id)).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(id, error = %e, "lost track of the container");
                    ExitRecord {
                        exit_code: 255,
                        signal: None,
                        oom_killed: false,
                        started_at: None,
                        finished_at: now_rfc3339(),
                        error: Some(e.to_string()),
                    }
                }
            };
            self.on_exit(&id, exit).await;
        });
    }

    async fn on_exit(self: &Arc<Self>, id: &str, exit: ExitRecord) {
        let Ok(entry) = self.get(id) else { return };
        self.release(id).await;
        mounts::emit_volume_events(self, id, false);
        let restart;
        let auto_remove = {
            let mut r = entry.rec();
            r.state.status = "exited".into();
            r.state.pid = 0;
            r.state.start_time = 0;
            r.state.exit_code = exit.exit_code;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.finished_at.clone();
            r.state.error = exit.error.clone().unwrap_or_default();
            restart = self.after_exit(&mut r, &exit);
            r.auto_remove()
        };
        self.persist_entry(&entry);
        entry.events.send_modify(|e| {
            e.exits += 1;
            e.last_exit = exit.exit_code;
        });
        if let Some((delay, generation)) = restart {
            self.clone()
                .schedule_restart(id.to_string(), delay, generation);
        }
        if auto_remove {
            let _guard = entry.op.lock().await;
            self.remove(&entry).await;
        }
    }

    /// Removes a stopped container for good.
    async fn remove(&self, entry: &Arc<Entry>) {
        let id = {
            let mut r = entry.rec();
            if r.state.status == "removing" {
                return;
            }
            r.state.status = "removing".into();
            r.id.clone()
        };
        self.release(&id).await;
        self.forget_restart(&id);
        self.execs.forget_container(&id);
        self.networks.forget(&id);
        let dir = self.data_dir(&id);
        let anon = mounts::auto_removed_volumes(&dir, entry.rec().auto_remove());
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(id, error = %e, "cannot remove the container directory");
        }
        mounts::drop_volumes(self, &anon);
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.emit(&entry.rec(), "destroy", &[]);
        entry.events.send_modify(|e| e.removed = true);
    }

    /// Waits (at most `timeout`) for an exit after `seen` exits.
    async fn await_exit(entry: &Entry, seen: u64, timeout: Duration) -> bool {
        let mut rx = entry.events.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|e| e.exits > seen || e.removed))
            .await
            .is_ok();
        ok
    }
}

/// Docker's words for a process that could not start, so the CLI picks 127/126.
fn start_error(message: String, exit_code: i32) -> String {
    let lower = message.to_ascii_lowercase();
    let hint = match exit_code {
        127 if !lower.contains("executable file not found")
            && !lower.contains("no such file or directory") =>
        {
            ": executable file not found in $PATH"
        }
        126 if !lower.contains("permission denied") => ": permission denied",
        _ => "",
    };
    format!(
        "failed to create task for container: failed to create shim task: OCI runtime create failed: {message}{hint}: unknown"
    )
}

fn parse_signal(s: &str) -> Result<i32, EngineError> {
    if s.is_empty() {
        return Ok(libc_sigkill());
    }
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| EngineError::InvalidArgument(format!("Invalid signal: {s}")))
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

/// What a create body asks for, read and checked before any ID, name or disk work.
pub(crate) struct CreatePlan {
    pub(crate) host_config: Map<String, Value>,
    pub(crate) networking: Option<Value>,
    /// `HostConfig.NetworkMode` as given (`""` before the default is filled in).
    pub(crate) mode: String,
    /// The container whose network namespace `container:<peer>` names.
    pub(crate) net_peer: Option<String>,
    /// The image's config merged with the body's.
    pub(crate) config: Map<String, Value>,
    pub(crate) mounts: Vec<mounts::MountEntry>,
    pub(crate) args: Vec<String>,
}

/// `container_create`'s reading of `body` over the image's config `image_cfg`, in its
/// order: network mode, restart policy, host options, runtime (`check_runtime`), merged
/// config, mounts, command. The fuzz target drives this same function.
pub(crate) fn plan_create(
    c: &Containers,
    engine_config: &crate::EngineConfig,
    body: &Map<String, Value>,
    image_cfg: &Map<String, Value>,
    check_runtime: &dyn Fn(&str) -> Result<(), EngineError>,
) -> Result<CreatePlan, EngineError> {
    let mut req = body.clone();
    let mut host_config = match req.remove("HostConfig") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let networking = req.remove("NetworkingConfig");
    let mode = host_config
        .get("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let net_peer = match mode.strip_prefix("container:") {
        Some(peer) => Some(c.get(peer)?.rec().id.clone()),
        None => None,
    };
    if mode.is_empty() || mode == "default" {
        host_config.insert("NetworkMode".into(), "bridge".into());
    }
    lifecycle::validate_policy(&host_config)?;
    host_opts::settle(c, engine_config, &mut host_config)?;
    // moby `daemon/daemon_unix.go`: an empty runtime is the default, stored by name.
    let runtime = host_config
        .get("Runtime")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or(&engine_config.default_runtime)
        .to_string();
    check_runtime(&runtime)?;
    host_config.insert("Runtime".into(), runtime.into());
    let config = spec::merge_config(&req, image_cfg);
    let mounts = mounts::plan(c, &host_config, &req, image_cfg)?;
    let args = spec::args_of(&config);
    if args.is_empty() {
        return Err(EngineError::InvalidArgument("No command specified".into()));
    }
    Ok(CreatePlan {
        host_config,
        networking,
        mode,
        net_peer,
        config,
        mounts,
        args,
    })
}

impl Engine {
    /// `POST /containers/create`.
    pub async fn container_create(
        &self,
        name: Option<String>,
        body: Map<String, Value>,
    ) -> Result<Created, EngineError> {
        let c = &self.containers;
        let image_name = body
            .get("Image")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| EngineError::InvalidArgument("No image specified".into()))?
            .to_string();
        let image = self.images.resolve(&image_name).map_err(|e| match e {
            berth_image::store::StoreError::NoSuchImage(_) => {
                let last = image_name.rsplit('/').next().unwrap_or("");
                if image_name.contains('@') || last.contains(':') {
                    EngineError::NotFound(format!("No such image: {image_name}"))
                } else {
                    EngineError::NotFound(format!("No such image: {image_name}:latest"))
                }
            }
            other => other.into(),
        })?;
        let image_cfg = self.images.config(&image.id)?.config.unwrap_or_default();
        let CreatePlan {
            host_config,
            networking,
            mode,
            net_peer,
            mut config,
            mounts,
            args,
        } = plan_create(c, &self.config, &body, &image_cfg, &|r| {
            self.external_runtime(r).map(drop)
        })?;
        let id = names::new_id()?;
        let hostname_empty = config
            .get("Hostname")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if hostname_empty {
            // moby `daemon/create.go`: on the host's network, the host's name.
            let host = (mode == "host")
                .then(|| nix::unistd::gethostname().ok()?.into_string().ok())
                .flatten();
            config.insert(
                "Hostname".into(),
                host.unwrap_or_else(|| id[..12].into()).into(),
            );
        }
        config.insert("Image".into(), image_name.clone().into());
        let rec_name = match &name {
            Some(n) if !n.is_empty() => Some(names::validate(n)?),
            _ => None,
        };
        let rec = Record {
            id: id.clone(),
            name: String::new(),
            created: now_rfc3339(),
            image: image_name,
            image_id: image.id.clone(),
            path: args[0].clone(),
            args: args[1..].to_vec(),
            config,
            host_config,
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
        };
        // Reserve the name and insert, under one lock.
        let entry = {
            let mut map = c.map.lock().unwrap_or_else(|e| e.into_inner());
            let taken = |n: &str| {
                map.values()
                    .find(|e| e.rec().name == n)
                    .map(|e| e.rec().id.clone())
            };
            let name = match rec_name {
                Some(n) => {
                    if let Some(other) = taken(&n) {
                        return Err(EngineError::Conflict(format!(
                            "Conflict. The container name \"{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                        )));
                    }
                    n
                }
                None => {
                    let mut attempt = 0;
                    loop {
                        let n = format!("/{}", names::random_name(attempt)?);
                        if taken(&n).is_none() || attempt > 20 {
                            break n;
                        }
                        attempt += 1;
                    }
                }
            };
            let mut rec = rec;
            rec.name = name;
            let entry = Entry::new(rec);
            map.insert(id.clone(), entry.clone());
            entry
        };
        let dir = c.data_dir(&id);
        let made = (|| {
            std::fs::create_dir_all(dir.join("rw/diff"))?;
            std::fs::create_dir_all(dir.join("rw/work"))
        })()
        .map_err(EngineError::io("cannot create", &dir))
        .and_then(|()| self.mounts_materialize(&dir, mounts))
        .and_then(|()| c.persist(&entry.rec()))
        .and_then(|()| {
            let r = entry.rec().clone();
            let net = networking.as_ref();
            c.networks
                .register(&id, &r.name, &r.config, &r.host_config, net, net_peer)
        });
        if let Err(e) = made {
            c.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        tracing::info!(id, "container created");
        c.emit(&entry.rec(), "create", &[]);
        Ok(Created {
            id,
            warnings: Vec::new(),
        })
    }

    /// `POST /containers/{id}/start`; `Ok(false)` when it already runs (304).
    pub async fn container_start(&self, name: &str) -> Result<bool, EngineError> {
        self.start_container(name, true).await
    }

    /// Starts a container, for a user (`by_user`: resets the restart count and the
    /// manual-stop mark) or for its restart policy.
    pub(crate) async fn start_container(
        &self,
        name: &str,
        by_user: bool,
    ) -> Result<bool, EngineError> {
        let c = &self.containers;
        let entry = c.get(name)?;
        let _guard = entry.op.lock().await;
        let rec = entry.rec().clone();
        match rec.state.status.as_str() {
            "running" => return Ok(false),
            "removing" | "dead" => {
                return Err(EngineError::Conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )))
            }
            _ => {}
        }
        let id = rec.id.clone();
        let data_dir = c.data_dir(&id);
        let rootfs = c.rootfs(&id);
        // A leftover of an earlier run.
        c.release(&id).await;
        std::fs::create_dir_all(&rootfs).map_err(EngineError::io("cannot create", &rootfs))?;
        let mut lowers = self.images.layer_diff_dirs(&rec.image_id)?;
        lowers.reverse();
        if lowers.is_empty() {
            let empty = data_dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(EngineError::io("cannot create", &empty))?;
            lowers.push(empty);
        }
        berth_sys::mount::mount_overlay(
            &rootfs,
            &lowers,
            &data_dir.join("rw/diff"),
            &data_dir.join("rw/work"),
        )
        .map_err(EngineError::io("cannot mount the rootfs at", &rootfs))?;
        let result = self.start_mounted(&entry, &rec, &rootfs, &data_dir).await;
        match result {
            Ok((pid, start_time)) => {
                mounts::emit_volume_events(c, &id, true);
                {
                    let mut r = entry.rec();
                    r.state.status = "running".into();
                    r.state.paused = false;
                    r.state.pid = pid;
                    r.state.start_time = start_time;
                    r.state.exit_code = 0;
                    r.state.error.clear();
                    r.state.oom_killed = false;
                    r.state.started_at = now_rfc3339();
                    r.state.finished_at = record::ZERO_TIME.into();
                    if by_user {
                        c.reset_restart(&mut r);
                    }
                    c.emit(&r, "start", &[]);
                }
                c.persist_entry(&entry);
                c.clone().watch_exit(id);
                Ok(true)
            }
            Err((err, exit_code)) => {
                for (_, tx) in entry
                    .pending_attach
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..)
                {
                    let _ = tx.send(Err(EngineError::Conflict(err.to_string())));
                }
                c.release(&id).await;
                let auto_remove = {
                    let mut r = entry.rec();
                    if let Some(code) = exit_code {
                        r.state.exit_code = code;
                    }
                    r.state.error = err.to_string();
                    r.auto_remove()
                };
                c.persist_entry(&entry);
                if auto_remove {
                    c.remove(&entry).await;
                }
                Err(err)
            }
        }
    }

    async fn start_mounted(
        &self,
        entry: &Arc<Entry>,
        rec: &Record,
        rootfs: &Path,
        data_dir: &Path,
    ) -> Result<(i32, u64), (EngineError, Option<i32>)> {
        let c = &self.containers;
        let runtime = rec.host_config.get("Runtime").and_then(Value::as_str);
        let runtime = self
            .external_runtime(runtime.unwrap_or(""))
            .map_err(|e| (e, None))?;
        let peer = (rec.network_mode().strip_prefix("container:")).and_then(|p| net_peer(c, p));
        // The peers whose namespaces the spec names by `/proc/<pid>/ns/*` path, held by
        // pidfd until the runtime has joined them.
        let (peer, mut peers): (Option<_>, Vec<_>) = match peer {
            Some((h, hosts, resolv)) => (Some((h.pid(), hosts, resolv)), vec![h]),
            None => (None, Vec::new()),
        };
        let plan = c.networks.prepare(&rec.id, peer).map_err(|e| (e, None))?;
        let cgroup = c.cgroup_path(&rec.id);
        let mut opts =
            host_opts::resolve(c, &rec.host_config, &c.shm_dir(&rec.id)).map_err(|e| (e, None))?;
        if let Some(profile) = opts.apparmor_profile.clone() {
            tokio::task::spawn_blocking(move || apparmor::ensure_loaded(&profile))
                .await
                .unwrap_or_else(|e| Err(EngineError::Internal(e.to_string())))
                .map_err(|e| (e, None))?;
        }
        peers.append(&mut opts.peers);
        let users = userdb::UserDb::of_rootfs(rootfs.to_path_buf())
            .await
            .map_err(|e| (e, None))?;
        let input = spec::spec_input(rec, rootfs, data_dir, &plan, &cgroup, opts, &users)
            .map_err(|e| (e, None))?;
        let spec = berth_runtime::build_spec(&input).map_err(|e| (rt_err(e), None))?;
        let b = |k: &str| rec.config.get(k).and_then(Value::as_bool).unwrap_or(false);
        let req = ContainerStart {
            id: rid(&rec.id).to_string(),
            spec,
            log: logs::log_options(&rec.host_config, &logs::log_path(data_dir, &rec.id)),
            open_stdin: b("OpenStdin"),
            stdin_once: b("StdinOnce"),
            defer_start: true,
            runtime,
        };
        let failed = |e: RuntimeError| match e {
            RuntimeError::StartFailed { message, exit_code } => (
                EngineError::InvalidArgument(start_error(message, exit_code)),
                Some(exit_code),
            ),
            other => (rt_err(other), None),
        };
        let started = c.runtime.create(req).await.map_err(failed)?;
        let start_time = process::start_time(started.pid);
        // A peer still alive now kept its pid the whole time: the paths the runtime opened
        // were its namespaces, not those of a process given the pid after it died.
        if let Some(gone) = peers.iter().find(|p| !p.alive()) {
            let _ = c.runtime.kill(rid(&rec.id), libc_sigkill(), true).await;
            let _ = c.runtime.wait(rid(&rec.id)).await;
            return Err((
                EngineError::Conflict(format!(
                    "cannot join the namespaces of process {}: it exited during the start",
                    gone.pid()
                )),
                None,
            ));
        }
        drop(peers);
        // veths and addresses are set up by `ip` and `nsenter`: off the async workers.
        let (nets, nid) = (c.networks.clone(), rec.id.clone());
        let init = berth_sys::pidfd::ProcessHandle::open(started.pid, start_time);
        let plugged = tokio::task::spawn_blocking(move || {
            let init = init.map_err(|e| {
                EngineError::Conflict(format!("the container's process exited: {e}"))
            })?;
            nets.plug(&nid, &init)
        })
        .await
        .unwrap_or_else(|e| Err(EngineError::Internal(format!("network setup failed: {e}"))));
        if let Err(e) = plugged {
            let _ = c.runtime.kill(rid(&rec.id), libc_sigkill(), true).await;
            let _ = c.runtime.wait(rid(&rec.id)).await;
            return Err((e, None));
        }
        // Attaches made before the start get their streams now, so no output is lost.
        let waiters: Vec<AttachWaiter> = entry
            .pending_attach
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for (streams, tx) in waiters {
            let r = c
                .runtime
                .attach(rid(&rec.id), streams)
                .await
                .map_err(rt_err);
            let _ = tx.send(r);
        }
        if let Err(e) = c.runtime.start(rid(&rec.id)).await {
            let _ = c.runtime.kill(rid(&rec.id), libc_sigkill(), true).await;
            let _ = c.runtime.wait(rid(&rec.id)).await;
            return Err(failed(e));
        }
        Ok((started.pid, start_time))
    }

    /// The external runtime called `name` (the default for `""`); `None` for the embedded
    /// one. An unknown name is dockerd's 400 (moby `daemon/runtime_unix.go`).
    fn external_runtime(&self, name: &str) -> Result<Option<ExternalRuntime>, EngineError> {
        match self.config.runtime(name) {
            Some(RuntimeChoice::Builtin) => Ok(None),
            Some(RuntimeChoice::External(rt)) => Ok(Some(ExternalRuntime {
                name: if name.is_empty() {
                    self.config.default_runtime.clone()
                } else {
                    name.to_string()
                },
                path: rt.path.clone().into(),
                args: rt.args.clone(),
            })),
            None => Err(EngineError::InvalidArgument(format!(
                "unknown or invalid runtime name: {name}"
            ))),
        }
    }

    /// `POST /containers/{id}/attach`: whether the container has a tty, and its streams
    /// (once it starts, for a created container).
    pub async fn container_attach(
        &self,
        name: &str,
        streams: AttachStreams,
    ) -> Result<(bool, Pending<UnixStream>), EngineError> {
        let c = self.containers.clone();
        let entry = c.get(name)?;
        let _guard = entry.op.lock().await;
        let (id, tty, status) = {
            let r = entry.rec();
            (r.id.clone(), r.tty(), r.state.status.clone())
        };
        if matches!(status.as_str(), "running" | "created" | "exited") {
            c.emit(&entry.rec(), "attach", &[]);
        }
        match status.as_str() {
            "running" => {
                let fut = async move { c.runtime.attach(rid(&id), streams).await.map_err(rt_err) };
                Ok((tty, Box::pin(fut)))
            }
            "created" | "exited" => {
                let (tx, rx) = oneshot::channel();
                entry
                    .pending_attach
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((streams, tx));
                let fut = async move {
                    rx.await
                        .map_err(|_| EngineError::Conflict("container was removed".into()))?
                };
                Ok((tty, Box::pin(fut)))
            }
            _ => Err(EngineError::Conflict(format!(
                "You cannot attach to a stopped container, start it first ({id})"
            ))),
        }
    }

    /// `POST /containers/{id}/wait`: registered now, resolved later with the exit code.
    pub async fn container_wait(
        &self,
        name: &str,
        cond: WaitCondition,
    ) -> Result<Pending<i32>, EngineError> {
        let entry = self.containers.get(name)?;
        let mut rx = entry.events.subscribe();
        let seen = *rx.borrow();
        let (running, code) = {
            let r = entry.rec();
            (r.running() || r.restarting(), r.state.exit_code)
        };
        if cond == WaitCondition::NotRunning && !running {
            return Ok(Box::pin(async move { Ok(code) }));
        }
        Ok(Box::pin(async move {
            let ev = rx
                .wait_for(|e| match cond {
                    WaitCondition::Removed => e.removed,
                    _ => e.exits > seen.exits || e.removed,
                })
                .await
                .map(|e| *e);
            match ev {
                Ok(e) => Ok(e.last_exit),
                // The entry is gone: it was removed.
                Err(_) => Ok(entry.rec().state.exit_code),
            }
        }))
    }

    /// `POST /containers/{id}/kill`.
    pub async fn container_kill(&self, name: &str, signal: &str) -> Result<(), EngineError> {
        let sig = parse_signal(signal)?;
        let entry = self.containers.get(name)?;
        let (id, running, restarting, stop_signal) = {
            let r = entry.rec();
            let stop = r.config.get("StopSignal").and_then(Value::as_str);
            let stop_signal = stop
                .filter(|s| !s.is_empty())
                .and_then(|s| parse_signal(s).ok());
            (r.id.clone(), r.running(), r.restarting(), stop_signal)
        };
        if !running && !restarting {
            return Err(not_running(&id));
        }
        // moby `killWithSignal`: the stop signal (or any, without one) or SIGKILL ends
        // the restart policy's run.
        if stop_signal.is_none_or(|s| s == sig) || sig == libc_sigkill() {
            self.containers.cancel_restart(&entry);
        }
        if restarting {
            return Ok(());
        }
        let r = match self.containers.runtime.kill(rid(&id), sig, false).await {
            Err(RuntimeError::NotRunning(_)) => Err(not_running(&id)),
            other => other.map_err(rt_err),
        };
        if r.is_ok() {
            self.containers
                .emit(&entry.rec(), "kill", &[("signal", &sig.to_string())]);
        }
        r
    }

    /// `POST /containers/{id}/stop`; `Ok(false)` when it was not running (304).
    pub async fn container_stop(
        &self,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<bool, EngineError> {
        let c = &self.containers;
        let entry = c.get(name)?;
        let (id, running, stop_signal, stop_timeout) = {
            let r = entry.rec();
            (
                r.id.clone(),
                r.running(),
                r.config
                    .get("StopSignal")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                r.config.get("StopTimeout").and_then(Value::as_i64),
            )
        };
        let restarting = entry.rec().restarting();
        if running || restarting {
            c.cancel_restart(&entry);
        }
        if restarting {
            c.emit(&entry.rec(), "stop", &[]);
            return Ok(true);
        }
        if !running {
            return Ok(false);
        }
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None if !stop_signal.is_empty() => parse_signal(&stop_signal)?,
            None => nix::sys::signal::Signal::SIGTERM as i32,
        };
        let t = timeout.or(stop_timeout).unwrap_or(10);
        let seen = entry.events.borrow().exits;
        if c.runtime.kill(rid(&id), sig, false).await.is_ok() {
            c.emit(&entry.rec(), "kill", &[("signal", &sig.to_string())]);
        }
        let wait = if t < 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(t as u64)
        };
        if !Containers::await_exit(&entry, seen, wait).await {
            if c.runtime.kill(rid(&id), libc_sigkill(), true).await.is_ok() {
                c.emit(
                    &entry.rec(),
                    "kill",
                    &[("signal", &libc_sigkill().to_string())],
                );
            }
            if !Containers::await_exit(&entry, seen, Duration::from_secs(30)).await {
                return Err(EngineError::Internal(format!(
                    "container {id} did not stop after SIGKILL"
                )));
            }
        }
        c.emit(&entry.rec(), "stop", &[]);
        Ok(true)
    }

    /// `DELETE /containers/{id}`.
    pub async fn container_delete(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.get(name)?;
        let _guard = entry.op.lock().await;
        let (id, cname, running, status) = {
            let r = entry.rec();
            (
                r.id.clone(),
                r.name.clone(),
                r.running(),
                r.state.status.clone(),
            )
        };
        if status == "removing" {
            return Err(EngineError::Conflict(format!(
                "removal of container {id} is already in progress"
            )));
        }
        if status == "restarting" {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"{cname}\": container is restarting: stop the container before removing or force remove"
                )));
            }
            c.cancel_restart(&entry);
        }
        if running {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"{cname}\": container is running: stop the container before removing or force remove"
                )));
            }
            c.cancel_restart(&entry);
            let seen = entry.events.borrow().exits;
            if c.runtime.kill(rid(&id), libc_sigkill(), true).await.is_ok() {
                c.emit(
                    &entry.rec(),
                    "kill",
                    &[("signal", &libc_sigkill().to_string())],
                );
            }
            if !Containers::await_exit(&entry, seen, Duration::from_secs(30)).await {
                return Err(EngineError::Internal(format!(
                    "cannot remove container \"{cname}\": could not kill it"
                )));
            }
        }
        c.remove(&entry).await;
        Ok(())
    }

    /// `GET /containers/{id}/json`.
    pub async fn container_inspect(&self, name: &str) -> Result<Value, EngineError> {
        let c = &self.containers;
        let rec = c.get(name)?.rec().clone();
        let mut v = rec.inspect(&c.data_dir(&rec.id), &c.exec_dir(&rec.id));
        if let Some(ns) = c.networks.inspect_settings(&rec.id, rec.running()) {
            v["NetworkSettings"] = ns;
        }
        v["Mounts"] = mounts::inspect_json(&c.data_dir(&rec.id));
        v["ExecIDs"] = c.execs.ids_json(&rec.id);
        Ok(v)
    }

    /// `GET /containers/json`.
    pub async fn container_list(
        &self,
        all: bool,
        filters: &berth_api_types::filters::Filters,
    ) -> Result<Vec<Value>, EngineError> {
        filters
            .allow_only(&["status", "name", "id", "label", "ancestor"])
            .map_err(EngineError::InvalidArgument)?;
        let now = now_unix();
        let mut recs: Vec<Record> = self
            .containers
            .entries()
            .iter()
            .map(|e| e.rec().clone())
            .filter(|r| r.state.status != "removing")
            .collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let status = filters.get("status");
        let names = filters.get("name");
        let ids = filters.get("id");
        let labels = filters.get("label");
        let ancestors = filters.get("ancestor");
        let out = recs
            .into_iter()
            .filter(|r| all || !status.is_empty() || r.running() || r.restarting())
            .filter(|r| status.is_empty() || status.iter().any(|s| s == r.status_word()))
            .filter(|r| {
                names.is_empty()
                    || names
                        .iter()
                        .any(|n| r.name.contains(n.trim_start_matches('/')))
            })
            .filter(|r| ids.is_empty() || ids.iter().any(|i| r.id.starts_with(i.as_str())))
            .filter(|r| {
                labels.iter().all(|l| {
                    let (k, v) = l
                        .split_once('=')
                        .map_or((l.as_str(), None), |(k, v)| (k, Some(v)));
                    match r.config.get("Labels").and_then(|m| m.get(k)) {
                        Some(Value::String(s)) => v.is_none_or(|v| v == s),
                        _ => false,
                    }
                })
            })
            .filter(|r| {
                ancestors.is_empty()
                    || ancestors
                        .iter()
                        .any(|a| *a == r.image || r.image_id.contains(a.as_str()))
            })
            .map(|r| {
                let mut v = r.summary(now);
                self.containers
                    .networks
                    .patch_summary(&r.id, r.running(), &mut v);
                v
            })
            .collect();
        Ok(out)
    }

    /// Counts for `/info`: (all, running, stopped).
    pub fn container_counts(&self) -> (usize, usize, usize) {
        let entries = self.containers.entries();
        // dockerd counts a restarting container as running.
        let running = entries
            .iter()
            .filter(|e| e.rec().running() || e.rec().restarting())
            .count();
        (entries.len(), running, entries.len() - running)
    }

    /// `GET /containers/{id}/logs`: whether it has a tty, and the log bytes as they come.
    pub async fn container_logs(
        &self,
        name: &str,
        opts: LogsOptions,
    ) -> Result<(bool, tokio::sync::mpsc::Receiver<bytes::Bytes>), EngineError> {
        let c = &self.containers;
        let entry = c.get(name)?;
        let (id, tty) = {
            let r = entry.rec();
            if logs::log_driver(&r.host_config) == logs::NO_LOG_DRIVER {
                // moby `daemon/logger`: `ErrReadLogsNotSupported`.
                return Err(EngineError::NotImplemented(
                    "configured logging driver does not support reading".into(),
                ));
            }
            (r.id.clone(), r.tty())
        };
        let path = logs::log_path(&c.data_dir(&id), &id);
        let running = {
            let entry = entry.clone();
            move || entry.rec().running() || entry.rec().restarting()
        };
        let state = entry.events.subscribe();
        Ok((tty, logs::stream(path, tty, opts, running, state)))
    }
}

/// A json value for the create response.
pub fn created_json(c: &Created) -> Value {
    json!({"Id": c.id, "Warnings": c.warnings})
}

/// What the network API needs to know of a container.
#[derive(Debug)]
pub(crate) struct ContainerBrief {
    pub id: String,
    pub running: bool,
    /// The init process of a running container (`None` when it is not the recorded one).
    pub process: Option<berth_sys::pidfd::ProcessHandle>,
}

impl Engine {
    /// ID, running state and init process of a container, by any of its names.
    pub(crate) fn container_brief(&self, name: &str) -> Result<ContainerBrief, EngineError> {
        let r = self.containers.get(name)?.rec().clone();
        Ok(ContainerBrief {
            running: r.running(),
            process: r.running().then(|| process::of_record(&r).ok()).flatten(),
            id: r.id,
        })
    }
}

/// For `--network container:<id>`: that container's init pid, hosts and resolv.conf.
pub(crate) fn net_peer(
    c: &Containers,
    id: &str,
) -> Option<(berth_sys::pidfd::ProcessHandle, String, String)> {
    let r = c.get(id).ok()?.rec().clone();
    let handle = process::of_record(&r).ok()?;
    let dir = c.data_dir(&r.id);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    Some((handle, read("hosts"), read("resolv.conf")))
}
