//! The image store: layers unpacked once per diffID, image records, and the reference
//! store (`repo:tag` and `repo@digest` → image ID), all under `<data-root>/image`.
//!
//! ```text
//! image/blobs/sha256/<hex>       content: image configs and the layer tars as received
//! image/layers/<diffid-hex>/     diff/ (overlay-ready) + meta.json
//! image/images/<id-hex>.json     one record per image
//! image/refs.json                tags and digests → image ID
//! ```
//!
//! Crash safety comes from write order: blob → layer dir (renamed into place whole) →
//! image record → reference. Deletion runs the other way. At open, records whose layers are
//! missing are dropped and half-made layer dirs removed, so a crash at any instant leaves no
//! broken image visible. Memory holds a cache of disk; every change is written first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};

use crate::config::ImageConfigFile;
use crate::unpack::read_up_to;
use crate::{BlobStore, Digest, Reference};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Docker's wording, which clients match on.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    InvalidReference(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Blob(#[from] crate::BlobError),
    #[error(transparent)]
    Unpack(#[from] crate::UnpackError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A layer on disk, described by `layers/<hex>/meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// Bytes of file content unpacked (what `docker images` adds up).
    pub size: u64,
    /// The blob kept for this layer (the tar as received, possibly compressed).
    pub blob: String,
    pub blob_size: u64,
    pub compression: Compression,
    /// The gzip blob made from this layer when it was last pushed (for layers kept
    /// uncompressed or as zstd), so a later push knows its digest without compressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_gzip: Option<PushedBlob>,
    /// Kept as a tar-split index beside `diff/` instead of a blob (`blob` is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split: bool,
}

/// A blob made for a push: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedBlob {
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps `r` so it yields the plain tar.
    fn decoder<'a>(self, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// One image, as `images/<hex>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the config bytes.
    pub id: String,
    pub diff_ids: Vec<String>,
    /// Sum of the layers' content sizes.
    pub size: u64,
    #[serde(default)]
    pub last_tag_time: Option<String>,
}

impl ImageRecord {
    pub fn hex(&self) -> &str {
        self.id.trim_start_matches("sha256:")
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Refs {
    /// `docker.io/library/busybox:latest` → image ID.
    tags: BTreeMap<String, String>,
    /// `docker.io/library/busybox@sha256:...` → image ID.
    digests: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    images: HashMap<String, ImageRecord>,
    layers: HashMap<String, LayerMeta>,
    refs: Refs,
}

/// What `DELETE /images/{name}` did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Untagged(String),
    Deleted(String),
}

/// The image store. Reads share a lock; mutations are serialised.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    blobs: BlobStore,
    state: RwLock<State>,
    write: Mutex<()>,
}

