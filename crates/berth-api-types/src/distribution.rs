//! Wire types of the registry routes (`POST /auth`, `GET /distribution/{name}/json`) and
//! the OCI [`Platform`], the one definition that image indexes, pulls and these answers
//! share.

use std::fmt;

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

/// An OCI platform (`os`, `architecture`, optional `variant`, `os.version`, `os.features`);
/// optional parts are left out when empty, as dockerd does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
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

/// A platform string that is not `os[/arch[/variant]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPlatform(pub String);

impl fmt::Display for InvalidPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid platform {:?}: expected os[/arch[/variant]]",
            self.0
        )
    }
}

impl std::error::Error for InvalidPlatform {}

impl Platform {
    /// Parses `os[/arch[/variant]]`; a missing architecture means `default_arch`.
    pub fn parse(s: &str, default_arch: &str) -> Result<Platform, InvalidPlatform> {
        let mut parts = s.split('/');
        let os = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let architecture = normalize_arch(parts.next().unwrap_or(default_arch));
        let variant = parts.next().map(|v| v.to_ascii_lowercase());
        if os.is_empty() || parts.next().is_some() || architecture.is_empty() {
            return Err(InvalidPlatform(s.to_string()));
        }
        Ok(Platform {
            architecture,
            os,
            variant: variant.filter(|v| !v.is_empty()),
            ..Default::default()
        })
    }

    /// Whether an index entry for `self` can run where `wanted` was asked for.
    pub fn matches(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || normalize_arch(&self.architecture) != wanted.architecture {
            return false;
        }
        let have = self.variant.as_deref().unwrap_or_default();
        match wanted.variant.as_deref() {
            // arm64's only variant is v8, often left out.
            Some("v8") if wanted.architecture == "arm64" => matches!(have, "" | "v8"),
            Some(v) => have == v,
            None => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Go's names for architectures (`x86_64` → `amd64`), from an index entry, a platform
/// string or `uname -m`.
pub fn normalize_arch(arch: &str) -> String {
    match arch.trim().to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        "armhf" | "armel" | "armv7l" | "armv6l" => "arm".into(),
        "i386" | "i686" => "386".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_strings_parse() {
        let text = |s: &str| Platform::parse(s, "amd64").map(|p| p.to_string());
        assert_eq!(text("linux"), Ok("linux/amd64".into()));
        assert_eq!(text("Linux/arm64/V8"), Ok("linux/arm64/v8".into()));
        assert_eq!(text("linux/x86_64"), Ok("linux/amd64".into()));
        assert_eq!(text("linux/arm/"), Ok("linux/arm".into()));
        for bad in ["", "/amd64", "linux/amd64/v1/x"] {
            assert_eq!(text(bad), Err(InvalidPlatform(bad.into())), "{bad}");
        }
        assert_eq!(
            InvalidPlatform("a/b/c/d".into()).to_string(),
            "invalid platform \"a/b/c/d\": expected os[/arch[/variant]]"
        );
        let arm64 = Platform::parse("linux/arm64/v8", "amd64").unwrap();
        let bare = Platform::parse("linux/aarch64", "amd64").unwrap();
        assert!(bare.matches(&arm64));
        assert!(!arm64.matches(&Platform::parse("linux/arm64/v9", "amd64").unwrap()));
        for (uname, go) in [("x86_64", "amd64"), ("aarch64", "arm64"), ("armv6l", "arm")] {
            assert_eq!(normalize_arch(uname), go);
        }
        assert_eq!(normalize_arch("riscv64"), "riscv64");
    }

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
