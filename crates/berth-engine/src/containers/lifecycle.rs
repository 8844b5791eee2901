//! The container lifecycle beyond one start and one stop: container events, restart
//! policies with dockerd's back-off, `restart`, `rename` and `prune`.
//!
//! Restart policies follow moby `restartmanager/restartmanager.go`: after an exit the
//! delay starts at 100 ms and doubles up to a minute, and goes back to 100 ms when the
//! container had run for 10 s. A stop or kill by a user cancels a pending restart and marks
//! the container manually stopped (`unless-stopped` then stays down, also across a daemon
//! restart). At engine start, containers whose policy asks for it are started again: every
//! `always` one, `unless-stopped` ones not stopped by a user, and `on-failure` ones that
//! failed on their own (moby `daemon/daemon.go` `restore`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_api_types::container::{ContainerStatus, HostConfig, RestartPolicyName};
use berth_api_types::filters::Filters;
use berth_runtime::ExitRecord;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::Instrument;

use super::record::{parse_unix, Record, RestartPolicy};
use super::{names, Containers, Entry};
use crate::system::now_rfc3339;
use crate::{Engine, EngineError};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long resets the back-off.
const RESET_AFTER_SECS: i64 = 10;

/// Per-container restart bookkeeping (memory only, as dockerd's restart manager).
#[derive(Debug, Default, Clone, Copy)]
struct Backoff {
    delay: Option<Duration>,
    /// Bumped to cancel a pending restart.
    generation: u64,
}

/// What the restart supervisor holds: the engine (to start containers) and the back-offs.
#[derive(Debug)]
pub(crate) struct Supervisor {
    engine: watch::Sender<Option<Weak<Engine>>>,
    backoff: Mutex<HashMap<String, Backoff>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            engine: watch::channel(None).0,
            backoff: Mutex::new(HashMap::new()),
        }
    }
}

impl Supervisor {
    /// The engine, once [`Containers::supervise`] has handed it in.
    pub(super) fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.borrow().clone().and_then(|w| w.upgrade())
    }
}

/// Refuses restart policies dockerd refuses (moby `daemon/container.go`
/// `validateRestartPolicy`, and `AutoRemove` with a policy).
pub(crate) fn validate_policy(host_config: &HostConfig) -> Result<(), EngineError> {
    if host_config.restart_policy.get().is_none() {
        return Ok(());
    }
    let (name, max) = host_config.restart_policy();
    let bad = |m: String| Err(EngineError::InvalidArgument(m));
    use RestartPolicyName as N;
    match &name {
        N::Unspecified | N::No | N::Always | N::UnlessStopped if max != 0 => {
            return bad(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .into(),
            )
        }
        N::Unspecified | N::No | N::Always | N::UnlessStopped => {}
        N::OnFailure if max < 0 => {
            return bad("invalid restart policy: maximum retry count cannot be negative".into())
        }
        N::OnFailure => {}
        N::Other(other) => return bad(format!("invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'")),
    }
    if host_config.auto_remove() && !matches!(name, N::Unspecified | N::No) {
        return bad("can't create 'AutoRemove' container with restart policy".into());
    }
    Ok(())
}

impl Containers {
    /// Publishes a container event with dockerd's attributes: `image`, `name` and the
    /// container's labels, then `extra`.
    pub(crate) fn emit(&self, rec: &Record, action: &str, extra: &[(&str, &str)]) {
        let mut attrs: Vec<(String, String)> = Vec::new();
        for (k, v) in rec.config.labels.get().into_iter().flatten() {
            attrs.push((k.clone(), v.clone()));
        }
        attrs.push(("image".into(), rec.image.clone()));
        attrs.push(("name".into(), rec.name.trim_start_matches('/').to_string()));
        for (k, v) in extra {
            attrs.push(((*k).to_string(), (*v).to_string()));
        }
        self.events.publish(crate::events::Event {
            typ: "container".into(),
            action: action.into(),
            actor_id: rec.id.clone(),
            attributes: attrs.into_iter().collect(),
            time_nano: 0,
        });
    }

    /// Called once the engine exists: restarts may begin.
    pub(crate) fn supervise(&self, engine: &Arc<Engine>) {
        self.life.engine.send_replace(Some(Arc::downgrade(engine)));
    }

    /// At engine start: the stopped containers whose policy restarts them on boot.
    pub(crate) fn boot_restarts(self: &Arc<Self>) {
        for entry in self.entries() {
            let (id, start) = {
                let r = entry.rec();
                let start = match r.restart_policy() {
                    _ if r.running() => false,
                    _ if !matches!(
                        r.state.status,
                        ContainerStatus::Exited | ContainerStatus::Restarting
                    ) =>
                    {
                        false
                    }
                    RestartPolicy::Always => true,
                    RestartPolicy::UnlessStopped => !r.manually_stopped,
                    RestartPolicy::OnFailure(max) => {
                        !r.manually_stopped
                            && r.state.exit_code != 0
                            && (max == 0 || r.restart_count < max)
                    }
                    RestartPolicy::No => false,
                };
                (r.id.clone(), start)
            };
            if start {
                let generation = self.backoff_of(&id).generation;
                self.clone()
                    .schedule_restart(id, Duration::ZERO, generation);
            }
        }
    }

