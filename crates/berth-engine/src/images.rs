//! Image operations: list, inspect, history, tag, remove, prune, import, load and save.
//! Store work is blocking file I/O, so each call runs on the blocking pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api_types::distribution::normalize_arch;
use berth_api_types::filters::{check_pattern, glob_match, Filters};
use berth_api_types::image::{
    DeleteItem, GraphDriver, HistoryItem, ImageInspect, ImageMetadata, ImageSummary, RootFs,
};
use berth_api_types::timestamp::parse_nanos;
use berth_image::archive::{self, ImportOptions, SaveItem};
use berth_image::store::{Deleted, ImageRecord, ImageStore, StoreError};
use berth_image::Reference;
use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use crate::system::now_rfc3339;
use crate::{Engine, EngineError};

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchImage(_) => EngineError::NotFound(e.to_string()),
            StoreError::InvalidReference(_) | StoreError::Invalid(_) | StoreError::Unpack(_) => {
                EngineError::InvalidArgument(e.to_string())
            }
            StoreError::Blob(berth_image::BlobError::Mismatch { .. }) => {
                EngineError::InvalidArgument(e.to_string())
            }
            StoreError::Conflict(_) => EngineError::Conflict(e.to_string()),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

/// A request body the engine reads on the blocking pool.
pub type BodyReader = Box<dyn AsyncRead + Send + Unpin + 'static>;

/// Query of `GET /images/json`.
#[derive(Debug, Default)]
pub struct ImageListOptions {
    pub all: bool,
    pub filters: Filters,
}

/// Query of `POST /images/create?fromSrc=-`.
#[derive(Debug, Default)]
pub struct ImportRequest {
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub changes: Vec<String>,
    pub message: String,
    pub platform: Option<String>,
}

/// `POST /images/prune`'s answer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImagePruneReport {
    pub images_deleted: Option<Vec<DeleteItem>>,
    pub space_reclaimed: u64,
}

