//! The container store: each container's [`Entry`] (its record, persisted atomically
//! in `<data-root>/containers/<id>/record.json`, a lock that serialises start and delete,
//! a watch channel that announces exits and removal, and the attaches waiting for a
//! start); lookup by ID, name or prefix; recovery at daemon start; the exit task that
//! records an exit, unmounts and honours `AutoRemove`; final removal.

use berth_cgroups::Dirs;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api_types::container::ContainerStatus;
use berth_runtime::ExitRecord;
use berth_runtime::{Runtime, RuntimeError};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use super::record::{Record, RecordError};
use super::rootfs::RootfsMounter;
use super::{exec, fs_views, health, lifecycle, mounts, no_such, process, rid, AttachStreams};
use crate::events::EventBus;
use crate::system::now_rfc3339;
use crate::EngineError;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Events {
    pub(super) exits: u64,
    pub(super) last_exit: i32,
    pub(super) removed: bool,
}

pub(super) type AttachWaiter = (
    AttachStreams,
    oneshot::Sender<Result<UnixStream, EngineError>>,
);

pub(super) struct Entry {
    pub(super) rec: Mutex<Record>,
    pub(super) op: tokio::sync::Mutex<()>,
    pub(super) events: watch::Sender<Events>,
    pub(super) pending_attach: Mutex<Vec<AttachWaiter>>,
    /// `docker ps`'s `Mounts`, read from `mounts.json` once it exists (it is written at
    /// create and never changes).
    pub(super) mounts: std::sync::OnceLock<serde_json::Value>,
    /// Held while the record is copied and written out, so that writes off the async
    /// workers land in order: the last one holds the latest state.
    disk: Mutex<()>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").finish_non_exhaustive()
    }
}

impl Entry {
    pub(super) fn new(rec: Record) -> Arc<Entry> {
        Arc::new(Entry {
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            events: watch::channel(Events::default()).0,
            pending_attach: Mutex::new(Vec::new()),
            mounts: std::sync::OnceLock::new(),
            disk: Mutex::new(()),
        })
    }

