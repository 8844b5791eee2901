//! Pull: resolve a reference to one image manifest ([`Registry::prepare_pull`], which
//! fails before any progress is streamed, so the caller can still answer with an HTTP
//! error), then fetch it ([`PullPlan::run`]).
//!
//! Layers are fetched in parallel (`max_concurrent_downloads`), each streamed straight into
//! the blob store, hashed on the way and refused unless it matches its digest; a broken
//! connection resumes with `Range` a few times before giving up. Each layer is unpacked as
//! soon as it is complete, and its diffID checked against the image config. Layers the
//! store already has are not fetched. Only when every layer is in place is the image
//! registered and tagged, so a failure leaves no image; layers and blobs this pull brought
//! that nothing uses are removed again.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use reqwest::StatusCode;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use super::client::RepoClient;
use super::manifest::{Descriptor, ImageManifest, Manifest, Platform};
use super::progress::Throttle;
use super::silence::within;
use super::{Progress, ProgressSink, Registry, RegistryAuth, RegistryError};
use crate::config::ImageConfigFile;
use crate::store::{ImageStore, LayerMeta};
use crate::{Digest, Reference};

/// Largest image config accepted.
const MAX_CONFIG_SIZE: usize = 8 << 20;

/// A resolved pull: the image manifest to fetch and the digest to record.
#[derive(Debug)]
pub struct PullPlan {
    client: Arc<RepoClient>,
    reference: Reference,
    /// Digest of what the reference names (the index, for a multi-platform image): the
    /// `RepoDigest` Docker records.
    pub digest: Digest,
    manifest: ImageManifest,
}

/// What a finished pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    pub image_id: String,
    pub digest: Digest,
    /// The image was present and the reference already named it.
    pub up_to_date: bool,
}

/// What `GET /distribution/{name}/json` reports.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platforms: Vec<Platform>,
}

impl Registry {
    /// Fetches the manifest `reference` names (tag, else digest; `latest` when neither)
    /// and, for an index, the entry for `platform`.
    pub async fn prepare_pull(
        self: &Arc<Self>,
        reference: &Reference,
        platform: &Platform,
        auth: &RegistryAuth,
    ) -> Result<PullPlan, RegistryError> {
        let client = Arc::new(self.repository(reference, auth, "pull", Vec::new()).await?);
        let (manifest, digest, _, _) = fetch_top(&client, reference).await?;
        let manifest = match manifest {
            Manifest::Image(m) => m,
            Manifest::Index(index) => {
                let entry = index.select(platform)?;
                let entry_digest = parse_digest(&entry.digest)?;
                let (body, content_type) = client.get_manifest(&entry.digest).await?;
                check_digest(&entry_digest, &body)?;
                let name = format!("{}@{}", reference.familiar_name(), entry.digest);
                match Manifest::parse(&body, &content_type, &name)?.0 {
                    Manifest::Image(m) => m,
                    Manifest::Index(_) => {
                        return Err(RegistryError::UnsupportedMediaType {
                            media_type: "nested index".into(),
                            reference: name,
                        })
                    }
                }
            }
        };
        Ok(PullPlan {
            client,
            reference: reference.clone(),
            digest,
            manifest,
        })
    }

