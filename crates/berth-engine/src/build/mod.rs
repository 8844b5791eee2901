//! `POST /build`: dockerd's classic builder over `berth-build`'s Dockerfile language.
//! [`Engine::build`] receives and checks the context and the Dockerfile (errors there are
//! the request's), then runs the steps in a task that reports dockerd's JSON messages:
//! metadata instructions commit empty-layer images, RUN runs a real container through the
//! same create/start/wait/commit paths as the API, COPY/ADD extract the gathered sources
//! into a created container and commit its layer. The cache is an index under
//! `<data-root>/build/cache` from each step's cache key (parent image, step text with the
//! source hash, the config dockerd compares) to the image it made.

mod cache;
mod cache_from;
mod commit;
mod config;
mod context;
mod copy;
mod git;
mod prune;
mod receive;
mod remote;
mod run;
mod steps;
mod stream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use berth_api_types::image::{ErrorDetail, ProgressMessage};
use berth_build::args::BuildArgs;
use berth_build::cache as bc;
use berth_build::dockerignore::Matcher;
use berth_build::instructions::{Dockerfile, Instruction};
use berth_build::lex::Lex;
use berth_build::stages::{self, StageRef};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_util::sync::CancellationToken;

use self::config::RunConfig;
use self::receive::read_context;
use self::stream::Demux;
use crate::containers::{LogsOptions, WaitCondition};
use crate::distribution::ProgressStream;
use crate::images::BodyReader;
use crate::system::now_rfc3339;
use crate::{Engine, EngineError};

/// The label every build container carries: none outlives its build, so any found when
/// the engine starts was left by a berthd killed mid-build.
const BUILD_LABEL: &str = "io.berth.build-container";

impl Engine {
    /// At start-up: removes the containers and work dirs of builds a killed berthd left.
    pub(crate) async fn build_recover(&self) {
        let base = self.config.data_root.join("build");
        let _ = crate::blocking::spawn(move || remove_stale(&base)).await;
        let Ok(filters) = berth_api_types::filters::Filters::parse(Some(&format!(
            r#"{{"label":["{BUILD_LABEL}"]}}"#
        ))) else {
            return;
        };
        let Ok(left) = self.container_list(true, &filters).await else {
            return;
        };
        for c in left {
            if let Some(id) = c["Id"].as_str() {
                tracing::info!(
                    container = id,
                    "removing a container of an interrupted build"
                );
                if let Err(e) = self.container_delete(id, true).await {
                    tracing::warn!(container = id, error = %e, "cannot remove a build container");
                }
            }
        }
    }
}

/// moby `system.DefaultPathEnv` for Linux.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a `POST /build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Path of the Dockerfile in the context (`Dockerfile` when empty).
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub quiet: bool,
    pub no_cache: bool,
    pub remove: bool,
    pub force_remove: bool,
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `HostConfig.NetworkMode` of RUN containers (`default` when empty).
    pub network_mode: String,
    /// More `HostConfig` fields of RUN containers, as `docker run` takes them (`Memory`,
    /// `MemorySwap`, `CpuShares`, `CpusetCpus`, `CpuPeriod`, `CpuQuota`, `ShmSize`,
    /// `Ulimits`, `ExtraHosts`).
    pub host_config: Map<String, Value>,
    /// `cachefrom`: images whose history counts as cache even though no local build
    /// made them (moby `ImageCache` over the `--cache-from` images).
    pub cache_from: Vec<String>,
    /// `pull`: pull every FROM image, refreshing a local one.
    pub pull: bool,
    /// `X-Registry-Config`: credentials per registry, for FROM pulls.
    pub auths: BTreeMap<String, berth_image::registry::RegistryAuth>,
    /// `remote`: a URL the context (a tar or a lone Dockerfile) is fetched from.
    pub remote: String,
    /// `buildid`: the name `POST /build/cancel` knows this build by.
    pub build_id: String,
}

/// The running builds by `buildid`, for `POST /build/cancel`.
fn running() -> &'static std::sync::Mutex<std::collections::HashMap<String, CancellationToken>> {
    static RUNNING: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>,
    > = std::sync::OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// Start times (Unix seconds) of the builds running now, by a unique number: a build
/// prune leaves alone the records those builds may still be making and using.
fn active() -> &'static std::sync::Mutex<BTreeMap<u64, i64>> {
    static ACTIVE: std::sync::OnceLock<std::sync::Mutex<BTreeMap<u64, i64>>> =
        std::sync::OnceLock::new();
    ACTIVE.get_or_init(Default::default)
}

/// The start of the oldest running build, if any.
pub(super) fn oldest_active_build() -> Option<i64> {
    active()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .min()
        .copied()
}

/// Marks a build as running until dropped.
struct ActiveBuild(u64);

impl ActiveBuild {
    fn start() -> ActiveBuild {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n, now);
        ActiveBuild(n)
    }
}

