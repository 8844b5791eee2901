//! The build cache as `POST /build/prune` and `GET /system/df` report it. The classic
//! builder's cache is its index (`<data-root>/build/cache/<key>` → image) and the step
//! images it names: a record is in use while its image is a tagged image or an ancestor
//! of one, or a container's image; the others (what a failed or untagged build left) are
//! the dangling cache. Pruning drops dangling records and their images; `all` drops
//! every record (images in use stay: they belong to tagged images). Records written since
//! the oldest running build started are left to it.

use std::collections::{HashMap, HashSet};

use berth_api_types::filters::Filters;

use super::*;

/// One cache record.
#[derive(Debug, Clone)]
pub(super) struct Record {
    /// The cache key (hex).
    key: String,
    /// The step image, when it still exists.
    image: Option<String>,
    /// The step's own layer size (0 for metadata steps).
    size: u64,
    /// `created_by` of the step.
    description: String,
    in_use: bool,
    /// Unix seconds the record was written.
    created: i64,
}

/// Reads every record (blocking).
fn read_records(
    data_root: &Path,
    store: &berth_image::store::ImageStore,
    container_images: &HashSet<String>,
) -> Vec<Record> {
    let dir = data_root.join("build/cache");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    // Images in use: tagged ones, containers' ones, and all their ancestors.
    let configs: HashMap<String, Value> = store
        .list()
        .into_iter()
        .filter_map(|r| {
            let v: Value = serde_json::from_slice(&store.config_bytes(&r.id).ok()?).ok()?;
            Some((r.id, v))
        })
        .collect();
    let mut in_use: HashSet<String> = HashSet::new();
    for id in configs.keys() {
        let tagged = {
            let (tags, digests) = store.references_of(id);
            !tags.is_empty() || !digests.is_empty()
        };
        if !(tagged || container_images.contains(id)) {
            continue;
        }
        let mut cur = Some(id.clone());
        // Bounded by the number of images (a parent loop cannot spin).
        for _ in 0..=configs.len() {
            let Some(c) = cur.take() else { break };
            if !in_use.insert(c.clone()) {
                break;
            }
            cur = configs
                .get(&c)
                .and_then(|v| v["parent"].as_str())
                .map(String::from);
        }
    }
    let mut out = Vec::new();
    for e in rd.flatten() {
        let key = e.file_name().to_string_lossy().into_owned();
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let created = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let id = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|s| store.resolve(s.trim()).ok())
            .map(|r| r.id);
        let (size, description) = id
            .as_ref()
            .and_then(|id| configs.get(id))
            .map(|v| {
                let last = v["history"]
                    .as_array()
                    .and_then(|h| h.last())
                    .cloned()
                    .unwrap_or_default();
                let desc = last["created_by"].as_str().unwrap_or_default().to_string();
                let size = if last["empty_layer"].as_bool() == Some(true) {
                    0
                } else {
                    v["rootfs"]["diff_ids"]
                        .as_array()
                        .and_then(|d| d.last())
                        .and_then(Value::as_str)
                        .and_then(|d| store.layer(d))
                        .map_or(0, |l| l.size)
                };
                (size, desc)
            })
            .unwrap_or_default();
        out.push(Record {
            key,
            in_use: id.as_ref().is_some_and(|i| in_use.contains(i)),
            image: id,
            size,
            description,
            created,
        });
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.key.cmp(&b.key)));
    out
}

fn rfc3339(secs: i64) -> String {
    berth_api_types::timestamp::format_rfc3339_secs(secs)
}

impl Engine {
    async fn build_records(&self) -> Result<Vec<Record>, EngineError> {
        let store = self.images.clone();
        let root = self.config.data_root.clone();
        let users: HashSet<String> = self.containers.image_users().into_keys().collect();
        crate::blocking::spawn(move || read_records(&root, &store, &users))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// `BuildCache` and `BuilderSize` of `GET /system/df`, in dockerd's shape
    /// (`types.BuildCache`): a record shared with an image counts as `Shared`.
    pub async fn build_cache_usage(&self) -> Result<(Vec<Value>, u64), EngineError> {
        let records = self.build_records().await?;
        let mut size = 0u64;
        let list = records
            .iter()
            .map(|r| {
                if !r.in_use {
                    size += r.size;
                }
                json!({
                    "ID": r.key.get(..25).unwrap_or(&r.key),
                    "Parent": "",
                    "Parents": null,
                    "Type": "regular",
                    "Description": r.description,
                    "InUse": r.in_use,
                    "Shared": r.in_use,
                    "Size": r.size,
                    "CreatedAt": rfc3339(r.created),
                    "LastUsedAt": rfc3339(r.created),
                    "UsageCount": 1,
                })
            })
            .collect();
        Ok((list, size))
    }

    /// `POST /build/prune` (`all`, `keep-storage`, filter `until`): answers
    /// `{"CachesDeleted": [...], "SpaceReclaimed": N}`.
    pub async fn build_prune(
        &self,
        all: bool,
        keep_storage: u64,
        filters: &Filters,
    ) -> Result<Value, EngineError> {
        filters
            .allow_only(&[
                "until",
                "unused-for",
                "type",
                "id",
                "parent",
                "description",
                "inuse",
                "private",
                "shared",
            ])
            .map_err(EngineError::from)?;
        let now_nanos = crate::events::now_nanos();
        let until = filters.until(now_nanos).map_err(EngineError::from)?;
        let records = self.build_records().await?;
        // What a running build wrote (its file times are at or after its start, a second
        // of slack for the clock's granularity) stays: it may use it next.
        let busy_since = super::oldest_active_build().map(|s| s - 1);
        let mut remaining: u64 = records.iter().map(|r| r.size).sum();
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for r in records {
            if keep_storage > 0 && remaining <= keep_storage {
                break;
            }
            if (r.in_use && !all) || busy_since.is_some_and(|s| r.created >= s) {
                continue;
            }
            if until.is_some_and(|u| r.created.saturating_mul(1_000_000_000) > u) {
                continue;
            }
            let path = self.config.data_root.join("build/cache").join(&r.key);
            let removed = crate::blocking::spawn(move || std::fs::remove_file(path))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            if removed.is_err() {
                continue;
            }
            remaining = remaining.saturating_sub(r.size);
            if let (Some(id), false) = (&r.image, r.in_use) {
                match self.image_delete(id.clone(), false, false).await {
                    Ok(_) => reclaimed += r.size,
                    Err(e) => {
                        tracing::debug!(image = %id, error = %e, "build prune keeps an image")
                    }
                }
            }
            deleted.push(r.key);
        }
        tracing::info!(records = deleted.len(), reclaimed, "build cache pruned");
        // Nothing deleted reads as dockerd 20.10 answered: `null`.
        let deleted = if deleted.is_empty() {
            Value::Null
        } else {
            json!(deleted)
        };
        Ok(json!({"CachesDeleted": deleted, "SpaceReclaimed": reclaimed}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_877_950), "2026-11-28T14:59:10Z");
    }
}
