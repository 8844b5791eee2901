//! A container's `mounts.json` (`<data-root>/containers/<id>/mounts.json`): the stored
//! [`MountEntry`] list, read back for inspect, for removing anonymous volumes, and by
//! `crate::volumes` to find which containers use a volume. Its own module so that
//! `containers::mounts` (which creates volumes) and `crate::volumes` (which asks who uses
//! them) both depend on it and not on each other.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub(crate) const FILE: &str = "mounts.json";

/// One mount of a container, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MountEntry {
    /// `bind`, `volume`, `tmpfs` or `image`.
    pub typ: String,
    /// The volume's name (empty for binds and tmpfs; set at create for anonymous ones);
    /// an image mount's image as the client named it.
    pub name: String,
    /// Host path (binds, volumes' `_data`); empty for tmpfs; an image mount's image ID
    /// (`sha256:…`, resolved at create).
    pub source: String,
    pub destination: String,
    /// As Docker shows it: the `-v` mode string, `z` for named volumes.
    pub mode: String,
    pub rw: bool,
    pub propagation: String,
    /// Made for this container (`-v /path`, image `VOLUME`): removed by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
    /// Fill an empty volume with the image's content at the destination.
    #[serde(default)]
    pub copy_up: bool,
    /// `-v /host:/dst` makes a missing host directory at start.
    #[serde(default)]
    pub create_source: bool,
    /// tmpfs `size=…,mode=…`.
    #[serde(default)]
    pub tmpfs_options: String,
    /// An image mount's directory (or file) inside the image (`ImageOptions.Subpath`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    /// Labels and driver options for a volume created by this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<BTreeMap<String, String>>,
    /// The authorization role (`--authorization roles`) of the client whose create
    /// approved this bind's host path; a confined role's bind opens beneath the policy's
    /// `bind_allow` at every start. `None`: created without authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_role: Option<String>,
}

impl MountEntry {
    /// Docker's inspect `Mounts` item.
    pub fn docker_json(&self) -> Value {
        let mut v = json!({"Type": self.typ});
        if self.typ == "volume" || self.typ == "image" {
            v["Name"] = json!(self.name);
        }
        v["Source"] = json!(self.source);
        v["Destination"] = json!(self.destination);
        if self.typ == "volume" {
            v["Driver"] = json!("local");
        }
        v["Mode"] = json!(self.mode);
        v["RW"] = json!(self.rw);
        v["Propagation"] = json!(self.propagation);
        v
    }
}

/// The mounts recorded for the container whose data directory is `dir` (none when the
/// file is missing: a container created before mounts existed).
pub(crate) fn load(dir: &Path) -> Vec<MountEntry> {
    std::fs::read(dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// inspect's `Mounts`.
pub(crate) fn inspect_json(dir: &Path) -> Value {
    Value::Array(load(dir).iter().map(MountEntry::docker_json).collect())
}

/// inspect's `Mounts` as the file holds them, `None` while there is no readable file (a
/// container being created has none yet): the file is written once, at create, so what
/// this returns may be kept for the container's life.
pub(crate) fn stored_json(dir: &Path) -> Option<Value> {
    let bytes = std::fs::read(dir.join(FILE)).ok()?;
    let entries: Vec<MountEntry> = serde_json::from_slice(&bytes).ok()?;
    Some(Value::Array(
        entries.iter().map(MountEntry::docker_json).collect(),
    ))
}

/// Names of the anonymous volumes the container made.
pub(crate) fn anonymous_volumes(dir: &Path) -> Vec<String> {
    load(dir)
        .into_iter()
        .filter(|m| m.typ == "volume" && m.anonymous)
        .map(|m| m.name)
        .collect()
}

/// Every container (by ID) with the volume names it mounts, read from disk.
pub(crate) fn all_mounts(data_root: &Path) -> Vec<(String, Vec<String>)> {
    std::fs::read_dir(data_root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("record.json").exists())
        .map(|e| {
            let names = load(&e.path())
                .into_iter()
                .filter(|m| m.typ == "volume")
                .map(|m| m.name)
                .collect();
            (e.file_name().to_string_lossy().into_owned(), names)
        })
        .collect()
}
