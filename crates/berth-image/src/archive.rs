//! Image archives: `docker save` output (manifest.json plus an OCI layout, which both
//! `docker load` and skopeo's `docker-archive:`/`oci-archive:` read), `docker load` input
//! (that format and the legacy `<id>/layer.tar` one), and `docker import` of a rootfs tar.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::changes::apply_changes;
use crate::config::{History, ImageConfigFile, RootFs};
use crate::store::{parse_digest, sha256_digest, ImageRecord, ImageStore, StoreError};
use crate::unpack::read_up_to;
use crate::{Digest, Reference};

/// Largest JSON file `load` keeps in memory (manifests and configs are small: a config
/// with a long history is well under 1 MiB).
const MAX_JSON: u64 = 16 << 20;

/// What `load` holds in memory at most while it reads an archive: the archive is the
/// client's, so neither one entry nor the number of entries may grow memory unbounded.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Bytes of one JSON entry (manifest.json, index.json, configs, OCI manifests).
    json: u64,
    /// Bytes of all JSON entries together.
    json_total: u64,
    /// Archive members remembered (JSON entries, blobs, layers, links): a save of
    /// hundreds of images with dozens of layers each is a few thousand.
    members: usize,
}

const LIMITS: Limits = Limits {
    json: MAX_JSON,
    json_total: 64 << 20,
    members: 65_536,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// One image of a save: its record and the names to write for it.
pub struct SaveItem {
    pub image: ImageRecord,
    /// Familiar `repo:tag` names.
    pub tags: Vec<String>,
}

/// Writes a `docker save` tar of `items` to `out`.
pub fn save(store: &ImageStore, items: &[SaveItem], out: impl Write) -> Result<(), StoreError> {
    let mut tar = tar::Builder::new(out);
    let mut written: BTreeMap<String, ()> = BTreeMap::new();
    let mut manifest = Vec::new();
    let mut index = Vec::new();
    let wio = |e: io::Error| StoreError::Io {
        what: "cannot write archive",
        path: "<save>".into(),
        source: e,
    };
    let add_bytes = |tar: &mut tar::Builder<_>, path: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, data)
    };
    for item in items {
        let config = store.config_bytes(&item.image.id)?;
        let config_path = format!("blobs/sha256/{}", item.image.hex());
        let mut layer_descs = Vec::new();
        let mut layer_paths = Vec::new();
        for d in &item.image.diff_ids {
            let hex = d.trim_start_matches("sha256:");
            let path = format!("blobs/sha256/{hex}");
            let (reader, size) = store.open_layer_tar(d)?;
            if written.insert(path.clone(), ()).is_none() {
                let mut h = tar::Header::new_gnu();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, &path, reader).map_err(wio)?;
            }
            layer_descs.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d,
                "size": size,
            }));
            layer_paths.push(path);
        }
        if written.insert(config_path.clone(), ()).is_none() {
            add_bytes(&mut tar, &config_path, &config).map_err(wio)?;
        }
        let oci_manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": item.image.id,
                "size": config.len(),
            },
            "layers": layer_descs,
        }))
        .expect("manifest");
        let manifest_digest = sha256_digest(&oci_manifest);
        let mpath = format!("blobs/sha256/{}", manifest_digest.hex());
        if written.insert(mpath.clone(), ()).is_none() {
            add_bytes(&mut tar, &mpath, &oci_manifest).map_err(wio)?;
        }
        let names: Vec<Option<&String>> = if item.tags.is_empty() {
            vec![None]
        } else {
            item.tags.iter().map(Some).collect()
        };
        for name in names {
            let mut desc = json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest.to_string(),
                "size": oci_manifest.len(),
            });
            if let Some(n) = name {
                let full = n
                    .parse::<Reference>()
                    .map(|r| r.clone().with_default_tag().to_string())
                    .unwrap_or_else(|_| n.clone());
                let tag = full
                    .rsplit_once(':')
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default();
                desc["annotations"] = json!({
                    "io.containerd.image.name": full,
                    "org.opencontainers.image.ref.name": tag,
                });
            }
            index.push(desc);
        }
        manifest.push(ManifestEntry {
            config: config_path,
            repo_tags: Some(item.tags.clone()),
            layers: layer_paths,
        });
    }
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(wio)?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index,
    }))
    .expect("index");
    add_bytes(&mut tar, "index.json", &index).map_err(wio)?;
    add_bytes(
        &mut tar,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest"),
    )
    .map_err(wio)?;
    tar.into_inner().map_err(wio)?.flush().map_err(wio)?;
    Ok(())
}