    /// Every tag of `reference`'s repository, as the registry lists them (`pull -a`).
    pub async fn list_tags(
        self: &Arc<Self>,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Vec<String>, RegistryError> {
        let client = self.repository(reference, auth, "pull", Vec::new()).await?;
        client.list_tags().await
    }

    /// The descriptor of what `reference` names and the platforms it offers.
    pub async fn inspect(
        self: &Arc<Self>,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<ManifestInfo, RegistryError> {
        let client = self.repository(reference, auth, "pull", Vec::new()).await?;
        let (manifest, digest, media_type, size) = fetch_top(&client, reference).await?;
        let platforms = match manifest {
            Manifest::Index(i) => i.manifests.into_iter().filter_map(|d| d.platform).collect(),
            Manifest::Image(m) => {
                let config = client
                    .get_blob_bytes(&parse_digest(&m.config.digest)?, MAX_CONFIG_SIZE)
                    .await?;
                let c: Platform = serde_json::from_slice(&config)
                    .map_err(|e| RegistryError::Invalid(format!("invalid image config: {e}")))?;
                vec![c]
            }
        };
        Ok(ManifestInfo {
            media_type,
            digest,
            size,
            platforms,
        })
    }
}

/// GETs the manifest `reference` names: parsed, its digest, media type and size.
async fn fetch_top(
    client: &RepoClient,
    reference: &Reference,
) -> Result<(Manifest, Digest, String, u64), RegistryError> {
    let tag_or_digest = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference
            .tag()
            .unwrap_or(crate::reference::DEFAULT_TAG)
            .to_string(),
    };
    let shown = reference.clone().with_default_tag().familiar_string();
    let (body, content_type) = client
        .get_manifest(&tag_or_digest)
        .await
        .map_err(|e| match e {
            // dockerd: "manifest for busybox:nope not found: manifest unknown: manifest unknown".
            RegistryError::NotFound(m) => {
                RegistryError::NotFound(format!("manifest for {shown} not found: {m}"))
            }
            other => other,
        })?;
    let digest = Digest::of(&body);
    if let Some(want) = reference.digest() {
        check_digest(want, &body)?;
    }
    let (manifest, media_type) = Manifest::parse(&body, &content_type, &shown)?;
    Ok((manifest, digest, media_type, body.len() as u64))
}

impl PullPlan {
    /// Fetches, verifies and unpacks every missing layer, registers the image, tags it
    /// and records `repo@digest`. `now` is the RFC 3339 time for the tag record.
    pub async fn run(
        self,
        store: Arc<ImageStore>,
        progress: Arc<dyn ProgressSink>,
        now: String,
    ) -> Result<PullOutcome, RegistryError> {
        let reference = self.reference.clone();
        let id = match reference.digest() {
            Some(_) => reference.familiar_string(),
            None => reference
                .tag()
                .unwrap_or(crate::reference::DEFAULT_TAG)
                .to_string(),
        };
        progress.send(Progress::Named {
            id,
            status: format!("Pulling from {}", reference.path()),
        });

        let config_digest = parse_digest(&self.manifest.config.digest)?;
        let config_bytes = self
            .client
            .get_blob_bytes(&config_digest, MAX_CONFIG_SIZE)
            .await?;
        let config = ImageConfigFile::parse(&config_bytes)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != self.manifest.layers.len() {
            return Err(RegistryError::Invalid(format!(
                "image config lists {} layers but the manifest {}",
                diff_ids.len(),
                self.manifest.layers.len()
            )));
        }

        // An image the store has (its ID is the config's digest) needs nothing fetched,
        // and says nothing of its layers, as dockerd's `pullSchema2` ("If the image
        // already exists locally, no need to pull anything").
        let have = {
            let store = store.clone();
            let id = config_digest.to_string();
            tokio::task::spawn_blocking(move || store.resolve(&id).is_ok())
                .await
                .unwrap_or(false)
        };
        let mut created = Vec::new();
        let mut fetched = Vec::new();
        let result = if have {
            Ok(())
        } else {
            self.fetch_layers(&store, &progress, &diff_ids, &mut created, &mut fetched)
                .await
        };
        let outcome = match result {
            Ok(()) => self.register(&store, config_bytes, &now).await,
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            let store = store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                store.remove_unused_layers(&created);
                for b in fetched {
                    if !store.blob_in_use(&b) {
                        let _ = store.blobs().delete(&b);
                    }
                }
            })
            .await;
            return outcome;
        }
        let outcome = outcome?;
        let mut blobs: Vec<Digest> = vec![config_digest];
        for l in &self.manifest.layers {
            blobs.push(parse_digest(&l.digest)?);
        }
        self.client
            .registry()
            .known()
            .add_async(self.client.domain(), self.client.repo(), blobs)
            .await;
        progress.send(Progress::Status(format!("Digest: {}", self.digest)));
        let shown = reference.with_default_tag().familiar_string();
        progress.send(Progress::Status(if outcome.up_to_date {
            format!("Status: Image is up to date for {shown}")
        } else {
            format!("Status: Downloaded newer image for {shown}")
        }));
        Ok(outcome)
    }

    /// Every layer the store lacks, at most `max_concurrent_downloads` at once. On the
    /// first failure the others stop; all are awaited before returning.
    async fn fetch_layers(
        &self,
        store: &Arc<ImageStore>,
        progress: &Arc<dyn ProgressSink>,
        diff_ids: &[String],
        created: &mut Vec<String>,
        fetched: &mut Vec<Digest>,
    ) -> Result<(), RegistryError> {
        let config = self.client.registry().config().clone();
        let semaphore = Arc::new(Semaphore::new(config.max_concurrent_downloads.max(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        for (desc, diff_id) in self.manifest.layers.iter().zip(diff_ids) {
            let digest = parse_digest(&desc.digest)?;
            let short = digest.short_id();
            if !seen.insert(diff_id.clone()) {
                continue;
            }
            if store.layer(diff_id).is_some() {
                progress.send(Progress::layer(&short, "Already exists"));
                continue;
            }
            progress.send(Progress::layer(&short, "Pulling fs layer"));
            jobs.push((desc.clone(), digest, diff_id.clone()));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (desc, digest, diff_id) in jobs {
            let job = LayerJob {
                client: self.client.clone(),
                store: store.clone(),
                progress: progress.clone(),
                stop: stop.clone(),
                desc,
                digest,
                diff_id,
                retries: config.download_retries,
            };
            let semaphore = semaphore.clone();
            let progress = progress.clone();
            tasks.spawn(async move {
                let permit = match semaphore.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        progress.send(Progress::layer(&job.digest.short_id(), "Waiting"));
                        semaphore.acquire_owned().await.expect("semaphore open")
                    }
                };
                let handle = Handle::current();
                let digest = job.digest;
                let result = tokio::task::spawn_blocking(move || job.run(handle))
                    .await
                    .unwrap_or_else(|e| {
                        Err(RegistryError::Invalid(format!("layer task failed: {e}")))
                    });
                drop(permit);
                (digest, result)
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let (digest, result) =
                joined.map_err(|e| RegistryError::Invalid(format!("layer task failed: {e}")))?;
            match result {
                Ok(r) => {
                    if r.downloaded {
                        fetched.push(digest);
                    }
                    if r.created {
                        created.push(r.meta.diff_id);
                    }
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    fetched.push(digest);
                    if first_error.is_none()
                        || matches!(first_error, Some(RegistryError::Cancelled))
                    {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Adds the image, tags it and records the digest reference (on the blocking pool).
    async fn register(
        &self,
        store: &Arc<ImageStore>,
        config_bytes: Bytes,
        now: &str,
    ) -> Result<PullOutcome, RegistryError> {
        let store = store.clone();
        let reference = self.reference.clone();
        let digest = self.digest;
        let now = now.to_string();
        tokio::task::spawn_blocking(move || {
            let id = Digest::of(&config_bytes).to_string();
            let existed = store.resolve(&id).is_ok();
            let tag_ref = reference
                .digest()
                .is_none()
                .then(|| reference.clone().with_default_tag());
            let already_tagged = existed
                && match &tag_ref {
                    Some(t) => store.resolve(&t.to_string()).is_ok_and(|r| r.id == id),
                    None => true,
                };
            let rec = store.add_image(&config_bytes)?;
            if let Some(t) = &tag_ref {
                store.tag(&rec.id, t, &now)?;
            }
            let by_digest = reference.without_tag_or_digest().with_digest(digest);
            store.tag(&rec.id, &by_digest, &now)?;
            Ok(PullOutcome {
                image_id: rec.id,
                digest,
                up_to_date: already_tagged,
            })
        })
        .await
        .map_err(|e| RegistryError::Invalid(format!("pull task failed: {e}")))?
    }
}

/// One layer to fetch and unpack, run on the blocking pool.
struct LayerJob {
    client: Arc<RepoClient>,
    store: Arc<ImageStore>,
    progress: Arc<dyn ProgressSink>,
    stop: Arc<AtomicBool>,
    desc: Descriptor,
    digest: Digest,
    diff_id: String,
    retries: u32,
}

struct LayerDone {
    meta: LayerMeta,
    downloaded: bool,
    created: bool,
}

impl LayerJob {
    fn run(self, handle: Handle) -> Result<LayerDone, RegistryError> {
        let short = self.digest.short_id();
        let blobs = self.store.blobs();
        // A blob left by an earlier, interrupted pull was verified when it was stored.
        let have_blob = blobs.size(&self.digest).is_ok_and(|n| n == self.desc.size);
        let mut downloaded = false;
        if !have_blob {
            let reader = BlobDownload {
                handle,
                client: self.client.clone(),
                digest: self.digest,
                size: self.desc.size,
                id: short.clone(),
                progress: self.progress.clone(),
                throttle: Throttle::new(),
                stop: self.stop.clone(),
                resp: None,
                pending: Bytes::new(),
                offset: 0,
                skip: 0,
                failures: 0,
                retries: self.retries,
            };
            downloaded = true;
            blobs
                .put_stream(reader, Some(&self.digest))
                .map_err(RegistryError::from_blob)?;
            self.progress
                .send(Progress::layer(&short, "Verifying Checksum"));
        }
        self.progress
            .send(Progress::layer(&short, "Download complete"));
        if self.stop.load(Ordering::Relaxed) || self.progress.cancelled() {
            return Err(RegistryError::Cancelled);
        }
        let existed = self.store.layer(&self.diff_id).is_some();
        let mut throttle = Throttle::new();
        let total = self.desc.size;
        let progress = self.progress.clone();
        let meta = self.store.add_layer_from_blob_with_progress(
            &self.digest,
            self.desc.size,
            &mut |n| {
                if throttle.ready(n, total) {
                    progress.send(Progress::layer_bytes(&short, "Extracting", n, total));
                }
            },
        )?;
        if meta.diff_id != self.diff_id {
            if !existed {
                self.store
                    .remove_unused_layers(std::slice::from_ref(&meta.diff_id));
            }
            return Err(RegistryError::Invalid(format!(
                "layer {} unpacks to diff ID {}, but the image config expects {}",
                self.digest, meta.diff_id, self.diff_id
            )));
        }
        self.progress.send(Progress::layer(&short, "Pull complete"));
        Ok(LayerDone {
            meta,
            downloaded,
            created: !existed,
        })
    }
}

/// A blocking reader over a blob download that resumes with `Range` when the connection
/// breaks, reports `Downloading` progress, and never yields more than the descriptor's
/// size. Registry failures travel inside the `io::Error` (see
/// [`RegistryError::from_io`]).
struct BlobDownload {
    handle: Handle,
    client: Arc<RepoClient>,
    digest: Digest,
    size: u64,
    id: String,
    progress: Arc<dyn ProgressSink>,
    throttle: Throttle,
    stop: Arc<AtomicBool>,
    resp: Option<reqwest::Response>,
    pending: Bytes,
    /// Bytes handed to the reader so far.
    offset: u64,
    /// Bytes still to drop from the current response (a registry that ignored `Range`).
    skip: u64,
    /// Consecutive failures without progress.
    failures: u32,
    retries: u32,
}

impl BlobDownload {
    fn next_chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        if self.resp.is_none() {
            let resp = self
                .handle
                .block_on(self.client.get_blob(&self.digest, self.offset))?;
            self.skip = match resp.status() {
                StatusCode::PARTIAL_CONTENT => {
                    let start = resp
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(self.offset) {
                        return Err(RegistryError::Invalid(format!(
                            "registry resumed blob {} at the wrong offset",
                            self.digest
                        )));
                    }
                    0
                }
                _ => self.offset,
            };
            if self.offset > 0 {
                tracing::info!(digest = %self.digest, offset = self.offset, resumed = self.skip == 0, "resuming blob download");
            }
            self.resp = Some(resp);
        }
        let resp = self.resp.as_mut().expect("response set above");
        let what = format!("blob {}", self.digest);
        self.handle
            .block_on(within(resp.chunk(), "GET", &what))?
            .map_err(|e| RegistryError::transport("GET", &what, &e))
    }

    /// Drops the connection and waits before the next attempt, or gives up.
    fn retry(&mut self, e: RegistryError) -> io::Result<()> {
        self.resp = None;
        if !e.is_retryable() || self.failures >= self.retries {
            return Err(io::Error::other(e));
        }
        self.failures += 1;
        let delay = Duration::from_millis(250 << (self.failures - 1).min(4));
        tracing::warn!(digest = %self.digest, offset = self.offset, attempt = self.failures, error = %e, "blob download interrupted; retrying");
        std::thread::sleep(delay);
        Ok(())
    }
}

impl Read for BlobDownload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.stop.load(Ordering::Relaxed) || self.progress.cancelled() {
                return Err(io::Error::other(RegistryError::Cancelled));
            }
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.advance(n);
                self.offset += n as u64;
                super::count_pulled(n);
                if self.throttle.ready(self.offset, self.size) {
                    self.progress.send(Progress::layer_bytes(
                        &self.id,
                        "Downloading",
                        self.offset,
                        self.size,
                    ));
                }
                return Ok(n);
            }
            if self.offset >= self.size {
                return Ok(0);
            }
            match self.next_chunk() {
                Ok(Some(mut chunk)) => {
                    let drop_n = (self.skip as usize).min(chunk.len());
                    chunk.advance(drop_n);
                    self.skip -= drop_n as u64;
                    if self.offset + chunk.len() as u64 > self.size {
                        return Err(io::Error::other(RegistryError::Invalid(format!(
                            "blob {} is larger than its manifest says ({} bytes)",
                            self.digest, self.size
                        ))));
                    }
                    if !chunk.is_empty() {
                        self.failures = 0;
                    }
                    self.pending = chunk;
                }
                Ok(None) => self.retry(RegistryError::Transport(format!(
                    "connection closed after {} of {} bytes of blob {}",
                    self.offset, self.size, self.digest
                )))?,
                Err(e) => self.retry(e)?,
            }
        }
    }
}

fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    Digest::parse(s).map_err(|e| RegistryError::Invalid(format!("invalid digest {s:?}: {e}")))
}

fn check_digest(want: &Digest, body: &[u8]) -> Result<(), RegistryError> {
    let actual = Digest::of(body);
    if actual != *want {
        return Err(RegistryError::DigestMismatch {
            expected: *want,
            actual,
        });
    }
    Ok(())
}
