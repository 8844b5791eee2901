//! The container's working directory, created at start where the image lacks it (moby
//! `SetupWorkingDirectory`: owned by root, mode 0755, only the missing parts). Every step
//! is resolved inside the rootfs (`openat2` with `RESOLVE_IN_ROOT`), so a symlink in the
//! image cannot point the creation at the host.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use berth_sys::dirfd;
use berth_sys::resolve::openat_in_root;
use nix::libc;

use crate::EngineError;

/// Makes `working_dir` (absolute, as create checked) exist as a directory in `rootfs`.
pub(super) fn ensure(rootfs: &Path, working_dir: &str) -> Result<(), EngineError> {
    if working_dir.is_empty() {
        return Ok(());
    }
    let failed = |e: io::Error| {
        if e.raw_os_error() == Some(libc::ENOTDIR) {
            EngineError::InvalidArgument(format!("Cannot mkdir: {working_dir} is not a directory"))
        } else {
            EngineError::Internal(format!(
                "cannot create the working directory {working_dir}: {e}"
            ))
        }
    };
    let root = dirfd::open_dir(rootfs).map_err(EngineError::io("cannot open", rootfs))?;
    let open = |p: &Path| -> io::Result<OwnedFd> {
        openat_in_root(&root, p, libc::O_PATH | libc::O_DIRECTORY, 0)
    };
    let mut prefix = PathBuf::from("/");
    let mut dir = open(&prefix).map_err(failed)?;
    for c in Path::new(working_dir).components() {
        let name = match c {
            Component::Normal(n) => n,
            Component::ParentDir => {
                prefix.push("..");
                dir = open(&prefix).map_err(failed)?;
                continue;
            }
            _ => continue,
        };
        prefix.push(name);
        dir = match open(&prefix) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // `dir` is the parent as resolved inside the root.
                dirfd::mkdir_child(&dir, name, 0o755).map_err(failed)?;
                open(&prefix).map_err(failed)?
            }
            Err(e) => return Err(failed(e)),
        };
    }
    Ok(())
}

impl crate::Engine {
    /// A build's WORKDIR (moby `ContainerCreateWorkdir`): makes `dir` in created container
    /// `id`'s own layer, through a writable view of its rootfs; whether the layer gained
    /// anything (nothing when the image had the directory: the step is then an empty
    /// layer, as moby's commit of an empty diff).
    pub(crate) async fn container_make_workdir(
        &self,
        id: &str,
        dir: &str,
    ) -> Result<bool, EngineError> {
        let entry = self.containers.subject(id)?;
        let _guard = entry.op.lock().await;
        let rec = entry.rec().clone();
        let data_dir = self.containers.data_dir(&rec.id);
        let (images, dir) = (self.images.clone(), dir.to_string());
        crate::blocking::spawn(move || {
            let mut lowers = images.layer_diff_dirs(&rec.image_id)?;
            lowers.reverse();
            let lowers = super::init_layer::with_image(&data_dir, lowers);
            let view = super::fs_views::RootView::open(None, &data_dir, &lowers, true)?;
            ensure(&view.root, &dir)?;
            drop(view);
            let upper = data_dir.join("rw/diff");
            let mut entries =
                std::fs::read_dir(&upper).map_err(EngineError::io("cannot read", &upper))?;
            Ok(entries.next().is_some())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_missing_directories_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        ensure(&root, "/new/dir").unwrap();
        let md = std::fs::metadata(root.join("new/dir")).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.permissions().mode() & 0o7777, 0o755);
        // Existing: nothing to do.
        ensure(&root, "/etc").unwrap();
        ensure(&root, "").unwrap();
    }

    #[test]
    fn a_symlink_cannot_lead_out_of_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        // The absolute target is read as if the root were `/`: there it does not exist,
        // and the symlink in the way is an error, not a way out.
        assert!(ensure(&root, "/link/made").is_err());
        assert!(!outside.join("made").exists());
        ensure(&root, "/up/../made2").unwrap();
        assert!(!t.path().join("made2").exists());
        assert!(root.join("made2").is_dir());
    }

    #[test]
    fn a_file_in_the_way_is_dockerds_error() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        let e = ensure(t.path(), "/f").unwrap_err();
        assert_eq!(e.to_string(), "Cannot mkdir: /f is not a directory");
        let e = ensure(t.path(), "/f/sub").unwrap_err();
        assert_eq!(e.to_string(), "Cannot mkdir: /f/sub is not a directory");
    }
}
