//! The build cache index: `<data-root>/build/cache/<key>` names the image an earlier
//! step made for that cache key; a probe moves the stage onto it.

use super::*;

impl Builder<'_> {
    pub(super) fn cache_path(&self, key: &str) -> PathBuf {
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        self.engine.config.data_root.join("build/cache").join(hex)
    }

    /// The image an earlier build made for this key and its config, if it is still
    /// there (read on a blocking thread).
    pub(super) async fn cache_get(&self, key: &str) -> Option<(String, Vec<u8>)> {
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

    pub(super) async fn cache_put(&self, key: &str, image: &str) {
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

    /// Probes the cache for the step whose command (as the image's history records it)
    /// is `cmd`: the local index, then the `cachefrom` images; on a hit moves the stage
    /// onto the cached image.
    pub(super) async fn probe(
        &self,
        st: &mut StageState,
        key: &str,
        cmd: &[String],
    ) -> Result<bool, StepError> {
        let Some((id, config)) = self.cache_get(key).await else {
            return self.probe_cache_from(st, cmd, key).await;
        };
        st.image_json = serde_json::from_slice(&config)
            .map_err(|e| EngineError::Internal(format!("image config: {e}")))?;
        st.rc = RunConfig::from_json(&st.image_json["config"]);
        st.image = id;
        self.say(" ---> Using cache\n");
        self.say(format!(" ---> {}\n", short(&st.image)));
        Ok(true)
    }
}
