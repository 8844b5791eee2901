//! The dispatch of a Dockerfile's stages and instructions (moby `dispatchers.go`):
//! meta ARGs, FROM with its base image (local or pulled), ONBUILD triggers, and each
//! metadata instruction's change to the run config.

use super::*;

/// The `ExposedPorts` keys of one EXPOSE word (moby `nat.ParsePortSpecs`): `80`,
/// `53/udp`, a range `8000-8002/tcp` as each of its ports.
pub(super) fn expose_keys(word: &str) -> Result<Vec<String>, EngineError> {
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

impl Builder<'_> {
    pub(super) async fn run(&mut self) -> Result<(), StepError> {
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
                if self.cancel.is_cancelled() {
                    return Err(EngineError::Conflict("context canceled".into()).into());
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
    pub(super) async fn run_triggers(
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
    pub(super) async fn base_image(&self, name: &str) -> Result<String, StepError> {
        let local = self.engine.images.resolve(name).ok();
        // `pull`: a named image is pulled again, refreshing it (an image ID is not).
        let by_id = local.as_ref().is_some_and(|r| {
            let hex = r.hex();
            let n = name.strip_prefix("sha256:").unwrap_or(name);
            n.len() >= 12 && hex.starts_with(n)
        });
        match local {
            Some(r) if !self.p.opts.pull || by_id => return Ok(r.id),
            _ => {}
        }
        let auth = registry_auth_for(&self.p.opts.auths, name);
        let mut rx = self
            .engine
            .image_pull(name.to_string(), None, None, auth)
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

    pub(super) fn cmd_line(rc: &RunConfig, c: &berth_build::instructions::CmdLine) -> Vec<String> {
        if c.prepend_shell {
            let mut v = rc.shell();
            v.push(c.args.join(" "));
            v
        } else {
            c.args.clone()
        }
    }

    pub(super) async fn step(
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
                // `withCmdCommentString`), and a layer with the directory where the image
                // lacks it (moby `dispatchWorkdir`).
                let cmd = bc::nop_cmd_string(&st.rc.shell(), &bc::workdir_comment(&dir));
                self.workdir_step(st, cmd, &dir).await
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
}

/// The `X-Registry-Config` entry for the registry of image `name` (keys are what
/// `config.json` holds: `https://index.docker.io/v1/`, `host:port`, `http://host/`).
pub(super) fn registry_auth_for(
    auths: &BTreeMap<String, berth_image::registry::RegistryAuth>,
    name: &str,
) -> berth_image::registry::RegistryAuth {
    let Ok(r) = name.parse::<berth_image::reference::Reference>() else {
        return Default::default();
    };
    let domain = r.domain().to_string();
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    auths
        .iter()
        .find(|(k, _)| {
            let host = k
                .strip_prefix("https://")
                .or_else(|| k.strip_prefix("http://"))
                .unwrap_or(k);
            let host = host.split('/').next().unwrap_or(host);
            host == domain || (hub(host) && hub(&domain))
        })
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_config_entry_by_domain() {
        let mut auths = BTreeMap::new();
        let a = |u: &str| berth_image::registry::RegistryAuth {
            username: u.into(),
            ..Default::default()
        };
        auths.insert("https://index.docker.io/v1/".to_string(), a("hub"));
        auths.insert("localhost:5000".to_string(), a("local"));
        assert_eq!(registry_auth_for(&auths, "busybox").username, "hub");
        assert_eq!(
            registry_auth_for(&auths, "localhost:5000/x:1").username,
            "local"
        );
        assert_eq!(registry_auth_for(&auths, "quay.io/x").username, "");
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
