//! `POST /containers/{id}/start`: mounting the rootfs, plugging the network, and
//! handing the spec to the runtime (embedded or external).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use berth_api_types::container::ContainerStatus;
use berth_runtime::{ContainerStart, ExternalRuntime, RuntimeError};

use super::record::Record;
use super::{
    apparmor, host_opts, libc_sigkill, logs, mounts, net_peer, process, record, rid, rt_err, spec,
    userdb, AttachWaiter, Entry,
};
use crate::system::now_rfc3339;
use crate::{Engine, EngineError, RuntimeChoice};

/// Docker's words for a process that could not start, so the CLI picks 127/126.
pub(super) fn start_error(message: String, exit_code: i32) -> String {
    let hint = failure_hint(&message, exit_code);
    format!(
        "failed to create task for container: failed to create shim task: OCI runtime create failed: {message}{hint}: unknown"
    )
}

/// What runc adds to a failure to start a process (`exit_code` 127: not found, 126: not
/// executable) unless `message` says it already.
pub(super) fn failure_hint(message: &str, exit_code: i32) -> &'static str {
    let lower = message.to_ascii_lowercase();
    match exit_code {
        127 if !lower.contains("executable file not found")
            && !lower.contains("no such file or directory") =>
        {
            ": executable file not found in $PATH"
        }
        126 if !lower.contains("permission denied") => ": permission denied",
        _ => "",
    }
}

/// How long each step of one start took, logged as one `debug` line when the start ends
/// (`BERTH_LOG=berth_engine=debug`): where the start time goes (docs/performance.md).
pub(super) struct Steps {
    last: Instant,
    done: Vec<(&'static str, u128)>,
}

impl Steps {
    pub(super) fn new() -> Steps {
        Steps {
            last: Instant::now(),
            done: Vec::with_capacity(16),
        }
    }

    /// Ends the step called `name` (it began when the previous one ended).
    pub(super) fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done
            .push((name, now.saturating_duration_since(self.last).as_micros()));
        self.last = now;
    }

    /// `name=1.234ms …` for each step, in order, then the total.
    fn line(&self) -> String {
        let mut s = String::new();
        let mut total = 0u128;
        for (name, us) in &self.done {
            total += us;
            let _ = write!(s, "{name}={}.{:03}ms ", us / 1000, us % 1000);
        }
        let _ = write!(s, "total={}.{:03}ms", total / 1000, total % 1000);
        s
    }

    fn log(&self, id: &str, ok: bool) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(container_id = id, ok, steps = %self.line(), "start steps");
        }
    }
}

impl Engine {
    /// `POST /containers/{id}/start`; `Ok(false)` when it already runs (304).
    pub async fn container_start(&self, name: &str) -> Result<bool, EngineError> {
        self.start_container(name, true).await
    }

