//! A container's root filesystem while it runs: an overlay of its image's layer diffs
//! under the container's own `rw` layer, at `<exec-root>/containers/<rid>/rootfs`. Behind
//! [`RootfsMounter`] so that the engine's unit tests start containers without root
//! (their mounter mounts nothing); berthd hands the engine an [`OverlayMounter`].

use std::io;
use std::path::{Path, PathBuf};

/// Mounts and unmounts container root filesystems.
pub trait RootfsMounter: Send + Sync + std::fmt::Debug {
    /// Mounts at `target` the overlay of `lowers` (topmost first) under the writable
    /// `upper` (with overlayfs' `work` directory beside it).
    fn mount(&self, target: &Path, lowers: &[PathBuf], upper: &Path, work: &Path)
        -> io::Result<()>;

    /// Unmounts `target` lazily; nothing mounted there is success.
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// The kernel's overlayfs (needs `CAP_SYS_ADMIN`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OverlayMounter;

impl RootfsMounter for OverlayMounter {
    fn mount(
        &self,
        target: &Path,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
    ) -> io::Result<()> {
        berth_sys::mount::mount_overlay(target, lowers, upper, work)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        berth_sys::mount::unmount(target, true)
    }
}
