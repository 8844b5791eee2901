//! `POST /build`: dockerd's classic builder over `berth-build`'s Dockerfile language.
//! [`Engine::build`] receives and checks the context and the Dockerfile (errors there are
//! the request's), then runs the steps in a task that reports dockerd's JSON messages:
//! metadata instructions commit empty-layer images, RUN runs a real container through the
//! same create/start/wait/commit paths as the API, COPY/ADD extract the gathered sources
//! into a created container and commit its layer. The cache is an index under
//! `<data-root>/build/cache` from each step's cache key (parent image, step text with the
//! source hash, the config dockerd compares) to the image it made.

mod config;
mod context;

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

use self::config::RunConfig;
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

/// Receives the context into `dir/context` and reads the Dockerfile and `.dockerignore`.
async fn read_context(
    dir: &Path,
    body: BodyReader,
    opts: &BuildOptions,
) -> Result<(Dockerfile, Matcher), EngineError> {
    // The body goes to a file first (bounded), then is unpacked on a blocking thread.
    let tar_path = dir.join("context.tar");
    let mut f = tokio::fs::File::create(&tar_path)
        .await
        .map_err(EngineError::io("cannot create", &tar_path))?;
    let mut limited = tokio::io::AsyncReadExt::take(body, context::MAX_CONTEXT + 1);
    let n = tokio::io::copy(&mut limited, &mut f).await.map_err(|e| {
        EngineError::InvalidArgument(format!("failed to read the build context: {e}"))
    })?;
    if n > context::MAX_CONTEXT {
        return Err(EngineError::InvalidArgument(format!(
            "the build context is larger than {} bytes",
            context::MAX_CONTEXT
        )));
    }
    drop(f);
    let name = if opts.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.clone()
    };
    let ctx = dir.join("context");
    let (df, ignore) = crate::blocking::spawn(move || {
        let tar =
            std::fs::File::open(&tar_path).map_err(EngineError::io("cannot open", &tar_path))?;
        context::unpack(tar, &ctx)?;
        let _ = std::fs::remove_file(&tar_path);
        let data =
            context::read_in_root(&ctx, &name, berth_build::parser::MAX_DOCKERFILE_SIZE as u64)
                .map_err(|e| {
                    EngineError::InvalidArgument(format!(
                        "Cannot locate specified Dockerfile: {name}: {e}"
                    ))
                })?
                .ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "Cannot locate specified Dockerfile: {name}"
                    ))
                })?;
        let ignore = match context::read_in_root(&ctx, ".dockerignore", 1 << 20) {
            Ok(Some(d)) => Matcher::from_dockerignore(&d)
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
            _ => Matcher::new::<&str>(&[])
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
        };
        let df = berth_build::parse_dockerfile(&data)
            .map_err(|e| EngineError::InvalidArgument(e.client_message(&name)))?;
        Ok::<_, EngineError>((df, ignore))
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok((df, ignore))
}

