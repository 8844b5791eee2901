//! Response shapes of the image routes (swagger `ImageSummary`, `ImageInspect`,
//! `ImageHistoryResponseItem`, `ImageDeleteResponseItem`) and the progress messages that
//! pull, push, load and import stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: i64,
    /// -1 unless `shared-size=1` was asked.
    pub shared_size: i64,
    pub labels: BTreeMap<String, String>,
    /// -1 unless computed, as dockerd.
    pub containers: i64,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: Option<String>,
    pub docker_version: String,
    pub author: String,
    pub config: serde_json::Value,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub data: BTreeMap<String, String>,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    /// RFC 3339; absent when never tagged after creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
}

/// One entry of `GET /images/{name}/history`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// The image ID for the top entry of a local image, `<missing>` otherwise.
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

/// One entry of `DELETE /images/{name}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteItem {
    Untagged(String),
    Deleted(String),
}

/// A line of the JSON progress stream (moby `pkg/jsonmessage`): pulls and pushes send
/// `status`/`id`/`progressDetail`, `docker load` sends `stream`, failures `errorDetail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProgressMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Machine-readable result, e.g. push's `{"Tag","Digest","Size"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The exit code of a failed build step (moby `jsonmessage.JSONError.Code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

impl ProgressMessage {
    pub fn stream(text: impl Into<String>) -> Self {
        Self {
            stream: Some(text.into()),
            ..Default::default()
        }
    }

    pub fn status(text: impl Into<String>) -> Self {
        Self {
            status: Some(text.into()),
            ..Default::default()
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error_detail: Some(ErrorDetail {
                code: None,
                message: message.clone(),
            }),
            error: Some(message),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_items_serialize_like_dockerd() {
        let v = serde_json::to_string(&vec![
            DeleteItem::Untagged("busybox:latest".into()),
            DeleteItem::Deleted("sha256:abc".into()),
        ])
        .unwrap();
        assert_eq!(
            v,
            r#"[{"Untagged":"busybox:latest"},{"Deleted":"sha256:abc"}]"#
        );
    }

    #[test]
    fn progress_error_has_both_fields() {
        let v = serde_json::to_value(ProgressMessage::error("boom")).unwrap();
        assert_eq!(v["error"], "boom");
        assert_eq!(v["errorDetail"]["message"], "boom");
        assert!(v.get("status").is_none());
    }
}
