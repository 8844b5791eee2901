//! Wire types of the registry routes: `POST /auth` and `GET /distribution/{name}/json`.

use serde::{Deserialize, Serialize};

/// `POST /auth`'s answer (`{"Status":"Login Succeeded","IdentityToken":""}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthResponse {
    pub status: String,
    pub identity_token: String,
}

/// `GET /distribution/{name}/json`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DistributionInspect {
    pub descriptor: Descriptor,
    pub platforms: Vec<Platform>,
}

/// An OCI descriptor as dockerd prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An OCI platform; optional parts are left out when empty, as dockerd does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_dockerd() {
        let v = serde_json::to_string(&DistributionInspect {
            descriptor: Descriptor {
                media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                digest: "sha256:fd9c".into(),
                size: 526,
            },
            platforms: vec![Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..Default::default()
            }],
        })
        .unwrap();
        assert_eq!(
            v,
            r#"{"Descriptor":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:fd9c","size":526},"Platforms":[{"architecture":"amd64","os":"linux"}]}"#
        );
        let a = serde_json::to_string(&AuthResponse {
            status: "Login Succeeded".into(),
            identity_token: String::new(),
        })
        .unwrap();
        assert_eq!(a, r#"{"Status":"Login Succeeded","IdentityToken":""}"#);
    }
}
