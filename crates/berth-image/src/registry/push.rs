//! Push: send an image's layers, config and a Docker schema-2 manifest to a repository.
//!
//! For each layer the registry first gets a chance not to need it: `HEAD` the blob in the
//! target repository ("Layer already exists"), then a cross-repository mount from a
//! repository known to hold it ("Mounted from …"). Otherwise it is uploaded: the gzip blob
//! we hold in one `PUT` after `POST`, or, for a layer kept as a plain tar or zstd, a gzip
//! made on the fly and streamed in one `PATCH` before the closing `PUT ?digest=` (its
//! digest is then remembered in the layer's meta so the next push can skip it without
//! compressing). Then the config, then the manifest; the manifest digest is returned and
//! recorded as the image's `repo@digest`.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use super::client::{Mount, RepoClient};
use super::manifest::{
    docker_manifest_bytes, Descriptor, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
};
use super::progress::Throttle;
use super::{Progress, ProgressSink, Registry, RegistryAuth, RegistryError};
use crate::chunks::StreamWriter;
use crate::gzip::GzipWriter;
use crate::store::{Compression, ImageRecord, ImageStore, LayerMeta, PushedBlob};
use crate::{Digest, DigestWriter, Reference};

/// Mount sources asked for in one token (Docker Hub limits scopes per request).
const MAX_MOUNT_SOURCES: usize = 8;
/// Mount attempts per layer before uploading.
const MAX_MOUNT_TRIES: usize = 3;
/// Size of the buffers an upload body is made of.
const STREAM_CHUNK: usize = 256 * 1024;
/// Tar bytes read at once when compressing a layer for upload.
const READ_CHUNK: usize = 1024 * 1024;

/// What to push: the repository and each tag with its image.
#[derive(Debug, Clone)]
pub struct PushPlan {
    repository: Reference,
    tags: Vec<(String, ImageRecord)>,
}

/// One pushed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedTag {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

/// What a finished push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub tags: Vec<PushedTag>,
}

impl PushPlan {
    /// Finds the local images: the one `reference`'s tag names, or with no tag every tag
    /// of the repository (as dockerd does for an empty `tag`). Blocking.
    ///
    /// Messages are dockerd's: "An image does not exist locally with the tag: REPO" when
    /// the repository has no tag at all, "tag does not exist: REPO:TAG" when it lacks this
    /// one (moby `distribution/push.go`, `daemon/containerd/image_push.go`).
    pub fn new(store: &ImageStore, reference: &Reference) -> Result<PushPlan, RegistryError> {
        if reference.digest().is_some() {
            return Err(RegistryError::InvalidArgument(
                "cannot push a digest reference".into(),
            ));
        }
        let repository = reference.clone().without_tag_or_digest();
        let mut all = Vec::new();
        for rec in store.list() {
            for t in store.references_of(&rec.id).0 {
                let Ok(r) = t.parse::<Reference>() else {
                    continue;
                };
                if let (true, Some(tag)) = (r.full_name() == repository.full_name(), r.tag()) {
                    all.push((tag.to_string(), rec.clone()));
                }
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        if all.is_empty() {
            return Err(RegistryError::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_name()
            )));
        }
        let tags = match reference.tag() {
            None => all,
            Some(tag) => {
                let one: Vec<_> = all.into_iter().filter(|(t, _)| t == tag).collect();
                if one.is_empty() {
                    return Err(RegistryError::NotFound(format!(
                        "tag does not exist: {}",
                        reference.familiar_string()
                    )));
                }
                one
            }
        };
        Ok(PushPlan { repository, tags })
    }

