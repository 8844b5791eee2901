//! `runtime.v1.ImageService` over the engine's image calls (the same store and pull path
//! as `docker pull`), and the translation between CRI messages and engine values.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api_types::filters::Filters;
use berth_api_types::image::ImageInspect;
use berth_api_types::reference::Reference;
use berth_engine::distribution::RegistryAuth;
use berth_engine::{Engine, EngineError};
use futures_util::stream::BoxStream;
use tonic::{Request, Response, Status};

use crate::engine_status;
use crate::proto::image_service_server::ImageService;
use crate::proto::*;

pub(crate) struct Images {
    engine: Arc<Engine>,
}

impl Images {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Images { engine }
    }

    /// The image `name` (a reference or an ID) names, `None` when there is none.
    async fn find(&self, name: &str) -> Result<Option<ImageInspect>, Status> {
        match self.engine.image_inspect(name.to_string()).await {
            Ok(i) => Ok(Some(i)),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(engine_status(e)),
        }
    }

    /// A container (any state) created from image `id`, or mounting it, if there is one.
    async fn first_user(&self, id: &str) -> Result<Option<String>, Status> {
        let query = serde_json::json!({ "ancestor": [id] }).to_string();
        let filters = Filters::parse(Some(&query)).map_err(|e| Status::internal(e.to_string()))?;
        let users = self
            .engine
            .container_list(true, &filters)
            .await
            .map_err(engine_status)?;
        let ancestor_of = users.first().map(|c| {
            c.get("Id")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        });
        // A container that mounts it as an image volume uses it too.
        Ok(ancestor_of.or_else(|| self.engine.image_user(id)))
    }

    /// Every image, or only the one `filter` names (none when it names nothing).
    async fn list(&self, filter: Option<&ImageFilter>) -> Result<Vec<Image>, Status> {
        let wanted = filter
            .and_then(|f| f.image.as_ref())
            .map(|s| s.image.as_str())
            .filter(|s| !s.is_empty());
        if let Some(name) = wanted {
            return Ok(self.find(name).await?.iter().map(to_cri_image).collect());
        }
        let summaries = self
            .engine
            .image_list(Default::default())
            .await
            .map_err(engine_status)?;
        let mut out = Vec::with_capacity(summaries.len());
        for s in summaries {
            // One removed since the list was taken is no longer there to report.
            if let Some(i) = self.find(&s.id).await? {
                out.push(to_cri_image(&i));
            }
        }
        Ok(out)
    }
}

/// The image named in a request; an empty or missing spec is the client's error.
fn image_name(spec: Option<&ImageSpec>) -> Result<&str, Status> {
    spec.map(|s| s.image.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Status::invalid_argument("image spec is empty: an image name is required"))
}

/// A reference as the kubelet writes it (`docker.io/library/busybox:latest`); what does not
/// parse is passed on as the engine wrote it.
fn normalized(reference: &str) -> String {
    Reference::parse(reference).map_or_else(|_| reference.to_string(), |r| r.to_string())
}

/// The reference `PullImage` fetches: a bare name means its `latest` tag (one image, not
/// every tag as `docker pull -a`).
pub(crate) fn pull_reference(image: &str) -> Result<String, Status> {
    let r = Reference::parse(image)
        .map_err(|e| Status::invalid_argument(format!("invalid image reference {image:?}: {e}")))?;
    Ok(r.with_default_tag().to_string())
}

/// The registry credentials the engine takes, from the CRI's.
pub(crate) fn registry_auth(auth: Option<&AuthConfig>) -> RegistryAuth {
    let Some(a) = auth else {
        return RegistryAuth::default();
    };
    RegistryAuth {
        username: a.username.clone(),
        password: a.password.clone(),
        auth: a.auth.clone(),
        server_address: a.server_address.clone(),
        identity_token: a.identity_token.clone(),
        registry_token: a.registry_token.clone(),
        ..RegistryAuth::default()
    }
}

impl fmt::Debug for AuthConfig {
    /// As the engine's credentials it becomes: the secrets redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&registry_auth(Some(self)), f)
    }
}