    fn backoff_of(&self, id: &str) -> Backoff {
        let m = self.life.backoff.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id).copied().unwrap_or_default()
    }

    /// A user stop or kill: no restart until the next user start.
    pub(super) async fn cancel_restart(&self, entry: &Arc<Entry>) {
        let id = {
            let mut r = entry.rec();
            r.manually_stopped = true;
            if r.restarting() {
                r.state.status = ContainerStatus::Exited;
            }
            r.id.clone()
        };
        self.life
            .backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .generation += 1;
        self.save_logged(entry).await;
    }

    /// A user start: fresh restart count and back-off (moby `ResetRestartManager`).
    pub(crate) fn reset_restart(&self, rec: &mut Record) {
        rec.restart_count = 0;
        rec.manually_stopped = false;
        let mut m = self.life.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let b = m.entry(rec.id.clone()).or_default();
        b.delay = None;
        b.generation += 1;
    }

    pub(crate) fn forget_restart(&self, id: &str) {
        let mut m = self.life.backoff.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(id);
    }

    /// After an exit is recorded in `r` (status `exited`): publishes `oom` and `die`, and
    /// when the policy restarts the container, marks it `restarting` and returns the delay
    /// and the generation to pass to [`Containers::schedule_restart`].
    pub(crate) fn after_exit(&self, r: &mut Record, exit: &ExitRecord) -> Option<(Duration, u64)> {
        if exit.oom_killed {
            self.emit(r, "oom", &[]);
        }
        let code = exit.exit_code.to_string();
        self.emit(r, "die", &[("exitCode", &code)]);
        if r.manually_stopped {
            return None;
        }
        let restart = match r.restart_policy() {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => {
                exit.exit_code != 0 && (max == 0 || r.restart_count < max)
            }
        };
        if !restart {
            return None;
        }
        let ran = match (
            parse_unix(&r.state.started_at),
            parse_unix(&r.state.finished_at),
        ) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        let mut m = self.life.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let b = m.entry(r.id.clone()).or_default();
        let delay = next_delay(b.delay, ran);
        b.delay = Some(delay);
        r.state.status = ContainerStatus::Restarting;
        r.restart_count += 1;
        Some((delay, b.generation))
    }

    /// Starts the container again after `delay`, unless a user stop, start or removal
    /// came in between.
    pub(crate) fn schedule_restart(self: Arc<Self>, id: String, delay: Duration, generation: u64) {
        // A timer of its own, not a child of the exit watcher or request that set it.
        let span = tracing::info_span!(parent: None, "restart_timer", container_id = %id);
        let task = async move {
            tokio::time::sleep(delay).await;
            let mut rx = self.life.engine.subscribe();
            let engine = match rx.wait_for(Option::is_some).await {
                Ok(e) => e.clone().and_then(|w| w.upgrade()),
                Err(_) => None,
            };
            let Some(engine) = engine else { return };
            if self.backoff_of(&id).generation != generation {
                return;
            }
            let Ok(entry) = self.get(&id) else { return };
            tracing::info!(id, "restarting the container (restart policy)");
            if let Err(e) = engine.start_container(&id, false).await {
                tracing::warn!(id, error = %e, "restart by policy failed");
                let next = {
                    let mut r = entry.rec();
                    if !r.restarting() {
                        return;
                    }
                    r.state.status = ContainerStatus::Exited;
                    r.state.finished_at = now_rfc3339();
                    let exit = ExitRecord {
                        exit_code: if r.state.exit_code == 0 {
                            128
                        } else {
                            r.state.exit_code
                        },
                        signal: None,
                        oom_killed: false,
                        started_at: None,
                        finished_at: r.state.finished_at.clone(),
                        error: Some(e.to_string()),
                    };
                    self.after_exit(&mut r, &exit)
                };
                self.save_logged(&entry).await;
                if let Some((delay, generation)) = next {
                    self.clone().schedule_restart(id, delay, generation);
                }
            }
        };
        tokio::spawn(task.instrument(span));
    }
}

