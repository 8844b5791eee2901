//! Healthchecks, as dockerd runs them (moby `daemon/health.go`), and what berthd does
//! beyond: an action when a container turns unhealthy.
//!
//! A running, unpaused container whose `Config.Healthcheck` (the create body's, filled in
//! from the image's at create) has a `CMD` or `CMD-SHELL` test gets one monitor task. It
//! waits `Interval` (`StartInterval` while the container is `starting` inside its
//! `StartPeriod`), runs the test as an exec instance of the container (the same path as
//! `POST /exec`: `exec_create`, `exec_start` and `exec_die` events, listed in `ExecIDs`),
//! keeps at most [`MAX_OUTPUT`] bytes of its output, kills it after `Timeout`, and
//! records the result in `State.Health` (the last [`MAX_LOG`] probes). A status change
//! publishes `health_status: <status>`. The monitor starts with the container (start,
//! restart, unpause, and for running containers when the daemon starts again) and stops
//! when it exits, is paused or removed; stopping it leaves the status `unhealthy`, as
//! dockerd's `CloseMonitorChannel` does.
//!
//! Beyond dockerd: when the status turns `unhealthy`, the container's label
//! `berth.health-on-failure` (else daemon.json `health-on-failure`) chooses an action:
//! `restart` (stop, start again, `RestartCount` + 1, events as `docker restart`), `stop`
//! (as `docker stop`: stays down), `kill` (SIGKILL, not a user stop: the restart policy
//! then decides), or `none`.
//!
//! The record is written when the status changes and otherwise at most every
//! [`SAVE_EVERY`], so that a 1 s probe does not fsync every second; a daemon restart may
//! lose the last few log entries (dockerd also persists health only at checkpoints).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use berth_api_types::container::{ContainerConfig, ContainerStatus, Health, HealthcheckResult};
use berth_api_types::stdcopy::Stream;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::Instrument;

use super::{rid, Containers, Entry};
use crate::EngineError;

/// Longest output kept of one probe (moby `maxOutputLen`); more is cut, `...` appended.
pub(crate) const MAX_OUTPUT: usize = 4096;
/// Probes kept in `State.Health.Log`.
pub(crate) const MAX_LOG: usize = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// moby `container.MinimumDuration`.
const MIN_DURATION_NS: i64 = 1_000_000;
/// Longest wait for a killed probe to end before the monitor goes on.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for a probe's exec to start (moby's).
const START_BOUND: Duration = Duration::from_secs(30);
/// The record is saved at least this often while only the log and streak move.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The label that chooses a container's [`HealthAction`].
pub(crate) const ACTION_LABEL: &str = "berth.health-on-failure";

pub(crate) const STARTING: &str = "starting";
pub(crate) const HEALTHY: &str = "healthy";
pub(crate) const UNHEALTHY: &str = "unhealthy";

/// What is done to a container whose healthcheck turns it unhealthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HealthAction {
    /// Nothing (dockerd's behaviour).
    #[default]
    None,
    Restart,
    Stop,
    Kill,
}

/// A health-on-failure action that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid health-on-failure action {0:?}: use restart, stop, kill or none")]
pub struct UnknownHealthAction(pub String);

impl std::str::FromStr for HealthAction {
    type Err = UnknownHealthAction;

    fn from_str(s: &str) -> Result<Self, UnknownHealthAction> {
        match s {
            "none" | "" => Ok(HealthAction::None),
            "restart" => Ok(HealthAction::Restart),
            "stop" => Ok(HealthAction::Stop),
            "kill" => Ok(HealthAction::Kill),
            other => Err(UnknownHealthAction(other.to_string())),
        }
    }
}

/// `Config.Healthcheck` as Docker sends it (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthConfig {
    #[serde(default)]
    test: Option<Vec<String>>,
    #[serde(default)]
    interval: Option<i64>,
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    start_period: Option<i64>,
    #[serde(default)]
    start_interval: Option<i64>,
    #[serde(default)]
    retries: Option<i64>,
}

