//! A container's mounts: `HostConfig.Binds`, `HostConfig.Mounts`, `VolumesFrom`, and the
//! anonymous volumes of `Config.Volumes` and the image's `VOLUME`s, resolved at create
//! into `<data-root>/containers/<id>/mounts.json`; at start turned into the runtime's bind
//! and tmpfs mounts (host directories of `-v` made, image content copied up into empty
//! volumes); shown as inspect's `Mounts`.
//!
//! Host binds never reach the runtime by the path the client gave: at start each source
//! is opened once (`O_PATH`; beneath the policy's `bind_allow` with `openat2
//! (RESOLVE_BENEATH)` when it was approved under a confined role, whoever starts it) and
//! bound from that descriptor onto a staging point `<exec-root>/binds/<id>/<start>/<n>`,
//! which the runtime binds in ([`Staging`]); the staging mounts go once the runtime has
//! made the container's. So a source swapped for a symlink after the check mounts
//! nothing else.
//!
//! Owns: parsing and validating mount requests with dockerd's messages (moby
//! `volume/mounts/linux_parser.go`, `daemon/volumes.go`), `mounts.json`, copy-up, bind
//! staging. Does not own: the `mounts.json` record itself (`mount_file`, which
//! `crate::volumes` reads too), volume records (`crate::volumes`), `HostConfig.Tmpfs` (read by
//! `spec`), the policy (`berth-server` authz, handed over as [`crate::BindPolicy`]).

pub(crate) mod image;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use berth_runtime::spec::BindMount;
use berth_sys::{bind_source, dirfd};
use serde_json::{Map, Value};

pub(crate) use super::mount_file::{anonymous_volumes, inspect_json, load, MountEntry, FILE};
use super::Containers;
use crate::volumes::{self, DriverSource};
use crate::{Engine, EngineError};

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

pub(super) fn config_err(typ: &str, detail: &str) -> EngineError {
    invalid(format!("invalid mount config for type \"{typ}\": {detail}"))
}

/// `/a/b/` → `/a/b`; relative paths refused with Docker's words.
fn clean_destination(typ: &str, dst: &str) -> Result<String, EngineError> {
    if dst.is_empty() {
        return Err(config_err(typ, "field Target must not be empty"));
    }
    if !dst.starts_with('/') {
        return Err(config_err(
            typ,
            &format!("invalid mount path: '{dst}' mount path must be absolute"),
        ));
    }
    let clean = clean_absolute(dst);
    if clean == "/" {
        return Err(config_err(
            typ,
            "invalid specification: destination can't be '/'",
        ));
    }
    Ok(clean)
}

/// An absolute path cleaned lexically as Go's `filepath.Clean` (`/a/./b/../c/` → `/a/c`;
/// `/` stays `/`, which a bind's source may be).
fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// One `-v`/`Binds` entry: `src:dst[:mode]` or `/dst`.
fn parse_bind(spec: &str) -> Result<MountEntry, EngineError> {
    let bad = |detail: String| {
        invalid(if detail.is_empty() {
            format!("invalid volume specification: '{spec}'")
        } else {
            format!("invalid volume specification: '{spec}': {detail}")
        })
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => return Err(bad(String::new())),
    };
    let typ = if src.starts_with('/') {
        "bind"
    } else {
        "volume"
    };
    let destination = clean_destination(typ, dst).map_err(|e| bad(e.to_string()))?;
    let mut rw = true;
    let mut nocopy = false;
    let mut propagation = String::new();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => rw = false,
            "rw" | "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" if typ == "volume" => nocopy = true,
            p if PROPAGATIONS.contains(&p) && typ == "bind" => propagation = p.to_string(),
            _ => return Err(bad(format!("invalid mode: {mode}"))),
        }
    }
    if typ == "volume" && !src.is_empty() {
        volumes::validate_name(src)?;
    }
    Ok(match typ {
        "bind" => MountEntry {
            typ: "bind".into(),
            // A bind's source may be the host's root (`-v /:/host`), unlike its target.
            source: clean_absolute(src),
            destination,
            mode: mode.to_string(),
            rw,
            propagation: if propagation.is_empty() {
                "rprivate".into()
            } else {
                propagation
            },
            create_source: true,
            ..MountEntry::default()
        },
        _ => MountEntry {
            typ: "volume".into(),
            name: src.to_string(),
            destination,
            mode: if mode.is_empty() && !src.is_empty() {
                "z".into()
            } else {
                mode.to_string()
            },
            rw,
            anonymous: src.is_empty(),
            copy_up: !nocopy,
            ..MountEntry::default()
        },
    })
}

fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let m = v?.as_object()?;
    Some(
        m.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    )
}

/// One `HostConfig.Mounts` item.
fn parse_mount(m: &berth_api_types::container::Mount) -> Result<MountEntry, EngineError> {
    use berth_api_types::container::MountType;
    let typ = m.kind.get().map_or("", MountType::as_str).to_string();
    let source = m.source.or_default();
    let target = m.target.or_default();
    let rw = !m.read_only.or_default();
    if m.image_options.get().is_some() && MountType::from(typ.as_str()) != MountType::Image {
        return Err(config_err(&typ, "field ImageOptions must not be specified"));
    }
    match MountType::from(typ.as_str()) {
        MountType::Bind => {
            let destination = clean_destination("bind", &target)?;
            if source.is_empty() {
                return Err(config_err("bind", "field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(config_err(
                    "bind",
                    &format!("invalid mount path: '{source}' mount path must be absolute"),
                ));
            }
            // The host's root may be bound (`source=/`), unlike a target of `/`.
            let source = clean_absolute(&source);
            let opts = m.bind_options.get();
            let create = opts.is_some_and(|o| o.create_mountpoint.or_default());
            if !create && !Path::new(&source).exists() {
                return Err(config_err(
                    "bind",
                    &format!("bind source path does not exist: {source}"),
                ));
            }
            let propagation = opts
                .and_then(|o| o.propagation.get())
                .map(String::as_str)
                .filter(|p| !p.is_empty())
                .unwrap_or("rprivate");
            if !PROPAGATIONS.contains(&propagation) {
                return Err(config_err(
                    "bind",
                    &format!("invalid propagation mode: {propagation}"),
                ));
            }
            Ok(MountEntry {
                typ,
                source,
                destination,
                rw,
                propagation: propagation.into(),
                create_source: create,
                ..MountEntry::default()
            })
        }
        MountType::Volume => {
            let destination = clean_destination("volume", &target)?;
            if !source.is_empty() {
                volumes::validate_name(&source)?;
            }
            let opts = m.volume_options.get();
            let nocopy = opts.is_some_and(|o| o.no_copy.or_default());
            let driver_opts = opts
                .and_then(|o| o.driver_config.get())
                .and_then(|d| string_map(d.get("Options")))
                .filter(|o| !o.is_empty());
            Ok(MountEntry {
                typ,
                anonymous: source.is_empty(),
                name: source,
                destination,
                mode: "z".into(),
                rw,
                copy_up: !nocopy,
                volume_labels: opts.and_then(|o| o.labels.get().cloned()),
                volume_options: driver_opts,
                ..MountEntry::default()
            })
        }
        MountType::Tmpfs => {
            let destination = clean_destination("tmpfs", &target)?;
            if !source.is_empty() {
                return Err(config_err("tmpfs", "field Source must not be specified"));
            }
            let opts = m.tmpfs_options.get();
            let mut o = Vec::new();
            if let Some(&n) = opts.and_then(|o| o.size_bytes.get()) {
                if n < 0 {
                    return Err(config_err("tmpfs", &format!("invalid tmpfs size: {n}")));
                }
                if n > 0 {
                    o.push(format!("size={n}"));
                }
            }
            if let Some(&mode) = opts.and_then(|o| o.mode.get()) {
                if mode != 0 {
                    o.push(format!("mode={:o}", mode & 0o7777));
                }
            }
            Ok(MountEntry {
                typ,
                destination,
                rw,
                tmpfs_options: o.join(","),
                ..MountEntry::default()
            })
        }
        MountType::Image => {
            image::parse(m, clean_destination("image", &target)?)
        }
        MountType::Other(t) if t.is_empty() => Err(invalid("invalid mount config: must use either propagation mode \"rslave\", \"rshared\", or a mount type".into())),
        other => Err(config_err(other.as_str(), "mount type unknown")),
    }
}

/// The paths of a map field (`Config.Volumes`, `HostConfig.Tmpfs`); a list of paths, which
/// the typed field keeps as sent, is read too.
fn field_keys<T>(f: &berth_api_types::field::Field<BTreeMap<String, T>>) -> Vec<String> {
    use berth_api_types::field::Field;
    match f {
        Field::Set(m) => m.keys().cloned().collect(),
        Field::Invalid(v) => path_keys(Some(v)),
        Field::Absent | Field::Null => Vec::new(),
    }
}

