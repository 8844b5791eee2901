//! Registry operations: pull (`POST /images/create?fromImage=`), push
//! (`POST /images/{name}/push`), login (`POST /auth`), `GET /distribution/{name}/json` and
//! `GET /images/search`, over `berth_image::registry`.
//!
//! Pull and push answer with a stream of Docker's JSON progress messages. What can fail
//! before the first message (a bad reference, an unknown tag, wrong credentials for the
//! manifest) is returned as an [`EngineError`], so the HTTP status says it; a failure
//! after that (a push's missing local image comes after its first message, as dockerd's)
//! is the stream's last message (`{"error":…,"errorDetail":…}`), which is how dockerd
//! reports it and how the docker CLI prints it. When the client goes away the operation
//! stops and cleans up.

use std::sync::Arc;

use berth_api_types::distribution::{AuthResponse, Descriptor, DistributionInspect};
use berth_api_types::image::{ProgressDetail, ProgressMessage};
use berth_image::registry::{
    Platform, Progress, ProgressSink, PushPlan, Registry, RegistryConfig, RegistryError,
};
use berth_image::{Digest, Reference};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use berth_image::registry::auth::AuthConfigError;
pub use berth_image::registry::search::SearchResult;
pub use berth_image::registry::RegistryAuth;

use crate::system::now_rfc3339;
use crate::{Engine, EngineConfig, EngineError};

/// A stream of progress lines; it ends when the operation does.
pub type ProgressStream = mpsc::UnboundedReceiver<ProgressMessage>;

impl From<RegistryError> for EngineError {
    fn from(e: RegistryError) -> Self {
        let msg = e.to_string();
        match e {
            RegistryError::NotFound(_) | RegistryError::NoMatchingPlatform { .. } => {
                EngineError::NotFound(msg)
            }
            RegistryError::Unauthorized(_) => EngineError::Unauthorized(msg),
            RegistryError::Denied(_) => EngineError::Forbidden(msg),
            RegistryError::InvalidArgument(_) | RegistryError::UnsupportedMediaType { .. } => {
                EngineError::InvalidArgument(msg)
            }
            RegistryError::Transport(_) => EngineError::Unavailable(msg),
            RegistryError::Store(s) => s.into(),
            RegistryError::DigestMismatch { .. }
            | RegistryError::Invalid(_)
            | RegistryError::Http(_)
            | RegistryError::Tls(_)
            | RegistryError::Cancelled => EngineError::Internal(msg),
        }
    }
}

/// The registry client for a daemon configured by `config`.
pub(crate) fn registry_for(config: &EngineConfig) -> Arc<Registry> {
    Registry::new(
        RegistryConfig {
            certs_dirs: config.registry_certs_dirs.clone(),
            insecure_registries: config.insecure_registries.clone(),
            max_concurrent_downloads: config.max_concurrent_downloads.max(1),
            max_concurrent_uploads: config.max_concurrent_uploads.max(1),
            ..RegistryConfig::default()
        },
        &config.data_root.join("image"),
    )
}