/// The image config's `User` as the CRI wants it: a numeric user is a uid, a name is a
/// username; the group part (`user:group`) is not the image's to say here.
pub(crate) fn image_user(user: &str) -> (Option<Int64Value>, String) {
    let user = user.split(':').next().unwrap_or("");
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

/// An engine image as a CRI `Image`.
pub(crate) fn to_cri_image(i: &ImageInspect) -> Image {
    let user = i.config.get("User").and_then(|u| u.as_str()).unwrap_or("");
    let (uid, username) = image_user(user);
    Image {
        id: i.id.clone(),
        repo_tags: i.repo_tags.iter().map(|t| normalized(t)).collect(),
        repo_digests: i.repo_digests.iter().map(|d| normalized(d)).collect(),
        size: u64::try_from(i.size).unwrap_or(0),
        uid,
        username,
        spec: Some(ImageSpec {
            image: i.id.clone(),
            ..Default::default()
        }),
        // The kubelet's image GC leaves pinned images alone (containerd pins its sandbox
        // image the same way).
        pinned: crate::pause::is_pause(&i.repo_tags),
    }
}

/// Bytes and inodes used under `root`, not following links nor crossing into other
/// filesystems (`du -x`); hard links count once. Blocking.
pub(crate) fn disk_usage(root: &Path) -> std::io::Result<(u64, u64)> {
    let top = std::fs::symlink_metadata(root)?;
    let dev = top.dev();
    let mut seen = HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut count = |m: &std::fs::Metadata| {
        if seen.insert(m.ino()) {
            bytes = bytes.saturating_add(m.blocks().saturating_mul(512));
            inodes = inodes.saturating_add(1);
        }
    };
    count(&top);
    let mut dirs: Vec<PathBuf> = if top.is_dir() {
        vec![root.to_path_buf()]
    } else {
        vec![]
    };
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // Removed while walking (a layer deleted by a concurrent rmi).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            // DirEntry::metadata does not follow a symlink.
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            count(&m);
            if m.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok((bytes, inodes))
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[tonic::async_trait]
impl ImageService for Images {
    type StreamImagesStream = BoxStream<'static, Result<StreamImagesResponse, Status>>;

    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let images = self.list(request.get_ref().filter.as_ref()).await?;
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn stream_images(
        &self,
        request: Request<StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        let images = self.list(request.get_ref().filter.as_ref()).await?;
        let one = futures_util::stream::iter([Ok(StreamImagesResponse { images })]);
        Ok(Response::new(Box::pin(one)))
    }

    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let req = request.get_ref();
        let name = image_name(req.image.as_ref())?;
        // An image that is not there is an empty answer, not an error (the CRI's rule).
        let Some(inspect) = self.find(name).await? else {
            return Ok(Response::new(ImageStatusResponse::default()));
        };
        let mut info = HashMap::new();
        if req.verbose {
            let json = serde_json::to_string(&inspect)
                .map_err(|e| Status::internal(format!("cannot encode the image's details: {e}")))?;
            info.insert("info".to_string(), json);
        }
        Ok(Response::new(ImageStatusResponse {
            image: Some(to_cri_image(&inspect)),
            info,
        }))
    }

    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let req = request.into_inner();
        let reference = pull_reference(image_name(req.image.as_ref())?)?;
        let auth = registry_auth(req.auth.as_ref());
        tracing::info!(reference = %reference, "CRI PullImage");
        let mut progress = self
            .engine
            .image_pull(reference.clone(), None, None, auth)
            .await
            .map_err(engine_status)?;
        // The pull runs until its progress stream ends; a failure is its last message.
        let mut failure = None;
        while let Some(msg) = progress.recv().await {
            if let Some(e) = msg.error {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            return Err(Status::internal(format!(
                "failed to pull image {reference:?}: {e}"
            )));
        }
        let image = self.find(&reference).await?.ok_or_else(|| {
            Status::internal(format!("image {reference:?} is missing after its pull"))
        })?;
        Ok(Response::new(PullImageResponse {
            image_ref: image.id,
        }))
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let name = image_name(request.get_ref().image.as_ref())?;
        // Removing what is not there succeeds (the CRI's rule).
        let Some(image) = self.find(name).await? else {
            return Ok(Response::new(RemoveImageResponse {}));
        };
        // An image a container uses stays, whole: checked before any name goes.
        if let Some(user) = self.first_user(&image.id).await? {
            return Err(Status::failed_precondition(format!(
                "image {} is in use by container {user}: remove the container first",
                image.id
            )));
        }
        // The image goes with every name it has, as containerd's RemoveImage: each
        // reference is untagged (the last one removes the image).
        let names = image.repo_tags.iter().chain(&image.repo_digests).cloned();
        for n in names.chain(std::iter::once(image.id.clone())) {
            match self.engine.image_delete(n, false, false).await {
                Ok(_) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(engine_status(e)),
            }
        }
        Ok(Response::new(RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let root = self.engine.config().data_root.join("image");
        let walk_root = root.clone();
        let (bytes, inodes) = tokio::task::spawn_blocking(move || disk_usage(&walk_root))
            .await
            .map_err(|e| Status::internal(format!("image store usage task failed: {e}")))?
            .map_err(|e| {
                Status::internal(format!(
                    "cannot measure the image store {}: {e}",
                    root.display()
                ))
            })?;
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                timestamp: now_nanos(),
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: root.display().to_string(),
                }),
                used_bytes: Some(UInt64Value { value: bytes }),
                inodes_used: Some(UInt64Value { value: inodes }),
            }],
            container_filesystems: vec![],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_pull_latest_and_references_are_full() {
        assert_eq!(
            pull_reference("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            pull_reference("127.0.0.1:5000/a/b:1").unwrap(),
            "127.0.0.1:5000/a/b:1"
        );
        let d = "sha256:fd9cb985e14ad0b0795f6fa9ffe0288782cc14038eb75e0ca95844700b4359a2";
        assert_eq!(
            pull_reference(&format!("busybox@{d}")).unwrap(),
            format!("docker.io/library/busybox@{d}")
        );
        let err = pull_reference("Not A Reference").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            normalized("busybox:latest"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn empty_image_spec_is_invalid() {
        assert_eq!(
            image_name(None).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let empty = ImageSpec::default();
        assert_eq!(
            image_name(Some(&empty)).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn cri_auth_maps_to_registry_auth() {
        let a = AuthConfig {
            username: "alice".into(),
            password: "s3cret".into(),
            auth: "YWxpY2U6czNjcmV0".into(),
            server_address: "127.0.0.1:5000".into(),
            identity_token: "id".into(),
            registry_token: "bearer".into(),
        };
        let r = registry_auth(Some(&a));
        assert_eq!(r.username, "alice");
        assert_eq!(r.password, "s3cret");
        assert_eq!(r.auth, "YWxpY2U6czNjcmV0");
        assert_eq!(r.server_address, "127.0.0.1:5000");
        assert_eq!(r.identity_token, "id");
        assert_eq!(r.registry_token, "bearer");
        let none = registry_auth(None);
        assert!(none.username.is_empty() && none.password.is_empty());
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("bearer"),
            "{shown}"
        );
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn image_user_is_a_uid_or_a_name() {
        assert_eq!(image_user(""), (None, String::new()));
        assert_eq!(
            image_user("1000"),
            (Some(Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(
            image_user("0:0"),
            (Some(Int64Value { value: 0 }), String::new())
        );
        assert_eq!(image_user("nobody:nogroup"), (None, "nobody".into()));
    }

    #[test]
    fn disk_usage_counts_files_once_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(dir.path().join("d/f"), dir.path().join("g")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("l")).unwrap();
        let (bytes, inodes) = disk_usage(dir.path()).unwrap();
        // root, d, f (twice linked), l
        assert_eq!(inodes, 4);
        assert!(bytes >= 10_000, "{bytes}");
        assert!(bytes < 1_000_000, "the link to /usr was followed: {bytes}");
    }

    #[test]
    fn auth_config_debug_redacts_the_secrets() {
        let a = AuthConfig {
            username: "u".into(),
            password: "hunter2".into(),
            auth: "dTpodW50ZXIy".into(),
            identity_token: "id-tok".into(),
            registry_token: "reg-tok".into(),
            server_address: "r.example".into(),
        };
        let text = format!("{a:?}");
        for secret in ["hunter2", "dTpodW50ZXIy", "id-tok", "reg-tok"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("\"u\"") && text.contains("r.example"),
            "{text}"
        );
    }
}