impl Engine {
    async fn blocking<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<ImageStore>) -> Result<T, EngineError> + Send + 'static,
    {
        let store = self.images.clone();
        crate::blocking::spawn(move || f(store))
            .await
            .map_err(|e| EngineError::Internal(format!("image task failed: {e}")))?
    }

    /// `GET /images/json`.
    pub async fn image_list(
        &self,
        opts: ImageListOptions,
    ) -> Result<Vec<ImageSummary>, EngineError> {
        opts.filters
            .allow_only(&["dangling", "label", "before", "since", "reference", "until"])
            .map_err(EngineError::from)?;
        let dangling = opts
            .filters
            .bool_value("dangling")
            .map_err(EngineError::from)?;
        // A malformed or over-long pattern is the client's error, found before any image
        // is read (dockerd answers 500 with the same message, and only once an image has
        // a tag to match it against).
        for p in opts.filters.get("reference") {
            check_pattern(p).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        }
        // Only images created before the earliest `until` (moby); once accepted and ignored.
        let now = crate::events::now_nanos();
        let mut until: Option<i64> = None;
        for u in opts.filters.get("until") {
            let t = parse_nanos(u, now).map_err(EngineError::from)?;
            until = Some(until.map_or(t, |x| x.min(t)));
        }
        self.blocking(move |store| {
            let created_of = |r: &ImageRecord| {
                store
                    .config(&r.id)
                    .ok()
                    .and_then(|c| c.created)
                    .map(|c| parse_time(&c))
                    .unwrap_or(0)
            };
            let bound =
                |name: &str| -> Result<i64, EngineError> { Ok(created_of(&store.resolve(name)?)) };
            let before = opts
                .filters
                .get("before")
                .first()
                .map(|n| bound(n))
                .transpose()?;
            let since = opts
                .filters
                .get("since")
                .first()
                .map(|n| bound(n))
                .transpose()?;
            // Images a build made for its steps are parents of the next step's; without
            // `all`, an untagged one with children is hidden (moby `Images`).
            let records = store.list();
            let parents: std::collections::HashSet<String> = records
                .iter()
                .filter_map(|r| store.config(&r.id).ok()?.parent)
                .collect();
            let mut out = Vec::new();
            let refs = opts.filters.get("reference");
            for rec in records {
                let config = store.config(&rec.id)?;
                let (mut tags, mut digests) = store.references_of(&rec.id);
                // moby `Images`: with a `reference` filter, an entry lists only the
                // references that match (so `docker images -q name:tag` prints one ID).
                if !refs.is_empty() {
                    let keep = |r: &String| refs.iter().any(|p| reference_matches(p, r));
                    tags.retain(keep);
                    digests.retain(keep);
                    if tags.is_empty() && digests.is_empty() {
                        continue;
                    }
                }
                if !opts.all && tags.is_empty() && digests.is_empty() && parents.contains(&rec.id) {
                    continue;
                }
                let created = config.created.as_deref().map(parse_time).unwrap_or(0);
                if let Some(d) = dangling {
                    if d != tags.is_empty() {
                        continue;
                    }
                }
                if before.is_some_and(|b| created >= b) || since.is_some_and(|s| created <= s) {
                    continue;
                }
                if until.is_some_and(|u| created.saturating_mul(1_000_000_000) >= u) {
                    continue;
                }
                let labels = config.labels();
                if !opts
                    .filters
                    .get("label")
                    .iter()
                    .all(|l| label_matches(&labels, l))
                {
                    continue;
                }
                out.push(ImageSummary {
                    id: rec.id.clone(),
                    parent_id: config.parent.clone().unwrap_or_default(),
                    repo_tags: tags,
                    repo_digests: digests,
                    created,
                    size: rec.size as i64,
                    shared_size: -1,
                    labels,
                    containers: -1,
                });
            }
            out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
            Ok(out)
        })
        .await
    }

    /// `GET /images/{name}/json`.
    pub async fn image_inspect(&self, name: String) -> Result<ImageInspect, EngineError> {
        self.blocking(move |store| {
            let rec = store.resolve(&name)?;
            let config = store.config(&rec.id)?;
            let (tags, digests) = store.references_of(&rec.id);
            let dirs = store.layer_diff_dirs(&rec.id)?;
            let mut data = BTreeMap::new();
            if let Some((upper, lower)) = dirs.split_last() {
                data.insert("UpperDir".to_string(), upper.display().to_string());
                if !lower.is_empty() {
                    let lowers: Vec<String> = lower
                        .iter()
                        .rev()
                        .map(|p| p.display().to_string())
                        .collect();
                    data.insert("LowerDir".to_string(), lowers.join(":"));
                }
            }
            Ok(ImageInspect {
                id: rec.id.clone(),
                repo_tags: tags,
                repo_digests: digests,
                parent: config.parent.clone().unwrap_or_default(),
                comment: config.comment.clone().unwrap_or_default(),
                created: config.created.clone(),
                docker_version: config.docker_version.clone().unwrap_or_default(),
                author: config.author.clone().unwrap_or_default(),
                config: config
                    .config
                    .clone()
                    .map(serde_json::Value::Object)
                    .unwrap_or(serde_json::Value::Null),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
                os: config.os.clone(),
                os_version: config.os_version.clone(),
                size: rec.size as i64,
                graph_driver: GraphDriver {
                    data,
                    name: "overlay2".into(),
                },
                root_fs: RootFs {
                    kind: "layers".into(),
                    layers: rec.diff_ids.clone(),
                },
                metadata: ImageMetadata {
                    last_tag_time: rec.last_tag_time.clone(),
                },
            })
        })
        .await
    }

    /// `GET /images/{name}/history`, newest first as dockerd.
    pub async fn image_history(&self, name: String) -> Result<Vec<HistoryItem>, EngineError> {
        self.blocking(move |store| {
            let rec = store.resolve(&name)?;
            let config = store.config(&rec.id)?;
            let (tags, _) = store.references_of(&rec.id);
            let mut layers = rec.diff_ids.iter();
            let mut items: Vec<HistoryItem> = config
                .history
                .iter()
                .map(|h| {
                    let size = if h.empty_layer {
                        0
                    } else {
                        layers
                            .next()
                            .and_then(|d| store.layer(d))
                            .map(|l| l.size as i64)
                            .unwrap_or(0)
                    };
                    HistoryItem {
                        id: "<missing>".into(),
                        created: h.created.as_deref().map(parse_time).unwrap_or(0),
                        created_by: h.created_by.clone().unwrap_or_default(),
                        tags: vec![],
                        size,
                        comment: h.comment.clone().unwrap_or_default(),
                    }
                })
                .collect();
            items.reverse();
            if let Some(top) = items.first_mut() {
                top.id = rec.id.clone();
                top.tags = tags;
            }
            Ok(items)
        })
        .await
    }

    /// `POST /images/{name}/tag`.
    pub async fn image_tag(
        &self,
        name: String,
        repo: String,
        tag: Option<String>,
    ) -> Result<(), EngineError> {
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo,
        };
        let reference: Reference = target.parse().map_err(|e: berth_image::ReferenceError| {
            EngineError::InvalidArgument(e.to_string())
        })?;
        if reference.digest().is_some() {
            return Err(EngineError::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let events = self.events.clone();
        self.blocking(move |store| {
            let rec = store.resolve(&name)?;
            store.tag(&rec.id, &reference, &now_rfc3339())?;
            events.image(
                "tag",
                &rec.id,
                &reference.clone().with_default_tag().familiar_string(),
            );
            Ok(())
        })
        .await
    }

    /// `DELETE /images/{name}`.
    pub async fn image_delete(
        &self,
        name: String,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<DeleteItem>, EngineError> {
        let users = self.containers.image_users();
        self.blocking(move |store| {
            let items = store.delete(&name, force, noprune, &|id| users.get(id).cloned())?;
            Ok(items.into_iter().map(to_delete_item).collect())
        })
        .await
        .inspect(|items| self.image_delete_events(items))
    }

    /// `POST /images/prune`: dangling images, or every unused one with `dangling=false`.
    pub async fn image_prune(&self, filters: Filters) -> Result<ImagePruneReport, EngineError> {
        filters
            .allow_only(&["dangling", "label", "until"])
            .map_err(EngineError::from)?;
        let dangling_only = filters
            .bool_value("dangling")
            .map_err(EngineError::from)?
            .unwrap_or(true);
        // Images created after `until` stay (moby); once accepted and ignored.
        let until = filters
            .until(crate::events::now_nanos())
            .map_err(EngineError::from)?;
        let users = self.containers.image_users();
        self.blocking(move |store| {
            let mut deleted = Vec::new();
            let mut reclaimed = 0;
            for rec in store.list() {
                let (tags, _) = store.references_of(&rec.id);
                if (dangling_only && !tags.is_empty()) || users.contains_key(&rec.id) {
                    continue;
                }
                let config = store.config(&rec.id)?;
                let created = config.created.as_deref().map(parse_time).unwrap_or(0);
                if until.is_some_and(|u| created.saturating_mul(1_000_000_000) > u) {
                    continue;
                }
                let labels = config.labels();
                if !filters
                    .get("label")
                    .iter()
                    .all(|l| label_matches(&labels, l))
                {
                    continue;
                }
                match store.delete(&rec.id, true, false, &|_| None) {
                    Ok(items) => {
                        reclaimed += rec.size;
                        deleted.extend(items.into_iter().map(to_delete_item));
                    }
                    Err(e) => {
                        tracing::warn!(image = %rec.id, error = %e, "prune: cannot remove image")
                    }
                }
            }
            Ok(ImagePruneReport {
                images_deleted: (!deleted.is_empty()).then_some(deleted),
                space_reclaimed: reclaimed,
            })
        })
        .await
    }

    /// `POST /images/create?fromSrc=-`: a one-layer image from a rootfs tar. Returns the ID.
    pub async fn image_import(
        &self,
        body: BodyReader,
        req: ImportRequest,
    ) -> Result<String, EngineError> {
        let target = match (&req.repo, &req.tag) {
            (Some(r), Some(t)) if !r.is_empty() && !t.is_empty() => Some(format!("{r}:{t}")),
            (Some(r), _) if !r.is_empty() => Some(r.clone()),
            _ => None,
        };
        let reference = target
            .map(|t| {
                t.parse::<Reference>()
                    .map_err(|e| EngineError::InvalidArgument(e.to_string()))
            })
            .transpose()?;
        let (os, architecture) = platform(req.platform.as_deref())?;
        let mut reader = SyncIoBridge::new(body);
        self.blocking(move |store| {
            let now = now_rfc3339();
            let opts = ImportOptions {
                changes: req.changes,
                message: req.message,
                os,
                architecture,
                now: now.clone(),
            };
            let rec =
                archive::import(&store, &mut reader, &opts).inspect_err(|_| drain(&mut reader))?;
            if let Some(r) = reference {
                store.tag(&rec.id, &r, &now)?;
            }
            Ok(rec.id)
        })
        .await
        .inspect(|id| self.emit_event("image", "import", id, &[("name", id)]))
    }

    /// `POST /images/load`: returns the lines `docker load` prints.
    #[tracing::instrument(skip_all)]
    pub async fn image_load(&self, body: BodyReader) -> Result<Vec<String>, EngineError> {
        let mut reader = SyncIoBridge::new(body);
        self.blocking(move |store| {
            let loaded = archive::load(&store, &mut reader, &now_rfc3339())
                .inspect_err(|_| drain(&mut reader))?;
            let mut lines = Vec::new();
            for l in loaded {
                if l.tags.is_empty() {
                    lines.push(format!("Loaded image ID: {}\n", l.image.id));
                }
                for t in l.tags {
                    lines.push(format!("Loaded image: {t}\n"));
                }
            }
            Ok(lines)
        })
        .await
        .inspect(|lines| self.image_load_events(lines))
    }

    /// `GET /images/get`: resolves every name first (so a missing one is a 404 before any
    /// byte is sent), then streams the tar.
    pub async fn image_save(
        &self,
        names: Vec<String>,
    ) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, EngineError> {
        let items = self
            .blocking(move |store| {
                let mut items: Vec<SaveItem> = Vec::new();
                for n in &names {
                    let rec = store.resolve(n)?;
                    // A name that is a reference saves just that tag; an ID saves all.
                    let tags = match n.parse::<Reference>() {
                        Ok(r) if !looks_like_id(n, &rec) => {
                            vec![r.clone().with_default_tag().familiar_string()]
                        }
                        _ => store.references_of(&rec.id).0,
                    };
                    match items.iter_mut().find(|i| i.image.id == rec.id) {
                        Some(i) => i.tags.extend(tags),
                        None => items.push(SaveItem { image: rec, tags }),
                    }
                }
                Ok(items)
            })
            .await?;
        items
            .iter()
            .for_each(|i| self.events.image("save", &i.image.id, &i.image.id));
        let (tx, rx) = mpsc::channel(8);
        let store = self.images.clone();
        crate::blocking::spawn(move || {
            // The buffer lets layer data be read in large blocks (tar copies through it).
            let writer = std::io::BufWriter::with_capacity(
                256 * 1024,
                berth_image::chunks::StreamWriter::new(tx.clone()),
            );
            if let Err(e) = archive::save(&store, &items, writer) {
                tracing::error!(error = %e, "image save failed mid-stream");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(rx)
    }
}

/// Reads what is left of a refused upload (up to a bound), so the client, still sending,
/// gets the error answer instead of a broken pipe.
fn drain<R: std::io::Read>(reader: &mut R) {
    const MAX_DRAIN: u64 = 256 << 20;
    let _ = std::io::copy(
        &mut std::io::Read::take(reader, MAX_DRAIN),
        &mut std::io::sink(),
    );
}

fn looks_like_id(name: &str, rec: &ImageRecord) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    rec.hex().starts_with(hex)
}

fn to_delete_item(d: Deleted) -> DeleteItem {
    match d {
        Deleted::Untagged(s) => DeleteItem::Untagged(s),
        Deleted::Deleted(s) => DeleteItem::Deleted(s),
    }
}

/// `os[/arch[/variant]]`, defaulting to this host.
fn platform(p: Option<&str>) -> Result<(String, String), EngineError> {
    let host_arch = normalize_arch(&berth_sys::host::uname().machine);
    match p.filter(|p| !p.is_empty()) {
        None => Ok(("linux".into(), host_arch)),
        Some(p) => {
            let mut parts = p.split('/');
            let os = parts.next().unwrap_or_default().to_string();
            let arch = parts.next().map(String::from).unwrap_or(host_arch);
            if os != "linux" {
                return Err(EngineError::InvalidArgument(format!(
                    "unsupported os {os:?} in platform {p:?}"
                )));
            }
            Ok((os, arch))
        }
    }
}

/// `label=key` or `label=key=value`.
fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// `reference=busybox`, `busybox:*`: distribution's `FamiliarMatch`, a glob against the
/// familiar `name:tag` and then against the familiar name alone.
/// Patterns are checked before (`check_pattern`), so an error here is no match.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    if glob_match(pattern, tag).unwrap_or(false) {
        return true;
    }
    // `name@digest` or `name:tag`; a colon before a slash is a registry's port.
    let name = match tag.split_once('@') {
        Some((n, _)) => n,
        None => tag
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(n, _)| n)
            .unwrap_or(tag),
    };
    glob_match(pattern, name).unwrap_or(false)
}

/// RFC 3339 → Unix seconds (0 when unreadable).
pub(crate) fn parse_time(s: &str) -> i64 {
    berth_api_types::timestamp::parse_rfc3339(s).map_or(0, |t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parsing_round_trips() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), 0);
        assert_eq!(parse_time("2024-02-29T23:59:59.123456789Z"), 1_709_251_199);
        assert_eq!(parse_time("2024-03-01T01:59:59+02:00"), 1_709_251_199);
        assert_eq!(
            parse_time(&crate::system::format_rfc3339(1_700_000_000, 0)),
            1_700_000_000
        );
        assert_eq!(parse_time("garbage"), 0);
    }

    #[test]
    fn filters_match_like_docker() {
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert!(label_matches(&labels, "a"));
        assert!(label_matches(&labels, "a=1"));
        assert!(!label_matches(&labels, "a=2"));
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:latest"));
        assert!(reference_matches("busybox:lat*", "busybox:latest"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        assert!(reference_matches("busybox", "busybox@sha256:ab12"));
        assert!(!reference_matches("busybox:latest", "busybox@sha256:ab12"));
        assert!(reference_matches(
            "localhost:5000/app",
            "localhost:5000/app:v1"
        ));
    }
}