impl Engine {
    /// `POST /images/create?fromImage=…&tag=…&platform=…`.
    ///
    /// `tag` overrides the tag in `from_image`, or is a digest (moby
    /// `api/server/router/image/image_routes.go`). With neither tag nor digest this pulls
    /// every tag of the repository, as dockerd does for `docker pull -a` (the docker CLI
    /// and docker-py send `tag=latest` for a plain pull).
    #[tracing::instrument(skip_all, fields(image = ?from_image, tag = ?tag))]
    pub async fn image_pull(
        &self,
        from_image: String,
        tag: Option<String>,
        platform: Option<String>,
        auth: RegistryAuth,
    ) -> Result<ProgressStream, EngineError> {
        let reference = pull_reference(&from_image, tag.as_deref())?;
        let platform = requested_platform(platform.as_deref())?;
        tracing::info!(reference = %reference, %platform, "pulling image");
        let references = if reference.is_name_only() {
            let tags = self.registry.list_tags(&reference, &auth).await?;
            if tags.is_empty() {
                return Err(EngineError::NotFound(format!(
                    "no tags found for {}",
                    reference.familiar_name()
                )));
            }
            tags.iter()
                .map(|t| reference.clone().with_tag(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EngineError::Internal(format!("registry sent a bad tag: {e}")))?
        } else {
            vec![reference]
        };
        let mut plans = Vec::with_capacity(references.len());
        for r in &references {
            plans.push(self.registry.prepare_pull(r, &platform, &auth).await?);
        }
        let (sink, rx) = ChannelSink::new();
        let store = self.images.clone();
        let events = self.events.clone();
        let task = async move {
            for (plan, reference) in plans.into_iter().zip(references) {
                if let Err(e) = plan.run(store.clone(), sink.clone(), now_rfc3339()).await {
                    tracing::warn!(reference = %reference, error = %e, "pull failed");
                    sink.error(e);
                    return;
                }
                events.image(
                    "pull",
                    &reference.familiar_string(),
                    &reference.familiar_string(),
                );
            }
        };
        tokio::spawn(task.in_current_span());
        Ok(rx)
    }

    /// `POST /images/{name}/push?tag=…`: with no tag in `name` nor `tag`, every tag of the
    /// repository.
    #[tracing::instrument(skip_all, fields(image = ?name, tag = ?tag))]
    pub async fn image_push(
        &self,
        name: String,
        tag: Option<String>,
        auth: RegistryAuth,
    ) -> Result<ProgressStream, EngineError> {
        let mut reference =
            Reference::parse(&name).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        if let Some(t) = tag.filter(|t| !t.is_empty()) {
            reference = reference
                .with_tag(&t)
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        }
        let (sink, rx) = ChannelSink::new();
        let plan = {
            let store = self.images.clone();
            let reference = reference.clone();
            crate::blocking::spawn(move || PushPlan::new(&store, &reference))
                .await
                .map_err(|e| EngineError::Internal(format!("push task failed: {e}")))?
        };
        let plan = match plan {
            Ok(plan) => plan,
            // dockerd names the repository before it looks for the local tags (moby
            // `distribution.Push`), so "An image does not exist locally with the tag" and
            // "tag does not exist" end a 200 stream, as the docker CLI shows them.
            Err(e @ RegistryError::NotFound(_)) => {
                sink.send(Progress::Status(format!(
                    "The push refers to repository [{}]",
                    reference.clone().without_tag_or_digest().full_name()
                )));
                sink.error(e);
                return Ok(rx);
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(reference = %reference, "pushing image");
        let store = self.images.clone();
        let registry = self.registry.clone();
        let events = self.events.clone();
        let task = async move {
            if let Err(e) = plan
                .run(&registry, store, &auth, sink.clone(), now_rfc3339())
                .await
            {
                tracing::warn!(reference = %reference, error = %e, "push failed");
                sink.error(e);
                return;
            }
            events.image(
                "push",
                &reference.familiar_string(),
                &reference.familiar_string(),
            );
        };
        tokio::spawn(task.in_current_span());
        Ok(rx)
    }

    /// `POST /auth`: checks the credentials against the registry (`serveraddress`; Docker
    /// Hub when empty).
    pub async fn registry_login(&self, auth: RegistryAuth) -> Result<AuthResponse, EngineError> {
        let server = auth.server_address.clone();
        self.registry.login(&server, &auth).await?;
        tracing::info!(registry = %server, "login succeeded");
        Ok(AuthResponse {
            status: "Login Succeeded".into(),
            identity_token: String::new(),
        })
    }

    /// `GET /images/search` (moby `registry.Service.Search`): the filters (`is-automated`,
    /// `is-official`, `stars`) and the term checked with dockerd's texts, then the index's
    /// answer filtered. `limit` 0 is dockerd's default of 25.
    pub async fn image_search(
        &self,
        term: &str,
        limit: i64,
        filters: &berth_api_types::filters::Filters,
    ) -> Result<Vec<SearchResult>, EngineError> {
        filters.allow_only(&["is-automated", "is-official", "stars"])?;
        if filters.bool_value("is-automated")? == Some(true) {
            return Ok(Vec::new());
        }
        let official = filters.bool_value("is-official")?;
        let mut stars = 0i64;
        for v in filters.get("stars") {
            let n = v.parse::<i64>().map_err(|_| {
                EngineError::InvalidArgument(format!(
                    "invalid filter 'stars={v}': strconv.Atoi: parsing {v:?}: invalid syntax"
                ))
            })?;
            stars = stars.max(n);
        }
        if term.contains("://") {
            return Err(EngineError::InvalidArgument(format!(
                "invalid repository name: repository name ({term}) should not have a scheme"
            )));
        }
        let limit = if limit == 0 { 25 } else { limit };
        let limit = u32::try_from(limit)
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "limit {limit} is outside the range of [1, 100]"
                ))
            })?;
        let results = self.registry.search(term, limit).await?;
        Ok(results
            .into_iter()
            .filter(|r| official.is_none_or(|o| r.is_official == o))
            .filter(|r| r.star_count >= stars)
            .map(|r| SearchResult {
                is_automated: false,
                ..r
            })
            .collect())
    }

    /// `GET /distribution/{name}/json`: the manifest's descriptor and its platforms.
    pub async fn distribution_inspect(
        &self,
        name: String,
        auth: RegistryAuth,
    ) -> Result<DistributionInspect, EngineError> {
        let reference = Reference::parse_docker_ref(&name)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let info = self
            .registry
            .inspect(&reference, &auth)
            .await
            .map_err(|e| match e {
                // dockerd answers the registry's own words here, without "manifest for …".
                RegistryError::NotFound(m) => EngineError::NotFound(
                    m.rsplit_once(" not found: ")
                        .map(|(_, r)| r.to_string())
                        .unwrap_or(m),
                ),
                other => other.into(),
            })?;
        Ok(DistributionInspect {
            descriptor: Descriptor {
                media_type: info.media_type,
                digest: info.digest.to_string(),
                size: info.size,
            },
            platforms: info.platforms,
        })
    }
}