impl Drop for ActiveBuild {
    fn drop(&mut self) {
        active()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

impl Engine {
    /// `POST /build/cancel?id=`: cancels the build started with that `buildid`; an
    /// unknown id is not an error (dockerd answers 200 for it too).
    pub fn build_cancel(&self, id: &str) {
        let map = running().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = map.get(id) {
            tracing::info!(build = id, "build canceled by request");
            t.cancel();
        }
    }
}

/// A build's private directory, removed when the build ends however it ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A step that failed: the message and, for RUN, the exit code.
struct StepError {
    message: String,
    code: Option<i64>,
}

impl From<EngineError> for StepError {
    fn from(e: EngineError) -> Self {
        StepError {
            message: e.to_string(),
            code: None,
        }
    }
}

impl From<berth_build::Error> for StepError {
    fn from(e: berth_build::Error) -> Self {
        StepError {
            message: e.to_string(),
            code: None,
        }
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

fn unique_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the work dirs of builds a previous berthd process left (killed mid-build):
/// their names carry the pid of the process that made them.
fn remove_stale(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    let mine = format!("tmp-{}-", std::process::id());
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("tmp-") && !name.starts_with(&mine) {
            tracing::info!(dir = %e.path().display(), "removing a stale build directory");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Everything the steps need, prepared before the response starts.
struct Prepared {
    df: Dockerfile,
    ignore: Matcher,
    work: WorkDir,
    opts: BuildOptions,
}

impl Engine {
    /// `POST /build`: reads the context from `body`, parses the Dockerfile, and returns
    /// the message stream of the build, which runs on after this returns.
    pub async fn build(
        self: &Arc<Self>,
        body: BodyReader,
        opts: BuildOptions,
    ) -> Result<ProgressStream, EngineError> {
        for t in &opts.tags {
            t.parse::<berth_image::reference::Reference>()
                .map_err(|e| {
                    EngineError::InvalidArgument(format!("invalid reference format: {e}"))
                })?;
        }
        let base = self.config.data_root.join("build");
        let stale = base.clone();
        let _ = crate::blocking::spawn(move || remove_stale(&stale)).await;
        let dir = base.join(format!("tmp-{}", unique_name()));
        tokio::fs::create_dir_all(dir.join("context"))
            .await
            .map_err(EngineError::io("cannot create", &dir))?;
        let work = WorkDir(dir.clone());
        let prepared = match read_context(&dir, body, &opts)
            .await
            .and_then(|(df, ignore)| {
                stages::select_target(&df, opts.target.as_deref())
                    .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
                Ok((df, ignore))
            }) {
            Ok(x) => x,
            Err(e) => {
                // An unpacked context can be large: removed off the async workers.
                let _ = crate::blocking::spawn(move || drop(work)).await;
                return Err(e);
            }
        };
        let (df, ignore) = prepared;
        let (tx, rx) = unbounded_channel();
        let engine = self.clone();
        let cancel = CancellationToken::new();
        if !opts.build_id.is_empty() {
            running()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(opts.build_id.clone(), cancel.clone());
        }
        let prepared = Prepared {
            df,
            ignore,
            work,
            opts,
        };
        let active = ActiveBuild::start();
        tokio::spawn(async move {
            let _active = active;
            let quiet = prepared.opts.quiet;
            let mut b = Builder {
                engine: &engine,
                tx: &tx,
                quiet,
                p: &prepared,
                containers: Vec::new(),
                cancel,
            };
            let result = b.run().await;
            if !prepared.opts.build_id.is_empty() {
                running()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&prepared.opts.build_id);
            }
            let left = std::mem::take(&mut b.containers);
            for id in left {
                let _ = engine.container_delete(&id, true).await;
            }
            if let Err(e) = result {
                let msg = ProgressMessage {
                    error_detail: Some(ErrorDetail {
                        code: e.code,
                        message: e.message.clone(),
                    }),
                    error: Some(e.message),
                    ..Default::default()
                };
                let _ = tx.send(msg);
            }
            // The response ends here; the context (maybe large) is removed after it.
            drop(tx);
            let work = prepared.work;
            let _ = crate::blocking::spawn(move || drop(work)).await;
        });
        Ok(rx)
    }
}

/// The state of the stage being built (moby `dispatchState`).
struct StageState {
    image: String,
    image_json: Value,
    rc: RunConfig,
    args: BuildArgs,
}

struct Builder<'a> {
    engine: &'a Arc<Engine>,
    tx: &'a UnboundedSender<ProgressMessage>,
    quiet: bool,
    p: &'a Prepared,
    /// Build containers not yet removed (removed when the build ends, whatever happens,
    /// unless `rm` and `forcerm` are both off).
    containers: Vec<String>,
    /// Cancelled by `POST /build/cancel`.
    cancel: CancellationToken,
}