    pub(super) fn rec(&self) -> std::sync::MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The engine's container state: the runtime and the records.
#[derive(Debug)]
pub(crate) struct Containers {
    pub(super) runtime: Arc<dyn Runtime>,
    /// Mounts each container's rootfs at start.
    pub(super) mounter: Arc<dyn RootfsMounter>,
    /// `--cgroup-parent`: each container's cgroup is `<parent>/<id>`.
    pub(super) cgroup_parent: String,
    pub(super) data: PathBuf,
    pub(super) exec: PathBuf,
    pub(super) map: Mutex<HashMap<String, Arc<Entry>>>,
    pub(super) execs: exec::Execs,
    pub(super) events: Arc<EventBus>,
    pub(super) life: lifecycle::Supervisor,
    pub(super) networks: Arc<crate::networks::Networks>,
    /// The healthcheck monitors.
    pub(super) health: health::Monitors,
}

impl Containers {
    /// Loads the records on disk and reattaches to containers that were running.
    pub(crate) fn open(
        config: &crate::EngineConfig,
        (runtime, mounter): (
            Arc<dyn berth_runtime::Runtime>,
            Arc<dyn super::rootfs::RootfsMounter>,
        ),
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
                match std::fs::read(&path).map(|b| Record::from_json(&b)) {
                    Ok(Ok(rec)) => {
                        map.insert(rec.id.clone(), Entry::new(rec));
                    }
                    Ok(Err(err @ RecordError::Newer(_))) => {
                        // Written by a later berthd: left as it is, for that one.
                        tracing::warn!(dir = %e.path().display(), error = %err, "skipping a container");
                    }
                    _ => {
                        tracing::warn!(dir = %e.path().display(), "removing a half-made container");
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let c = Arc::new(Containers {
            runtime,
            mounter,
            cgroup_parent: config.cgroup_parent.clone(),
            data,
            exec,
            map: Mutex::new(map),
            execs: Default::default(),
            events,
            life: Default::default(),
            networks,
            health: health::Monitors::new(config.health_on_failure),
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
                    let dirs = berth_cgroups::Dirs::of(&c.cgroup_path_of(&r));
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
            if let Ok(e) = c.get(&id) {
                if !e.rec().state.paused {
                    c.health_init(&e);
                }
            }
            c.clone().watch_exit(id);
        }
        c.thaw_at_start();
        c.boot_restarts();
        exec::spawn_gc(Arc::downgrade(&c));
        c
    }

    pub(super) fn entries(&self) -> Vec<Arc<Entry>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn data_dir(&self, id: &str) -> PathBuf {
        self.data.join(id)
    }

    pub(super) fn exec_dir(&self, id: &str) -> PathBuf {
        self.exec.join(rid(id))
    }

    pub(super) fn rootfs(&self, id: &str) -> PathBuf {
        self.exec_dir(id).join("rootfs")
    }

    /// The host-side `/dev/shm` of a container with `IpcMode: shareable`.
    pub(crate) fn shm_dir(&self, id: &str) -> PathBuf {
        self.exec_dir(id).join("shm")
    }

    /// By full ID, name (with or without `/`), or unique ID prefix.
    pub(super) fn get(&self, name: &str) -> Result<Arc<Entry>, EngineError> {
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

    /// [`Containers::get`] for the container an operation is about: its ID goes on the
    /// operation's span (field `container_id`; `container`, the name or prefix the client
    /// gave, when that is not the ID), so that every line logged from here on says which
    /// container it is about.
    pub(super) fn subject(&self, name: &str) -> Result<Arc<Entry>, EngineError> {
        let entry = self.get(name)?;
        let span = tracing::Span::current();
        let id = entry.rec().id.clone();
        span.record("container_id", tracing::field::display(&id));
        if name != id {
            span.record("container", tracing::field::debug(name));
        }
        Ok(entry)
    }

    /// [`Containers::subject`] for an operation on a running container: the entry and
    /// its ID, or dockerd's `Container <id> is not running` (409).
    pub(super) fn running_subject(&self, name: &str) -> Result<(Arc<Entry>, String), EngineError> {
        let entry = self.subject(name)?;
        let (id, running) = {
            let r = entry.rec();
            (r.id.clone(), r.running())
        };
        if !running {
            return Err(super::not_running(&id));
        }
        Ok((entry, id))
    }

    pub(super) fn persist(&self, rec: &Record) -> Result<(), EngineError> {
        write_record(&self.data_dir(&rec.id), rec)
    }

    /// Writes the entry's record as it is now, off the async workers (the write fsyncs).
    pub(super) async fn save(&self, entry: &Arc<Entry>) -> Result<(), EngineError> {
        let (entry, path) = (entry.clone(), self.data.clone());
        crate::blocking::spawn(move || {
            let _disk = entry.disk.lock().unwrap_or_else(|e| e.into_inner());
            let rec = entry.rec().clone();
            write_record(&path.join(&rec.id), &rec)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("cannot persist the container record: {e}")))?
    }

    /// [`Containers::save`], a failure logged.
    pub(super) async fn save_logged(&self, entry: &Arc<Entry>) {
        if let Err(err) = self.save(entry).await {
            tracing::error!(error = %err, "cannot persist container record");
        }
    }

    pub(super) fn persist_entry(&self, e: &Entry) {
        let rec = e.rec().clone();
        if let Err(err) = self.persist(&rec) {
            tracing::error!(id = %rec.id, error = %err, "cannot persist container record");
        }
    }

    /// Unmounts the rootfs and removes the runtime's directory (the unplug, unmounts and
    /// removal off the async workers).
    pub(super) async fn release(&self, id: &str) {
        let (networks, mounter) = (self.networks.clone(), self.mounter.clone());
        let (cid, rootfs, shm) = (id.to_string(), self.rootfs(id), self.shm_dir(id));
        let _ = crate::blocking::spawn(move || {
            networks.unplug(&cid);
            if let Err(e) = mounter.unmount(&rootfs) {
                tracing::warn!(id = cid, error = %e, "cannot unmount the rootfs");
            }
            if let Err(e) = berth_sys::mount::unmount(&shm, true) {
                tracing::warn!(id = cid, error = %e, "cannot unmount the shareable /dev/shm");
            }
        })
        .await;
        match self.runtime.delete(rid(id)).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => tracing::warn!(id, error = %e, "runtime delete failed"),
        }
        let dir = self.exec_dir(id);
        let _ = crate::blocking::spawn(move || std::fs::remove_dir_all(dir)).await;
        // The last shim out removes `<cgroup-parent>/shims`, unless another was still
        // leaving: once no other container runs, the daemon removes it (in the background).
        let others_run = self
            .entries()
            .iter()
            .any(|e| e.rec().id != id && (e.rec().running() || e.rec().restarting()));
        if !others_run {
            let shims = format!("{}/shims", self.cgroup_parent.trim_end_matches('/'));
            drop(crate::blocking::spawn(move || {
                if let Ok(layout) = berth_cgroups::Layout::read() {
                    berth_cgroups::sweep(&layout, &shims, std::time::Duration::from_secs(2));
                }
            }));
        }
    }

    /// The per-container exit task: it outlives the request that started the container,
    /// so it has a span of its own (not a child of the request's).
    pub(super) fn watch_exit(self: Arc<Self>, id: String) {
        let span = tracing::info_span!(parent: None, "exit_watch", container_id = %id);
        let task = async move {
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
        };
        tokio::spawn(task.instrument(span));
    }

    pub(super) async fn on_exit(self: &Arc<Self>, id: &str, exit: ExitRecord) {
        let Ok(entry) = self.get(id) else { return };
        self.health_stop(&entry);
        self.release(id).await;
        mounts::emit_volume_events(self, id, false);
        let restart;
        let auto_remove = {
            let mut r = entry.rec();
            r.state.status = ContainerStatus::Exited;
            r.state.pid = 0;
            r.state.start_time = 0;
            r.state.exit_code = exit.exit_code;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.finished_at.clone();
            r.state.error = exit.error.clone().unwrap_or_default();
            restart = self.after_exit(&mut r, &exit);
            r.auto_remove()
        };
        self.save_logged(&entry).await;
        tracing::debug!(exit_code = exit.exit_code, "container exited");
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
    pub(super) async fn remove(&self, entry: &Arc<Entry>) {
        let id = {
            let mut r = entry.rec();
            if r.state.status == ContainerStatus::Removing {
                return;
            }
            r.state.status = ContainerStatus::Removing;
            r.id.clone()
        };
        self.health_stop(entry);
        self.release(&id).await;
        // What a daemon killed mid-start left staged (host binds, image mounts' overlays):
        // a start clears it too, but this container will not start again.
        if let Some(root) = self.exec.parent() {
            let parent = root.join("binds").join(rid(&id));
            let _ = crate::blocking::spawn(move || mounts::Staging::clear_leftovers(&parent)).await;
        }
        self.forget_restart(&id);
        self.execs.forget_container(&id);
        self.networks.forget(&id).await;
        let dir = self.data_dir(&id);
        let (d, auto) = (dir.clone(), entry.rec().auto_remove());
        let anon = crate::blocking::spawn(move || mounts::auto_removed_volumes(&d, auto))
            .await
            .unwrap_or_default();
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(id, error = %e, "cannot remove the container directory");
        }
        mounts::drop_volumes(self, anon).await;
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.emit(&entry.rec(), "destroy", &[]);
        tracing::debug!("container removed");
        entry.events.send_modify(|e| e.removed = true);
    }

    /// Waits (at most `timeout`) for an exit after `seen` exits.
    pub(super) async fn await_exit(entry: &Entry, seen: u64, timeout: Duration) -> bool {
        let mut rx = entry.events.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|e| e.exits > seen || e.removed))
            .await
            .is_ok();
        ok
    }
}

/// `<dir>/record.json`, atomically (fsynced).
fn write_record(dir: &std::path::Path, rec: &Record) -> Result<(), EngineError> {
    let path = dir.join("record.json");
    let bytes = serde_json::to_vec_pretty(rec).map_err(|e| EngineError::Internal(e.to_string()))?;
    berth_sys::fs::atomic_write(&path, &bytes, 0o600)
        .map_err(EngineError::io("cannot write", &path))
}

impl Containers {
    /// Thaws the running containers a dead berthd left frozen (mid `cp`/`commit`): those
    /// whose record is not paused but whose cgroup is frozen. Runs in the background: one
    /// blocking task reads the cgroup layout once and finds the frozen ones (a mountinfo
    /// read per container took seconds at 1,000, and held the blocking threads the first
    /// requests needed); each is then thawed under its operation lock, so a `pause` that
    /// comes first is kept.
    pub(super) fn thaw_at_start(self: &Arc<Self>) {
        let candidates: Vec<(Arc<Entry>, String)> = (self.entries().into_iter())
            .filter_map(|entry| {
                let (running, paused, path) = {
                    let r = entry.rec();
                    (r.running(), r.state.paused, self.cgroup_path_of(&r))
                };
                (running && !paused).then_some((entry, path))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let c = self.clone();
        tokio::spawn(async move {
            let frozen = crate::blocking::spawn(move || {
                let layout = match berth_cgroups::Layout::read() {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the cgroup layout; not looking for frozen containers");
                        return Vec::new();
                    }
                };
                let v2 = berth_sys::host::cgroup_version() == berth_sys::host::CgroupVersion::V2;
                frozen_of(candidates, |path| Dirs::from_layout(&layout, v2, path))
            })
            .await
            .unwrap_or_default();
            for (entry, dirs) in frozen {
                tokio::spawn(thaw_left_frozen(c.clone(), entry, dirs));
            }
        });
    }
}

/// Those of `candidates` (entry, cgroup path) whose cgroup is frozen.
fn frozen_of<T>(candidates: Vec<(T, String)>, dirs: impl Fn(&str) -> Dirs) -> Vec<(T, Dirs)> {
    candidates
        .into_iter()
        .filter_map(|(entry, path)| {
            let d = dirs(&path);
            d.frozen().then_some((entry, d))
        })
        .collect()
}

/// Thaws a container found frozen at start, under its operation lock, unless it was
/// paused (or thawed) meanwhile.
async fn thaw_left_frozen(c: Arc<Containers>, entry: Arc<Entry>, dirs: Dirs) {
    let _guard = entry.op.lock().await;
    let id = {
        let r = entry.rec();
        if r.state.paused {
            return;
        }
        r.id.clone()
    };
    let dirs = match crate::blocking::spawn(move || dirs.frozen().then_some(dirs)).await {
        Ok(Some(dirs)) => dirs,
        _ => return,
    };
    tracing::warn!(container_id = %id, "thawing a container left frozen by an earlier run");
    if let Err(e) = c.runtime.resume(rid(&id)).await {
        tracing::warn!(container_id = %id, error = %e, "the shim cannot thaw the container; writing its cgroup");
        let thawed = crate::blocking::spawn(move || dirs.thaw()).await;
        if let Ok(Err(e)) = thawed {
            tracing::error!(container_id = %id, error = %e, "cannot thaw the container");
        }
    }
}
