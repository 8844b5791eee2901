//! Step images: a step's config, history entry and layer written as an image (moby
//! `commit`), recorded in the cache.

use super::*;

impl Builder<'_> {
    /// Build container `id`'s writable layer as a new image layer (written on a blocking
    /// thread).
    pub(super) async fn upper_layer(
        &self,
        id: &str,
    ) -> Result<berth_image::store::LayerMeta, EngineError> {
        let store = self.engine.images.clone();
        let dir = self.engine.containers.data_dir(id);
        crate::blocking::spawn(move || crate::containers::fs_views::write_upper_layer(&store, &dir))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// Writes the image of a step: the state's config, one history entry, and the layer
    /// `diff_id` when the step made one.
    pub(super) async fn commit(
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
    pub(super) async fn commit_meta(
        &self,
        st: &mut StageState,
        comment: &str,
    ) -> Result<(), StepError> {
        self.commit_nop(st, bc::nop_cmd(&st.rc.shell(), comment))
            .await
    }

    pub(super) async fn commit_nop(
        &self,
        st: &mut StageState,
        cmd: Vec<String>,
    ) -> Result<(), StepError> {
        let Some(key) = self.missed(st, &cmd).await? else {
            return Ok(());
        };
        self.commit(st, bc::created_by(&cmd), &cmd, None, &key)
            .await
    }

    /// The step's cache key when the cache has no image for it; `None` when it had one
    /// (the state then moved to that image, as [`Self::probe`] does).
    pub(super) async fn missed(
        &self,
        st: &mut StageState,
        cmd: &[String],
    ) -> Result<Option<String>, StepError> {
        let key = st.rc.cache_key(
            &st.image,
            cmd,
            st.rc.entrypoint.as_deref().unwrap_or_default(),
        );
        Ok((!self.probe(st, &key, cmd).await?).then_some(key))
    }

    /// WORKDIR's commit: a created container of the step's image gets the directory in
    /// its own layer, which becomes the step's layer unless it stayed empty.
    pub(super) async fn workdir_step(
        &mut self,
        st: &mut StageState,
        cmd: Vec<String>,
        dir: &str,
    ) -> Result<(), StepError> {
        let Some(key) = self.missed(st, &cmd).await? else {
            return Ok(());
        };
        let image = if st.image.is_empty() {
            self.scratch_image().await?
        } else {
            st.image.clone()
        };
        let id = self.step_container(&image, &cmd).await?;
        let made = self.engine.container_make_workdir(&id, dir).await;
        let layer = match made {
            Ok(true) => self.upper_layer(&id).await.map(|l| Some(l.diff_id)),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        let _ = self.engine.container_delete(&id, true).await;
        self.containers.retain(|c| c != &id);
        self.commit(st, bc::created_by(&cmd), &cmd, layer?, &key)
            .await
    }

    /// A created, never started container of `image` for a step that writes its layer
    /// without running a process (COPY, ADD, WORKDIR, `COPY --from` reads); the build
    /// removes it if the step does not.
    pub(super) async fn step_container(
        &mut self,
        image: &str,
        cmd: &[String],
    ) -> Result<String, StepError> {
        let body = json!({"Image": image, "Cmd": cmd, "Entrypoint": [],
            "Labels": {BUILD_LABEL: "1"}, "HostConfig": {"NetworkMode": "none"}});
        let body = body.as_object().cloned().unwrap_or_default();
        let id = self.engine.container_create(None, body).await?.id;
        self.containers.push(id.clone());
        Ok(id)
    }

    /// An image with no layers, for a COPY onto `FROM scratch`.
    pub(super) async fn scratch_image(&self) -> Result<String, StepError> {
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
}
