//! The infra image of pod sandboxes: `berth-pause` (built static from `pause/pause.c` by
//! the build script and embedded here) alone in a one-layer image, imported into the
//! engine's store the first time a sandbox needs it, under a tag of this berthd's version
//! (so an upgrade brings its own). Nothing is pulled: a node needs no registry for pods.

use std::sync::Arc;

use berth_engine::images::ImportRequest;
use berth_engine::{Engine, EngineError};
use tokio::sync::Mutex;
use tonic::Status;

use crate::engine_status;

/// The binary, static, with no dependency in its image.
const PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-pause"));

/// Where the binary lies in the image.
pub(crate) const PATH_IN_IMAGE: &str = "/pause";

/// The image's repository; its tag is berthd's version.
const REPOSITORY: &str = "localhost/berth-pause";

/// The reference of this berthd's infra image.
pub(crate) fn image_ref() -> String {
    format!("{REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// Whether an image with these tags is this berthd's infra image.
pub(crate) fn is_pause(repo_tags: &[String]) -> bool {
    repo_tags.contains(&image_ref())
}

/// A tar holding `pause`, mode 0755, owned by root.
fn rootfs_tar() -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::with_capacity(PAUSE.len() + 2048));
    let mut h = tar::Header::new_gnu();
    h.set_size(PAUSE.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, PATH_IN_IMAGE.trim_start_matches('/'), PAUSE)?;
    b.into_inner()
}

/// Makes sure the infra image is in the store; one import at a time.
#[derive(Default)]
pub(crate) struct PauseImage {
    lock: Mutex<()>,
}

impl PauseImage {
    /// The infra image's reference, imported first if the store lacks it (removed with
    /// `crictl rmi`, or never made).
    pub(crate) async fn ensure(&self, engine: &Arc<Engine>) -> Result<String, Status> {
        let reference = image_ref();
        let _one = self.lock.lock().await;
        match engine.image_inspect(reference.clone()).await {
            Ok(_) => return Ok(reference),
            Err(EngineError::NotFound(_)) => {}
            Err(e) => return Err(engine_status(e)),
        }
        let tar = rootfs_tar().map_err(|e| Status::internal(format!("pause image: {e}")))?;
        let (repo, tag) = reference
            .rsplit_once(':')
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .unwrap_or_else(|| (reference.clone(), "latest".into()));
        let id = engine
            .image_import(
                Box::new(std::io::Cursor::new(tar)),
                ImportRequest {
                    repo: Some(repo),
                    tag: Some(tag),
                    changes: Vec::new(),
                    message: "berth pod sandbox infra image".into(),
                    platform: None,
                },
            )
            .await
            .map_err(engine_status)?;
        tracing::info!(image = %reference, image_id = %id, "CRI: pod infra image imported");
        Ok(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_holds_one_static_executable() {
        let tar = rootfs_tar().unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(entries, [("pause".to_string(), 0o755, PAUSE.len() as u64)]);
        // A 64-bit ELF executable without an interpreter (PT_INTERP) to find in its
        // otherwise empty image.
        assert_eq!(&PAUSE[..5], b"\x7fELF\x02");
        let u16_at = |o: usize| u16::from_le_bytes([PAUSE[o], PAUSE[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(PAUSE[32..40].try_into().unwrap()) as usize;
        let (size, count) = (u16_at(54), u16_at(56));
        assert!(count > 0);
        for i in 0..count {
            let at = phoff + i * size;
            let kind = u32::from_le_bytes(PAUSE[at..at + 4].try_into().unwrap());
            assert_ne!(kind, 3, "program header {i} is PT_INTERP: not static");
        }
        assert!(image_ref().starts_with("localhost/berth-pause:"));
        assert!(is_pause(&["x:1".into(), image_ref()]));
        assert!(!is_pause(&["localhost/berth-pause:0.0.0-other".into()]));
    }
}
