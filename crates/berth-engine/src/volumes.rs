//! Local volumes: `<data-root>/volumes/<name>/_data` plus `meta.json` (written atomically),
//! and the `/volumes` operations (create, list, inspect, remove, prune) with dockerd's
//! local-driver shapes and messages (moby `volume/local/local.go`, `volume/service`).
//!
//! Owns: volume records, name validation, which containers use a volume (read from each
//! container's `mounts.json`, see `containers::mounts`), removal of anonymous volumes.
//! Does not own: mounting a volume into a container (that is the container's spec), nor
//! copy-up of image content (`containers::mounts`).
//!
//! Volumes with `DriverOpts` (`type=tmpfs`, or `type=none,o=bind,device=/host/dir`) keep
//! their options here; the container spec mounts the tmpfs or the device directly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_api_types::volume::{Volume, VolumeListResponse, VolumePruneResponse, VolumeUsageData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::system::now_rfc3339;
use crate::{Engine, EngineError};

/// The label Docker puts on volumes made for `-v /path` and image `VOLUME`s.
pub(crate) const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Serialises volume creation and removal against each other (one daemon per data root).
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One volume as stored in `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VolumeMeta {
    pub name: String,
    pub created_at: String,
    /// `None` is Docker's `"Labels": null` (a volume made implicitly by a mount).
    pub labels: Option<BTreeMap<String, String>>,
    /// The driver options (`type`, `device`, `o`); `None` prints as `null`.
    pub options: Option<BTreeMap<String, String>>,
    /// The authorization role of the client whose request approved a bound `device`
    /// (`--authorization roles`): a confined role's device opens beneath the policy's
    /// `bind_allow` at every start of a container using the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_role: Option<String>,
}

impl VolumeMeta {
    pub fn anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }

    /// What a container mounts for this volume: a tmpfs (with its `o` options) or a bind of
    /// a host directory; `None` means the volume's own `_data`.
    pub fn driver_source(&self) -> Option<DriverSource> {
        let o = self.options.as_ref()?;
        let typ = o.get("type").map(String::as_str).unwrap_or("");
        let opts = o.get("o").cloned().unwrap_or_default();
        if typ == "tmpfs" {
            return Some(DriverSource::Tmpfs(opts));
        }
        let binds = opts.split(',').any(|x| x == "bind" || x == "rbind");
        match o.get("device") {
            Some(dev) if binds => Some(DriverSource::Bind(PathBuf::from(dev))),
            _ => None,
        }
    }
}

/// How a volume with driver options reaches a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DriverSource {
    Tmpfs(String),
    Bind(PathBuf),
}

/// `POST /volumes/create`'s body (the server decodes it).
pub use berth_api_types::volume::VolumeCreateRequest as CreateVolume;

/// The checks of `POST /volumes/create` before anything is written: the driver must be
/// the local one; no name means a fresh anonymous-style one.
fn create_name(req: &CreateVolume) -> Result<String, EngineError> {
    let driver = req.driver.clone().unwrap_or_default();
    if !driver.is_empty() && driver != "local" {
        return Err(EngineError::NotFound(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    match req.name.clone().filter(|n| !n.is_empty()) {
        Some(n) => Ok(n),
        None => crate::containers::names::new_id(),
    }
}

fn volumes_dir(data_root: &Path) -> PathBuf {
    data_root.join("volumes")
}

pub(crate) fn data_path(data_root: &Path, name: &str) -> PathBuf {
    volumes_dir(data_root).join(name).join("_data")
}

/// moby `volume/local`: `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`, with its messages.
pub(crate) fn validate_name(name: &str) -> Result<(), EngineError> {
    let b = name.as_bytes();
    let first_ok = b.first().is_some_and(u8::is_ascii_alphanumeric);
    let rest_ok = b
        .iter()
        .skip(1)
        .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if !first_ok || !rest_ok {
        return Err(EngineError::InvalidArgument(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if b.len() < 2 {
        return Err(EngineError::InvalidArgument(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    Ok(())
}

fn validate_opts(name: &str, opts: &BTreeMap<String, String>) -> Result<(), EngineError> {
    for k in opts.keys() {
        if !["type", "device", "o", "size"].contains(&k.as_str()) {
            return Err(EngineError::InvalidArgument(format!(
                "create {name}: invalid option key: {k:?}"
            )));
        }
    }
    let typ = opts.get("type").map(String::as_str).unwrap_or("");
    let binds = opts
        .get("o")
        .is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind"));
    match (typ, opts.get("device")) {
        ("tmpfs", _) => Ok(()),
        (_, Some(dev)) if binds => {
            if !Path::new(dev).is_absolute() {
                return Err(EngineError::InvalidArgument(format!(
                    "create {name}: invalid device path {dev:?}: must be absolute"
                )));
            }
            Ok(())
        }
        _ if opts.is_empty() => Ok(()),
        _ => Err(EngineError::InvalidArgument(format!(
            "create {name}: berth's local driver mounts only type=tmpfs or o=bind with an absolute device"
        ))),
    }
}

fn read_meta(data_root: &Path, name: &str) -> Option<VolumeMeta> {
    let p = volumes_dir(data_root).join(name).join("meta.json");
    let bytes = std::fs::read(p).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every volume on disk; directories without a readable `meta.json` are half-made and
/// skipped.
pub(crate) fn all(data_root: &Path) -> Vec<VolumeMeta> {
    let mut out: Vec<VolumeMeta> = std::fs::read_dir(volumes_dir(data_root))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_meta(data_root, &e.file_name().to_string_lossy()))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub(crate) fn get(data_root: &Path, name: &str) -> Result<VolumeMeta, EngineError> {
    if validate_name(name).is_err() {
        return Err(no_such(name));
    }
    read_meta(data_root, name).ok_or_else(|| no_such(name))
}

fn no_such(name: &str) -> EngineError {
    EngineError::NotFound(format!("get {name}: no such volume"))
}

/// Creates a volume, or returns the existing one of that name (Docker's create is
/// idempotent). Write order: `_data`, then `meta.json`, so a crash leaves no record.
/// Creates the volume `name` unless it exists (then `false` with the existing one);
/// `role` approved its options (kept when they bind a host device).
pub(crate) fn create(
    data_root: &Path,
    name: &str,
    labels: Option<BTreeMap<String, String>>,
    options: Option<BTreeMap<String, String>>,
    role: Option<&str>,
) -> Result<(VolumeMeta, bool), EngineError> {
    validate_name(name)?;
    let options = options.filter(|o| !o.is_empty());
    if let Some(o) = &options {
        validate_opts(name, o)?;
    }
    let _g = lock();
    if let Some(existing) = read_meta(data_root, name) {
        return Ok((existing, false));
    }
    let dir = volumes_dir(data_root).join(name);
    let data = dir.join("_data");
    std::fs::create_dir_all(&data).map_err(EngineError::io("cannot create", &data))?;
    let created = now_rfc3339();
    let meta = VolumeMeta {
        name: name.to_string(),
        created_at: format!("{}Z", created.split('.').next().unwrap_or(&created)),
        labels,
        options,
        approved_role: None,
    };
    let meta = VolumeMeta {
        approved_role: matches!(meta.driver_source(), Some(DriverSource::Bind(_)))
            .then(|| role.map(str::to_string))
            .flatten(),
        ..meta
    };
    let bytes =
        serde_json::to_vec_pretty(&meta).map_err(|e| EngineError::Internal(e.to_string()))?;
    let path = dir.join("meta.json");
    if let Err(e) = berth_sys::fs::atomic_write(&path, &bytes, 0o600) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(EngineError::io("cannot write", &path)(e));
    }
    tracing::info!(volume = name, "volume created");
    Ok((meta, true))
}

/// A new anonymous volume (64 hex name, Docker's anonymous label).
pub(crate) fn create_anonymous(data_root: &Path) -> Result<VolumeMeta, EngineError> {
    let name = crate::containers::names::new_id()?;
    let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
    Ok(create(data_root, &name, Some(labels), None, None)?.0)
}

/// Volume name → IDs of the containers whose mounts name it.
pub(crate) fn users(data_root: &Path) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (id, mounts) in crate::containers::mount_file::all_mounts(data_root) {
        for name in mounts {
            out.entry(name).or_default().push(id.clone());
        }
    }
    out
}

/// Removes `name`, refused while a container uses it (even with `force`, as dockerd).
pub(crate) fn remove(data_root: &Path, name: &str) -> Result<(), EngineError> {
    let _g = lock();
    get(data_root, name).map_err(|_| no_such(name))?;
    if let Some(ids) = users(data_root).get(name).filter(|v| !v.is_empty()) {
        return Err(EngineError::Conflict(format!(
            "remove {name}: volume is in use - [{}]",
            ids.join(", ")
        )));
    }
    remove_dir(data_root, name)
}

fn remove_dir(data_root: &Path, name: &str) -> Result<(), EngineError> {
    let dir = volumes_dir(data_root).join(name);
    // The record goes first: a crash mid-way leaves a half-made dir, never a record
    // without data.
    let meta = dir.join("meta.json");
    std::fs::remove_file(&meta).map_err(EngineError::io("cannot remove", &meta))?;
    std::fs::remove_dir_all(&dir).map_err(EngineError::io("cannot remove", &dir))?;
    tracing::info!(volume = name, "volume removed");
    Ok(())
}

/// Removes the given anonymous volumes that no container uses any more and returns
/// those removed; failures are logged (Docker's `rm -v` and `--rm` do the same).
pub(crate) fn remove_anonymous(data_root: &Path, names: &[String]) -> Vec<String> {
    let mut removed = Vec::new();
    if names.is_empty() {
        return removed;
    }
    let _g = lock();
    let users = users(data_root);
    for n in names {
        let anon = read_meta(data_root, n).is_some_and(|m| m.anonymous());
        if !anon || users.get(n).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        match remove_dir(data_root, n) {
            Ok(()) => removed.push(n.clone()),
            Err(e) => tracing::warn!(volume = %n, error = %e, "cannot remove anonymous volume"),
        }
    }
    removed
}

/// Bytes used under `dir` (regular files, not following symlinks), as `du` reports
/// apparent sizes; -1 when unreadable, as Docker.
pub(crate) fn dir_size(dir: &Path) -> i64 {
    fn walk(p: &Path) -> std::io::Result<i64> {
        let mut total = 0;
        for e in std::fs::read_dir(p)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                total += walk(&e.path())?;
            } else if md.is_file() {
                total += md.len() as i64;
            }
        }
        Ok(total)
    }
    walk(dir).unwrap_or(-1)
}

/// Docker's shape of one volume; `usage` adds `UsageData`.
pub(crate) fn volume(data_root: &Path, m: &VolumeMeta, usage: Option<(i64, i64)>) -> Volume {
    Volume {
        created_at: m.created_at.clone(),
        driver: "local".into(),
        labels: m.labels.clone(),
        mountpoint: data_path(data_root, &m.name).display().to_string(),
        name: m.name.clone(),
        options: m.options.clone(),
        scope: "local".into(),
        usage_data: usage.map(|(size, ref_count)| VolumeUsageData { size, ref_count }),
    }
}

/// [`volume`] as JSON.
pub(crate) fn to_json(data_root: &Path, m: &VolumeMeta, usage: Option<(i64, i64)>) -> Value {
    to_value(volume(data_root, m, usage))
}

/// A response as JSON (these structs hold only strings, numbers and maps: serialising
/// them cannot fail).
fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn label_matches(labels: &Option<BTreeMap<String, String>>, want: &str) -> bool {
    let (k, v) = match want.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (want, None),
    };
    labels
        .as_ref()
        .and_then(|l| l.get(k))
        .is_some_and(|have| v.is_none_or(|v| v == have))
}

fn truthy(v: &str) -> Result<bool, EngineError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(EngineError::InvalidArgument(format!(
            "invalid filter 'dangling={v}'"
        ))),
    }
}

impl Engine {
    fn data_root(&self) -> &Path {
        &self.config().data_root
    }

    /// `POST /volumes/create`.
    pub async fn volume_create(&self, req: CreateVolume) -> Result<Value, EngineError> {
        self.volume_create_as(req, None).await
    }

    /// `POST /volumes/create` by a client with the authorization `role` that approved a
    /// bound `device` (kept with the volume: [`crate::BindPolicy`] applies at every start).
    #[tracing::instrument(skip_all, fields(volume = tracing::field::Empty))]
    pub async fn volume_create_as(
        &self,
        req: CreateVolume,
        role: Option<&str>,
    ) -> Result<Value, EngineError> {
        let role = role.map(str::to_string);
        let name = create_name(&req)?;
        tracing::Span::current().record("volume", tracing::field::display(&name));
        let root = self.data_root().to_path_buf();
        let labels = Some(req.labels.unwrap_or_default());
        let (meta, made) = crate::blocking::spawn({
            let root = root.clone();
            move || create(&root, &name, labels, req.driver_opts, role.as_deref())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        if made {
            self.emit_event("volume", "create", &meta.name, &[("driver", "local")]);
        }
        Ok(to_json(&root, &meta, None))
    }

    /// `GET /volumes/{name}`.
    pub async fn volume_inspect(&self, name: &str) -> Result<Value, EngineError> {
        let (root, name) = (self.data_root().to_path_buf(), name.to_string());
        crate::blocking::spawn(move || Ok(to_json(&root, &get(&root, &name)?, None)))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// `GET /volumes`: filters `dangling`, `name` (substring), `label`, `driver`.
    pub async fn volume_list(
        &self,
        filters: &berth_api_types::filters::Filters,
    ) -> Result<Value, EngineError> {
        filters
            .allow_only(&["dangling", "name", "label", "driver"])
            .map_err(EngineError::from)?;
        let dangling = match filters.get("dangling").first() {
            Some(v) => Some(truthy(v)?),
            None => None,
        };
        // Every volume's metadata and every container's mounts are read: off the async
        // workers.
        let (root, filters) = (self.data_root().to_path_buf(), filters.clone());
        crate::blocking::spawn(move || list(&root, &filters, dangling))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))
    }
}

/// `GET /volumes`'s answer: the volumes under `root` that pass the filters.
fn list(root: &Path, filters: &berth_api_types::filters::Filters, dangling: Option<bool>) -> Value {
    let users = users(root);
    let names = filters.get("name");
    let labels = filters.get("label");
    let drivers = filters.get("driver");
    let vols: Vec<Volume> = all(root)
        .into_iter()
        .filter(|m| {
            let used = users.get(&m.name).is_some_and(|v| !v.is_empty());
            dangling.is_none_or(|d| d != used)
        })
        .filter(|m| names.is_empty() || names.iter().any(|n| m.name.contains(n.as_str())))
        .filter(|m| labels.iter().all(|l| label_matches(&m.labels, l)))
        .filter(|_| drivers.is_empty() || drivers.iter().any(|d| d == "local"))
        .map(|m| volume(root, &m, None))
        .collect();
    to_value(VolumeListResponse {
        volumes: vols,
        warnings: Vec::new(),
    })
}

impl Engine {
    /// `DELETE /volumes/{name}`.
    #[tracing::instrument(skip_all, fields(volume = ?name))]
    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let root = self.data_root().to_path_buf();
        let owned = name.to_string();
        let removed = crate::blocking::spawn(move || remove(&root, &owned))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        match removed {
            // moby: a forced removal of a missing volume is not an error.
            Err(EngineError::NotFound(_)) if force => return Ok(()),
            other => other?,
        }
        self.emit_event("volume", "destroy", name, &[("driver", "local")]);
        Ok(())
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or every unused one with the
    /// `all=true` filter or `named_too` (clients of API < 1.42); `label` filters as in list.
    pub async fn volume_prune(
        &self,
        filters: &berth_api_types::filters::Filters,
        named_too: bool,
    ) -> Result<Value, EngineError> {
        filters
            .allow_only(&["label", "label!", "all"])
            .map_err(EngineError::from)?;
        let all_too = match filters.get("all").first() {
            Some(v) => truthy(v)
                .map_err(|_| EngineError::InvalidArgument(format!("invalid filter 'all={v}'")))?,
            None => named_too,
        };
        let labels = filters.get("label").to_vec();
        let not_labels = filters.get("label!").to_vec();
        let root = self.data_root().to_path_buf();
        let report = crate::blocking::spawn(move || {
            let _g = lock();
            let users = users(&root);
            let mut deleted = Vec::new();
            let mut reclaimed = 0i64;
            for m in all(&root) {
                if users.get(&m.name).is_some_and(|v| !v.is_empty())
                    || (!all_too && !m.anonymous())
                    || !labels.iter().all(|l| label_matches(&m.labels, l))
                    || not_labels.iter().any(|l| label_matches(&m.labels, l))
                {
                    continue;
                }
                let size = dir_size(&data_path(&root, &m.name)).max(0);
                match remove_dir(&root, &m.name) {
                    Ok(()) => {
                        reclaimed += size;
                        deleted.push(m.name);
                    }
                    Err(e) => tracing::warn!(volume = %m.name, error = %e, "prune failed"),
                }
            }
            (deleted, reclaimed)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let (deleted, reclaimed) = report;
        for name in &deleted {
            self.emit_event("volume", "destroy", name, &[("driver", "local")]);
        }
        self.emit_event(
            "volume",
            "prune",
            "",
            &[("reclaimed", &reclaimed.to_string())],
        );
        Ok(to_value(VolumePruneResponse {
            volumes_deleted: deleted,
            space_reclaimed: reclaimed,
        }))
    }

    /// Volumes with `UsageData` for `/system/df`.
    pub(crate) fn volumes_df(&self) -> Vec<Value> {
        let root = self.data_root();
        let users = users(root);
        all(root)
            .into_iter()
            .map(|m| {
                let refs = users.get(&m.name).map_or(0, Vec::len) as i64;
                let size = dir_size(&data_path(root, &m.name));
                to_json(root, &m, Some((size, refs)))
            })
            .collect()
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed shape serialises to what the hand-built JSON it replaced did (the old
    /// `json!` is kept here as the reference), with and without labels, options, usage.
    #[test]
    fn volume_json_is_what_it_was() {
        let root = Path::new("/var/lib/berth");
        let old = |m: &VolumeMeta, usage: Option<(i64, i64)>| {
            let mut v = serde_json::json!({
                "CreatedAt": m.created_at,
                "Driver": "local",
                "Labels": m.labels,
                "Mountpoint": data_path(root, &m.name),
                "Name": m.name,
                "Options": m.options,
                "Scope": "local",
            });
            if let Some((size, refs)) = usage {
                v["UsageData"] = serde_json::json!({"Size": size, "RefCount": refs});
            }
            v
        };
        let bare = VolumeMeta {
            name: "v1".into(),
            created_at: "2026-01-02T03:04:05Z".into(),
            labels: None,
            options: None,
            approved_role: None,
        };
        let full = VolumeMeta {
            labels: Some(BTreeMap::from([("a".into(), "b".into())])),
            options: Some(BTreeMap::from([("type".into(), "tmpfs".into())])),
            ..bare.clone()
        };
        for m in [&bare, &full] {
            for usage in [None, Some((-1, 0)), Some((4096, 2))] {
                let new = to_json(root, m, usage);
                assert_eq!(new, old(m, usage));
                assert_eq!(new.to_string(), old(m, usage).to_string());
            }
        }
    }

    /// The role that approved a bound device is kept with the volume (and read back);
    /// other volumes keep none.
    #[test]
    fn a_bound_device_keeps_its_approving_role() {
        let tmp = tempfile::tempdir().unwrap();
        let bind = BTreeMap::from([
            ("type".to_string(), "none".to_string()),
            ("o".to_string(), "bind".to_string()),
            ("device".to_string(), "/srv/data/x".to_string()),
        ]);
        let (m, _) = create(tmp.path(), "bound", None, Some(bind), Some("operator")).unwrap();
        assert_eq!(m.approved_role.as_deref(), Some("operator"));
        let read = get(tmp.path(), "bound").unwrap();
        assert_eq!(read.approved_role.as_deref(), Some("operator"));
        let (m, _) = create(tmp.path(), "plain", None, None, Some("operator")).unwrap();
        assert_eq!(m.approved_role, None);
    }

    #[test]
    fn names_follow_the_local_driver() {
        for ok in ["ab", "a1", "my-vol_1.2", "0x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "", "-a", ".a", "a/b", "b@d", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let e = validate_name("foo/bar").unwrap_err().to_string();
        assert!(e.starts_with("create foo/bar: \"foo/bar\" includes invalid characters"));
        assert!(validate_name("x")
            .unwrap_err()
            .to_string()
            .contains("too short"));
    }

    #[test]
    fn create_is_idempotent_and_remove_takes_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let (m, made) = create(root, "v1", None, None, None).unwrap();
        assert!(made && m.labels.is_none());
        assert!(data_path(root, "v1").is_dir());
        let (_, made) = create(root, "v1", Some(BTreeMap::new()), None, None).unwrap();
        assert!(!made);
        assert_eq!(all(root).len(), 1);
        // A half-made directory (no meta.json) is not a volume.
        std::fs::create_dir_all(volumes_dir(root).join("half/_data")).unwrap();
        assert_eq!(all(root).len(), 1);
        remove(root, "v1").unwrap();
        assert!(!volumes_dir(root).join("v1").exists());
        assert!(matches!(remove(root, "v1"), Err(EngineError::NotFound(_))));
    }

    #[test]
    fn driver_options() {
        let opts = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(validate_opts("v", &opts(&[("type", "tmpfs"), ("o", "size=1m")])).is_ok());
        assert!(validate_opts(
            "v",
            &opts(&[("type", "none"), ("o", "bind"), ("device", "/x")])
        )
        .is_ok());
        assert!(validate_opts("v", &opts(&[("o", "bind"), ("device", "rel")])).is_err());
        assert!(validate_opts("v", &opts(&[("bogus", "1")])).is_err());
        let m = VolumeMeta {
            name: "v".into(),
            created_at: String::new(),
            labels: None,
            options: Some(opts(&[("type", "none"), ("o", "bind"), ("device", "/x")])),
            approved_role: None,
        };
        assert_eq!(m.driver_source(), Some(DriverSource::Bind("/x".into())));
    }
}
