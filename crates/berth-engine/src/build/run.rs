//! RUN: a real container on the same create/start/wait paths as the API, its output
//! streamed, its upper layer committed. A lone heredoc starting with `#!` runs as a
//! script file mounted at `/dev/pipes/NAME`, as BuildKit runs it.

use super::*;

impl Builder<'_> {
    pub(super) async fn run_step(
        &mut self,
        st: &mut StageState,
        c: &berth_build::instructions::CmdLine,
    ) -> Result<(), StepError> {
        let script = c.shebang_script();
        let c = &c.with_heredocs().map_err(EngineError::InvalidArgument)?;
        // History and cache key: the heredoc's text as a shell command, a shebang script
        // included (its text decides the cache as a RUN line's does).
        let cmd = Self::cmd_line(&st.rc, c);
        let build_env = st.args.filter_allowed(&st.rc.env);
        let save_cmd = st.args.prepend_env_on_cmd(&build_env, &cmd);
        let key = st.rc.cache_key(&st.image, &save_cmd, &[]);
        if self.probe(st, &key, &save_cmd).await? {
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
        // A shebang script runs as a file of its own (BuildKit's `/dev/pipes/NAME`, a
        // read-only bind of this step's directory), not through the shell.
        let (cmd, pipes) = match &script {
            Some((name, data)) => {
                let dir = self.write_script(name, data).await?;
                (vec![format!("/dev/pipes/{name}")], Some(dir))
            }
            None => (cmd, None),
        };
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
        let mut body = body.as_object().cloned().unwrap_or_default();
        if let Some(Value::Object(hc)) = body.get_mut("HostConfig") {
            for (k, v) in &self.p.opts.host_config {
                hc.insert(k.clone(), v.clone());
            }
            if let Some(dir) = &pipes {
                hc.insert(
                    "Binds".into(),
                    json!([format!("{}:/dev/pipes:ro", dir.display())]),
                );
            }
        }
        let created = self.engine.container_create(None, body).await;
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                if let Some(dir) = pipes {
                    copy::remove_dir(dir).await;
                }
                return Err(e.into());
            }
        };
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
            details: false,
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
                    () = self.cancel.cancelled() => {
                        let _ = self.engine.container_kill(&id, "KILL").await;
                        return Err(EngineError::Conflict("context canceled".into()).into());
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
        let code = wait.await;
        if let Some(dir) = pipes {
            copy::remove_dir(dir).await;
        }
        let code = code?;
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

    /// Writes a shebang heredoc into a new directory of the build's work dir as file
    /// `name`, mode 0755; returns the directory.
    async fn write_script(&self, name: &str, data: &str) -> Result<PathBuf, StepError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(EngineError::InvalidArgument(format!(
                "invalid heredoc name {name:?} for a script"
            ))
            .into());
        }
        let dir = self.p.work.0.join(format!("pipes-{}", unique_name()));
        let (d, name, data) = (dir.clone(), name.to_string(), data.to_string());
        crate::blocking::spawn(move || {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir(&d).map_err(EngineError::io("cannot create", &d))?;
            let p = d.join(&name);
            std::fs::write(&p, data.as_bytes()).map_err(EngineError::io("cannot write", &p))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(EngineError::io("cannot chmod", &p))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        Ok(dir)
    }

    pub(super) async fn remove_container(&mut self, id: &str) {
        if self.p.opts.remove || self.p.opts.force_remove {
            if let Err(e) = self.engine.container_delete(id, true).await {
                tracing::warn!(error = %e, container = id, "cannot remove a build container");
            } else {
                self.say(format!("Removing intermediate container {}\n", short(id)));
            }
        }
        self.containers.retain(|c| c != id);
    }
}
