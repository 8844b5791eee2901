//! Image mounts: a `HostConfig.Mounts` item of `Type: "image"` (Docker 28, API 1.48:
//! `--mount type=image,source=IMAGE,target=/dst[,image-subpath=DIR]`), which the CRI's
//! image volumes (`Mount.image`) become too: another image's filesystem, or one path of
//! it, read-only at a path in the container.
//!
//! At create the image is resolved to its ID, kept in `mounts.json` and in the record's
//! `image_mounts` (so that `docker rmi` treats it as an image the container uses), and a
//! subpath is checked by staging the mount once. At each start the image's layer diffs
//! are mounted as a read-only overlay of lower directories only on the staging point
//! `<exec-root>/binds/<id>/<start>/img-<n>`; the subpath is opened beneath it
//! (`openat2(RESOLVE_BENEATH)`: a symlink that leads out of the image is refused, not
//! followed) and bound from that descriptor onto staging point `<n>`, which the runtime
//! binds at the target, read-only. The staging mounts go with the host binds' once the
//! runtime has made the container's ([`Staging::clear`]): the overlay then lives in the
//! container's mount namespace only, and goes with its last process. Nothing is left
//! mounted on the host while it runs, across a daemon restart, or after `rm`.
//!
//! Owns: parsing image mounts with dockerd's checks and words (moby
//! `volume/mounts/linux_parser.go`, `daemon/volumes.go`), resolving their images, the
//! overlay staging. Does not own: the staging directories' layout and clearing
//! (`mounts::Staging`), the image store.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use berth_image::store::{ImageStore, StoreError};
use berth_sys::dirfd;

use super::{config_err, MountEntry, Staging};
use crate::EngineError;

const TYPE: &str = "image";

/// One `HostConfig.Mounts` item of type `image`, its target already cleaned. Always
/// read-only, as dockerd makes it whatever `ReadOnly` says.
pub(in crate::containers) fn parse(
    m: &berth_api_types::container::Mount,
    destination: String,
) -> Result<MountEntry, EngineError> {
    let source = m.source.or_default();
    if source.is_empty() {
        return Err(config_err(TYPE, "field Source must not be empty"));
    }
    let subpath = (m.image_options.get())
        .map(|o| o.subpath.or_default())
        .unwrap_or_default();
    if !subpath.is_empty() && !is_local(&subpath) {
        // moby's words, "volume" included.
        return Err(config_err(
            TYPE,
            "subpath must be a relative path within the volume",
        ));
    }
    Ok(MountEntry {
        typ: TYPE.into(),
        name: source,
        destination,
        rw: false,
        propagation: "rprivate".into(),
        subpath,
        ..MountEntry::default()
    })
}

/// Go's `filepath.IsLocal`: not empty, not absolute, and never above its start once
/// cleaned (`a/../b` is, `a/../../b` is not).
fn is_local(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') {
        return false;
    }
    let mut depth = 0usize;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

/// dockerd's 404 for an image `name` the store does not hold (`:latest` added to a name
/// without a tag or digest).
pub(in crate::containers) fn no_such_image(name: &str) -> EngineError {
    let last = name.rsplit('/').next().unwrap_or("");
    if name.contains('@') || last.contains(':') {
        EngineError::NotFound(format!("No such image: {name}"))
    } else {
        EngineError::NotFound(format!("No such image: {name}:latest"))
    }
}

/// Resolves the image of each image mount not resolved yet (one copied by
/// `VolumesFrom` keeps its ID) and returns the IDs of all, once each.
pub(in crate::containers) fn resolve(
    images: &ImageStore,
    planned: &mut [MountEntry],
) -> Result<Vec<String>, EngineError> {
    let mut ids: Vec<String> = Vec::new();
    for m in planned.iter_mut().filter(|m| m.typ == TYPE) {
        if m.source.is_empty() {
            m.source = match images.resolve(&m.name) {
                Ok(rec) => rec.id,
                Err(StoreError::NoSuchImage(_)) => return Err(no_such_image(&m.name)),
                Err(e) => return Err(e.into()),
            };
        }
        if !ids.contains(&m.source) {
            ids.push(m.source.clone());
        }
    }
    Ok(ids)
}