impl ImageStore {
    /// The in-memory state, read (a panic elsewhere does not poison it for readers).
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens `root` (created if missing) and repairs what a crash may have left.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for d in ["layers", "images"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("cannot create", &p))?;
        }
        let blobs = BlobStore::new(root)?;
        let store = Self {
            root: root.to_path_buf(),
            blobs,
            state: RwLock::new(State::default()),
            write: Mutex::new(()),
        };
        store.load()?;
        Ok(store)
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn load(&self) -> Result<(), StoreError> {
        let mut st = State::default();
        let layers_dir = self.root.join("layers");
        for e in fs::read_dir(&layers_dir).map_err(io_err("cannot read", &layers_dir))? {
            let e = e.map_err(io_err("cannot read", &layers_dir))?;
            let path = e.path();
            let meta = fs::read(path.join("meta.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<LayerMeta>(&b).ok());
            match meta {
                Some(m) if path.join("diff").is_dir() => {
                    st.layers.insert(m.diff_id.clone(), m);
                }
                _ => {
                    tracing::warn!(path = %path.display(), "removing half-made layer");
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
        let images_dir = self.root.join("images");
        for e in fs::read_dir(&images_dir).map_err(io_err("cannot read", &images_dir))? {
            let e = e.map_err(io_err("cannot read", &images_dir))?;
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let rec = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).ok());
            match rec {
                Some(r)
                    if r.diff_ids.iter().all(|d| st.layers.contains_key(d))
                        && self.blobs.contains(&parse_digest(&r.id)?) =>
                {
                    st.images.insert(r.id.clone(), r);
                }
                _ => {
                    tracing::warn!(path = %path.display(), "removing broken image record");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let refs_path = self.root.join("refs.json");
        if let Ok(b) = fs::read(&refs_path) {
            st.refs = serde_json::from_slice(&b).unwrap_or_default();
        }
        // Layers no image uses are leftovers of an interrupted pull, load or delete.
        let used: BTreeSet<String> = st
            .images
            .values()
            .flat_map(|r| r.diff_ids.iter().cloned())
            .collect();
        let orphans: Vec<String> = st
            .layers
            .keys()
            .filter(|d| !used.contains(*d))
            .cloned()
            .collect();
        for d in orphans {
            if let Some(meta) = st.layers.remove(&d) {
                tracing::info!(diff_id = %d, "removing layer no image uses");
                self.remove_layer_files(&d, &meta);
            }
        }
        // Blobs neither a layer nor an image config keeps: leftovers of an interrupted
        // load, import or pull.
        for b in self.blobs.list()? {
            let s = b.to_string();
            if !st.images.contains_key(&s) && !st.layers.values().any(|l| l.blob == s) {
                tracing::info!(blob = %s, "removing blob nothing uses");
                let _ = self.blobs.delete(&b);
            }
        }
        st.refs.tags.retain(|_, id| st.images.contains_key(id));
        st.refs.digests.retain(|_, id| st.images.contains_key(id));
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = st;
        Ok(())
    }

    fn save_refs(&self, refs: &Refs) -> Result<(), StoreError> {
        write_record(&self.root.join("refs.json"), refs)
    }

    /// Adds a layer from a tar stream (plain, gzip or zstd): keeps the stream as a blob,
    /// unpacks it once per diffID. `expected_blob` verifies the stream's digest.
    pub fn add_layer(
        &self,
        input: impl Read,
        expected_blob: Option<&Digest>,
    ) -> Result<LayerMeta, StoreError> {
        let (blob, blob_size) = self.blobs.put_stream(input, expected_blob)?;
        self.add_layer_from_blob(&blob, blob_size).inspect_err(|_| {
            // A refused layer leaves nothing behind, its blob included.
            if !self.blob_in_use(&blob) {
                let _ = self.blobs.delete(&blob);
            }
        })
    }

    /// Deletes a layer's directory (renamed aside first, so a crash mid-removal leaves no
    /// layer that looks whole) and its blob.
    fn remove_layer_files(&self, diff_id: &str, meta: &LayerMeta) {
        let hex = diff_id.trim_start_matches("sha256:");
        let doomed = self.root.join("layers").join(format!(".removing-{hex}"));
        let _ = fs::rename(self.layer_dir(diff_id), &doomed);
        let _ = fs::remove_dir_all(&doomed);
        if let Ok(b) = parse_digest(&meta.blob) {
            let _ = self.blobs.delete(&b);
        }
    }

    /// Unpacks a layer whose tar (as received) is already in the blob store.
    pub fn add_layer_from_blob(
        &self,
        blob: &Digest,
        blob_size: u64,
    ) -> Result<LayerMeta, StoreError> {
        self.add_layer_from_blob_with_progress(blob, blob_size, &mut |_| {})
    }

    /// [`ImageStore::add_layer_from_blob`], calling `progress` with the number of blob
    /// bytes read so far as unpacking goes (for `Extracting` progress).
    pub fn add_layer_from_blob_with_progress(
        &self,
        blob: &Digest,
        blob_size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<LayerMeta, StoreError> {
        let mut head = [0u8; 4];
        let n = read_up_to(&mut self.blobs.open(blob)?, &mut head)
            .map_err(io_err("cannot read blob", Path::new(&blob.to_string())))?;
        let compression = Compression::detect(&head[..n]);
        let file = ProgressReader {
            inner: self.blobs.open(blob)?,
            read: 0,
            progress,
        };
        let mut counter = CountingReader::new(
            compression
                .decoder(io::BufReader::new(file))
                .map_err(io_err(
                    "cannot decompress blob",
                    Path::new(&blob.to_string()),
                ))?,
        );
        let incoming = self.incoming_dir(&blob.hex())?;
        let result = (|| {
            let stats = crate::unpack_layer_into_fresh_dir(
                &mut counter,
                &incoming.join("diff"),
                &crate::UnpackOptions::default(),
            )?;
            // Drain trailing padding so the size and digest cover the whole tar.
            io::copy(&mut counter, &mut io::sink())
                .map_err(io_err("cannot read layer", &incoming))?;
            let meta = LayerMeta {
                diff_id: stats.diff_id.to_string(),
                tar_size: counter.count,
                size: stats.size,
                blob: blob.to_string(),
                blob_size,
                compression,
                pushed_gzip: None,
                split: false,
            };
            Ok::<_, StoreError>(meta)
        })();
        match result {
            Ok(meta) => self.publish_layer(&incoming, meta),
            Err(e) => {
                let _ = fs::remove_dir_all(&incoming);
                Err(e)
            }
        }
    }

    /// Adds a layer from a plain tar stream without keeping the tar: the layer keeps a
    /// tar-split index instead ([`crate::tarsplit`]), from which `docker save` and push
    /// replay the exact bytes. What `docker load` uses, so that loading writes the data
    /// once. `expected` verifies the stream's digest (its diffID).
    pub fn add_layer_split(
        &self,
        input: impl Read,
        expected: Option<&Digest>,
    ) -> Result<LayerMeta, StoreError> {
        let incoming = self.incoming_dir("split")?;
        let mut counter = CountingReader::new(input);
        let result = (|| {
            let stats = crate::unpack::unpack_layer_split(
                &mut counter,
                &incoming.join("diff"),
                &incoming.join(crate::tarsplit::SPLIT_DIR),
                &crate::UnpackOptions::default(),
            )?;
            if stats.compression != crate::unpack::Compression::None {
                return Err(StoreError::Invalid(
                    "a compressed layer cannot be stored without its blob".into(),
                ));
            }
            if let Some(want) = expected.filter(|w| **w != stats.diff_id) {
                return Err(StoreError::Blob(crate::BlobError::Mismatch {
                    expected: *want,
                    actual: stats.diff_id,
                }));
            }
            Ok(LayerMeta {
                diff_id: stats.diff_id.to_string(),
                tar_size: counter.count,
                size: stats.size,
                blob: String::new(),
                blob_size: counter.count,
                compression: Compression::None,
                pushed_gzip: None,
                split: true,
            })
        })();
        match result {
            Ok(meta) => self.publish_layer(&incoming, meta),
            Err(e) => {
                let _ = fs::remove_dir_all(&incoming);
                Err(e)
            }
        }
    }

    /// A fresh, private directory under `layers/` to build a layer in.
    fn incoming_dir(&self, what: &str) -> Result<PathBuf, StoreError> {
        // Unique per call: two pulls may unpack the same blob at once.
        static UNPACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let incoming = self.root.join("layers").join(format!(
            ".incoming-{}-{}-{what}",
            std::process::id(),
            UNPACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ));
        let _ = fs::remove_dir_all(&incoming);
        fs::create_dir_all(&incoming).map_err(io_err("cannot create", &incoming))?;
        Ok(incoming)
    }

    /// Moves a layer built in `incoming` into place, unless another one with the same
    /// diffID got there first (then `incoming` is dropped and the existing one returned).
    fn publish_layer(&self, incoming: &Path, meta: LayerMeta) -> Result<LayerMeta, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = self.read().layers.get(&meta.diff_id) {
            let _ = fs::remove_dir_all(incoming);
            return Ok(existing.clone());
        }
        let meta_path = incoming.join("meta.json");
        write_record(&meta_path, &meta)?;
        let final_dir = self.layer_dir(&meta.diff_id);
        fs::rename(incoming, &final_dir)
            .map_err(io_err("cannot move layer into place", &final_dir))?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .layers
            .insert(meta.diff_id.clone(), meta.clone());
        tracing::debug!(diff_id = %meta.diff_id, size = meta.size, "layer added");
        Ok(meta)
    }

    fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.trim_start_matches("sha256:"))
    }

    /// The overlay-ready directories of an image's layers, bottom first.
    pub fn layer_diff_dirs(&self, image_id: &str) -> Result<Vec<PathBuf>, StoreError> {
        let st = self.read();
        let rec = st
            .images
            .get(image_id)
            .ok_or_else(|| StoreError::NoSuchImage(image_id.to_string()))?;
        Ok(rec
            .diff_ids
            .iter()
            .map(|d| self.layer_dir(d).join("diff"))
            .collect())
    }

    pub fn layer(&self, diff_id: &str) -> Option<LayerMeta> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .layers
            .get(diff_id)
            .cloned()
    }

    /// Removes those of `diff_ids` that no image uses, with their blobs (what a failed
    /// pull or load brought). Returns how many were removed.
    pub fn remove_unused_layers(&self, diff_ids: &[String]) -> usize {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let used: BTreeSet<String> = st
            .images
            .values()
            .flat_map(|r| r.diff_ids.iter().cloned())
            .collect();
        let mut removed = 0;
        for d in diff_ids.iter().filter(|d| !used.contains(*d)) {
            let Some(meta) = st.layers.remove(d) else {
                continue;
            };
            self.remove_layer_files(d, &meta);
            tracing::debug!(diff_id = %d, "removed unused layer");
            removed += 1;
        }
        removed
    }

    /// Remembers the gzip blob a push made for a layer (see [`LayerMeta::pushed_gzip`]).
    pub fn set_pushed_gzip(&self, diff_id: &str, blob: PushedBlob) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut meta = self
            .layer(diff_id)
            .ok_or_else(|| StoreError::Invalid(format!("layer {diff_id} not found")))?;
        meta.pushed_gzip = Some(blob);
        let path = self.layer_dir(diff_id).join("meta.json");
        write_record(&path, &meta)?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .layers
            .insert(diff_id.to_string(), meta);
        Ok(())
    }

    /// Opens a layer as a plain (uncompressed) tar stream.
    pub fn open_layer_tar(&self, diff_id: &str) -> Result<(Box<dyn Read + Send>, u64), StoreError> {
        let meta = self
            .layer(diff_id)
            .ok_or_else(|| StoreError::Invalid(format!("layer {diff_id} not found")))?;
        if meta.split {
            let reader = crate::tarsplit::SplitReader::open(
                &self.layer_dir(diff_id),
                parse_digest(&meta.diff_id)?,
            )
            .map_err(io_err("cannot open layer index", &self.layer_dir(diff_id)))?;
            return Ok((Box::new(reader), meta.tar_size));
        }
        let file = self.blobs.open(&parse_digest(&meta.blob)?)?;
        let r: Box<dyn Read + Send> = match meta.compression {
            Compression::None => Box::new(file),
            Compression::Gzip => {
                Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
            }
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(file)
                    .map_err(io_err("cannot decompress", Path::new(&meta.blob)))?,
            ),
        };
        Ok((r, meta.tar_size))
    }

    /// Registers an image from its config bytes; every layer must already be present.
    /// Returns the record (existing one if the same config was added before).
    pub fn add_image(&self, config: &[u8]) -> Result<ImageRecord, StoreError> {
        let parsed =
            ImageConfigFile::parse(config).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let id = sha256_digest(config);
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = self.read().images.get(&id.to_string()) {
            return Ok(r.clone());
        }
        let mut size = 0;
        {
            let st = self.read();
            for d in &parsed.rootfs.diff_ids {
                size += st
                    .layers
                    .get(d)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "image config names layer {d}, which is not present"
                        ))
                    })?
                    .size;
            }
        }
        self.blobs.put_stream(config, Some(&id))?;
        let rec = ImageRecord {
            id: id.to_string(),
            diff_ids: parsed.rootfs.diff_ids.clone(),
            size,
            last_tag_time: None,
        };
        let path = self.root.join("images").join(format!("{}.json", id.hex()));
        write_record(&path, &rec)?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .images
            .insert(rec.id.clone(), rec.clone());
        tracing::info!(image = %rec.id, "image added");
        Ok(rec)
    }

    /// The config bytes of an image.
    pub fn config_bytes(&self, image_id: &str) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::new();
        self.blobs
            .open(&parse_digest(image_id)?)?
            .read_to_end(&mut buf)
            .map_err(io_err("cannot read image config", Path::new(image_id)))?;
        Ok(buf)
    }

    pub fn config(&self, image_id: &str) -> Result<ImageConfigFile, StoreError> {
        ImageConfigFile::parse(&self.config_bytes(image_id)?)
            .map_err(|e| StoreError::Invalid(e.to_string()))
    }

    /// Points `reference` (a tag, or a digest reference) at `image_id`, moving it from any
    /// image it named before.
    pub fn tag(&self, image_id: &str, reference: &Reference, now: &str) -> Result<(), StoreError> {
        // moby `reference/store.go`: `sha256:<hex>` would read as an image ID, so a
        // repository named like the digest algorithm could never be named again.
        if reference.familiar_name() == Digest::ALGORITHM {
            return Err(StoreError::Invalid(
                "refusing to create an ambiguous tag using digest algorithm as name".into(),
            ));
        }
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut refs = self.read().refs.clone();
        if !self.read().images.contains_key(image_id) {
            return Err(StoreError::NoSuchImage(image_id.to_string()));
        }
        let key = reference.to_string();
        let before = if reference.digest().is_some() {
            refs.digests.insert(key, image_id.to_string())
        } else {
            refs.tags.insert(
                reference.clone().with_default_tag().to_string(),
                image_id.to_string(),
            )
        };
        // Naming the image the reference names already (a cached rebuild's `-t`) leaves
        // the references as they are: no write, no fsync.
        if before.as_deref() != Some(image_id) {
            self.save_refs(&refs)?;
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.refs = refs;
        if let Some(rec) = st.images.get_mut(image_id) {
            rec.last_tag_time = Some(now.to_string());
            let path = self.root.join("images").join(format!("{}.json", rec.hex()));
            let _ = write_record(&path, &*rec);
        }
        Ok(())
    }

    /// Finds an image by full or short ID, `repo:tag` or `repo@digest`.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let st = self.read();
        let no_such = || StoreError::NoSuchImage(name.to_string());
        // An ID or unambiguous ID prefix (Docker accepts them with or without "sha256:").
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty()
            && hex.len() <= 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            let full = format!("sha256:{hex}");
            if let Some(r) = st.images.get(&full) {
                return Ok(r.clone());
            }
            let matches: Vec<_> = st
                .images
                .values()
                .filter(|r| r.hex().starts_with(hex))
                .collect();
            if matches.len() == 1
                && (name.starts_with("sha256:") || !looks_like_name(name, &st.refs))
            {
                return Ok(matches[0].clone());
            }
            if name.starts_with("sha256:") {
                return Err(no_such());
            }
        }
        let reference: Reference = name.parse().map_err(|_| no_such())?;
        let id = if reference.digest().is_some() {
            st.refs.digests.get(&reference.to_string())
        } else {
            st.refs
                .tags
                .get(&reference.clone().with_default_tag().to_string())
        };
        // moby `ErrImageDoesNotExist`: a name alone is named with its default tag, in
        // its familiar form ("No such image: busybox:latest").
        let named = || {
            let shown = if reference.digest().is_some() {
                reference.familiar_string()
            } else {
                reference.clone().with_default_tag().familiar_string()
            };
            StoreError::NoSuchImage(shown)
        };
        id.and_then(|id| st.images.get(id))
            .cloned()
            .ok_or_else(named)
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .images
            .values()
            .cloned()
            .collect()
    }

    /// Whether an image config or a layer keeps blob `d`.
    pub fn blob_in_use(&self, d: &Digest) -> bool {
        let s = d.to_string();
        let st = self.read();
        st.images.contains_key(&s) || st.layers.values().any(|l| l.blob == s)
    }

    pub fn count(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .images
            .len()
    }

    /// Tags (`busybox:latest`, familiar form) and digests naming `image_id`.
    pub fn references_of(&self, image_id: &str) -> (Vec<String>, Vec<String>) {
        let st = self.read();
        let familiar = |s: &String| {
            s.parse::<Reference>()
                .map(|r| r.familiar_string())
                .unwrap_or_else(|_| s.clone())
        };
        let tags = st
            .refs
            .tags
            .iter()
            .filter(|(_, v)| *v == image_id)
            .map(|(k, _)| familiar(k))
            .collect();
        let digests = st
            .refs
            .digests
            .iter()
            .filter(|(_, v)| *v == image_id)
            .map(|(k, _)| familiar(k))
            .collect();
        (tags, digests)
    }

    /// `docker rmi`: untags `name`; deletes the image when nothing names it any more (or
    /// when `force`), then every layer no other image uses unless `noprune`.
    /// `in_use` names a container using an image ID, and whether it runs (the engine
    /// knows containers). The conflict rules and texts are moby's
    /// (`daemon/images/image_delete.go`): a container pins the last name of its image
    /// unless forced, and no force removes an image a running container uses.
    pub fn delete(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
        in_use: &dyn Fn(&str) -> Option<ImageUser>,
    ) -> Result<Vec<Deleted>, StoreError> {
        let rec = self.resolve(name)?;
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut refs = self.read().refs.clone();
        let short = &rec.hex()[..12];
        let mut out = Vec::new();

        let by_reference = name.parse::<Reference>().ok().filter(|r| {
            let key = if r.digest().is_some() {
                r.to_string()
            } else {
                r.clone().with_default_tag().to_string()
            };
            refs.tags.get(&key).or(refs.digests.get(&key)) == Some(&rec.id)
        });
        let tag_count = refs.tags.values().filter(|v| **v == rec.id).count();

        let familiar = |s: &String| {
            s.parse::<Reference>()
                .map(|r| r.familiar_string())
                .unwrap_or_else(|_| s.clone())
        };
        let name_count = tag_count + refs.digests.values().filter(|v| **v == rec.id).count();
        let user = in_use(&rec.id);
        if let (Some(_), Some(u), false, 1) = (&by_reference, &user, force, name_count) {
            return Err(StoreError::Conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {short}",
                u.short_id()
            )));
        }

        if let Some(r) = by_reference.as_ref().filter(|_| !force || tag_count > 1) {
            // Removing one name of several only untags (moby `daemon/images/image_delete.go`).
            let key = if r.digest().is_some() {
                r.to_string()
            } else {
                r.clone().with_default_tag().to_string()
            };
            refs.tags.remove(&key);
            refs.digests.remove(&key);
            out.push(Deleted::Untagged(if r.digest().is_some() {
                r.familiar_string()
            } else {
                r.clone().with_default_tag().familiar_string()
            }));
            let still_named = refs.tags.values().any(|v| *v == rec.id);
            if still_named {
                self.save_refs(&refs)?;
                self.state.write().unwrap_or_else(|e| e.into_inner()).refs = refs;
                return Ok(out);
            }
        } else if by_reference.is_none() && tag_count > 1 && !force {
            return Err(StoreError::Conflict(format!(
                "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
            )));
        }

        match &user {
            // Removing the last name of an image a container uses only untags it.
            Some(u) if by_reference.is_some() && (u.running || !force) => {
                for (k, _) in refs.tags.iter().filter(|(_, v)| **v == rec.id) {
                    out.push(Deleted::Untagged(familiar(k)));
                }
                refs.tags.retain(|_, v| *v != rec.id);
                refs.digests.retain(|_, v| *v != rec.id);
                self.save_refs(&refs)?;
                self.state.write().unwrap_or_else(|e| e.into_inner()).refs = refs;
                return Ok(out);
            }
            Some(u) if u.running => {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
                    u.short_id()
                )));
            }
            Some(u) if !force => {
                return Err(StoreError::Conflict(format!(
                    "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                    u.short_id()
                )));
            }
            _ => {}
        }

        // Remove every remaining name, then the record, then unused layers and blobs.
        for (k, _) in refs.tags.iter().filter(|(_, v)| **v == rec.id) {
            out.push(Deleted::Untagged(familiar(k)));
        }
        for (k, _) in refs.digests.iter().filter(|(_, v)| **v == rec.id) {
            out.push(Deleted::Untagged(familiar(k)));
        }
        refs.tags.retain(|_, v| *v != rec.id);
        refs.digests.retain(|_, v| *v != rec.id);
        self.save_refs(&refs)?;
        let path = self.root.join("images").join(format!("{}.json", rec.hex()));
        fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        out.push(Deleted::Deleted(rec.id.clone()));
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.refs = refs;
        st.images.remove(&rec.id);
        let _ = self.blobs.delete(&parse_digest(&rec.id)?);
        if !noprune {
            let used: BTreeSet<&String> =
                st.images.values().flat_map(|r| r.diff_ids.iter()).collect();
            let unused: Vec<String> = rec
                .diff_ids
                .iter()
                .filter(|d| !used.contains(d))
                .cloned()
                .collect();
            for d in unused {
                if let Some(meta) = st.layers.remove(&d) {
                    self.remove_layer_files(&d, &meta);
                    out.push(Deleted::Deleted(d));
                }
            }
        }
        Ok(out)
    }
}