/// `fromImage` and `tag` as dockerd combines them.
fn pull_reference(from_image: &str, tag: Option<&str>) -> Result<Reference, EngineError> {
    let invalid = |e: berth_image::ReferenceError| EngineError::InvalidArgument(e.to_string());
    // "pull -a" may send a trailing ':' (moby keeps accepting it).
    let image = from_image.trim_end_matches(':');
    let mut reference = Reference::parse(image).map_err(invalid)?;
    if let Some(t) = tag.filter(|t| !t.is_empty()) {
        reference = match Digest::parse(t) {
            Ok(d) => reference.without_tag_or_digest().with_digest(d),
            Err(_) => reference.with_tag(t).map_err(invalid)?,
        };
    }
    // A digest decides alone what is fetched; a bare name means every tag.
    Ok(match reference.digest().copied() {
        Some(d) => reference.without_tag_or_digest().with_digest(d),
        None => reference,
    })
}

/// The `platform` query, or this host's (`linux/amd64` here).
fn requested_platform(p: Option<&str>) -> Result<Platform, EngineError> {
    let host_arch =
        berth_api_types::distribution::normalize_arch(&berth_sys::host::uname().machine);
    let p = p.map(str::trim).filter(|p| !p.is_empty());
    Platform::parse(p.unwrap_or("linux"), &host_arch)
        .map_err(|e| EngineError::from(RegistryError::from(e)))
}

/// Progress into an unbounded channel (progress is rate-limited at the source, so it
/// stays small); a closed channel means the client went away.
struct ChannelSink {
    tx: mpsc::UnboundedSender<ProgressMessage>,
}

impl ChannelSink {
    fn new() -> (Arc<ChannelSink>, ProgressStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(ChannelSink { tx }), rx)
    }

    fn error(&self, e: RegistryError) {
        if !matches!(e, RegistryError::Cancelled) {
            let _ = self.tx.send(ProgressMessage::error(e.to_string()));
        }
    }
}

impl ProgressSink for ChannelSink {
    fn send(&self, event: Progress) {
        let _ = self.tx.send(to_message(event));
    }

    fn cancelled(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One progress event as dockerd writes it.
fn to_message(event: Progress) -> ProgressMessage {
    match event {
        Progress::Status(s) => ProgressMessage::status(s),
        Progress::Named { id, status } => ProgressMessage {
            id: Some(id),
            ..ProgressMessage::status(status)
        },
        Progress::Layer {
            id,
            status,
            current,
            total,
        } => ProgressMessage {
            id: Some(id),
            progress: current.map(|c| progress_bar(c, total.unwrap_or(0))),
            progress_detail: Some(ProgressDetail { current, total }),
            ..ProgressMessage::status(status)
        },
        Progress::PushResult { tag, digest, size } => ProgressMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(serde_json::json!({"Tag": tag, "Digest": digest, "Size": size})),
            ..Default::default()
        },
    }
}

/// moby `pkg/jsonmessage` `JSONProgress.String()` at the daemon's width (bar included, no
/// time left): `[=====>      ]  35.33kB/300kB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let percentage = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!(
        "[{}>{}] ",
        "=".repeat(percentage),
        " ".repeat(50 - percentage)
    );
    if current > total {
        format!("{bar}{:>8}", human_size(current))
    } else {
        format!("{bar}{:>8}/{}", human_size(current), human_size(total))
    }
}