/// The layer diff directories of each of `ids` (topmost first), what
/// [`Staging::stage_image`] mounts.
pub(in crate::containers) fn layers(
    images: &ImageStore,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<PathBuf>>, EngineError> {
    ids.iter()
        .map(|id| {
            let mut lowers = images.layer_diff_dirs(id)?;
            lowers.reverse();
            Ok((id.clone(), lowers))
        })
        .collect()
}

/// Checks at create that each image mount's subpath is there in its image, staging the
/// mounts under `staging` and clearing them again (`empty`: an empty directory of the
/// container's, the overlay's bottom layer where the image has fewer than two).
pub(in crate::containers) fn check(
    staging: &Staging,
    planned: &[MountEntry],
    empty: &Path,
) -> Result<(), EngineError> {
    let result = planned
        .iter()
        .enumerate()
        .filter(|(_, m)| m.typ == TYPE && !m.subpath.is_empty())
        .try_for_each(|(n, m)| staging.stage_image(n, m, empty).map(drop));
    staging.clear();
    result
}

impl Staging {
    /// Mounts the image of image mount `m` (its layers in [`Staging::images`]) read-only
    /// on staging point `img-<n>`, and returns what the runtime binds: that point, or,
    /// with a subpath, staging point `<n>` bound from the subpath opened beneath it.
    pub(super) fn stage_image(
        &self,
        n: usize,
        m: &MountEntry,
        empty: &Path,
    ) -> Result<PathBuf, EngineError> {
        let mut lowers = self
            .images
            .get(&m.source)
            .cloned()
            .ok_or_else(|| no_such_image(&m.name))?;
        if lowers.len() < 2 {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(empty)
                .map_err(EngineError::io("cannot create", empty))?;
            lowers.push(empty.to_path_buf());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(EngineError::io("cannot create", &self.dir))?;
        let root = self.dir.join(format!("img-{n}"));
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&root)
            .map_err(EngineError::io("cannot create", &root))?;
        berth_sys::mount::mount_overlay_ro(&root, &lowers)
            .map_err(EngineError::io("cannot mount the image at", &root))?;
        if m.subpath.is_empty() {
            return Ok(root);
        }
        let dir = dirfd::open_dir(&root).map_err(EngineError::io("cannot open", &root))?;
        let fd = berth_sys::resolve::openat_beneath(&dir, Path::new(&m.subpath), nix::libc::O_PATH)
            .map_err(|e| subpath_error(m, &e))?;
        self.bind_at(n, &fd, &root, 0o755, "cannot bind the subpath of")
    }
}

/// A subpath that cannot be opened in its image, in the words of moby's `safepath`
/// (a 400 either way: the image cannot change, so neither can the answer).
fn subpath_error(m: &MountEntry, e: &std::io::Error) -> EngineError {
    let detail = match e.raw_os_error() {
        Some(nix::libc::EXDEV) | Some(nix::libc::ELOOP) => format!(
            "path concatenation escapes the base directory, base: image {}, subpath: {}",
            m.name, m.subpath
        ),
        Some(n) => format!(
            "cannot access path {} in image {}: {}",
            m.subpath,
            m.name,
            nix::errno::Errno::from_raw(n).desc()
        ),
        None => format!("cannot access path {} in image {}: {e}", m.subpath, m.name),
    };
    config_err(TYPE, &detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: serde_json::Value) -> Result<MountEntry, EngineError> {
        let m: berth_api_types::container::Mount = serde_json::from_value(v).unwrap();
        parse(&m, m.target.or_default())
    }

    #[test]
    fn parses_as_dockerd() {
        let m = parse_json(
            json!({"Type": "image", "Source": "busybox", "Target": "/img",
                                  "ReadOnly": false, "ImageOptions": {"Subpath": "etc"}}),
        )
        .unwrap();
        assert_eq!(
            (m.typ.as_str(), m.name.as_str(), m.subpath.as_str(), m.rw),
            ("image", "busybox", "etc", false),
            "always read-only"
        );
        assert_eq!(m.propagation, "rprivate");
        assert_eq!(
            parse_json(json!({"Type": "image", "Target": "/img"}))
                .unwrap_err()
                .to_string(),
            "invalid mount config for type \"image\": field Source must not be empty"
        );
        for bad in ["/etc", "../etc", "a/../../etc", ".."] {
            let e = parse_json(
                json!({"Type": "image", "Source": "busybox", "Target": "/img",
                                      "ImageOptions": {"Subpath": bad}}),
            )
            .unwrap_err();
            assert_eq!(
                e.to_string(),
                "invalid mount config for type \"image\": subpath must be a relative path within the volume",
                "{bad}"
            );
        }
        for good in ["etc", "a/../b", "./etc/", "bin/sh"] {
            assert!(is_local(good), "{good}");
        }
    }

    #[test]
    fn inspect_shows_the_image() {
        let mut m =
            parse_json(json!({"Type": "image", "Source": "busybox", "Target": "/img"})).unwrap();
        m.source = "sha256:abc".into();
        assert_eq!(
            m.docker_json(),
            json!({"Type": "image", "Name": "busybox", "Source": "sha256:abc",
                   "Destination": "/img", "Mode": "", "RW": false, "Propagation": "rprivate"})
        );
    }

    #[test]
    fn missing_images_are_dockerds_404() {
        for (name, want) in [
            ("nope", "No such image: nope:latest"),
            ("reg:5000/nope", "No such image: reg:5000/nope:latest"),
            ("nope:1", "No such image: nope:1"),
        ] {
            match no_such_image(name) {
                EngineError::NotFound(m) => assert_eq!(m, want),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn subpath_errors_name_the_escape() {
        let m = MountEntry {
            typ: TYPE.into(),
            name: "busybox".into(),
            subpath: "link".into(),
            ..MountEntry::default()
        };
        let e = subpath_error(&m, &std::io::Error::from_raw_os_error(nix::libc::EXDEV));
        assert!(matches!(e, EngineError::InvalidArgument(_)));
        assert!(e.to_string().contains("escapes the base directory"), "{e}");
        let e = subpath_error(&m, &std::io::Error::from_raw_os_error(nix::libc::ENOENT));
        assert!(
            e.to_string()
                .ends_with("cannot access path link in image busybox: No such file or directory"),
            "{e}"
        );
    }
}