    /// Starts a container, for a user (`by_user`: resets the restart count and the
    /// manual-stop mark) or for its restart policy.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub(crate) async fn start_container(
        &self,
        name: &str,
        by_user: bool,
    ) -> Result<bool, EngineError> {
        let c = &self.containers;
        let mut steps = Steps::new();
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        let rec = entry.rec().clone();
        steps.mark("lock");
        match rec.state.status {
            ContainerStatus::Running => return Ok(false),
            ContainerStatus::Removing | ContainerStatus::Dead => {
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
        steps.mark("release");
        let mut lowers = self.images.layer_diff_dirs(&rec.image_id)?;
        lowers.reverse();
        // Directories and the overlay mount: off the async workers.
        let (mounter, root, data) = (c.mounter.clone(), rootfs.clone(), data_dir.clone());
        crate::blocking::spawn(move || {
            std::fs::create_dir_all(&root).map_err(EngineError::io("cannot create", &root))?;
            lowers = super::init_layer::with_image(&data, lowers);
            if lowers.is_empty() {
                let empty = data.join("empty");
                std::fs::create_dir_all(&empty)
                    .map_err(EngineError::io("cannot create", &empty))?;
                lowers.push(empty);
            }
            mounter
                .mount(&root, &lowers, &data.join("rw/diff"), &data.join("rw/work"))
                .map_err(EngineError::io("cannot mount the rootfs at", &root))
        })
        .await
        .map_err(|e| EngineError::Internal(format!("rootfs mount failed: {e}")))??;
        steps.mark("mount");
        let result = self
            .start_mounted(&entry, &rec, &rootfs, &data_dir, &mut steps)
            .await;
        match result {
            Ok((pid, start_time)) => {
                mounts::emit_volume_events(c, &id, true);
                {
                    let mut r = entry.rec();
                    r.state.status = ContainerStatus::Running;
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
                c.health_init(&entry);
                steps.mark("record");
                c.save_logged(&entry).await;
                steps.mark("save");
                steps.log(&id, true);
                tracing::debug!(pid, "container started");
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
                c.save_logged(&entry).await;
                if auto_remove {
                    c.remove(&entry).await;
                }
                steps.mark("failed");
                steps.log(&id, false);
                Err(err)
            }
        }
    }

    pub(super) async fn start_mounted(
        &self,
        entry: &Arc<Entry>,
        rec: &Record,
        rootfs: &Path,
        data_dir: &Path,
        steps: &mut Steps,
    ) -> Result<(i32, u64), (EngineError, Option<i32>)> {
        let c = &self.containers;
        let runtime = rec.host_config.runtime.get().map_or("", String::as_str);
        let runtime = self.external_runtime(runtime).map_err(|e| (e, None))?;
        let mode = rec.network_mode();
        let peer = mode.container_peer().and_then(|p| net_peer(c, p));
        // The peers whose namespaces the spec names by `/proc/<pid>/ns/*` path, held by
        // pidfd until the runtime has joined them.
        let (peer, mut peers): (Option<_>, Vec<_>) = match peer {
            Some((h, hosts, resolv)) => (Some((h.pid(), hosts, resolv)), vec![h]),
            None => (None, Vec::new()),
        };
        let mut plan = c
            .networks
            .prepare(&rec.id, peer)
            .await
            .map_err(|e| (e, None))?;
        plan.env = super::links::env_for(c, &rec.name, &plan.links);
        steps.mark("net_prepare");
        let cgroup = c.cgroup_path_of(rec);
        // Device paths are stat'ed and walked: off the async workers.
        let (c2, hc, shm) = (c.clone(), rec.host_config.clone(), c.shm_dir(&rec.id));
        let mut opts = crate::blocking::spawn(move || host_opts::resolve(&c2, &hc, &shm))
            .await
            .unwrap_or_else(|e| Err(EngineError::Internal(e.to_string())))
            .map_err(|e| (e, None))?;
        steps.mark("host_opts");
        if let Some(profile) = opts.apparmor_profile.clone() {
            crate::blocking::spawn(move || apparmor::ensure_loaded(&profile))
                .await
                .unwrap_or_else(|e| Err(EngineError::Internal(e.to_string())))
                .map_err(|e| (e, None))?;
            steps.mark("apparmor");
        }
        peers.append(&mut opts.peers);
        let users = userdb::UserDb::of_rootfs(rootfs.to_path_buf())
            .await
            .map_err(|e| (e, None))?;
        steps.mark("userdb");
        // Host binds are staged from descriptors opened now; the staging mounts go once
        // the runtime has made the container's (its create returns after that), or on
        // any failure. Leftovers of an earlier start go first.
        let parent = self.config.exec_root.join("binds").join(rid(&rec.id));
        let mut staging = mounts::Staging::new(&parent, self.config.bind_policy.clone());
        staging.images =
            mounts::image::layers(&self.images, &rec.image_mounts).map_err(|e| (e, None))?;
        let mut guard = mounts::StagingGuard(Some(staging.clone()));
        // Opens, mounts, copy-up and file writes: off the async workers.
        let built = tokio::task::spawn_blocking({
            let (rec, rootfs, data_dir) =
                (rec.clone(), rootfs.to_path_buf(), data_dir.to_path_buf());
            let (plan, cgroup) = (plan.clone(), cgroup.clone());
            move || {
                mounts::Staging::clear_leftovers(&parent);
                spec::spec_input(
                    &rec, &rootfs, &data_dir, &plan, &cgroup, opts, &users, &staging,
                )
                .and_then(|input| berth_runtime::build_spec(&input).map_err(rt_err))
                // The log driver's checks (the journal's socket, the host name) too.
                .and_then(|spec| Ok((spec, logs::log_options(&rec, &data_dir)?)))
            }
        })
        .await
        .unwrap_or_else(|e| {
            Err(EngineError::Internal(format!(
                "start preparation failed: {e}"
            )))
        });
        let (spec, log) = match built {
            Ok(built) => built,
            Err(e) => {
                guard.clear().await;
                return Err((e, None));
            }
        };
        steps.mark("spec");
        let req = ContainerStart {
            id: rid(&rec.id).to_string(),
            spec,
            log,
            open_stdin: rec.config.open_stdin.or_default(),
            stdin_once: rec.config.stdin_once.or_default(),
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
        let created = c.runtime.create(req).await;
        steps.mark("shim_create");
        guard.clear().await;
        steps.mark("staging_clear");
        let started = created.map_err(failed)?;
        let (hc, cg) = (rec.host_config.clone(), cgroup.clone());
        let oom = crate::blocking::spawn(move || super::create_fields::after_create(&hc, &cg))
            .await
            .unwrap_or_else(|e| Err(EngineError::Internal(e.to_string())));
        if let Err(e) = oom {
            let _ = c.runtime.kill(rid(&rec.id), libc_sigkill(), true).await;
            let _ = c.runtime.wait(rid(&rec.id)).await;
            return Err((e, None));
        }
        steps.mark("after_create");
        if let Some((w, h)) = super::create_fields::console_size(rec) {
            // The terminal's first size, before the process runs (dockerd's `ConsoleSize`).
            if let Err(e) = c.runtime.resize(rid(&rec.id), w, h).await {
                tracing::warn!(error = %e, "initial console size not set");
            }
        }
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
        steps.mark("peers");
        // veths, addresses and routes over rtnetlink, in the container's namespace: blocking
        // system calls, off the async workers.
        let (nets, nid) = (c.networks.clone(), rec.id.clone());
        let init = berth_sys::pidfd::ProcessHandle::open(started.pid, start_time);
        let plugged = crate::blocking::spawn(move || {
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
        steps.mark("net_plug");
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
        steps.mark("attach");
        if let Err(e) = c.runtime.start(rid(&rec.id)).await {
            let _ = c.runtime.kill(rid(&rec.id), libc_sigkill(), true).await;
            let _ = c.runtime.wait(rid(&rec.id)).await;
            return Err(failed(e));
        }
        steps.mark("shim_start");
        Ok((started.pid, start_time))
    }

    /// The external runtime called `name` (the default for `""`); `None` for the embedded
    /// one. An unknown name is dockerd's 400 (moby `daemon/runtime_unix.go`).
    pub(super) fn external_runtime(
        &self,
        name: &str,
    ) -> Result<Option<ExternalRuntime>, EngineError> {
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
}