    /// Pushes every tag of the plan, in order.
    pub async fn run(
        self,
        registry: &Arc<Registry>,
        store: Arc<ImageStore>,
        auth: &RegistryAuth,
        progress: Arc<dyn ProgressSink>,
        now: String,
    ) -> Result<PushOutcome, RegistryError> {
        progress.send(Progress::Status(format!(
            "The push refers to repository [{}]",
            self.repository.full_name()
        )));
        let domain = self.repository.domain().to_string();
        // Every repository that may lend us a blob, for the token's scope.
        let mut sources: Vec<String> = Vec::new();
        for (_, rec) in &self.tags {
            for d in &rec.diff_ids {
                if let Some(blob) = store.layer(d).as_ref().and_then(push_blob) {
                    for r in registry.known().repos(&domain, &blob.0) {
                        if r != self.repository.path()
                            && !sources.contains(&r)
                            && sources.len() < MAX_MOUNT_SOURCES
                        {
                            sources.push(r);
                        }
                    }
                }
            }
        }
        let client = Arc::new(
            registry
                .repository(&self.repository, auth, "pull,push", sources)
                .await?,
        );
        let mut out = Vec::new();
        for (tag, rec) in &self.tags {
            out.push(push_tag(&client, &store, &progress, &self.repository, tag, rec, &now).await?);
        }
        Ok(PushOutcome { tags: out })
    }
}

/// The gzip blob a layer would be pushed as, when already known.
fn push_blob(meta: &LayerMeta) -> Option<(Digest, u64)> {
    match meta.compression {
        Compression::Gzip => Digest::parse(&meta.blob).ok().map(|d| (d, meta.blob_size)),
        _ => meta
            .pushed_gzip
            .as_ref()
            .and_then(|p| Digest::parse(&p.digest).ok().map(|d| (d, p.size))),
    }
}

async fn push_tag(
    client: &Arc<RepoClient>,
    store: &Arc<ImageStore>,
    progress: &Arc<dyn ProgressSink>,
    repository: &Reference,
    tag: &str,
    rec: &ImageRecord,
    now: &str,
) -> Result<PushedTag, RegistryError> {
    let mut metas = Vec::new();
    for d in &rec.diff_ids {
        let meta = store.layer(d).ok_or_else(|| {
            RegistryError::Invalid(format!("layer {d} of image {} is missing", rec.id))
        })?;
        metas.push(meta);
    }
    // Layers appear bottom first; Docker lists them top first.
    for m in metas.iter().rev() {
        progress.send(Progress::layer(&short(&m.diff_id), "Preparing"));
    }
    let max = client.registry().config().max_concurrent_uploads.max(1);
    let semaphore = Arc::new(Semaphore::new(max));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, meta) in metas.iter().cloned().enumerate() {
        let (client, store, progress, semaphore) = (
            client.clone(),
            store.clone(),
            progress.clone(),
            semaphore.clone(),
        );
        tasks.spawn(async move {
            let permit = match semaphore.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    progress.send(Progress::layer(&short(&meta.diff_id), "Waiting"));
                    semaphore.acquire_owned().await.expect("semaphore open")
                }
            };
            let r = push_layer(&client, &store, &progress, &meta).await;
            drop(permit);
            (i, r)
        });
    }
    let mut layers: Vec<Option<Descriptor>> = vec![None; metas.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, result) =
            joined.map_err(|e| RegistryError::Invalid(format!("upload task failed: {e}")))?;
        match result {
            Ok(desc) => layers[i] = Some(desc),
            Err(e) => {
                tasks.abort_all();
                return Err(e);
            }
        }
    }
    let layers: Vec<Descriptor> = layers
        .into_iter()
        .map(|d| d.expect("every layer pushed"))
        .collect();

    let config = {
        let store = store.clone();
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || store.config_bytes(&id))
            .await
            .map_err(|e| RegistryError::Invalid(format!("config task failed: {e}")))??
    };
    let config_digest = Digest::of(&config);
    let config_desc = descriptor(DOCKER_CONFIG, config_digest, config.len() as u64);
    if client.head_blob(&config_digest).await?.is_none() {
        let session = client.start_upload().await?;
        let size = config.len() as u64;
        client
            .put_blob(&session, &config_digest, size, reqwest::Body::from(config))
            .await?;
    }

    let manifest = docker_manifest_bytes(config_desc, layers.clone());
    let digest = Digest::of(&manifest);
    let size = manifest.len() as u64;
    client.put_manifest(tag, manifest, DOCKER_MANIFEST).await?;

    let mut blobs = vec![config_digest];
    for l in &layers {
        if let Ok(d) = Digest::parse(&l.digest) {
            blobs.push(d);
        }
    }
    client
        .registry()
        .known()
        .add_async(client.domain(), client.repo(), blobs)
        .await;
    {
        let store = store.clone();
        let id = rec.id.clone();
        let by_digest = repository.clone().with_digest(digest);
        let now = now.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = store.tag(&id, &by_digest, &now) {
                tracing::warn!(error = %e, "cannot record pushed digest");
            }
        })
        .await;
    }
    progress.send(Progress::Status(format!(
        "{tag}: digest: {digest} size: {size}"
    )));
    progress.send(Progress::PushResult {
        tag: tag.to_string(),
        digest: digest.to_string(),
        size,
    });
    Ok(PushedTag {
        tag: tag.to_string(),
        digest,
        size,
    })
}

