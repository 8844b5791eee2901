//! `docker pause` / `docker unpause`: the shim freezes and thaws the container's cgroup
//! (libcontainer's freezer, v1 or v2); the record keeps `paused` so that inspect and
//! `ps` say so, across daemon restarts too. Killing or stopping a paused container thaws
//! it (the shim does, after the signal), as moby's `daemon/kill.go` does.
//!
//! berthd also freezes a running container for the length of a `cp` or `commit`
//! ([`Frozen`]); if it
//! dies in between, nothing else would thaw it: at start, [`Containers::thaw_at_start`]
//! thaws every running container whose record does not say paused but whose cgroup is
//! frozen.

use std::sync::Arc;

use berth_cgroups::Dirs;

use super::store::Entry;
use super::{rid, Containers};
use crate::{Engine, EngineError};

impl Engine {
    /// `POST /containers/{id}/pause`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_pause(&self, name: &str) -> Result<(), EngineError> {
        self.set_paused(name, true).await
    }

    /// `POST /containers/{id}/unpause`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_unpause(&self, name: &str) -> Result<(), EngineError> {
        self.set_paused(name, false).await
    }

    /// Freezes (`pause`) or thaws a running container, with moby's refusals
    /// (`daemon/pause.go`, `daemon/unpause.go`), and records and announces it.
    async fn set_paused(&self, name: &str, pause: bool) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        let (id, running, paused) = {
            let r = entry.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        let refused = match (pause, running, paused) {
            (true, false, _) => Some("is not running"),
            (true, true, true) => Some("is already paused"),
            (false, true, true) => None,
            (false, _, _) => Some("is not paused"),
            (true, true, false) => None,
        };
        if let Some(why) = refused {
            return Err(EngineError::Conflict(format!("Container {id} {why}")));
        }
        let done = if pause {
            c.runtime.pause(rid(&id)).await
        } else {
            c.runtime.resume(rid(&id)).await
        };
        done.map_err(super::rt_err)?;
        entry.rec().state.paused = pause;
        if pause {
            c.health_stop(&entry);
        } else {
            c.health_resume(&entry);
        }
        c.save_logged(&entry).await;
        let action = if pause { "pause" } else { "unpause" };
        c.emit(&entry.rec(), action, &[]);
        tracing::info!("container {action}d");
        Ok(())
    }
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

/// A running container frozen while its files are walked or written, so that nothing in
/// it can swap a directory for a symlink between our checks and our use (moby's fix for
/// CVE-2018-15664). A container the user paused is left as it is.
pub(super) struct Frozen {
    c: Arc<Containers>,
    rid: Option<String>,
}

impl Frozen {
    pub(super) async fn new(c: &Arc<Containers>, name: &str) -> Result<Frozen, EngineError> {
        let (id, running, paused) = {
            let e = c.get(name)?;
            let r = e.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        if !running || paused {
            return Ok(Frozen {
                c: c.clone(),
                rid: None,
            });
        }
        let rid = rid(&id).to_string();
        c.runtime.pause(&rid).await.map_err(super::rt_err)?;
        Ok(Frozen {
            c: c.clone(),
            rid: Some(rid),
        })
    }

    pub(super) async fn thaw(self) {
        if let Some(rid) = &self.rid {
            if let Err(e) = self.c.runtime.resume(rid).await {
                tracing::warn!(id = %rid, error = %e, "cannot thaw the container after a copy");
            }
        }
    }
}
