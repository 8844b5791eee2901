//! Manifests as registries serve them: Docker v2 schema 2 and OCI image manifests, OCI
//! indexes and Docker manifest lists, told apart by media type (the `Content-Type`, else
//! the document's own `mediaType`, else its shape), and the choice of one platform from an
//! index as containerd's `platforms.Only` makes it.

use serde::{Deserialize, Serialize};

use super::RegistryError;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// What `Accept` says when fetching a manifest: every kind we can pull.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Layer media types we unpack (gzip, zstd or plain tar; nondistributable ones too, they
/// are still tars).
const LAYER_TYPES: &[&str] = &[
    DOCKER_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// A content descriptor (OCI image-spec `descriptor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Before `digest`, as dockerd writes it.
    pub size: u64,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

pub use berth_api_types::distribution::{normalize_arch, InvalidPlatform, Platform};

impl From<InvalidPlatform> for RegistryError {
    fn from(e: InvalidPlatform) -> RegistryError {
        RegistryError::InvalidArgument(e.to_string())
    }
}

/// A single-platform image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A multi-platform index (OCI index or Docker manifest list).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// A fetched manifest, parsed by kind.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

/// Only this shape of `mediaType` field and body is needed to classify a document.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses `body`, served with `content_type`. `reference` names it in errors.
    pub fn parse(
        body: &[u8],
        content_type: &str,
        reference: &str,
    ) -> Result<(Manifest, String), RegistryError> {
        let invalid =
            |e: String| RegistryError::Invalid(format!("invalid manifest for {reference}: {e}"));
        let probe: Probe = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let content_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let generic = matches!(
            content_type.as_str(),
            "" | "application/json" | "text/plain" | "application/octet-stream"
        );
        let media_type = if !generic {
            content_type
        } else if !probe.media_type.is_empty() {
            probe.media_type.clone()
        } else if probe.schema_version == 2 && probe.manifests.is_some() {
            OCI_INDEX.to_string()
        } else if probe.schema_version == 2 && probe.layers.is_some() {
            OCI_MANIFEST.to_string()
        } else {
            String::new()
        };
        let manifest = match media_type.as_str() {
            DOCKER_MANIFEST | OCI_MANIFEST => {
                let m: ImageManifest =
                    serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
                if m.schema_version != 2 {
                    return Err(invalid(format!(
                        "unsupported schemaVersion {}",
                        m.schema_version
                    )));
                }
                for l in &m.layers {
                    if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                        return Err(RegistryError::UnsupportedMediaType {
                            media_type: l.media_type.clone(),
                            reference: format!("{reference} (layer {})", l.digest),
                        });
                    }
                }
                Manifest::Image(m)
            }
            DOCKER_MANIFEST_LIST | OCI_INDEX => {
                let i: Index = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
                Manifest::Index(i)
            }
            other => {
                return Err(RegistryError::UnsupportedMediaType {
                    media_type: if other.is_empty() {
                        "(none)".to_string()
                    } else {
                        other.to_string()
                    },
                    reference: reference.to_string(),
                })
            }
        };
        Ok((manifest, media_type))
    }
}

impl Index {
    /// The entry for `wanted`; among several, one without a variant when none was asked
    /// for, else the first (indexes list the preferred entry first).
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, RegistryError> {
        let candidates: Vec<&Descriptor> = self
            .manifests
            .iter()
            .filter(|d| matches!(d.media_type.as_str(), DOCKER_MANIFEST | OCI_MANIFEST | ""))
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(wanted)))
            .collect();
        let best = if wanted.variant.is_none() {
            candidates
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
                .or(candidates.first())
        } else {
            candidates.first()
        };
        best.copied()
            .ok_or_else(|| RegistryError::NoMatchingPlatform {
                platform: wanted.to_string(),
            })
    }
}

/// The schema-2 manifest Berth pushes, formatted as dockerd formats it (three-space
/// indent, moby `distribution/manifest/schema2`), so the same blobs give the same digest.
pub fn docker_manifest_bytes(config: Descriptor, layers: Vec<Descriptor>) -> Vec<u8> {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST.to_string(),
        config,
        layers,
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    manifest.serialize(&mut ser).expect("manifest serializes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(String::from),
            ..Default::default()
        }
    }

    fn entry(p: Platform, digest: char) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            size: 1,
            urls: vec![],
            platform: Some(p),
        }
    }

    #[test]
    fn index_selection() {
        let index = Index {
            schema_version: 2,
            media_type: OCI_INDEX.into(),
            manifests: vec![
                entry(platform("unknown", "unknown", None), 'f'),
                entry(platform("linux", "arm", Some("v6")), 'a'),
                entry(platform("linux", "arm", Some("v7")), 'b'),
                entry(platform("linux", "arm64", None), 'c'),
                entry(platform("linux", "amd64", None), 'd'),
                entry(platform("windows", "amd64", None), 'e'),
            ],
        };
        let pick = |p: Platform| index.select(&p).map(|d| d.digest.chars().last().unwrap());
        assert_eq!(pick(platform("linux", "amd64", None)).unwrap(), 'd');
        assert_eq!(pick(platform("linux", "arm64", Some("v8"))).unwrap(), 'c');
        assert_eq!(pick(platform("linux", "arm", Some("v7"))).unwrap(), 'b');
        assert_eq!(pick(platform("linux", "arm", None)).unwrap(), 'a');
        assert_eq!(pick(platform("windows", "amd64", None)).unwrap(), 'e');
        let err = pick(platform("linux", "s390x", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
    }

    #[test]
    fn media_types_are_recognised_or_refused() {
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2},"layers":[]}"#;
        let (m, t) = Manifest::parse(image, "application/json", "r").unwrap();
        assert!(matches!(m, Manifest::Image(_)));
        assert_eq!(t, OCI_MANIFEST);
        let (_, t) = Manifest::parse(image, DOCKER_MANIFEST, "r").unwrap();
        assert_eq!(t, DOCKER_MANIFEST);
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let (m, _) = Manifest::parse(index, "", "r").unwrap();
        assert!(matches!(m, Manifest::Index(_)));
        let err =
            Manifest::parse(image, "application/vnd.example.thing+json", "reg/x:1").unwrap_err();
        assert!(
            err.to_string().starts_with("unsupported manifest media type \"application/vnd.example.thing+json\" for reg/x:1"),
            "{err}"
        );
        let schema1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let err = Manifest::parse(
            schema1,
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "r",
        )
        .unwrap_err();
        assert!(matches!(err, RegistryError::UnsupportedMediaType { .. }));
        let odd_layer = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:aa","size":2},"layers":[{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"sha256:bb","size":3}]}"#;
        let err = Manifest::parse(odd_layer, "", "r").unwrap_err();
        assert!(err.to_string().contains("helm"), "{err}");
        assert!(Manifest::parse(b"nope", DOCKER_MANIFEST, "r").is_err());
    }

    #[test]
    fn pushed_manifest_matches_dockerd_format() {
        let bytes = docker_manifest_bytes(
            Descriptor {
                media_type: DOCKER_CONFIG.into(),
                digest: "sha256:c".into(),
                size: 10,
                urls: vec![],
                platform: None,
            },
            vec![],
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {\n      \"mediaType\""), "{text}");
    }
}
