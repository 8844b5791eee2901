//! dockerd's init layer (moby `daemon/initlayer`): what every container's root holds
//! between its image and its own writable layer, made at create in
//! `<container>/init/diff`. Empty `/.dockerenv`, `/etc/resolv.conf`, `/etc/hosts`,
//! `/etc/hostname` and `/dev/console` (mode 0755, as dockerd's; the image's own files
//! there are hidden), `/etc/mtab -> /proc/mounts`, and the directories `/proc`, `/sys`,
//! `/dev/pts`, `/dev/shm` where the image has no directory there. As in dockerd, the
//! layer is not the container's change: `docker diff` and `commit` read the writable
//! layer only; the running container and `export` see it. The CRI's pod sandboxes and
//! containers get it without `/.dockerenv`, as containerd's have none
//! ([`crate::Engine::container_create_cri`]).
//!
//! The image's layers are only looked at, one path component at a time without following
//! a symlink (an image's `/etc -> /` must not send the look onto the host).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The init layer's directory, under the container's data directory.
pub(crate) const DIR: &str = "init/diff";

/// The file that tells a process it runs in a Docker container.
const DOCKERENV: &str = ".dockerenv";

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File,
    Link(&'static str),
}

/// moby `initlayer.Setup`'s list.
const ENTRIES: &[(&str, Kind)] = &[
    ("dev/pts", Kind::Dir),
    ("dev/shm", Kind::Dir),
    ("proc", Kind::Dir),
    ("sys", Kind::Dir),
    (DOCKERENV, Kind::File),
    ("etc/resolv.conf", Kind::File),
    ("etc/hosts", Kind::File),
    ("etc/hostname", Kind::File),
    ("dev/console", Kind::File),
    ("etc/mtab", Kind::Link("/proc/mounts")),
];

/// The metadata of `rel` in the image (`lowers`, top first): from the topmost layer that
/// has it; `None` where a layer whites it out, or where a component on the way is not a
/// directory in the layer that decides.
fn in_image(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    for l in lowers {
        let mut p = l.clone();
        let mut md = None;
        for (i, c) in rel.components().enumerate() {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if is_whiteout(&m) => return None,
                Ok(m) if i + 1 < rel.components().count() && !m.is_dir() => return None,
                Ok(m) => md = Some(m),
                Err(_) => {
                    md = None;
                    break;
                }
            }
        }
        if md.is_some() {
            return md;
        }
    }
    None
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Makes the init layer of a container whose data directory is `data_dir` over the image
/// layers `lowers` (top first), with `/.dockerenv` or not. Anything already there is
/// replaced.
pub(crate) fn make(data_dir: &Path, lowers: &[PathBuf], dockerenv: bool) -> io::Result<()> {
    let top = data_dir.join(DIR);
    if top.exists() {
        fs::remove_dir_all(&top)?;
    }
    fs::create_dir_all(&top)?;
    for (rel, kind) in ENTRIES {
        if !dockerenv && *rel == DOCKERENV {
            continue;
        }
        let rel = Path::new(rel);
        if matches!(kind, Kind::Dir) && in_image(lowers, rel).is_some_and(|m| m.is_dir()) {
            continue;
        }
        // Its parents as directories, with the image's mode and owner where it has them.
        let mut at = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            at.push(c);
            let p = top.join(&at);
            if p.is_dir() {
                continue;
            }
            fs::DirBuilder::new().mode(0o755).create(&p)?;
            if let Some(m) = in_image(lowers, &at).filter(fs::Metadata::is_dir) {
                fs::set_permissions(&p, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                std::os::unix::fs::lchown(&p, Some(m.uid()), Some(m.gid()))?;
            }
        }
        let p = top.join(rel);
        match kind {
            Kind::Dir => fs::DirBuilder::new().mode(0o755).create(&p)?,
            Kind::File => {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o755)
                    .open(&p)?;
                // Whatever the umask took.
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
            }
            Kind::Link(target) => std::os::unix::fs::symlink(target, &p)?,
        }
    }
    Ok(())
}

/// A container's lower layers: its init layer (where it has one: containers made
/// before there was one have none), then the image's `lowers`, top first.
pub(crate) fn with_image(data_dir: &Path, lowers: Vec<PathBuf>) -> Vec<PathBuf> {
    let init = data_dir.join(DIR);
    if fs::symlink_metadata(&init).is_ok_and(|m| m.is_dir()) {
        std::iter::once(init).chain(lowers).collect()
    } else {
        lowers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image with `/proc` and `/etc/hosts` (a file), no `/sys`, and `/dev` as a
    /// symlink: the layer has dockerd's entries, keeps the image's `/proc`, and never
    /// looks through the symlink.
    #[test]
    fn the_layer_has_dockerds_entries() {
        let t = tempfile::tempdir().unwrap();
        let image = t.path().join("image");
        fs::create_dir_all(image.join("proc")).unwrap();
        fs::create_dir_all(image.join("etc")).unwrap();
        fs::set_permissions(image.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(image.join("etc/hosts"), "image's\n").unwrap();
        // /dev/pts "exists" through the symlink on the host: it must still be made.
        std::os::unix::fs::symlink("/", image.join("dev")).unwrap();
        let data = t.path().join("c");
        make(&data, std::slice::from_ref(&image), true).unwrap();
        let top = data.join(DIR);
        let md = |p: &str| fs::symlink_metadata(top.join(p));
        assert!(md("proc").is_err(), "the image's /proc stays its own");
        for d in ["sys", "dev/pts", "dev/shm"] {
            assert!(md(d).unwrap().is_dir(), "{d}");
        }
        for f in [
            ".dockerenv",
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "dev/console",
        ] {
            let m = md(f).unwrap();
            assert!(
                m.is_file() && m.len() == 0 && m.mode() & 0o7777 == 0o755,
                "{f}"
            );
        }
        assert_eq!(
            fs::read_link(top.join("etc/mtab")).unwrap(),
            Path::new("/proc/mounts")
        );
        assert_eq!(
            md("etc").unwrap().mode() & 0o7777,
            0o750,
            "the image's mode"
        );
        // Made again (an earlier try): the same.
        make(&data, std::slice::from_ref(&image), true).unwrap();
        assert!(md("etc/mtab").is_ok());
        // A CRI container's: the same but /.dockerenv.
        make(&data, &[image], false).unwrap();
        assert!(md(".dockerenv").is_err(), "no /.dockerenv");
        for f in ["etc/hosts", "dev/console", "etc/mtab", "sys"] {
            assert!(md(f).is_ok(), "{f}");
        }
        let lowers = with_image(&data, vec![PathBuf::from("/l1")]);
        assert_eq!(lowers, [top, PathBuf::from("/l1")]);
        assert_eq!(with_image(t.path(), vec![]), Vec::<PathBuf>::new());
    }
}