/// Makes sure the repository has one layer; returns its manifest descriptor.
async fn push_layer(
    client: &Arc<RepoClient>,
    store: &Arc<ImageStore>,
    progress: &Arc<dyn ProgressSink>,
    meta: &LayerMeta,
) -> Result<Descriptor, RegistryError> {
    let id = short(&meta.diff_id);
    let mut session = None;
    if let Some((digest, size)) = push_blob(meta) {
        if client.head_blob(&digest).await?.is_some() {
            progress.send(Progress::layer(&id, "Layer already exists"));
            return Ok(descriptor(DOCKER_LAYER_GZIP, digest, size));
        }
        let sources: Vec<String> = client
            .registry()
            .known()
            .repos(client.domain(), &digest)
            .into_iter()
            .filter(|r| r != client.repo())
            .take(MAX_MOUNT_TRIES)
            .collect();
        for from in sources {
            match client.mount(&digest, &from).await {
                Ok(Mount::Mounted) => {
                    progress.send(Progress::layer(&id, format!("Mounted from {from}")));
                    return Ok(descriptor(DOCKER_LAYER_GZIP, digest, size));
                }
                Ok(Mount::Upload(s)) => session = Some(s),
                Err(e) => {
                    tracing::debug!(%digest, from = %from, error = %e, "cross-repository mount failed")
                }
            }
        }
        if meta.compression == Compression::Gzip {
            let session = match session {
                Some(s) => s,
                None => client.start_upload().await?,
            };
            let file = store
                .blobs()
                .open(&digest)
                .map_err(RegistryError::from_blob)?;
            let body = file_body(file, id.clone(), size, progress.clone());
            client.put_blob(&session, &digest, size, body).await?;
            progress.send(Progress::layer(&id, "Pushed"));
            return Ok(descriptor(DOCKER_LAYER_GZIP, digest, size));
        }
    }
    // A plain or zstd layer: gzip it on the way out.
    let session = match session {
        Some(s) => s,
        None => client.start_upload().await?,
    };
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let compress = {
        let store = store.clone();
        let meta = meta.clone();
        let progress = progress.clone();
        let id = id.clone();
        let level = client.registry().config().push_gzip_level.min(9);
        tokio::task::spawn_blocking(move || gzip_layer(&store, &meta, tx, &id, level, &*progress))
    };
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let patched = client.patch_blob(&session, body).await;
    let compressed = compress
        .await
        .map_err(|e| RegistryError::Invalid(format!("compression task failed: {e}")))?;
    let session = patched?;
    let (digest, size) = compressed?;
    client.finish_upload(&session, &digest).await?;
    let store = store.clone();
    let diff_id = meta.diff_id.clone();
    let remember = PushedBlob {
        digest: digest.to_string(),
        size,
    };
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = store.set_pushed_gzip(&diff_id, remember) {
            tracing::warn!(error = %e, "cannot remember pushed layer digest");
        }
    })
    .await;
    progress.send(Progress::layer(&id, "Pushed"));
    Ok(descriptor(DOCKER_LAYER_GZIP, digest, size))
}