/// go-units `HumanSize`: decimal units, four significant digits (`35.33kB`, `300kB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let int_digits = if size < 1.0 {
        1
    } else {
        size.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_match_dockerd() {
        for (n, want) in [
            (0, "0B"),
            (526, "526B"),
            (3678, "3.678kB"),
            (35_328, "35.33kB"),
            (300_003, "300kB"),
            (300_415, "300.4kB"),
            (307_200, "307.2kB"),
            (1_500_000_000, "1.5GB"),
        ] {
            assert_eq!(human_size(n), want, "{n}");
        }
        // Captured from dockerd 20.10 pushing and pulling.
        assert_eq!(
            progress_bar(35_328, 300_003),
            "[=====>                                             ]  35.33kB/300kB"
        );
        assert_eq!(
            progress_bar(307_200, 300_003),
            "[==================================================>]  307.2kB"
        );
        assert_eq!(
            progress_bar(3678, 300_415),
            "[>                                                  ]  3.678kB/300.4kB"
        );
    }

    #[test]
    fn pull_references_combine_like_dockerd() {
        let d = "sha256:fd9cb985e14ad0b0795f6fa9ffe0288782cc14038eb75e0ca95844700b4359a2";
        for (image, tag, want) in [
            ("busybox", None, "docker.io/library/busybox".to_string()),
            (
                "busybox",
                Some("1.36"),
                "docker.io/library/busybox:1.36".to_string(),
            ),
            (
                "busybox:1.0",
                Some("2.0"),
                "docker.io/library/busybox:2.0".to_string(),
            ),
            ("busybox:", None, "docker.io/library/busybox".to_string()),
            (
                "localhost:5000/a/b",
                Some(""),
                "localhost:5000/a/b".to_string(),
            ),
            (
                "busybox:1.0",
                Some(""),
                "docker.io/library/busybox:1.0".to_string(),
            ),
            ("busybox", Some(d), format!("docker.io/library/busybox@{d}")),
            (
                &format!("busybox:1@{d}"),
                None,
                format!("docker.io/library/busybox@{d}"),
            ),
        ] {
            assert_eq!(
                pull_reference(image, tag).unwrap().to_string(),
                want,
                "{image} {tag:?}"
            );
        }
        for (image, tag) in [("Busybox", None), ("busybox", Some("bad tag")), ("", None)] {
            assert!(matches!(
                pull_reference(image, tag).unwrap_err(),
                EngineError::InvalidArgument(_)
            ));
        }
    }

    #[test]
    fn platforms_default_to_the_host() {
        assert_eq!(requested_platform(None).unwrap().os, "linux");
        assert_eq!(
            requested_platform(Some("linux/arm64"))
                .unwrap()
                .architecture,
            "arm64"
        );
        assert!(requested_platform(Some("linux/amd64/v2/x")).is_err());
    }

    #[test]
    fn messages_have_dockerd_shapes() {
        let v = |p| serde_json::to_value(to_message(p)).unwrap();
        assert_eq!(
            v(Progress::Named {
                id: "latest".into(),
                status: "Pulling from library/busybox".into()
            }),
            serde_json::json!({"status":"Pulling from library/busybox","id":"latest"})
        );
        assert_eq!(
            v(Progress::Layer {
                id: "fa42a38f00d1".into(),
                status: "Pull complete".into(),
                current: None,
                total: None
            }),
            serde_json::json!({"status":"Pull complete","progressDetail":{},"id":"fa42a38f00d1"})
        );
        assert_eq!(
            v(Progress::Layer {
                id: "fa42a38f00d1".into(),
                status: "Downloading".into(),
                current: Some(3678),
                total: Some(300_415)
            }),
            serde_json::json!({"status":"Downloading","progressDetail":{"current":3678,"total":300415},
                "progress":"[>                                                  ]  3.678kB/300.4kB","id":"fa42a38f00d1"})
        );
        assert_eq!(
            v(Progress::PushResult {
                tag: "latest".into(),
                digest: "sha256:x".into(),
                size: 526
            }),
            serde_json::json!({"progressDetail":{},"aux":{"Tag":"latest","Digest":"sha256:x","Size":526}})
        );
    }
}