/// A container that uses an image, as `delete` needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub container_id: String,
    pub running: bool,
}

impl ImageUser {
    fn short_id(&self) -> &str {
        &self.container_id[..self.container_id.len().min(12)]
    }
}

/// Whether a hex-looking `name` is also a tagged repository name (then the name wins).
fn looks_like_name(name: &str, refs: &Refs) -> bool {
    name.parse::<Reference>()
        .map(|r| {
            refs.tags
                .contains_key(&r.clone().with_default_tag().to_string())
        })
        .unwrap_or(false)
}

/// Writes a store record as pretty JSON, atomically, owner-only.
fn write_record(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(value).expect("store records serialize");
    berth_sys::fs::atomic_write(path, &body, 0o600).map_err(io_err("cannot write", path))
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Invalid(format!("invalid digest {s:?}")))
}

/// sha256 of `bytes` as a `Digest`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

/// Reports how many bytes were read through it.
struct ProgressReader<'a, R> {
    inner: R,
    read: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        Self { inner, count: 0 }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `docker load` fuzz target: `RepoTags: ["sha256:<hex>"]` made the tag
    /// `docker.io/library/sha256:<hex>`, which no one can name again (`sha256:<hex>` reads
    /// as an image ID). moby's reference store refuses it (`reference/store.go`).
    #[test]
    fn tag_named_like_a_digest_algorithm_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path()).unwrap();
        let image = store
            .add_image(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#)
            .unwrap();
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for name in [
            format!("sha256:{hex}"),
            "sha256".into(),
            "docker.io/sha256:1".into(),
        ] {
            let r: Reference = name.parse().unwrap();
            let e = store.tag(&image.id, &r, "now").unwrap_err();
            assert!(matches!(e, StoreError::Invalid(_)), "{name}: {e:?}");
            assert_eq!(
                e.to_string(),
                "refusing to create an ambiguous tag using digest algorithm as name"
            );
        }
        // Other names with `sha256` in them are fine.
        for name in ["sha256x:1", "user/sha256:1", "sha256/x"] {
            store.tag(&image.id, &name.parse().unwrap(), "now").unwrap();
        }
    }

    #[test]
    fn tagging_again_with_the_same_name_leaves_the_references_file() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path()).unwrap();
        let a = store
            .add_image(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#)
            .unwrap();
        let b = store
            .add_image(br#"{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)
            .unwrap();
        let r: Reference = "app:1".parse().unwrap();
        let inode = || {
            std::fs::metadata(tmp.path().join("refs.json"))
                .unwrap()
                .ino()
        };
        store.tag(&a.id, &r, "t1").unwrap();
        let first = inode();
        store.tag(&a.id, &r, "t2").unwrap();
        assert_eq!(inode(), first, "refs.json was rewritten for the same tag");
        assert_eq!(
            store.resolve("app:1").unwrap().last_tag_time.as_deref(),
            Some("t2")
        );
        // Moving the tag writes it.
        store.tag(&b.id, &r, "t3").unwrap();
        assert_ne!(inode(), first);
        assert_eq!(store.resolve("app:1").unwrap().id, b.id);
    }
}
