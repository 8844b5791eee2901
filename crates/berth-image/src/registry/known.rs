//! Which repositories of which registry are known to hold a blob, learnt from pulls and
//! pushes, so a push can ask the registry to mount a layer from a repository that has it
//! (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`) instead of sending it
//! again. dockerd keeps the same knowledge as "v2 metadata" per layer
//! (moby `distribution/metadata/v2_metadata_service.go`).
//!
//! Stored as one small JSON file, written atomically after each pull or push. It is a
//! hint: a wrong entry only costs a failed mount, after which the blob is uploaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::Digest;

/// Repositories remembered per blob (newest first).
const MAX_REPOS_PER_BLOB: usize = 5;
/// Blobs remembered per registry; beyond that the file is trimmed.
const MAX_BLOBS_PER_REGISTRY: usize = 20_000;

/// `registry → digest → repositories`.
type Table = BTreeMap<String, BTreeMap<String, Vec<String>>>;

#[derive(Debug)]
pub struct KnownBlobs {
    path: PathBuf,
    table: Mutex<Table>,
}

impl KnownBlobs {
    /// Reads `path`; a missing or unreadable file starts empty.
    pub fn open(path: &Path) -> KnownBlobs {
        let table = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        KnownBlobs {
            path: path.to_path_buf(),
            table: Mutex::new(table),
        }
    }

    /// Remembers that `repo` on `registry` holds every blob in `digests`, from async
    /// code: the file write runs on the blocking pool.
    pub async fn add_async(
        self: &std::sync::Arc<Self>,
        registry: &str,
        repo: &str,
        digests: Vec<Digest>,
    ) {
        let (this, registry, repo) = (self.clone(), registry.to_string(), repo.to_string());
        let _ = tokio::task::spawn_blocking(move || this.add(&registry, &repo, &digests)).await;
    }

    /// Remembers that `repo` on `registry` holds every blob in `digests`.
    pub fn add(&self, registry: &str, repo: &str, digests: &[Digest]) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let blobs = table.entry(registry.to_string()).or_default();
        for d in digests {
            let repos = blobs.entry(d.to_string()).or_default();
            repos.retain(|r| r != repo);
            repos.insert(0, repo.to_string());
            repos.truncate(MAX_REPOS_PER_BLOB);
        }
        while blobs.len() > MAX_BLOBS_PER_REGISTRY {
            let Some(first) = blobs.keys().next().cloned() else {
                break;
            };
            blobs.remove(&first);
        }
        let body = serde_json::to_vec(&*table).expect("known blobs serialize");
        if let Err(e) = berth_sys::fs::atomic_write(&self.path, &body, 0o600) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record known blob locations");
        }
    }

    /// Repositories on `registry` known to hold `digest`, newest first.
    pub fn repos(&self, registry: &str, digest: &Digest) -> Vec<String> {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
            .and_then(|b| b.get(&digest.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_across_reopen_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.json");
        let d = Digest::of(b"layer");
        let k = KnownBlobs::open(&path);
        assert!(k.repos("r:5000", &d).is_empty());
        k.add("r:5000", "a/one", &[d]);
        k.add("r:5000", "b/two", &[d]);
        k.add("r:5000", "a/one", &[d]);
        k.add("other", "c", &[d]);
        let k = KnownBlobs::open(&path);
        assert_eq!(k.repos("r:5000", &d), vec!["a/one", "b/two"]);
        assert_eq!(k.repos("other", &d), vec!["c"]);
        for i in 0..10 {
            k.add("r:5000", &format!("x{i}"), &[d]);
        }
        assert_eq!(k.repos("r:5000", &d).len(), MAX_REPOS_PER_BLOB);
    }
}
