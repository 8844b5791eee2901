//! The image configuration document (OCI `application/vnd.oci.image.config.v1+json`, the
//! same shape as Docker's): what a container made from the image starts with, and the
//! ordered diffIDs of its layers. An image's ID is the sha256 of these exact bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The parts of an image config Berth reads; the stored bytes stay the source of truth.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Container defaults: `Env`, `Cmd`, `Entrypoint`, `WorkingDir`, `User`, `Labels`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An image config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid image config: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid image config: unsupported rootfs type {0:?}")]
    RootfsType(String),
    #[error("invalid image config: bad diff_id {0:?}")]
    DiffId(String),
}

impl ImageConfigFile {
    /// Parses and checks the config: `rootfs.type` must be `layers` and every diffID a
    /// sha256 digest.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let c: ImageConfigFile = serde_json::from_slice(bytes)?;
        if c.rootfs.kind != "layers" {
            return Err(ConfigError::RootfsType(c.rootfs.kind));
        }
        for d in &c.rootfs.diff_ids {
            d.parse::<crate::Digest>()
                .map_err(|_| ConfigError::DiffId(d.clone()))?;
        }
        Ok(c)
    }

    /// `Labels` of the container config, if any.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.config
            .as_ref()
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_refuses_bad_rootfs() {
        let ok = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},"config":{"Labels":{"a":"b"}}}"#;
        let c = ImageConfigFile::parse(ok).unwrap();
        assert_eq!(c.labels().get("a").map(String::as_str), Some("b"));
        assert!(ImageConfigFile::parse(br#"{"rootfs":{"type":"other"}}"#).is_err());
        assert!(
            ImageConfigFile::parse(br#"{"rootfs":{"type":"layers","diff_ids":["md5:x"]}}"#)
                .is_err()
        );
        assert!(ImageConfigFile::parse(b"not json").is_err());
    }

    #[test]
    fn refusals_say_why_as_before() {
        let text = |b: &[u8]| ImageConfigFile::parse(b).unwrap_err().to_string();
        assert_eq!(
            text(br#"{"rootfs":{"type":"other"}}"#),
            r#"invalid image config: unsupported rootfs type "other""#
        );
        assert_eq!(
            text(br#"{"rootfs":{"type":"layers","diff_ids":["md5:x"]}}"#),
            r#"invalid image config: bad diff_id "md5:x""#
        );
        assert_eq!(
            text(b"not json"),
            "invalid image config: expected ident at line 1 column 2"
        );
    }
}
