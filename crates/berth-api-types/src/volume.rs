//! Volume shapes of the API (swagger `VolumeCreateOptions`, `Volume`, `VolumeListResponse`,
//! the prune answer).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /volumes/create`'s body, as far as the local driver reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeCreateRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `GET /volumes/{name}`, an entry of `GET /volumes`, and `POST /volumes/create`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    /// `null` for a volume made implicitly by a mount.
    pub labels: Option<BTreeMap<String, String>>,
    pub mountpoint: String,
    pub name: String,
    /// The driver options; `null` when none were given.
    pub options: Option<BTreeMap<String, String>>,
    pub scope: String,
    /// Only in `GET /system/df`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsageData>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeUsageData {
    /// Bytes; -1 when it could not be measured.
    pub size: i64,
    pub ref_count: i64,
}

/// `GET /volumes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Vec<String>,
}

/// `POST /volumes/prune`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumePruneResponse {
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: i64,
}