/// What `load` made of one manifest entry.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub image: ImageRecord,
    /// Familiar names tagged.
    pub tags: Vec<String>,
}

/// Reads a `docker save` tar: every blob verified as it is stored, layers unpacked, images
/// registered and tagged. Nothing is tagged unless its image is whole. Blobs the archive
/// brought that end up unused are removed again, also on failure.
pub fn load(
    store: &ImageStore,
    input: impl Read,
    now: &str,
) -> Result<Vec<LoadedImage>, StoreError> {
    load_limited(store, input, now, LIMITS)
}

fn load_limited(
    store: &ImageStore,
    input: impl Read,
    now: &str,
    limits: Limits,
) -> Result<Vec<LoadedImage>, StoreError> {
    let mut added_blobs = Vec::new();
    let mut added_layers = Vec::new();
    let result = load_inner(
        store,
        input,
        now,
        limits,
        &mut added_blobs,
        &mut added_layers,
    );
    if result.is_err() {
        store.remove_unused_layers(&added_layers);
    }
    for b in added_blobs {
        if !store.blob_in_use(&b) {
            let _ = store.blobs().delete(&b);
        }
    }
    result
}

fn load_inner(
    store: &ImageStore,
    input: impl Read,
    now: &str,
    limits: Limits,
    added_blobs: &mut Vec<Digest>,
    added_layers: &mut Vec<String>,
) -> Result<Vec<LoadedImage>, StoreError> {
    let bad = |m: String| StoreError::Invalid(format!("invalid archive: {m}"));
    // The input is the client's: a read error means a broken or truncated upload, and its
    // text may quote the input, so it is summarised rather than echoed.
    let rio = |e: io::Error| {
        tracing::debug!(error = %e, "load: cannot read archive");
        StoreError::Invalid(
            "invalid archive: not a readable tar file (truncated or not made by `docker save`?)"
                .into(),
        )
    };
    let mut archive = tar::Archive::new(input);
    let mut json_files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut blobs: HashMap<String, Digest> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    // Archive path of a layer unpacked on the way → its diffID.
    let mut split_layers: HashMap<String, String> = HashMap::new();
    let mut json_held = 0u64;
    for entry in archive.entries().map_err(rio)? {
        let mut entry = entry.map_err(rio)?;
        if json_files.len() + blobs.len() + links.len() + split_layers.len() >= limits.members {
            return Err(bad(format!(
                "more than {} files (not made by `docker save`?)",
                limits.members
            )));
        }
        let path = clean(&entry.path().map_err(rio)?.to_string_lossy());
        match entry.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name().map_err(rio)? {
                    let target = target.to_string_lossy().to_string();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let base = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        clean(&format!("{base}/{target}"))
                    } else {
                        clean(&target)
                    };
                    links.insert(path, resolved);
                }
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => continue,
        }
        if path.ends_with(".json") || path == "repositories" || path == "oci-layout" {
            let size = entry.size();
            if size > limits.json {
                return Err(bad(format!(
                    "{path} is too large ({size} bytes, at most {} allowed)",
                    limits.json
                )));
            }
            // A path seen twice replaces the earlier entry (as tar extraction would).
            let before = json_files.get(&path).map_or(0, |b| b.len() as u64);
            json_held = json_held.saturating_sub(before).saturating_add(size);
            if json_held > limits.json_total {
                return Err(bad(format!(
                    "more than {} bytes of JSON files (not made by `docker save`?)",
                    limits.json_total
                )));
            }
            let mut buf = Vec::new();
            (&mut entry)
                .take(limits.json)
                .read_to_end(&mut buf)
                .map_err(rio)?;
            json_files.insert(path, buf);
        } else {
            let expected = match path.strip_prefix("blobs/sha256/") {
                Some(hex) => Some(
                    parse_digest(&format!("sha256:{hex}"))
                        .map_err(|_| bad(format!("bad blob name {path}")))?,
                ),
                None => None,
            };
            // A plain tar is a layer: unpacked as it streams by, kept as a tar-split
            // index rather than a second copy. Anything else (configs, compressed
            // layers) goes to the blob store first.
            let mut head = [0u8; 512];
            let n = read_up_to(&mut entry, &mut head).map_err(rio)?;
            let src = io::Cursor::new(&head[..n]).chain(&mut entry);
            if n == head.len() && is_tar_header(&head) {
                let known = expected
                    .as_ref()
                    .filter(|d| store.layer(&d.to_string()).is_some());
                let diff_id = match known {
                    Some(d) => d.to_string(),
                    None => {
                        let meta = store.add_layer_split(src, expected.as_ref())?;
                        added_layers.push(meta.diff_id.clone());
                        meta.diff_id
                    }
                };
                split_layers.insert(path, diff_id);
            } else {
                let (d, _) = store.blobs().put_stream(src, expected.as_ref())?;
                added_blobs.push(d);
                blobs.insert(path, d);
            }
        }
    }
    let manifest = json_files
        .get("manifest.json")
        .ok_or_else(|| bad("no manifest.json found (is this a `docker save` archive?)".into()))?;
    let manifest: Vec<ManifestEntry> =
        serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let resolve = |p: &str| {
        let mut p = clean(p);
        for _ in 0..16 {
            match links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    };
    let mut out = Vec::new();
    for m in manifest {
        let cpath = resolve(&m.config);
        let config = match json_files.get(&cpath) {
            Some(b) => b.clone(),
            None => {
                let d = blobs
                    .get(&cpath)
                    .ok_or_else(|| bad(format!("config {} missing", m.config)))?;
                let mut buf = Vec::new();
                store
                    .blobs()
                    .open(d)?
                    .take(limits.json)
                    .read_to_end(&mut buf)
                    .map_err(rio)?;
                buf
            }
        };
        let parsed =
            ImageConfigFile::parse(&config).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if parsed.rootfs.diff_ids.len() != m.layers.len() {
            return Err(bad(format!(
                "config lists {} layers, manifest {}",
                parsed.rootfs.diff_ids.len(),
                m.layers.len()
            )));
        }
        for (i, l) in m.layers.iter().enumerate() {
            let want = &parsed.rootfs.diff_ids[i];
            if store.layer(want).is_some() {
                continue;
            }
            let lpath = resolve(l);
            if let Some(got) = split_layers.get(&lpath) {
                return Err(bad(format!(
                    "layer {l} has diff_id {got}, config expects {want}"
                )));
            }
            let d = blobs
                .get(&lpath)
                .ok_or_else(|| bad(format!("layer {l} missing")))?;
            let size = store.blobs().size(d)?;
            let meta = store.add_layer_from_blob(d, size)?;
            added_layers.push(meta.diff_id.clone());
            if &meta.diff_id != want {
                return Err(bad(format!(
                    "layer {l} has diff_id {}, config expects {want}",
                    meta.diff_id
                )));
            }
        }
        let image = store.add_image(&config)?;
        let mut tags = Vec::new();
        for t in m.repo_tags.unwrap_or_default() {
            let r: Reference = t.parse().map_err(|e| bad(format!("bad tag {t:?}: {e}")))?;
            store.tag(&image.id, &r, now)?;
            tags.push(r.clone().with_default_tag().familiar_string());
        }
        out.push(LoadedImage { image, tags });
    }
    Ok(out)
}

fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Options of `docker import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions (`CMD ["sh"]`, `ENV A=b`, ...).
    pub changes: Vec<String>,
    pub message: String,
    pub os: String,
    pub architecture: String,
    /// RFC 3339 creation time.
    pub now: String,
}

/// `docker import`: one layer from a rootfs tar (plain or compressed) and a fresh config.
pub fn import(
    store: &ImageStore,
    input: impl Read,
    opts: &ImportOptions,
) -> Result<ImageRecord, StoreError> {
    let layer = store.add_layer(input, None)?;
    let mut container_config = serde_json::Map::new();
    apply_changes(&mut container_config, &opts.changes)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let comment = if opts.message.is_empty() {
        "Imported from -".to_string()
    } else {
        opts.message.clone()
    };
    let config = ImageConfigFile {
        architecture: opts.architecture.clone(),
        os: opts.os.clone(),
        config: Some(container_config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        history: vec![History {
            created: Some(opts.now.clone()),
            comment: Some(comment.clone()),
            ..Default::default()
        }],
        created: Some(opts.now.clone()),
        comment: Some(comment),
        ..Default::default()
    };
    let bytes = serde_json::to_vec(&config).expect("config serializes");
    store.add_image(&bytes)
}

/// Whether a 512-byte block is a POSIX or GNU tar header (the `ustar` magic).
fn is_tar_header(block: &[u8; 512]) -> bool {
    &block[257..262] == b"ustar"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry header for `path` claiming `size` bytes.
    fn header(path: &str, size: u64, kind: tar::EntryType) -> [u8; 512] {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_cksum();
        *h.as_bytes()
    }

    /// Counts what the loader took from it.
    struct Counted<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    fn message(r: Result<Vec<LoadedImage>, StoreError>) -> String {
        match r {
            Err(StoreError::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_oversized_json_entry_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        // 32 MiB of spaces (more than one entry may hold, less than the cap of before),
        // made as they are read: never in memory here either.
        let size = 32 << 20;
        let mut input = Counted {
            inner: io::Cursor::new(header("manifest.json", size, tar::EntryType::Regular))
                .chain(io::repeat(b' ').take(size)),
            read: 0,
        };
        let m = message(load(&store, &mut input, "now"));
        assert!(m.contains("manifest.json is too large"), "{m}");
        assert!(input.read < 1 << 20, "read {} bytes", input.read);
    }

    #[test]
    fn the_count_and_total_size_of_entries_held_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let limits = Limits {
            json: 100,
            json_total: 250,
            members: 10,
        };
        let mut links = Vec::new();
        for i in 0..11 {
            let mut h = tar::Header::new_gnu();
            h.set_path(format!("l{i}")).unwrap();
            h.set_link_name("manifest.json").unwrap();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_cksum();
            links.extend_from_slice(h.as_bytes());
        }
        links.extend_from_slice(&[0; 1024]);
        let m = message(load_limited(&store, &links[..], "now", limits));
        assert!(m.contains("more than 10 files"), "{m}");
        // Ten are fine as far as the count goes (and then there is no manifest).
        let ten = [&links[..10 * 512], &[0; 1024][..]].concat();
        let m = message(load_limited(&store, &ten[..], "now", limits));
        assert!(m.contains("no manifest.json"), "{m}");

        let mut json = Vec::new();
        for i in 0..3 {
            json.extend_from_slice(&header(&format!("{i}.json"), 100, tar::EntryType::Regular));
            json.extend_from_slice(&[b' '; 512]);
        }
        json.extend_from_slice(&[0; 1024]);
        let m = message(load_limited(&store, &json[..], "now", limits));
        assert!(m.contains("more than 250 bytes of JSON"), "{m}");
    }
}
