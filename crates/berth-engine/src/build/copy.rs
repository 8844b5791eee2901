//! COPY and ADD: sources gathered from the context, a stage or an image into a tar,
//! extracted into a created container whose upper layer becomes the step's layer.

use super::*;

/// Removes a step's scratch directory on a blocking thread.
pub(super) async fn remove_dir(dir: PathBuf) {
    let _ = crate::blocking::spawn(move || std::fs::remove_dir_all(dir)).await;
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_step(
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
        if self.probe(st, &key, &cmd).await? {
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
        let store = self.engine.images.clone();
        let dir = self.engine.containers.data_dir(&id);
        let layer = crate::blocking::spawn(move || {
            crate::containers::fs_views::write_upper_layer(&store, &dir)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        let _ = self.engine.container_delete(&id, true).await;
        self.containers.retain(|c| c != &id);
        remove_dir(step_dir).await;
        self.commit(st, bc::created_by(&cmd), &cmd, Some(layer.diff_id), &key)
            .await
    }

    /// Copies `paths` of `image` into `dest` (each path at the same place), through a
    /// created container's archive, as `docker cp` reads it.
    pub(super) async fn export_paths(
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
