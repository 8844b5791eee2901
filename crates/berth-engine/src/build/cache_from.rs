//! `cachefrom`: images named by the client count as cache even though no local build
//! made them (an image pulled or loaded from a CI run), as moby's classic `ImageCache`
//! reads them: an image whose history starts with the parent's history (same
//! `created_by` texts) and whose layers start with the parent's layers, followed by an
//! entry for the step's command, gives that entry's layer (or empty layer) to the step.

use super::*;

/// The `created_by` texts of a history array.
fn created_by_list(h: &[Value]) -> Vec<&str> {
    h.iter()
        .map(|e| e["created_by"].as_str().unwrap_or_default())
        .collect()
}

/// What a cache-from image `source` (its config JSON) offers a step on `parent`: the
/// step's layer (`Some(None)` for an empty layer) when its history continues the
/// parent's with `created_by`.
pub(super) fn match_source(
    parent: &Value,
    source: &Value,
    created_by: &str,
) -> Option<Option<String>> {
    let empty = Vec::new();
    let ph = parent["history"].as_array().unwrap_or(&empty);
    let sh = source["history"].as_array()?;
    let n = ph.len();
    let next = sh.get(n)?;
    if created_by_list(sh.get(..n)?) != created_by_list(ph)
        || next["created_by"].as_str() != Some(created_by)
    {
        return None;
    }
    let pd = parent["rootfs"]["diff_ids"].as_array().unwrap_or(&empty);
    let sd = source["rootfs"]["diff_ids"].as_array()?;
    if sd.get(..pd.len())? != pd.as_slice() {
        return None;
    }
    if next["empty_layer"].as_bool() == Some(true) {
        return Some(None);
    }
    Some(Some(sd.get(pd.len())?.as_str()?.to_string()))
}

impl Builder<'_> {
    /// Looks for the step in the `cachefrom` images; on a hit commits the step's image
    /// with the source's layer, as moby restores a cached image.
    pub(super) async fn probe_cache_from(
        &self,
        st: &mut StageState,
        cmd: &[String],
        key: &str,
    ) -> Result<bool, StepError> {
        if self.p.opts.cache_from.is_empty() || self.p.opts.no_cache {
            return Ok(false);
        }
        let created_by = bc::created_by(cmd);
        let store = self.engine.images.clone();
        let names = self.p.opts.cache_from.clone();
        let parent = st.image_json.clone();
        let cb = created_by.clone();
        let found = crate::blocking::spawn(move || {
            names.iter().find_map(|n| {
                let id = store.resolve(n).ok()?.id;
                let cfg: Value = serde_json::from_slice(&store.config_bytes(&id).ok()?).ok()?;
                let layer = match_source(&parent, &cfg, &cb)?;
                // The layer must be here (an image's layers always are).
                if let Some(d) = &layer {
                    store.layer(d)?;
                }
                Some(layer)
            })
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let Some(layer) = found else {
            return Ok(false);
        };
        self.say(" ---> Using cache\n");
        self.commit(st, created_by, cmd, layer, key).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_history_must_continue_the_parent() {
        let parent = json!({"history": [{"created_by": "base"}],
                            "rootfs": {"diff_ids": ["sha256:a"]}});
        let source = json!({"history": [{"created_by": "base"}, {"created_by": "run x"},
                                        {"created_by": "env", "empty_layer": true}],
                            "rootfs": {"diff_ids": ["sha256:a", "sha256:b"]}});
        assert_eq!(
            match_source(&parent, &source, "run x"),
            Some(Some("sha256:b".into()))
        );
        assert_eq!(match_source(&parent, &source, "run y"), None);
        let after = json!({"history": [{"created_by": "base"}, {"created_by": "run x"}],
                           "rootfs": {"diff_ids": ["sha256:a", "sha256:b"]}});
        assert_eq!(match_source(&after, &source, "env"), Some(None));
        let other = json!({"history": [{"created_by": "other"}],
                           "rootfs": {"diff_ids": ["sha256:a"]}});
        assert_eq!(match_source(&other, &source, "run x"), None);
        let scratch = json!({"history": [], "rootfs": {"diff_ids": []}});
        assert_eq!(
            match_source(&scratch, &source, "base"),
            Some(Some("sha256:a".into()))
        );
        assert_eq!(match_source(&parent, &json!({}), "run x"), None);
    }
}