fn read_config(v: &Value) -> Result<HealthConfig, serde_json::Error> {
    serde_json::from_value(v.clone())
}

/// What the monitor runs, settled from a container's `Config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The argv (empty: each probe fails, as moby's "has no command").
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

fn duration(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// The probe plan of `config`, `None` without a healthcheck, with `NONE`, or with a test
/// type moby does not know (it logs and runs none).
pub(crate) fn plan(config: &ContainerConfig) -> Option<Plan> {
    let hc = read_config(config.extra.get("Healthcheck")?).ok()?;
    let test = hc.test.unwrap_or_default();
    let (kind, rest) = test.split_first()?;
    let cmd = match kind.as_str() {
        "CMD" => rest.to_vec(),
        "CMD-SHELL" if rest.is_empty() => Vec::new(),
        "CMD-SHELL" => {
            let mut shell = match config.extra.get("Shell") {
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => vec!["/bin/sh".to_string(), "-c".to_string()],
            };
            shell.extend(rest.iter().cloned());
            shell
        }
        "NONE" => return None,
        other => {
            tracing::warn!(kind = other, "unknown healthcheck type: no probe");
            return None;
        }
    };
    Some(Plan {
        cmd,
        interval: duration(hc.interval, DEFAULT_INTERVAL),
        timeout: duration(hc.timeout, DEFAULT_TIMEOUT),
        start_period: duration(hc.start_period, Duration::ZERO),
        start_interval: duration(hc.start_interval, DEFAULT_START_INTERVAL),
        retries: match hc.retries {
            Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => DEFAULT_RETRIES,
        },
    })
}

/// Create-time checks: moby `daemon/container.go` `validateHealthCheck` (its wording),
/// and the action label.
pub(crate) fn check(config: &ContainerConfig) -> Result<(), EngineError> {
    let bad = |m: String| Err(EngineError::InvalidArgument(m));
    if let Some(v) = config.extra.get("Healthcheck").filter(|v| !v.is_null()) {
        let hc = match read_config(v) {
            Ok(hc) => hc,
            Err(e) => return bad(format!("invalid Healthcheck: {e}")),
        };
        for (name, value) in [
            ("Interval", hc.interval),
            ("Timeout", hc.timeout),
            ("StartPeriod", hc.start_period),
            ("StartInterval", hc.start_interval),
        ] {
            if value.is_some_and(|n| n != 0 && n < MIN_DURATION_NS) {
                return bad(format!("{name} in Healthcheck cannot be less than 1ms"));
            }
        }
        if hc.retries.is_some_and(|r| r < 0) {
            return bad("Retries in Healthcheck cannot be negative".into());
        }
    }
    if let Some(a) = config.labels.get().and_then(|l| l.get(ACTION_LABEL)) {
        a.parse::<HealthAction>()
            .map_err(|e| EngineError::InvalidArgument(format!("label {ACTION_LABEL}: {e}")))?;
    }
    Ok(())
}

/// moby `daemon/commit.go` `merge`: the image's healthcheck (and shell) where the request
/// has none, and its fields where the request's are zero.
pub(crate) fn merge_image(out: &mut Map<String, Value>, image: &Map<String, Value>) {
    if let Some(Value::Object(img)) = image.get("Healthcheck") {
        match out.get_mut("Healthcheck") {
            Some(Value::Object(req)) => {
                let empty_test = match req.get("Test") {
                    Some(Value::Array(a)) => a.is_empty(),
                    Some(Value::Null) | None => true,
                    Some(_) => false,
                };
                if empty_test {
                    if let Some(t) = img.get("Test") {
                        req.insert("Test".into(), t.clone());
                    }
                }
                for k in [
                    "Interval",
                    "Timeout",
                    "StartPeriod",
                    "StartInterval",
                    "Retries",
                ] {
                    let zero = match req.get(k) {
                        None | Some(Value::Null) => true,
                        Some(v) => v.as_i64() == Some(0),
                    };
                    if zero {
                        if let Some(v) = img.get(k) {
                            req.insert(k.into(), v.clone());
                        }
                    }
                }
            }
            Some(Value::Null) | None => {
                out.insert("Healthcheck".into(), Value::Object(img.clone()));
            }
            Some(_) => {}
        }
    }
    let no_shell = match out.get("Shell") {
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    if no_shell {
        if let Some(s @ Value::Array(a)) = image.get("Shell") {
            if !a.is_empty() {
                out.insert("Shell".into(), s.clone());
            }
        }
    }
}

/// One probe's result recorded in `h` (moby `handleProbeResult`): the log keeps the
/// last [`MAX_LOG`]; a success makes it healthy; a failure counts unless the container
/// is still starting inside its start period, and `retries` failures in a row make it
/// unhealthy. Returns the new status when it changed.
pub(crate) fn record_result(
    h: &mut Health,
    result: HealthcheckResult,
    retries: u32,
    in_start_period: bool,
) -> Option<String> {
    let old = h.status.clone();
    if h.log.len() >= MAX_LOG {
        let drop = h.log.len() + 1 - MAX_LOG;
        h.log.drain(..drop);
    }
    let ok = result.exit_code == 0;
    h.log.push(result);
    if ok {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
    } else if !(h.status == STARTING && in_start_period) {
        h.failing_streak = h.failing_streak.saturating_add(1);
        if h.failing_streak >= retries.max(1) {
            h.status = UNHEALTHY.into();
        }
    }
    (h.status != old).then(|| h.status.clone())
}

/// Probe outcomes since the daemon started, for the metrics endpoint.
#[derive(Debug, Default)]
pub(crate) struct ProbeCounts {
    passed: AtomicU64,
    failed: AtomicU64,
    turned_unhealthy: AtomicU64,
}

pub(crate) static PROBE_COUNTS: ProbeCounts = ProbeCounts {
    passed: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    turned_unhealthy: AtomicU64::new(0),
};

impl ProbeCounts {
    fn count(&self, passed: bool) {
        let c = if passed { &self.passed } else { &self.failed };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// (probes passed, probes failed, times a container turned unhealthy).
    pub(crate) fn read(&self) -> (u64, u64, u64) {
        (
            self.passed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.turned_unhealthy.load(Ordering::Relaxed),
        )
    }
}

/// Probe output, cut at [`MAX_OUTPUT`] bytes (moby `limitedBuffer`).
#[derive(Debug, Default)]
pub(crate) struct Output {
    buf: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn push(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT.saturating_sub(self.buf.len()).min(data.len());
        self.buf
            .extend_from_slice(data.get(..keep).unwrap_or_default());
        if keep < data.len() {
            self.truncated = true;
        }
    }

    /// As text (invalid UTF-8 replaced, as Go's JSON writes it), `...` after a cut.
    pub(crate) fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

/// Reads an exec's multiplexed stdout/stderr (stdcopy frames) to its end into `out`,
/// keeping what [`Output`] keeps; a frame of another stream is read and dropped.
pub(crate) async fn read_frames<R: AsyncRead + Unpin>(
    r: &mut R,
    out: &mut Output,
) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut header = [0u8; 8];
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let keep = header[0] == Stream::Stdout as u8 || header[0] == Stream::Stderr as u8;
        let mut left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        while left > 0 {
            let want = left.min(chunk.len());
            let n = r.read(&mut chunk[..want]).await?;
            if n == 0 {
                return Ok(());
            }
            if keep {
                out.push(&chunk[..n]);
            }
            left -= n;
        }
    }
}

/// The monitor tasks, by container ID, and the daemon's default action.
#[derive(Debug, Default)]
pub(crate) struct Monitors {
    tasks: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    default_action: Mutex<HealthAction>,
}

impl Monitors {
    pub(crate) fn new(default_action: HealthAction) -> Monitors {
        Monitors {
            tasks: Mutex::new(HashMap::new()),
            default_action: Mutex::new(default_action),
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::AbortHandle>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn default_action(&self) -> HealthAction {
        *self
            .default_action
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn now_nanos(t: SystemTime) -> i128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn rfc3339(t: SystemTime) -> String {
    berth_api_types::timestamp::rfc3339_nano(t)
}

/// Nanoseconds since the epoch of an RFC 3339 time.
fn parse_nanos(t: &str) -> Option<i128> {
    berth_api_types::timestamp::parse_rfc3339(t).map(|t| t.unix_timestamp_nanos())
}

impl Containers {
    /// A container started, restarted or was found running at daemon start (moby
    /// `initHealthMonitor`): with a healthcheck, its status goes back to `starting`
    /// (the log is kept) and a monitor starts, replacing any earlier one.
    pub(super) fn health_init(self: &Arc<Self>, entry: &Arc<Entry>) {
        let plan = {
            let mut r = entry.rec();
            let Some(plan) = plan(&r.config) else {
                return;
            };
            let h = r.state.health.get_or_insert_with(Health::default);
            h.status = STARTING.into();
            h.failing_streak = 0;
            plan
        };
        self.health_spawn(entry, plan);
    }

    /// Unpaused (moby `updateHealthMonitor`): the monitor starts again, status as it is.
    pub(super) fn health_resume(self: &Arc<Self>, entry: &Arc<Entry>) {
        let Some(plan) = plan(&entry.rec().config) else {
            return;
        };
        self.health_spawn(entry, plan);
    }

    /// Exited, paused or removed: the monitor stops; a stopped monitor leaves the status
    /// `unhealthy` (moby `CloseMonitorChannel`).
    pub(super) fn health_stop(&self, entry: &Entry) {
        let id = entry.rec().id.clone();
        if let Some(task) = self.health.tasks().remove(&id) {
            task.abort();
            if let Some(h) = entry.rec().state.health.as_mut() {
                h.status = UNHEALTHY.into();
            }
        }
    }

    fn health_spawn(self: &Arc<Self>, entry: &Arc<Entry>, plan: Plan) {
        let id = entry.rec().id.clone();
        let span = tracing::info_span!(parent: None, "health_monitor", container_id = %id);
        let task = tokio::spawn(self.clone().monitor(id.clone(), plan).instrument(span));
        if let Some(old) = self.health.tasks().insert(id, task.abort_handle()) {
            old.abort();
        }
    }

    /// The monitor loop (moby `monitor`): one probe at a time, `interval` after the end
    /// of the one before.
    async fn monitor(self: Arc<Self>, id: String, plan: Plan) {
        let mut last_save = Instant::now();
        loop {
            let Ok(entry) = self.get(&id) else { return };
            let (started, starting) = {
                let r = entry.rec();
                let starting = r
                    .state
                    .health
                    .as_ref()
                    .is_some_and(|h| h.status == STARTING);
                (parse_nanos(&r.state.started_at).unwrap_or(0), starting)
            };
            let in_start =
                |t: SystemTime| now_nanos(t) - started < plan.start_period.as_nanos() as i128;
            let wait = if starting && in_start(SystemTime::now()) {
                plan.start_interval
            } else {
                plan.interval
            };
            tokio::time::sleep(wait).await;
            {
                let r = entry.rec();
                if !r.running() || r.state.paused {
                    return;
                }
            }
            let start = SystemTime::now();
            let (exit_code, output) = match self.probe(&entry, &plan).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "health check error");
                    (-1, e.to_string())
                }
            };
            PROBE_COUNTS.count(exit_code == 0);
            let result = HealthcheckResult {
                start: rfc3339(start),
                end: rfc3339(SystemTime::now()),
                exit_code,
                output,
            };
            let changed = {
                let mut r = entry.rec();
                if !r.running() {
                    return;
                }
                let h = r.state.health.get_or_insert_with(Health::default);
                record_result(h, result, plan.retries, in_start(start))
            };
            if let Some(status) = &changed {
                self.emit(&entry.rec(), &format!("health_status: {status}"), &[]);
                tracing::info!(status = %status, "health status changed");
            }
            // A container being removed is not written again (its directory goes).
            let removing = entry.rec().state.status == ContainerStatus::Removing;
            if !removing && (changed.is_some() || last_save.elapsed() >= SAVE_EVERY) {
                self.save_logged(&entry).await;
                last_save = Instant::now();
            }
            if changed.as_deref() == Some(UNHEALTHY) {
                PROBE_COUNTS
                    .turned_unhealthy
                    .fetch_add(1, Ordering::Relaxed);
                self.on_unhealthy(&entry);
            }
        }
    }

    /// One probe: the exit code and output, -1 and dockerd's message after a timeout.
    async fn probe(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        plan: &Plan,
    ) -> Result<(i64, String), EngineError> {
        if plan.cmd.is_empty() {
            return Err(EngineError::InvalidArgument(format!(
                "healthcheck for container {} has no command",
                entry.rec().id
            )));
        }
        let cid = entry.rec().id.clone();
        // The exec's start is bounded apart from the probe's timeout (moby: the time
        // taken to start it is not the probe's).
        let started =
            tokio::time::timeout(START_BOUND, self.start_probe(entry, plan.cmd.clone())).await;
        let (exec_id, pid, stream) = started.map_err(|_| {
            EngineError::Internal(format!(
                "timed out starting health check for container {cid}"
            ))
        })??;
        let mut out = Output::default();
        let run = async {
            if let Some(mut s) = stream {
                if let Err(e) = read_frames(&mut s, &mut out).await {
                    tracing::debug!(error = %e, "probe output ended");
                }
            }
            self.runtime.exec_wait(rid(&cid), &exec_id).await
        };
        match tokio::time::timeout(plan.timeout, run).await {
            Ok(Ok(s)) => Ok((i64::from(s.exit_code.unwrap_or(-1)), out.text())),
            Ok(Err(e)) => Err(EngineError::Internal(format!("health check: {e}"))),
            Err(_) => {
                self.kill_probe(&cid, &exec_id, pid).await;
                let t = go_duration(plan.timeout);
                let text = out.text();
                Ok((
                    -1,
                    if text.is_empty() {
                        format!("Health check exceeded timeout ({t})")
                    } else {
                        format!("Health check exceeded timeout ({t}): {text}")
                    },
                ))
            }
        }
    }

    /// SIGKILL for a probe past its timeout, then a bounded wait for its end. The pidfd
    /// is taken before the shim is asked whether the exec still runs: while it does, the
    /// shim has not reaped it, so the pid cannot have been reused.
    async fn kill_probe(&self, cid: &str, exec_id: &str, pid: i32) {
        let Ok(fd) = berth_sys::pidfd::pidfd_open(pid) else {
            return;
        };
        let running = self
            .runtime
            .exec_state(rid(cid), exec_id)
            .await
            .is_ok_and(|s| s.running);
        if !running {
            return;
        }
        use std::os::fd::AsFd;
        let sig = super::libc_sigkill();
        if let Err(e) = berth_sys::pidfd::pidfd_send_signal(fd.as_fd(), sig) {
            tracing::warn!(error = %e, "cannot kill the health check past its timeout");
            return;
        }
        let _ = tokio::time::timeout(KILL_GRACE, self.runtime.exec_wait(rid(cid), exec_id)).await;
    }

    /// The container turned unhealthy: its action, in a task of its own (a stop ends
    /// the monitor that called this).
    fn on_unhealthy(self: &Arc<Self>, entry: &Arc<Entry>) {
        let (id, action) = {
            let r = entry.rec();
            let label = r
                .config
                .labels
                .get()
                .and_then(|l| l.get(ACTION_LABEL).cloned());
            let action = match label {
                Some(l) => l.parse().unwrap_or_default(),
                None => self.health.default_action(),
            };
            (r.id.clone(), action)
        };
        if action == HealthAction::None {
            return;
        }
        let Some(engine) = self.life.engine() else {
            return;
        };
        let c = self.clone();
        let span = tracing::info_span!(parent: None, "health_action", container_id = %id);
        let task = async move {
            tracing::info!(?action, "container unhealthy: acting");
            let result = match action {
                HealthAction::None => Ok(()),
                HealthAction::Stop => engine.container_stop(&id, None, None).await.map(drop),
                HealthAction::Kill => c.kill_unhealthy(&id).await,
                HealthAction::Restart => c.restart_unhealthy(&engine, &id).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "health-on-failure action failed");
            }
        };
        tokio::spawn(task.instrument(span));
    }

    /// SIGKILL, not a user kill: the restart policy sees an exit of its own.
    async fn kill_unhealthy(&self, id: &str) -> Result<(), EngineError> {
        let entry = self.get(id)?;
        let sig = super::libc_sigkill();
        self.runtime
            .kill(rid(id), sig, true)
            .await
            .map_err(super::rt_err)?;
        self.emit(&entry.rec(), "kill", &[("signal", &sig.to_string())]);
        Ok(())
    }

    /// As `docker restart`, counted in `RestartCount` as a policy restart is.
    async fn restart_unhealthy(
        &self,
        engine: &Arc<crate::Engine>,
        id: &str,
    ) -> Result<(), EngineError> {
        let entry = self.get(id)?;
        engine.container_stop(id, None, None).await?;
        {
            let mut r = entry.rec();
            r.manually_stopped = false;
            r.restart_count = r.restart_count.saturating_add(1);
        }
        engine.start_container(id, false).await?;
        self.emit(&entry.rec(), "restart", &[]);
        Ok(())
    }
}

/// Go's `time.Duration.String` for the durations a healthcheck takes (`30s`, `1.5s`,
/// `500ms`, `1m0s`).
fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1u128)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(ns, div));
    }
    let total_s = ns / 1_000_000_000;
    let (h, m) = (total_s / 3600, (total_s / 60) % 60);
    let s = frac(ns % 60_000_000_000, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `n / div` with its fraction, trailing zeros dropped.
fn frac(n: u128, div: u128) -> String {
    let (whole, rest) = (n / div, n % div);
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rest:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// The list filter `health=`: moby `ValidateHealthStatus`'s refusal for other values.
pub(crate) fn check_filter(values: &[String]) -> Result<(), EngineError> {
    for v in values {
        if ![NONE_FILTER, STARTING, HEALTHY, UNHEALTHY].contains(&v.as_str()) {
            return Err(EngineError::InvalidArgument(format!(
                "invalid filter 'health={v}': invalid value for health ({v}): must be one of none, starting, healthy, unhealthy"
            )));
        }
    }
    Ok(())
}

const NONE_FILTER: &str = "none";

/// Whether a container's health matches one of `values` (`none`: no healthcheck).
pub(crate) fn filter_matches(health: Option<&Health>, values: &[String]) -> bool {
    let status = health.map_or(NONE_FILTER, |h| h.status.as_str());
    values.is_empty() || values.iter().any(|v| v == status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(code: i64) -> HealthcheckResult {
        HealthcheckResult {
            exit_code: code,
            ..Default::default()
        }
    }

    fn starting() -> Health {
        Health {
            status: STARTING.into(),
            ..Default::default()
        }
    }

    fn config(v: Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn failures_make_it_unhealthy_after_retries_and_a_success_heals() {
        let mut h = starting();
        assert_eq!(record_result(&mut h, result(1), 2, false), None);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        assert_eq!(
            record_result(&mut h, result(1), 2, false).as_deref(),
            Some(UNHEALTHY)
        );
        assert_eq!(record_result(&mut h, result(-1), 2, false), None);
        assert_eq!(h.failing_streak, 3);
        assert_eq!(
            record_result(&mut h, result(0), 2, false).as_deref(),
            Some(HEALTHY)
        );
        assert_eq!(h.failing_streak, 0);
        // Healthy: failures count at once, status changes at `retries`.
        assert_eq!(record_result(&mut h, result(2), 2, true), None);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 1));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        let mut h = starting();
        for _ in 0..5 {
            assert_eq!(record_result(&mut h, result(1), 1, true), None);
        }
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        assert_eq!(
            record_result(&mut h, result(1), 1, false).as_deref(),
            Some(UNHEALTHY)
        );
    }

    #[test]
    fn the_log_keeps_the_last_five() {
        let mut h = starting();
        for code in 0..8 {
            record_result(&mut h, result(code), 3, false);
        }
        let codes: Vec<i64> = h.log.iter().map(|r| r.exit_code).collect();
        assert_eq!(codes, [3, 4, 5, 6, 7]);
        // A record holding more (written by hand) is cut back too.
        h.log = (0..9).map(result).collect();
        record_result(&mut h, result(42), 3, false);
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.log.last().unwrap().exit_code, 42);
    }

    #[test]
    fn plans_follow_docker_defaults_and_test_types() {
        let p = plan(&config(
            json!({"Healthcheck": {"Test": ["CMD", "true", "x"]}}),
        ))
        .unwrap();
        assert_eq!(p.cmd, ["true", "x"]);
        assert_eq!(
            (
                p.interval,
                p.timeout,
                p.start_period,
                p.start_interval,
                p.retries
            ),
            (
                Duration::from_secs(30),
                Duration::from_secs(30),
                Duration::ZERO,
                Duration::from_secs(5),
                3
            )
        );
        let p = plan(&config(json!({"Healthcheck": {
            "Test": ["CMD-SHELL", "test -f /ok"], "Interval": 1_000_000_000i64,
            "Timeout": 2_000_000_000i64, "Retries": 2, "StartPeriod": 3, "StartInterval": 4
        }})))
        .unwrap();
        assert_eq!(p.cmd, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!((p.interval, p.retries), (Duration::from_secs(1), 2));
        let p = plan(&config(json!({"Shell": ["/bin/ash", "-e", "-c"],
            "Healthcheck": {"Test": ["CMD-SHELL", "x"]}})))
        .unwrap();
        assert_eq!(p.cmd, ["/bin/ash", "-e", "-c", "x"]);
        for none in [
            json!({}),
            json!({"Healthcheck": null}),
            json!({"Healthcheck": {"Test": ["NONE"]}}),
            json!({"Healthcheck": {"Test": []}}),
            json!({"Healthcheck": {"Test": ["WHAT", "x"]}}),
            json!({"Healthcheck": {"Test": "CMD true"}}),
        ] {
            assert_eq!(plan(&config(none.clone())), None, "{none}");
        }
        // A CMD without a command still probes (and fails each time, as moby).
        assert_eq!(
            plan(&config(json!({"Healthcheck": {"Test": ["CMD"]}}))).map(|p| p.cmd),
            Some(vec![])
        );
    }

    #[test]
    fn create_checks_are_worded_like_dockerd() {
        for (hc, want) in [
            (
                json!({"Interval": 5}),
                "Interval in Healthcheck cannot be less than 1ms",
            ),
            (
                json!({"Timeout": -1}),
                "Timeout in Healthcheck cannot be less than 1ms",
            ),
            (
                json!({"StartPeriod": 999_999}),
                "StartPeriod in Healthcheck cannot be less than 1ms",
            ),
            (
                json!({"StartInterval": 1}),
                "StartInterval in Healthcheck cannot be less than 1ms",
            ),
            (
                json!({"Retries": -1}),
                "Retries in Healthcheck cannot be negative",
            ),
            (json!({"Retries": "x"}), "invalid Healthcheck"),
        ] {
            let err = check(&config(json!({ "Healthcheck": hc }))).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(want), "{err}");
        }
        assert!(check(&config(
            json!({"Healthcheck": {"Interval": 0, "Retries": 0}})
        ))
        .is_ok());
        assert!(check(&config(json!({"Labels": {ACTION_LABEL: "restart"}}))).is_ok());
        let err = check(&config(json!({"Labels": {ACTION_LABEL: "reboot"}}))).unwrap_err();
        assert!(
            err.to_string().contains("use restart, stop, kill or none"),
            "{err}"
        );
    }

    #[test]
    fn the_image_healthcheck_fills_in_what_the_request_lacks() {
        let image = json!({"Healthcheck": {"Test": ["CMD", "img"], "Interval": 7, "Retries": 9},
            "Shell": ["/bin/bash", "-c"]});
        let image = image.as_object().unwrap();
        let mut out = Map::new();
        merge_image(&mut out, image);
        assert_eq!(out["Healthcheck"]["Test"], json!(["CMD", "img"]));
        assert_eq!(out["Shell"], json!(["/bin/bash", "-c"]));
        let mut out = json!({"Healthcheck": {"Test": [], "Interval": 0, "Retries": 2}});
        let out = out.as_object_mut().unwrap();
        merge_image(out, image);
        assert_eq!(
            out["Healthcheck"],
            json!({"Test": ["CMD", "img"], "Interval": 7, "Retries": 2})
        );
        // NONE is a test: it stays, and disables the image's.
        let mut out = json!({"Healthcheck": {"Test": ["NONE"]}});
        let out = out.as_object_mut().unwrap();
        merge_image(out, image);
        assert_eq!(out["Healthcheck"]["Test"], json!(["NONE"]));
        assert_eq!(plan(&config(Value::Object(out.clone()))), None);
    }

    #[tokio::test]
    async fn output_is_read_from_frames_and_bounded() {
        let mut bytes = Vec::new();
        let frame = |s: u8, data: &[u8]| {
            let mut f = vec![s, 0, 0, 0];
            f.extend_from_slice(&(data.len() as u32).to_be_bytes());
            f.extend_from_slice(data);
            f
        };
        bytes.extend(frame(1, b"out "));
        bytes.extend(frame(3, b"ignored "));
        bytes.extend(frame(2, b"err"));
        let mut out = Output::default();
        read_frames(&mut bytes.as_slice(), &mut out).await.unwrap();
        assert_eq!(out.text(), "out err");
        // Past the bound: cut, marked, the rest still read to the end.
        let big = vec![b'x'; MAX_OUTPUT + 100];
        let mut bytes = frame(1, &big);
        bytes.extend(frame(2, b"tail"));
        let mut out = Output::default();
        read_frames(&mut bytes.as_slice(), &mut out).await.unwrap();
        let text = out.text();
        assert_eq!(text.len(), MAX_OUTPUT + 3);
        assert!(text.ends_with("x..."));
        // A frame cut short, or a header cut short, ends the read without error.
        let mut short = frame(1, b"abcdef");
        short.truncate(10);
        let mut out = Output::default();
        read_frames(&mut short.as_slice(), &mut out).await.unwrap();
        assert_eq!(out.text(), "ab");
        let mut out = Output::default();
        read_frames(&mut [1u8, 0, 0].as_slice(), &mut out)
            .await
            .unwrap();
        assert_eq!(out.text(), "");
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5s");
    }

    #[test]
    fn health_filter_values() {
        assert!(check_filter(&["healthy".into(), "none".into()]).is_ok());
        let err = check_filter(&["fine".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid filter 'health=fine': invalid value for health (fine): must be one of none, starting, healthy, unhealthy"
        );
        let h = starting();
        assert!(filter_matches(Some(&h), &["starting".into()]));
        assert!(!filter_matches(Some(&h), &["healthy".into()]));
        assert!(filter_matches(None, &["none".into()]));
        assert!(filter_matches(None, &[]));
    }

    #[test]
    fn actions_parse() {
        assert_eq!("restart".parse(), Ok(HealthAction::Restart));
        assert_eq!("".parse(), Ok(HealthAction::None));
        assert!("reboot".parse::<HealthAction>().is_err());
    }
}