/// The `ExposedPorts` keys of one EXPOSE word (moby `nat.ParsePortSpecs`): `80`,
/// `53/udp`, a range `8000-8002/tcp` as each of its ports.
fn expose_keys(word: &str) -> Result<Vec<String>, EngineError> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let bad = || EngineError::InvalidArgument(format!("Invalid containerPort: {ports}"));
    let num = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if end < start {
        return Err(EngineError::InvalidArgument(format!(
            "Invalid range specified for the Port: {ports}"
        )));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Removes a step's scratch directory on a blocking thread.
async fn remove_dir(dir: PathBuf) {
    let _ = crate::blocking::spawn(move || std::fs::remove_dir_all(dir)).await;
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
        let prepared = Prepared {
            df,
            ignore,
            work,
            opts,
        };
        tokio::spawn(async move {
            let quiet = prepared.opts.quiet;
            let mut b = Builder {
                engine: &engine,
                tx: &tx,
                quiet,
                p: &prepared,
                containers: Vec::new(),
            };
            let result = b.run().await;
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
}

impl Builder<'_> {
    fn say(&self, s: impl Into<String>) {
        if !self.quiet {
            let _ = self.tx.send(ProgressMessage::stream(s));
        }
    }

    /// `Step N/M : text`, then the newline in a message of its own, as dockerd sends them.
    fn step_line(&self, n: usize, total: usize, text: &str) {
        self.say(format!("Step {n}/{total} : {text}"));
        self.say("\n");
    }

    async fn run(&mut self) -> Result<(), StepError> {
        let df = &self.p.df;
        let opts = &self.p.opts;
        let stages_run = stages::select_target(df, opts.target.as_deref())?;
        let extra_label = !opts.labels.is_empty();
        let total = df.meta_args.len()
            + stages_run
                .iter()
                .map(|s| 1 + s.commands.len())
                .sum::<usize>()
            + usize::from(extra_label);
        let mut n = 0usize;
        let mut args = BuildArgs::new(opts.build_args.clone());
        for m in &df.meta_args {
            n += 1;
            self.step_line(n, total, &m.original);
            if let Instruction::Arg(defs) = &m.instruction {
                args.process_meta_arg(defs, df.escape)?;
            }
        }
        let mut results: Vec<String> = Vec::new();
        let mut last: Option<StageState> = None;
        for (i, stage) in stages_run.iter().enumerate() {
            n += 1;
            self.step_line(n, total, &stage.source_code);
            let base = berth_build::expand::stage_base_name(stage, df.escape, &args)?;
            let image = match stages::resolve(stages_run, i, &base)? {
                StageRef::Stage(j) => results
                    .get(j)
                    .cloned()
                    .ok_or_else(|| EngineError::Internal("stage result missing".into()))?,
                StageRef::Image(name) if name.eq_ignore_ascii_case("scratch") => String::new(),
                StageRef::Image(name) => self.base_image(&name).await?,
            };
            let image_json = if image.is_empty() {
                json!({"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": []}, "history": []})
            } else {
                self.say(format!(" ---> {}\n", short(&image)));
                // Read from disk: off the async workers.
                let (store, id) = (self.engine.images.clone(), image.clone());
                let bytes = crate::blocking::spawn(move || store.config_bytes(&id))
                    .await
                    .map_err(|e| EngineError::Internal(e.to_string()))?
                    .map_err(EngineError::from)?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| EngineError::Internal(format!("image config: {e}")))?
            };
            let mut rc = RunConfig::from_json(&image_json["config"]);
            // moby `initializeStage`: a stage without PATH gets the default one.
            if !rc.env.iter().any(|e| e.starts_with("PATH=")) {
                rc.env.push(format!("PATH={DEFAULT_PATH}"));
            }
            let mut st = StageState {
                image,
                image_json,
                rc,
                args: args.for_stage(),
            };
            self.run_triggers(&mut st, &results, stages_run, i).await?;
            let is_last = i + 1 == stages_run.len();
            for cmd in &stage.commands {
                n += 1;
                if self.tx.is_closed() {
                    // The client went away: stop, as dockerd cancels the build.
                    return Err(EngineError::Conflict(
                        "build canceled: the client disconnected".into(),
                    )
                    .into());
                }
                self.step_line(n, total, &cmd.original);
                self.step(&mut st, &cmd.instruction, &results, stages_run, i)
                    .await?;
            }
            if is_last && extra_label {
                n += 1;
                let line = opts
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{}='{}'", berth_build::error::go_quote(k), v))
                    .collect::<Vec<_>>()
                    .join(" ");
                let line = format!("LABEL {line}");
                self.step_line(n, total, &line);
                let parsed =
                    berth_build::parse_dockerfile(format!("FROM scratch\n{line}\n").as_bytes())?;
                if let Some(c) = parsed.stages.first().and_then(|s| s.commands.first()) {
                    self.step(&mut st, &c.instruction, &results, stages_run, i)
                        .await?;
                }
            }
            args.merge_referenced(&st.args);
            results.push(st.image.clone());
            last = Some(st);
        }
        let Some(st) = last else {
            return Err(EngineError::InvalidArgument(
                "No image was generated. Is your Dockerfile empty?".into(),
            )
            .into());
        };
        if st.image.is_empty() {
            return Err(EngineError::InvalidArgument(
                "No image was generated. Is your Dockerfile empty?".into(),
            )
            .into());
        }
        if let Some(w) = args.unused_warning() {
            self.say(w);
        }
        if !self.quiet {
            let _ = self.tx.send(ProgressMessage {
                aux: Some(json!({"ID": st.image})),
                ..Default::default()
            });
        } else {
            let _ = self
                .tx
                .send(ProgressMessage::stream(format!("{}\n", st.image)));
        }
        self.say(format!("Successfully built {}\n", short(&st.image)));
        for t in &opts.tags {
            let r = self
                .engine
                .image_tag(st.image.clone(), t.clone(), None)
                .await;
            r?;
            let shown = t
                .parse::<berth_image::reference::Reference>()
                .map(|r| r.with_default_tag().familiar_string())
                .unwrap_or_else(|_| t.clone());
            self.say(format!("Successfully tagged {shown}\n"));
        }
        Ok(())
    }

    /// The base image's `ONBUILD` triggers, run first in the child (moby
    /// `dispatchTriggeredOnBuild`): the child's own `OnBuild` starts empty.
    async fn run_triggers(
        &mut self,
        st: &mut StageState,
        results: &[String],
        all: &[berth_build::Stage],
        current: usize,
    ) -> Result<(), StepError> {
        let triggers = std::mem::take(&mut st.rc.on_build);
        if triggers.is_empty() {
            return Ok(());
        }
        let s = if triggers.len() > 1 { "s" } else { "" };
        self.say(format!("# Executing {} build trigger{s}\n", triggers.len()));
        for t in &triggers {
            let cmd = berth_build::instructions::parse_trigger(t)?;
            Box::pin(self.step(st, &cmd.instruction, results, all, current)).await?;
        }
        Ok(())
    }

    /// A `FROM` image: local by name or ID, pulled when missing.
    async fn base_image(&self, name: &str) -> Result<String, StepError> {
        if let Ok(r) = self.engine.images.resolve(name) {
            return Ok(r.id);
        }
        let mut rx = self
            .engine
            .image_pull(name.to_string(), None, None, Default::default())
            .await?;
        while let Some(m) = rx.recv().await {
            if let Some(e) = m.error_detail {
                return Err(StepError {
                    message: e.message,
                    code: None,
                });
            }
            if let Some(s) = m.status {
                let id = m.id.map(|i| format!("{i}: ")).unwrap_or_default();
                self.say(format!("{id}{s}\n"));
            }
        }
        Ok(self
            .engine
            .images
            .resolve(name)
            .map_err(EngineError::from)?
            .id)
    }

    fn cache_path(&self, key: &str) -> PathBuf {
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        self.engine.config.data_root.join("build/cache").join(hex)
    }

    /// The image an earlier build made for this key and its config, if it is still
    /// there (read on a blocking thread).
    async fn cache_get(&self, key: &str) -> Option<(String, Vec<u8>)> {
        if self.p.opts.no_cache {
            return None;
        }
        let path = self.cache_path(key);
        let store = self.engine.images.clone();
        crate::blocking::spawn(move || {
            let id = std::fs::read_to_string(path).ok()?;
            let id = store.resolve(id.trim()).ok()?.id;
            let config = store.config_bytes(&id).ok()?;
            Some((id, config))
        })
        .await
        .ok()
        .flatten()
    }

    async fn cache_put(&self, key: &str, image: &str) {
        let path = self.cache_path(key);
        let image = image.to_string();
        let written = crate::blocking::spawn(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            berth_sys::fs::atomic_write(&path, image.as_bytes(), 0o600)
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::warn!(error = %e, "cannot record a build cache entry");
        }
    }

    /// Probes the cache; on a hit moves the stage onto the cached image.
    async fn probe(&self, st: &mut StageState, key: &str) -> Result<bool, StepError> {
        let Some((id, config)) = self.cache_get(key).await else {
            return Ok(false);
        };
        st.image_json = serde_json::from_slice(&config)
            .map_err(|e| EngineError::Internal(format!("image config: {e}")))?;
        st.rc = RunConfig::from_json(&st.image_json["config"]);
        st.image = id;
        self.say(" ---> Using cache\n");
        self.say(format!(" ---> {}\n", short(&st.image)));
        Ok(true)
    }

    /// Writes the image of a step: the state's config, one history entry, and the layer
    /// `diff_id` when the step made one.
    async fn commit(
        &self,
        st: &mut StageState,
        created_by: String,
        probe_cmd: &[String],
        layer: Option<String>,
        key: &str,
    ) -> Result<(), StepError> {
        let now = now_rfc3339();
        let mut img = st.image_json.clone();
        img["config"] = st.rc.to_json();
        let mut cc = st.rc.clone();
        cc.cmd = Some(probe_cmd.to_vec());
        img["container_config"] = cc.to_json();
        img["created"] = json!(now);
        if !st.image.is_empty() {
            img["parent"] = json!(st.image);
        }
        let mut h = Map::new();
        h.insert("created".into(), json!(now));
        h.insert("created_by".into(), json!(created_by));
        match layer {
            Some(d) => match img["rootfs"]["diff_ids"].as_array_mut() {
                Some(ids) => ids.push(json!(d)),
                None => img["rootfs"] = json!({"type": "layers", "diff_ids": [d]}),
            },
            None => {
                h.insert("empty_layer".into(), json!(true));
            }
        }
        match img["history"].as_array_mut() {
            Some(list) => list.push(Value::Object(h)),
            None => img["history"] = json!([Value::Object(h)]),
        }
        let bytes = serde_json::to_vec(&img).map_err(|e| EngineError::Internal(e.to_string()))?;
        let store = self.engine.images.clone();
        let added = crate::blocking::spawn(move || store.add_image(&bytes))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(EngineError::from)?;
        st.image = added.id;
        st.image_json = img;
        self.cache_put(key, &st.image).await;
        self.say(format!(" ---> {}\n", short(&st.image)));
        Ok(())
    }

    /// A metadata instruction's commit (moby `commit`): an empty-layer image.
    async fn commit_meta(&self, st: &mut StageState, comment: &str) -> Result<(), StepError> {
        self.commit_nop(st, bc::nop_cmd(&st.rc.shell(), comment))
            .await
    }

    async fn commit_nop(&self, st: &mut StageState, cmd: Vec<String>) -> Result<(), StepError> {
        let key = st.rc.cache_key(
            &st.image,
            &cmd,
            st.rc.entrypoint.as_deref().unwrap_or_default(),
        );
        if self.probe(st, &key).await? {
            return Ok(());
        }
        self.commit(st, bc::created_by(&cmd), &cmd, None, &key)
            .await
    }

    fn cmd_line(rc: &RunConfig, c: &berth_build::instructions::CmdLine) -> Vec<String> {
        if c.prepend_shell {
            let mut v = rc.shell();
            v.push(c.args.join(" "));
            v
        } else {
            c.args.clone()
        }
    }

    async fn step(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        results: &[String],
        all: &[berth_build::Stage],
        current: usize,
    ) -> Result<(), StepError> {
        let escape = self.p.df.escape;
        let env = st.args.expansion_env(&st.rc.env);
        let ins = berth_build::expand::expand(ins, &Lex::new(escape), &env)?;
        match ins {
            Instruction::Env(kvs) => {
                for kv in &kvs {
                    let prefix = format!("{}=", kv.key);
                    st.rc
                        .env
                        .retain(|e| !e.starts_with(&prefix) && e != &kv.key);
                    st.rc.env.push(format!("{}={}", kv.key, kv.value));
                }
                self.commit_meta(st, &bc::env_comment(&kvs)).await
            }
            Instruction::Label(kvs) => {
                for kv in &kvs {
                    st.rc.labels.insert(kv.key.clone(), kv.value.clone());
                }
                self.commit_meta(st, &bc::label_comment(&kvs)).await
            }
            Instruction::Maintainer(m) => {
                st.image_json["author"] = json!(m);
                self.commit_meta(st, &bc::maintainer_comment(&m)).await
            }
            Instruction::Arg(defs) => {
                let mut pairs = Vec::new();
                for d in &defs {
                    st.args.add_arg(&d.key, d.value.clone());
                    pairs.push((d.key.clone(), d.value.clone()));
                }
                self.commit_meta(st, &bc::arg_comment(&pairs)).await
            }
            Instruction::Cmd(c) => {
                let cmd = Self::cmd_line(&st.rc, &c);
                st.rc.cmd = Some(cmd.clone());
                st.rc.args_escaped = false;
                self.commit_meta(st, &bc::cmd_comment(&cmd)).await
            }
            Instruction::Entrypoint(c) => {
                let ep = Self::cmd_line(&st.rc, &c);
                st.rc.entrypoint = Some(ep.clone());
                // moby: a new ENTRYPOINT resets an inherited CMD.
                st.rc.cmd = None;
                self.commit_meta(st, &bc::entrypoint_comment(&ep)).await
            }
            Instruction::Shell(s) => {
                st.rc.shell = Some(s.clone());
                self.commit_meta(st, &bc::shell_comment(&s)).await
            }
            Instruction::Workdir(w) => {
                let dir = berth_build::expand::normalize_workdir(&st.rc.working_dir, &w)?;
                st.rc.working_dir = dir.clone();
                // WORKDIR commits with one `#(nop) WORKDIR x` argument (moby
                // `withCmdCommentString`).
                let cmd = bc::nop_cmd_string(&st.rc.shell(), &bc::workdir_comment(&dir));
                self.commit_nop(st, cmd).await
            }
            Instruction::User(u) => {
                st.rc.user = u.clone();
                self.commit_meta(st, &bc::user_comment(&u)).await
            }
            Instruction::Volume(v) => {
                for p in &v {
                    if p.trim().is_empty() {
                        return Err(EngineError::InvalidArgument(
                            "VOLUME specified can not be an empty string".into(),
                        )
                        .into());
                    }
                    st.rc.volumes.insert(p.clone());
                }
                self.commit_meta(st, &bc::volume_comment(&v)).await
            }
            Instruction::Expose(ports) => {
                let mut sorted = Vec::new();
                for p in &ports {
                    st.rc.exposed_ports.extend(expose_keys(p)?);
                    sorted.push(p.clone());
                }
                self.commit_meta(st, &bc::expose_comment(&sorted)).await
            }
            Instruction::StopSignal(s) => {
                st.rc.stop_signal = s.clone();
                self.commit_meta(st, &bc::stopsignal_comment(&s)).await
            }
            Instruction::Healthcheck(h) => {
                st.rc.healthcheck = Some(h.clone());
                self.commit_meta(st, &bc::healthcheck_comment(&h)).await
            }
            Instruction::Onbuild(t) => {
                st.rc.on_build.push(t.clone());
                self.commit_meta(st, &bc::onbuild_comment(&t)).await
            }
            Instruction::Run(r) => {
                if let Some(msg) = r.classic_refusal() {
                    return Err(EngineError::InvalidArgument(msg).into());
                }
                self.run_step(st, &r.cmd).await
            }
            Instruction::Copy(c) => self.copy_step(st, &c, "COPY", results, all, current).await,
            Instruction::Add(c) => self.copy_step(st, &c, "ADD", results, all, current).await,
        }
    }

    async fn run_step(
        &mut self,
        st: &mut StageState,
        c: &berth_build::instructions::CmdLine,
    ) -> Result<(), StepError> {
        if !c.files.is_empty() {
            return Err(
                EngineError::InvalidArgument("heredocs in RUN require BuildKit".into()).into(),
            );
        }
        let cmd = Self::cmd_line(&st.rc, c);
        let build_env = st.args.filter_allowed(&st.rc.env);
        let save_cmd = st.args.prepend_env_on_cmd(&build_env, &cmd);
        let key = st.rc.cache_key(&st.image, &save_cmd, &[]);
        if self.probe(st, &key).await? {
            return Ok(());
        }
        if st.image.is_empty() {
            return Err(EngineError::InvalidArgument(
                "RUN on scratch: the image has no files to run".into(),
            )
            .into());
        }
        let mut env = st.rc.env.clone();
        env.extend(build_env);
        let net = if self.p.opts.network_mode.is_empty() {
            "default".to_string()
        } else {
            self.p.opts.network_mode.clone()
        };
        let body = json!({
            "Image": st.image,
            "Cmd": cmd,
            "Entrypoint": [],
            "Env": env,
            "WorkingDir": st.rc.working_dir,
            "User": st.rc.user,
            "AttachStdout": true,
            "AttachStderr": true,
            "Labels": {BUILD_LABEL: "1"},
            "HostConfig": {"NetworkMode": net},
        });
        let body = body.as_object().cloned().unwrap_or_default();
        let created = self.engine.container_create(None, body).await?;
        let id = created.id;
        self.containers.push(id.clone());
        self.say(format!(" ---> Running in {}\n", short(&id)));
        let wait = self
            .engine
            .container_wait(&id, WaitCondition::NextExit)
            .await?;
        self.engine.container_start(&id).await?;
        let logs = LogsOptions {
            stdout: true,
            stderr: true,
            follow: true,
            timestamps: false,
            tail: None,
            since: None,
            until: None,
        };
        if let Ok((_, mut rx)) = self.engine.container_logs(&id, logs).await {
            let mut demux = Demux::default();
            loop {
                tokio::select! {
                    chunk = rx.recv() => {
                        let Some(chunk) = chunk else { break };
                        for text in demux.push(&chunk) {
                            self.say(text);
                        }
                    }
                    () = self.tx.closed() => {
                        // The client went away mid-step: the container is killed, and
                        // removed with the others when the build ends.
                        let _ = self.engine.container_kill(&id, "KILL").await;
                        return Err(EngineError::Conflict(
                            "build canceled: the client disconnected".into(),
                        )
                        .into());
                    }
                }
            }
        }
        let code = wait.await?;
        if code != 0 {
            if !self.p.opts.remove && !self.p.opts.force_remove {
                self.containers.retain(|c| c != &id);
            }
            return Err(StepError {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                ),
                code: Some(i64::from(code)),
            });
        }
        let layer = self.upper_layer(&id).await?;
        self.remove_container(&id).await;
        self.commit(
            st,
            bc::created_by(&save_cmd),
            &save_cmd,
            Some(layer.diff_id),
            &key,
        )
        .await
    }

    /// Build container `id`'s writable layer as a new image layer (written on a blocking
    /// thread).
    async fn upper_layer(&self, id: &str) -> Result<berth_image::store::LayerMeta, EngineError> {
        let store = self.engine.images.clone();
        let dir = self.engine.containers.data_dir(id);
        crate::blocking::spawn(move || crate::containers::fs_views::write_upper_layer(&store, &dir))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    async fn remove_container(&mut self, id: &str) {
        if self.p.opts.remove || self.p.opts.force_remove {
            if let Err(e) = self.engine.container_delete(id, true).await {
                tracing::warn!(error = %e, container = id, "cannot remove a build container");
            } else {
                self.say(format!("Removing intermediate container {}\n", short(id)));
            }
        }
        self.containers.retain(|c| c != id);
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_step(
        &mut self,
        st: &mut StageState,
        c: &berth_build::instructions::Copy,
        name: &str,
        results: &[String],
        all: &[berth_build::Stage],
        current: usize,
    ) -> Result<(), StepError> {
        if !c.contents.is_empty() || c.link || c.parents || !c.excludes.is_empty() {
            return Err(EngineError::InvalidArgument(format!(
                "this {name} form requires BuildKit"
            ))
            .into());
        }
        if name == "ADD" && c.sources.iter().any(|s| s.contains("://")) {
            return Err(EngineError::NotImplemented(
                "ADD of a URL is not supported by this builder yet; download it in a RUN step"
                    .into(),
            )
            .into());
        }
        let layers = if st.image.is_empty() || c.chown.is_empty() {
            Vec::new()
        } else {
            self.engine
                .images
                .layer_diff_dirs(&st.image)
                .map_err(EngineError::from)?
        };
        let chown_spec = c.chown.clone();
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let wd = if st.rc.working_dir.is_empty() {
                "/".to_string()
            } else {
                st.rc.working_dir.clone()
            };
            let joined = format!("{}/{}", wd.trim_end_matches('/'), c.dest);
            if c.dest.ends_with('/') || c.dest == "." {
                format!("{}/", berth_build::dockerignore::clean(&joined))
            } else {
                joined
            }
        };
        let work = self.p.work.0.clone();
        let step_dir = work.join(format!("step-{}", unique_name()));
        tokio::fs::create_dir_all(&step_dir)
            .await
            .map_err(EngineError::io("cannot create", &step_dir))?;
        // The source root: the context, or the files of a stage or image for --from.
        let (root, ignore) = if c.from.is_empty() {
            (work.join("context"), Some(()))
        } else {
            let image = match stages::resolve(all, current, &c.from)? {
                StageRef::Stage(j) => results
                    .get(j)
                    .cloned()
                    .ok_or_else(|| EngineError::Internal("stage result missing".into()))?,
                StageRef::Image(n) => self.base_image(&n).await?,
            };
            let root = step_dir.join("from");
            tokio::fs::create_dir_all(&root)
                .await
                .map_err(EngineError::io("cannot create", &root))?;
            self.export_paths(&image, &c.sources, &root).await?;
            (root, None)
        };
        let none = Matcher::new::<&str>(&[]).map_err(|e| EngineError::Internal(e.to_string()))?;
        let matcher = if ignore.is_some() {
            self.p.ignore.clone()
        } else {
            none
        };
        let sources = c.sources.clone();
        let add = name == "ADD";
        let tar = step_dir.join("copy.tar");
        let (gathered, tar) = {
            let dest = dest.clone();
            crate::blocking::spawn(move || {
                let chown = context::resolve_chown(&chown_spec, &layers)?;
                context::gather(&root, &sources, &dest, chown, &matcher, &tar, add)
                    .map(|g| (g, tar))
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??
        };
        // The history names the destination as written (`in . `), as moby's does.
        let cmd = bc::copy_cmd(&st.rc.shell(), name, &c.chown, &gathered.hash, &c.dest);
        let key = st.rc.cache_key(
            &st.image,
            &cmd,
            st.rc.entrypoint.as_deref().unwrap_or_default(),
        );
        if self.probe(st, &key).await? {
            remove_dir(step_dir).await;
            return Ok(());
        }
        let image = if st.image.is_empty() {
            self.scratch_image().await?
        } else {
            st.image.clone()
        };
        let body = json!({"Image": image, "Cmd": cmd, "Entrypoint": [],
            "Labels": {BUILD_LABEL: "1"}, "HostConfig": {"NetworkMode": "none"}});
        let body = body.as_object().cloned().unwrap_or_default();
        let created = self.engine.container_create(None, body).await?;
        let id = created.id;
        self.containers.push(id.clone());
        let f = tokio::fs::File::open(&tar)
            .await
            .map_err(EngineError::io("cannot open", &tar))?;
        self.engine
            .container_extract(&id, "/", Box::new(f), false, true)
            .await?;
        let layer = self.upper_layer(&id).await?;
        let _ = self.engine.container_delete(&id, true).await;
        self.containers.retain(|c| c != &id);
        remove_dir(step_dir).await;
        self.commit(st, bc::created_by(&cmd), &cmd, Some(layer.diff_id), &key)
            .await
    }

    /// An image with no layers, for a COPY onto `FROM scratch`.
    async fn scratch_image(&self) -> Result<String, StepError> {
        let img = json!({"architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []});
        let bytes = serde_json::to_vec(&img).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(self
            .engine
            .images
            .add_image(&bytes)
            .map_err(EngineError::from)?
            .id)
    }

    /// Copies `paths` of `image` into `dest` (each path at the same place), through a
    /// created container's archive, as `docker cp` reads it.
    async fn export_paths(
        &mut self,
        image: &str,
        paths: &[String],
        dest: &Path,
    ) -> Result<(), StepError> {
        let body = json!({"Image": image, "Cmd": ["true"], "Entrypoint": [],
            "Labels": {BUILD_LABEL: "1"}, "HostConfig": {"NetworkMode": "none"}});
        let body = body.as_object().cloned().unwrap_or_default();
        let id = self.engine.container_create(None, body).await?.id;
        self.containers.push(id.clone());
        for p in paths {
            let clean = berth_build::dockerignore::clean(&format!("/{p}"));
            let parent = Path::new(&clean)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = dest.join(parent.trim_start_matches('/'));
            tokio::fs::create_dir_all(&target)
                .await
                .map_err(EngineError::io("cannot create", &target))?;
            let (_, mut rx) = self
                .engine
                .container_archive(&id, &clean)
                .await
                .map_err(|_| {
                    EngineError::InvalidArgument(format!(
                        "COPY failed: stat {clean}: file does not exist"
                    ))
                })?;
            let tmp = dest.with_extension(format!("{}.tar", unique_name()));
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(EngineError::io("cannot create", &tmp))?;
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk.map_err(EngineError::io("cannot read", Path::new(&clean)))?;
                tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
                    .await
                    .map_err(EngineError::io("cannot write", &tmp))?;
            }
            drop(f);
            let t2 = tmp.clone();
            crate::blocking::spawn(move || {
                let r = std::fs::File::open(&t2)
                    .map_err(EngineError::io("cannot open", &t2))
                    .and_then(|f| context::unpack(f, &target));
                let _ = std::fs::remove_file(&t2);
                r
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        }
        let _ = self.engine.container_delete(&id, true).await;
        self.containers.retain(|c| c != &id);
        Ok(())
    }
}

/// Splits the log stream's 8-byte-header frames back into text (bounded by the frame
/// sizes the log reader makes).
#[derive(Default)]
struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(h) = self.buf.get(..8) {
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            let Some(payload) = self.buf.get(8..8 + len) else {
                break;
            };
            out.push(String::from_utf8_lossy(payload).into_owned());
            self.buf.drain(..8 + len);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_joins_split_frames() {
        let mut d = Demux::default();
        let mut f = vec![1, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(b"hi\n");
        assert!(d.push(&f[..5]).is_empty());
        assert_eq!(d.push(&f[5..]), ["hi\n"]);
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("x"), "x");
    }

    #[test]
    fn expose_words_as_dockerd_keys() {
        assert_eq!(expose_keys("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_keys("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expose_keys("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(expose_keys("x").is_err());
        assert!(expose_keys("9-8").is_err());
        assert!(expose_keys("70000").is_err());
    }
}