/// The paths of `Config.Volumes` (`{"/p": {}}`; a list of paths is read too).
fn path_keys(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every mount the create request asks for, validated; nothing is made yet.
/// Order of precedence (moby `registerMountPoints`): `VolumesFrom`, then `Binds` and
/// `Mounts` (which must not repeat a destination), then anonymous volumes for
/// `Config.Volumes` and the image's `VOLUME`s not already covered.
pub(crate) fn plan(
    c: &Containers,
    host_config: &berth_api_types::container::HostConfig,
    config: &berth_api_types::container::ContainerConfig,
    image_config: &Map<String, Value>,
) -> Result<Vec<MountEntry>, EngineError> {
    use berth_api_types::field::Field;
    let mut out: Vec<MountEntry> = Vec::new();
    for from in &host_config.volumes_from.strings() {
        let (name, mode) = match from.rsplit_once(':') {
            Some((n, m)) if m == "ro" || m == "rw" => (n, Some(m)),
            Some((_, m)) => return Err(invalid(format!("invalid mode for volumes-from: {m}"))),
            None => (from.as_str(), None),
        };
        // dockerd answers 400 here, not 404 (which clients read as a missing image).
        let other = c.get(name).map_err(|e| invalid(e.to_string()))?;
        let id = other.rec().id.clone();
        for mut m in load(&c.data_dir(&id)) {
            if let Some(mode) = mode {
                m.rw = mode == "rw";
                m.mode = mode.to_string();
            }
            m.anonymous = false;
            out.retain(|x| x.destination != m.destination);
            out.push(m);
        }
    }
    let mut explicit: Vec<MountEntry> = Vec::new();
    for b in &host_config.binds.strings() {
        explicit.push(parse_bind(b)?);
    }
    if let Field::Invalid(Value::Array(_)) = host_config.mounts {
        // An item that is not an object.
        return Err(invalid("invalid mount config: not an object".into()));
    }
    for m in host_config.mounts.get().into_iter().flatten() {
        explicit.push(parse_mount(m)?);
    }
    for (i, m) in explicit.iter().enumerate() {
        if explicit[..i].iter().any(|x| x.destination == m.destination) {
            return Err(invalid(format!("Duplicate mount point: {}", m.destination)));
        }
    }
    for m in explicit {
        out.retain(|x| x.destination != m.destination);
        out.push(m);
    }
    let tmpfs = field_keys(&host_config.tmpfs);
    for dst in field_keys(&config.volumes)
        .into_iter()
        .chain(path_keys(image_config.get("Volumes")))
    {
        let dst = clean_destination("volume", &dst)?;
        if out.iter().any(|m| m.destination == dst) || tmpfs.contains(&dst) {
            continue;
        }
        out.push(MountEntry {
            typ: "volume".into(),
            destination: dst,
            rw: true,
            anonymous: true,
            copy_up: true,
            ..MountEntry::default()
        });
    }
    out.sort_by(|a, b| a.destination.cmp(&b.destination));
    Ok(out)
}

/// Creates the volumes `planned` names (anonymous ones get their names here) and writes
/// `mounts.json` into the container's `dir`. On failure the anonymous volumes made here
/// are removed again.
pub(crate) fn materialize(
    data_root: &Path,
    dir: &Path,
    mut planned: Vec<MountEntry>,
) -> Result<Vec<String>, EngineError> {
    let mut made: Vec<String> = Vec::new();
    let result = (|| {
        for m in planned.iter_mut().filter(|m| m.typ == "volume") {
            let meta = if m.name.is_empty() {
                let meta = volumes::create_anonymous(data_root)?;
                made.push(meta.name.clone());
                meta
            } else {
                let (meta, new) = volumes::create(
                    data_root,
                    &m.name,
                    m.volume_labels.take(),
                    m.volume_options.take(),
                    m.approved_role.as_deref(),
                )?;
                if new {
                    made.push(meta.name.clone());
                }
                meta
            };
            m.source = volumes::data_path(data_root, &meta.name)
                .to_string_lossy()
                .into_owned();
            m.name = meta.name;
        }
        let bytes = serde_json::to_vec_pretty(&planned)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let path = dir.join(FILE);
        berth_sys::fs::atomic_write(&path, &bytes, 0o600)
            .map_err(EngineError::io("cannot write", &path))
    })();
    match result {
        Ok(()) => Ok(made),
        Err(e) => {
            volumes::remove_anonymous(data_root, &made);
            Err(e)
        }
    }
}

/// Records the role under which a create approved its host binds and volumes (see
/// [`MountEntry::approved_role`]; a volume it makes with driver options keeps it too, in
/// [`materialize`]). A volume that binds a host device is confined at start by its own
/// role or the container's, whichever is confined: an operator's container may not reach
/// an admin's volume outside `bind_allow`.
pub(crate) fn approve(planned: &mut [MountEntry], role: Option<&str>) {
    for m in planned
        .iter_mut()
        .filter(|m| m.typ == "bind" || m.typ == "volume")
    {
        m.approved_role = role.map(str::to_string);
    }
}

/// Where one start stages its host binds (`<exec-root>/binds/<id>/<start>`), and the
/// policy that confines them. [`Staging::clear`] unmounts and removes what it staged,
/// entry by entry (never a recursive removal, which would walk into a bound host
/// directory).
#[derive(Debug, Clone)]
pub(crate) struct Staging {
    pub dir: PathBuf,
    pub policy: Option<crate::BindPolicy>,
    /// The layer diff directories (topmost first) of each image that image mounts mount,
    /// by ID (`image_mounts`).
    pub images: BTreeMap<String, Vec<PathBuf>>,
}

/// Numbers each start's staging directory, so that a late clearing of a cancelled
/// start never touches a later one's.
static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Staging {
    /// A fresh staging directory under `parent` (`<exec-root>/binds/<id>`), made when the
    /// first bind is staged.
    pub(crate) fn new(parent: &Path, policy: Option<crate::BindPolicy>) -> Staging {
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Staging {
            dir: parent.join(format!("{}-{n}", std::process::id())),
            policy,
            images: BTreeMap::new(),
        }
    }

    /// Clears what earlier starts left under `parent` (a daemon killed between staging
    /// and clearing, a start cancelled meanwhile).
    pub(crate) fn clear_leftovers(parent: &Path) {
        let Ok(rd) = std::fs::read_dir(parent) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                Staging {
                    dir: e.path(),
                    policy: None,
                    images: BTreeMap::new(),
                }
                .clear();
            }
        }
        let _ = std::fs::remove_dir(parent);
    }
}