impl Engine {
    /// `POST /containers/{id}/restart`: stop (when running), then start; events `kill`,
    /// `die`, `stop`, `start`, `restart` as dockerd.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_restart(
        &self,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        let entry = self.containers.subject(name)?;
        let id = entry.rec().id.clone();
        self.container_stop(&id, timeout, signal).await?;
        self.start_container(&id, true).await?;
        let rec = entry.rec().clone();
        self.containers.emit(&rec, "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_rename(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        if new_name.is_empty() || name.is_empty() {
            return Err(EngineError::InvalidArgument(
                "Neither old nor new names may be empty".into(),
            ));
        }
        let c = &self.containers;
        let entry = c.subject(name)?;
        let new_name = names::validate(new_name)?;
        let old = {
            let map = c.map.lock().unwrap_or_else(|e| e.into_inner());
            let old = entry.rec().name.clone();
            if old == new_name {
                return Err(EngineError::InvalidArgument(
                    "Renaming a container with the same name as its current name".into(),
                ));
            }
            let id = entry.rec().id.clone();
            if let Some(other) = map
                .values()
                .map(|e| e.rec().clone())
                .find(|r| r.name == new_name && r.id != id)
            {
                return Err(EngineError::Conflict(format!(
                    "Conflict. The container name \"{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
            // Still under the map lock: no create can take the name meanwhile.
            entry.rec().name = new_name.clone();
            old
        };
        if let Err(e) = c.save(&entry).await {
            entry.rec().name = old;
            return Err(e);
        }
        let rec = entry.rec().clone();
        c.networks.rename(&rec.id, &rec.name).await;
        super::links::renamed(c, &old, &rec.name).await;
        c.emit(&rec, "rename", &[("oldName", &old)]);
        Ok(())
    }

    /// `POST /containers/prune`: removes every container that is not running.
    pub async fn container_prune(&self, filters: &Filters) -> Result<Value, EngineError> {
        filters
            .allow_only(&["until", "label", "label!"])
            .map_err(EngineError::from)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let mut until = None;
        for u in filters.get("until") {
            let t = berth_api_types::timestamp::parse_nanos(u, now).map_err(EngineError::from)?;
            until = Some(until.map_or(t, |x: i64| x.min(t)));
        }
        let c = &self.containers;
        let mut deleted = Vec::new();
        let mut reclaimed: u64 = 0;
        for entry in c.entries() {
            let rec = entry.rec().clone();
            if rec.running() || rec.restarting() || rec.state.status == ContainerStatus::Removing {
                continue;
            }
            if let Some(u) = until {
                let created = parse_unix(&rec.created)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000_000);
                if created >= u {
                    continue;
                }
            }
            if !labels_match(&rec, filters) {
                continue;
            }
            let _guard = entry.op.lock().await;
            if entry.rec().running() {
                continue;
            }
            let diff = c.data_dir(&rec.id).join("rw/diff");
            let size = crate::blocking::spawn(move || dir_size(&diff))
                .await
                .unwrap_or(0);
            c.remove(&entry).await;
            reclaimed += size;
            deleted.push(rec.id.clone());
        }
        self.emit_event(
            "container",
            "prune",
            "",
            &[("reclaimed", &reclaimed.to_string())],
        );
        Ok(json!({
            "ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
            "SpaceReclaimed": reclaimed,
        }))
    }
}

/// dockerd's back-off: 100 ms after the first exit, doubling up to a minute, back to
/// 100 ms after a run of 10 s or more.
fn next_delay(prev: Option<Duration>, ran_secs: i64) -> Duration {
    match prev {
        Some(_) if ran_secs >= RESET_AFTER_SECS => FIRST_DELAY,
        None => FIRST_DELAY,
        Some(d) => (d * 2).min(MAX_DELAY),
    }
}

/// `label=k`, `label=k=v`, `label!=k`, `label!=k=v` against the container's labels.
fn labels_match(rec: &Record, filters: &Filters) -> bool {
    let labels = rec.config.labels.get();
    let has = |l: &str| {
        let (k, v) = l.split_once('=').map_or((l, None), |(k, v)| (k, Some(v)));
        match labels.and_then(|m| m.get(k)) {
            Some(s) => v.is_none_or(|v| v == s),
            None => false,
        }
    };
    filters.get("label").iter().all(|l| has(l)) && !filters.get("label!").iter().any(|l| has(l))
}

/// Bytes under `path` (files only, symlinks not followed).
fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    for e in rd.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_size(&e.path()),
            Ok(m) if m.is_file() => total += m.len(),
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn back_off_doubles_caps_and_resets() {
        let ms = Duration::from_millis;
        assert_eq!(next_delay(None, 0), ms(100));
        assert_eq!(next_delay(Some(ms(100)), 0), ms(200));
        assert_eq!(next_delay(Some(ms(200)), 9), ms(400));
        assert_eq!(next_delay(Some(ms(400)), 10), ms(100));
        assert_eq!(next_delay(Some(Duration::from_secs(40)), 0), MAX_DELAY);
        assert_eq!(next_delay(Some(MAX_DELAY), 0), MAX_DELAY);
    }

    #[test]
    fn restart_policies_are_validated_like_dockerd() {
        assert!(validate_policy(&hc(json!({}))).is_ok());
        assert!(validate_policy(&hc(json!({"RestartPolicy": {"Name": "always"}}))).is_ok());
        assert!(validate_policy(&hc(
            json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
        ))
        .is_ok());
        for bad in [
            json!({"RestartPolicy": {"Name": "sometimes"}}),
            json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}),
            json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}),
            json!({"RestartPolicy": {"Name": "always"}, "AutoRemove": true}),
        ] {
            assert!(validate_policy(&hc(bad.clone())).is_err(), "{bad}");
        }
        assert!(validate_policy(&hc(
            json!({"RestartPolicy": {"Name": "no"}, "AutoRemove": true})
        ))
        .is_ok());
    }
}