/// Compresses a layer's tar into `tx`; returns the gzip's digest and size. Progress
/// counts tar bytes, as dockerd's does.
///
/// The gzip is [`crate::gzip::GzipWriter`]'s: stretches that do not compress (random or
/// already-compressed data) go out stored instead of costing a deflate pass for nothing.
fn gzip_layer(
    store: &ImageStore,
    meta: &LayerMeta,
    tx: mpsc::Sender<io::Result<Bytes>>,
    id: &str,
    level: u32,
    progress: &dyn ProgressSink,
) -> Result<(Digest, u64), RegistryError> {
    let (mut tar, total) = store.open_layer_tar(&meta.diff_id)?;
    let sink = StreamWriter::with_chunk_size(tx, STREAM_CHUNK);
    let mut gz = GzipWriter::new(DigestWriter::new(sink), level);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut read = 0u64;
    let mut throttle = Throttle::new();
    let broken = |e: io::Error| RegistryError::Transport(format!("upload stream broke: {e}"));
    loop {
        if progress.cancelled() {
            return Err(RegistryError::Cancelled);
        }
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(RegistryError::Invalid(format!(
                    "cannot read layer {}: {e}",
                    meta.diff_id
                )))
            }
        };
        gz.write_all(&buf[..n]).map_err(broken)?;
        read += n as u64;
        if throttle.ready(read, total) {
            progress.send(Progress::layer_bytes(id, "Pushing", read, total));
        }
    }
    let stored = gz.stored_bytes();
    let writer = gz.finish().map_err(broken)?;
    let (mut sink, digest, size) = writer.into_parts();
    sink.flush().map_err(broken)?;
    tracing::debug!(layer = %meta.diff_id, tar = read, stored, gzip = size, "layer compressed for push");
    Ok((digest, size))
}

/// A blob file as an upload body, reporting `Pushing` progress.
fn file_body(
    file: std::fs::File,
    id: String,
    total: u64,
    progress: Arc<dyn ProgressSink>,
) -> reqwest::Body {
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), STREAM_CHUNK);
    let mut sent = 0u64;
    let mut throttle = Throttle::new();
    reqwest::Body::wrap_stream(stream.map(move |chunk| {
        if let Ok(c) = &chunk {
            sent += c.len() as u64;
            if throttle.ready(sent, total) {
                progress.send(Progress::layer_bytes(&id, "Pushing", sent, total));
            }
        }
        chunk
    }))
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        size,
        digest: digest.to_string(),
        urls: Vec::new(),
        platform: None,
    }
}

/// Docker's short id of a layer in push progress: the diff ID's first 12 hex digits.
fn short(diff_id: &str) -> String {
    let hex = diff_id.trim_start_matches("sha256:");
    hex[..hex.len().min(crate::digest::SHORT_ID_LEN)].to_string()
}

impl Registry {
    /// Convenience: [`PushPlan::new`] on the blocking pool, then [`PushPlan::run`].
    pub async fn push(
        self: &Arc<Self>,
        store: Arc<ImageStore>,
        reference: &Reference,
        auth: &RegistryAuth,
        progress: Arc<dyn ProgressSink>,
        now: String,
    ) -> Result<PushOutcome, RegistryError> {
        let plan = {
            let store = store.clone();
            let reference = reference.clone();
            tokio::task::spawn_blocking(move || PushPlan::new(&store, &reference))
                .await
                .map_err(|e| RegistryError::Invalid(format!("push task failed: {e}")))??
        };
        plan.run(self, store, auth, progress, now).await
    }
}