/// Clears a [`Staging`] when dropped unless [`StagingGuard::disarm`]ed: a start whose
/// future is dropped midway (its client gone) leaves no staging mount behind.
pub(crate) struct StagingGuard(pub Option<Staging>);

impl StagingGuard {
    /// Clears now (off the async workers) and disarms.
    pub(crate) async fn clear(&mut self) {
        if let Some(s) = self.0.take() {
            let _ = crate::blocking::spawn(move || s.clear()).await;
        }
    }
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let span = tracing::Span::current();
                rt.spawn_blocking(move || span.in_scope(|| s.clear()));
            } else {
                s.clear();
            }
        }
    }
}

fn forbidden(src: &str, role: &str, why: &str) -> EngineError {
    EngineError::Forbidden(format!(
        "authorization denied: the bind of {src} approved for role {role} {why} (rule: operator.bind)"
    ))
}

impl Staging {
    /// Of the roles that approved a source, the first the policy confines, else the first.
    fn strictest<'a>(&self, roles: &[Option<&'a str>]) -> Option<&'a str> {
        let confined = |r: &Option<&str>| self.policy.as_ref().is_some_and(|p| p.confines(*r));
        roles
            .iter()
            .find(|r| confined(r))
            .or_else(|| roles.iter().find(|r| r.is_some()))
            .copied()
            .flatten()
    }

    /// Opens the bind source `src` (made first when missing and `create`), confined as
    /// its approving `role` requires, and binds it from its descriptor onto staging
    /// point `n`, which it returns.
    fn stage(
        &self,
        n: usize,
        src: &str,
        role: Option<&str>,
        create: bool,
    ) -> Result<PathBuf, EngineError> {
        let path = Path::new(src);
        let missing = || config_err("bind", &format!("bind source path does not exist: {src}"));
        let confined = self
            .policy
            .as_ref()
            .filter(|p| p.confines(role))
            .map(|p| &p.allow);
        let fd = match confined {
            None => {
                let mut opened = bind_source::open_source(path, None);
                if create
                    && opened
                        .as_ref()
                        .is_err_and(|e| e.kind() == ErrorKind::NotFound)
                {
                    std::fs::create_dir_all(path)
                        .map_err(EngineError::io("cannot create", path))?;
                    opened = bind_source::open_source(path, None);
                }
                opened.map_err(|e| match e.kind() {
                    ErrorKind::NotFound => missing(),
                    _ => EngineError::io("cannot open bind source", path)(e),
                })?
            }
            Some(allow) => {
                let role = role.unwrap_or("");
                // As the check at create: the path as given, or as it resolves now (a
                // symlink elsewhere into an allowed directory). Either way the open below
                // is confined to the root, whatever the path resolves to meanwhile.
                let under = |p: &Path| {
                    allow
                        .iter()
                        .find(|r| bind_source::relative_to(p, r).is_some())
                        .cloned()
                };
                let (root, path) = match under(path) {
                    Some(r) => (r, path.to_path_buf()),
                    None => {
                        let resolved = std::fs::canonicalize(path).map_err(|_| {
                            forbidden(src, role, "is not under the policy's bind_allow")
                        })?;
                        let r = under(&resolved).ok_or_else(|| {
                            forbidden(src, role, "is not under the policy's bind_allow")
                        })?;
                        (r, resolved)
                    }
                };
                let mut opened = bind_source::open_source(&path, Some(&root));
                if create
                    && opened
                        .as_ref()
                        .is_err_and(|e| e.kind() == ErrorKind::NotFound)
                {
                    bind_source::create_dirs_beneath(&path, &root).map_err(|e| {
                        forbidden(
                            src,
                            role,
                            &format!("cannot be made beneath {}: {e}", root.display()),
                        )
                    })?;
                    opened = bind_source::open_source(&path, Some(&root));
                }
                opened.map_err(|e| match e.kind() {
                    ErrorKind::NotFound => missing(),
                    _ => forbidden(
                        src,
                        role,
                        &format!("does not resolve beneath {} ({e})", root.display()),
                    ),
                })?
            }
        };
        let dir_err = EngineError::io("cannot create", &self.dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(dir_err)?;
        self.bind_at(n, &fd, path, 0o700, "cannot bind the source of")
    }

    /// Binds the object `fd` names (opened from `source`) onto staging point `n`: a new
    /// directory (of `dir_mode`) or empty file, as the object is. The staging point, for
    /// the spec to name.
    pub(super) fn bind_at(
        &self,
        n: usize,
        fd: &std::os::fd::OwnedFd,
        source: &Path,
        dir_mode: u32,
        what: &'static str,
    ) -> Result<PathBuf, EngineError> {
        let target = self.dir.join(n.to_string());
        let made = if bind_source::is_dir(fd).map_err(EngineError::io("cannot stat", source))? {
            std::fs::DirBuilder::new().mode(dir_mode).create(&target)
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .map(drop)
        };
        made.map_err(EngineError::io("cannot create", &target))?;
        bind_source::bind_fd(fd, &target).map_err(EngineError::io(what, &target))?;
        Ok(target)
    }

    /// Unmounts and removes every staging point, then the directory. A point that cannot
    /// be unmounted is left (and logged): removing it would reach into the host's files.
    pub(crate) fn clear(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if let Err(err) = berth_sys::mount::unmount(&p, true) {
                tracing::warn!(path = %p.display(), error = %err, "cannot unmount a staged bind");
                continue;
            }
            let removed = match std::fs::symlink_metadata(&p) {
                Ok(md) if md.is_dir() => std::fs::remove_dir(&p),
                Ok(_) => std::fs::remove_file(&p),
                Err(e) => Err(e),
            };
            if let Err(err) = removed {
                tracing::warn!(path = %p.display(), error = %err, "cannot remove a staged bind");
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
        // The container's directory too, once no other start's is in it.
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// What the runtime mounts for the container, with its rootfs mounted at `rootfs`: bind
/// mounts, and tmpfs destinations with their options. Makes missing `-v` host
/// directories, copies image content up into empty volumes, and stages host binds
/// (their sources are staging points; [`Staging::clear`] once the runtime has mounted).
pub(crate) fn for_start(
    data_root: &Path,
    dir: &Path,
    rootfs: &Path,
    staging: &Staging,
) -> Result<(Vec<BindMount>, BTreeMap<String, String>), EngineError> {
    let mut binds = Vec::new();
    let mut tmpfs = BTreeMap::new();
    for (n, m) in load(dir).into_iter().enumerate() {
        let ro = |opts: String| {
            if m.rw {
                opts
            } else if opts.is_empty() {
                "ro".to_string()
            } else {
                format!("{opts},ro")
            }
        };
        match m.typ.as_str() {
            "tmpfs" => {
                tmpfs.insert(m.destination.clone(), ro(m.tmpfs_options.clone()));
            }
            "image" => binds.push(BindMount {
                source: staging.stage_image(n, &m, &dir.join("empty"))?,
                destination: m.destination.clone(),
                readonly: true,
                propagation: Some(m.propagation.clone()),
            }),
            "bind" => {
                let src =
                    staging.stage(n, &m.source, m.approved_role.as_deref(), m.create_source)?;
                binds.push(BindMount {
                    source: src,
                    destination: m.destination.clone(),
                    readonly: !m.rw,
                    propagation: Some(m.propagation.clone()),
                });
            }
            _ => {
                let meta = volumes::get(data_root, &m.name)?;
                match meta.driver_source() {
                    Some(DriverSource::Tmpfs(opts)) => {
                        tmpfs.insert(m.destination.clone(), ro(opts));
                    }
                    Some(DriverSource::Bind(dev)) => binds.push(BindMount {
                        source: staging.stage(
                            n,
                            &dev.to_string_lossy(),
                            staging.strictest(&[
                                meta.approved_role.as_deref(),
                                m.approved_role.as_deref(),
                            ]),
                            false,
                        )?,
                        destination: m.destination.clone(),
                        readonly: !m.rw,
                        propagation: Some("rprivate".into()),
                    }),
                    None => {
                        let data = volumes::data_path(data_root, &m.name);
                        if m.copy_up {
                            copy_up(rootfs, &m.destination, &data)?;
                        }
                        binds.push(BindMount {
                            source: data,
                            destination: m.destination.clone(),
                            readonly: !m.rw,
                            propagation: Some("rprivate".into()),
                        });
                    }
                }
            }
        }
    }
    Ok((binds, tmpfs))
}

/// Copies the image's directory at `dest` (resolved inside `rootfs`, so a symlink in the
/// image cannot point the copy at the host) into the volume's `data` when that is empty,
/// with its owner and mode (moby `container.CopyImagePathContent`). Both trees are
/// handled through directory descriptors only: another container already using the
/// volume cannot redirect the copy by swapping a directory for a symlink.
fn copy_up(rootfs: &Path, dest: &str, data: &Path) -> Result<(), EngineError> {
    let target = dirfd::open_dir(data).map_err(EngineError::io("cannot open", data))?;
    if !dirfd::read_names(&target).is_ok_and(|n| n.is_empty()) {
        return Ok(());
    }
    let Ok(root) = dirfd::open_dir(rootfs) else {
        return Ok(());
    };
    let flags = nix::libc::O_RDONLY | nix::libc::O_DIRECTORY;
    let Ok(src) = berth_sys::resolve::openat_in_root(&root, Path::new(dest), flags, 0) else {
        return Ok(());
    };
    let src = std::fs::File::from(src);
    copy_tree(&src, &target).map_err(EngineError::io("cannot copy image content into", data))?;
    let md = src
        .metadata()
        .map_err(EngineError::io("cannot stat", data))?;
    dirfd::set_owner(&target, md.uid(), md.gid()).map_err(EngineError::io("cannot chown", data))?;
    dirfd::set_mode(&target, md.mode()).map_err(EngineError::io("cannot chmod", data))
}

/// Copies the entries of the open directory `src` into the open directory `dst`:
/// directories, regular files and symlinks (never followed), with owners and modes;
/// other file types skipped. Every step is relative to a directory descriptor.
pub(crate) fn copy_tree(src: &std::fs::File, dst: &std::fs::File) -> std::io::Result<()> {
    copy_tree_at(src, dst, 0)
}

fn copy_tree_at(src: &std::fs::File, dst: &std::fs::File, depth: usize) -> std::io::Result<()> {
    if depth > dirfd::MAX_DEPTH {
        return Err(dirfd::too_deep());
    }
    for (name, hint) in dirfd::read_names(src)? {
        let mut o = match dirfd::open_entry(src, &name, hint) {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let (ft, uid, gid, mode) = (o.md.file_type(), o.md.uid(), o.md.gid(), o.md.mode());
        if ft.is_symlink() {
            dirfd::symlink_child(dst, &name, &dirfd::read_link(&o.file)?)?;
            dirfd::chown_child(dst, &name, uid, gid)?;
        } else if ft.is_dir() {
            let d = dirfd::mkdir_child(dst, &name, 0o700)?;
            copy_tree_at(&o.file, &d, depth + 1)?;
            // Owner first: a chown clears set-id bits.
            dirfd::set_owner(&d, uid, gid)?;
            dirfd::set_mode(&d, mode)?;
        } else if ft.is_file() {
            let flags = nix::libc::O_WRONLY | nix::libc::O_CREAT | nix::libc::O_EXCL;
            let mut f = dirfd::open_child(dst, &name, flags, 0o600)?;
            std::io::copy(&mut o.file, &mut f)?;
            dirfd::set_owner(&f, uid, gid)?;
            dirfd::set_mode(&f, mode)?;
        }
    }
    Ok(())
}

/// The anonymous volumes to remove with the container in `dir` when it auto-removes
/// (`--rm`), read before the directory goes.
pub(crate) fn auto_removed_volumes(dir: &Path, auto_remove: bool) -> Vec<String> {
    if auto_remove {
        anonymous_volumes(dir)
    } else {
        Vec::new()
    }
}

/// The `volume mount` (at start) or `unmount` (at exit) events of a container's volumes,
/// with dockerd's attributes.
pub(crate) fn emit_volume_events(c: &Containers, id: &str, mount: bool) {
    for m in load(&c.data_dir(id)).iter().filter(|m| m.typ == "volume") {
        if mount {
            let rw = m.rw.to_string();
            c.events.emit(
                "volume",
                "mount",
                &m.name,
                &[
                    ("container", id),
                    ("destination", &m.destination),
                    ("driver", "local"),
                    ("propagation", &m.propagation),
                    ("read/write", &rw),
                ],
            );
        } else {
            c.events.emit(
                "volume",
                "unmount",
                &m.name,
                &[("container", id), ("driver", "local")],
            );
        }
    }
}

/// Removes the given anonymous volumes, now unused, with a `destroy` event for each.
pub(crate) async fn drop_volumes(c: &Containers, names: Vec<String>) {
    if let Some(root) = c.data.parent().map(Path::to_path_buf) {
        // Their data goes too: off the async workers.
        let removed = crate::blocking::spawn(move || volumes::remove_anonymous(&root, &names))
            .await
            .unwrap_or_default();
        for name in removed {
            c.events
                .emit("volume", "destroy", &name, &[("driver", "local")]);
        }
    }
}

impl Engine {
    /// The anonymous volumes of a container, for `DELETE /containers/{id}?v=1`: asked
    /// before the removal, dropped after it by [`Engine::volumes_drop_anonymous`].
    pub async fn container_anonymous_volumes(
        &self,
        name: &str,
    ) -> Result<Vec<String>, EngineError> {
        let id = self.containers.subject(name)?.rec().id.clone();
        Ok(anonymous_volumes(&self.containers.data_dir(&id)))
    }

    /// Removes those of `names` that are anonymous volumes no container uses.
    pub async fn volumes_drop_anonymous(&self, names: Vec<String>) {
        let root = self.config().data_root.clone();
        let removed = crate::blocking::spawn(move || volumes::remove_anonymous(&root, &names))
            .await
            .unwrap_or_default();
        for name in removed {
            self.emit_event("volume", "destroy", &name, &[("driver", "local")]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_parse_as_docker() {
        let m = parse_bind("/host/dir/:/data:ro").unwrap();
        assert_eq!(
            (
                m.typ.as_str(),
                m.source.as_str(),
                m.destination.as_str(),
                m.rw
            ),
            ("bind", "/host/dir", "/data", false)
        );
        assert_eq!(
            (m.mode.as_str(), m.propagation.as_str()),
            ("ro", "rprivate")
        );
        let m = parse_bind("myvol:/data").unwrap();
        assert_eq!(
            (m.typ.as_str(), m.name.as_str(), m.mode.as_str()),
            ("volume", "myvol", "z")
        );
        assert!(m.copy_up && !m.anonymous);
        let m = parse_bind("myvol:/data:nocopy").unwrap();
        assert!(!m.copy_up);
        let m = parse_bind("/anon").unwrap();
        assert!(m.anonymous && m.name.is_empty() && m.mode.is_empty());
        let m = parse_bind("/h:/x:rshared").unwrap();
        assert_eq!(m.propagation, "rshared");
    }

    #[test]
    fn bad_binds_get_dockers_words() {
        let e = |s| parse_bind(s).unwrap_err().to_string();
        assert!(
            e("foo/bar:/x").starts_with("create foo/bar: \"foo/bar\" includes invalid characters")
        );
        assert_eq!(
            e("myvol:rel"),
            "invalid volume specification: 'myvol:rel': invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert!(e("/a:/b:bogus").ends_with("invalid mode: bogus"));
        assert!(e("/a:/").contains("destination can't be '/'"));
        let root = parse_bind("/:/host:ro").unwrap();
        assert_eq!(
            (root.source.as_str(), root.destination.as_str()),
            ("/", "/host")
        );
        assert_eq!(parse_bind("/srv/./a/../b/:/x").unwrap().source, "/srv/b");
        assert_eq!(e("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
    }

    #[test]
    fn mounts_api_validation() {
        let m = |v: Value| parse_mount(&serde_json::from_value(v).unwrap());
        let e = m(json!({"Type": "bind", "Source": "/nonexist/x", "Target": "/x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexist/x"
        );
        let e = m(json!({"Type": "bind", "Source": "rel", "Target": "/x"})).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("invalid mount path: 'rel' mount path must be absolute"));
        assert!(m(
            json!({"Type": "bind", "Source": "/nonexist/x", "Target": "/x",
                         "BindOptions": {"CreateMountpoint": true}})
        )
        .is_ok());
        let t = m(json!({"Type": "tmpfs", "Target": "/t",
                         "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777}}))
        .unwrap();
        assert_eq!(t.tmpfs_options, "size=1048576,mode=1777");
        assert!(m(json!({"Type": "tmpfs", "Source": "x", "Target": "/t"})).is_err());
        let v = m(json!({"Type": "volume", "Target": "/v", "ReadOnly": true,
                         "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"}}}))
        .unwrap();
        assert!(v.anonymous && !v.copy_up && !v.rw);
        assert_eq!(v.volume_labels.unwrap()["a"], "b");
        assert!(m(json!({"Type": "npipe", "Target": "/x"})).is_err());
    }

    #[test]
    fn the_confined_role_wins() {
        let mut planned = vec![parse_bind("/h:/x").unwrap(), parse_bind("vol:/v").unwrap()];
        approve(&mut planned, Some("operator"));
        assert!(planned
            .iter()
            .all(|m| m.approved_role.as_deref() == Some("operator")));
        let policy = crate::BindPolicy {
            confined_roles: vec!["operator".into()],
            allow: vec![PathBuf::from("/srv")],
        };
        let s = Staging {
            dir: PathBuf::from("/nonexistent"),
            policy: Some(policy),
            images: BTreeMap::new(),
        };
        assert_eq!(
            s.strictest(&[Some("admin"), Some("operator")]),
            Some("operator")
        );
        assert_eq!(s.strictest(&[None, Some("admin")]), Some("admin"));
        assert_eq!(s.strictest(&[None, None]), None);
        let open = Staging { policy: None, ..s };
        assert_eq!(
            open.strictest(&[Some("admin"), Some("operator")]),
            Some("admin")
        );
    }

    #[test]
    fn inspect_shape() {
        let m = parse_bind("/h:/x").unwrap();
        assert_eq!(
            m.docker_json(),
            json!({"Type": "bind", "Source": "/h", "Destination": "/x", "Mode": "", "RW": true,
                   "Propagation": "rprivate"})
        );
    }

    #[test]
    fn copy_tree_keeps_symlinks_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("s"), tmp.path().join("d"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "x").unwrap();
        std::fs::set_permissions(src.join("sub/f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        copy_tree(
            &dirfd::open_dir(&src).unwrap(),
            &dirfd::open_dir(&dst).unwrap(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("sub/f")).unwrap(), "x");
        let md = std::fs::metadata(dst.join("sub/f")).unwrap();
        assert_eq!(md.mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
    }

    /// A volume shared with a running container: while the copy runs, that container
    /// swaps a directory the copy made for a symlink to a host directory. Nothing may be
    /// written there.
    #[test]
    fn copy_tree_never_writes_through_a_swapped_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst, host) = (
            tmp.path().join("s"),
            tmp.path().join("d"),
            tmp.path().join("host"),
        );
        std::fs::create_dir_all(src.join("sub")).unwrap();
        for i in 0..20 {
            std::fs::write(src.join(format!("sub/f{i}")), "x").unwrap();
        }
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flipper = {
            let (stop, dst, host) = (stop.clone(), dst.clone(), host.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let aside = dst.join(format!("old{n}"));
                    n += 1;
                    if std::fs::rename(dst.join("sub"), &aside).is_ok() {
                        let _ = std::os::unix::fs::symlink(&host, dst.join("sub"));
                        let _ = std::fs::remove_dir_all(&aside);
                    }
                    let _ = std::fs::remove_file(dst.join("sub"));
                }
            })
        };
        let (s, d) = (
            dirfd::open_dir(&src).unwrap(),
            dirfd::open_dir(&dst).unwrap(),
        );
        // The path-based copy wrote through the symlink within 200 tries (all 20 files).
        for _ in 0..200 {
            let _ = copy_tree(&s, &d);
            let _ = dirfd::remove_child(&d, std::ffi::OsStr::new("sub"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flipper.join().unwrap();
        let leaked: Vec<_> = std::fs::read_dir(&host).unwrap().flatten().collect();
        assert!(
            leaked.is_empty(),
            "{} files written through the symlink",
            leaked.len()
        );
    }
}
