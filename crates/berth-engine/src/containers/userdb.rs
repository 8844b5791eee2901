//! A container's user database: `/etc/passwd` and `/etc/group` read from its rootfs (at
//! start) or from its running process's root (`exec -u`), and `User`/`GroupAdd` resolved
//! against them as moby's `getUser` and runc's `user` package do.
//!
//! The files belong to the image or to a running container, so they are hostile: they are
//! opened inside the root (`openat2` with `RESOLVE_IN_ROOT`: symlinks are followed, as
//! dockerd follows them, but never out of the root), first as `O_PATH` so that a FIFO or a
//! device is never opened at all, then read only when `fstat` says regular file, and at
//! most [`MAX_FILE`] bytes. Reading is blocking work: the async entry points run it in
//! `spawn_blocking`.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_runtime::spec::User;
use berth_sys::pidfd::ProcessHandle;

use crate::EngineError;

/// The most bytes read from either file (real ones are a few KiB; runc's scanner refuses
/// lines over 64 KiB).
pub(crate) const MAX_FILE: u64 = 1 << 20;

/// The two files' text; a missing file is empty, as for runc.
#[derive(Debug, Default, Clone)]
pub(crate) struct UserDb {
    passwd: String,
    group: String,
}

impl UserDb {
    /// Reads both files below the open directory `root` (blocking).
    pub(crate) fn read(root: &File) -> Result<UserDb, EngineError> {
        Ok(UserDb {
            passwd: read_db_file(root, "etc/passwd")?,
            group: read_db_file(root, "etc/group")?,
        })
    }

    /// The database of a mounted rootfs, read on a blocking thread.
    pub(crate) async fn of_rootfs(rootfs: PathBuf) -> Result<UserDb, EngineError> {
        blocking(move || {
            let root = File::open(&rootfs).map_err(EngineError::io("cannot open", &rootfs))?;
            UserDb::read(&root)
        })
        .await
    }

    /// The database a running container's process sees (its mount namespace's root, bind
    /// mounts included), read on a blocking thread; never the host's.
    pub(crate) async fn of_process(process: ProcessHandle) -> Result<UserDb, EngineError> {
        blocking(move || {
            let root = process
                .root()
                .map_err(|e| EngineError::Conflict(format!("container is not running: {e}")))?;
            UserDb::read(&root)
        })
        .await
    }

    /// `User` as `uid[:gid]` or names (moby `getUser`; errors in its words).
    pub(crate) fn resolve_user(&self, spec: &str) -> Result<User, EngineError> {
        if spec.is_empty() {
            return Ok(User::default());
        }
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, mut gid) = match u.parse::<u32>() {
            Ok(n) => (n, self.passwd_entry(u).map(|x| x.1).unwrap_or(0)),
            Err(_) if u == "root" => (0, 0),
            Err(_) => self.passwd_entry(u).ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                ))
            })?,
        };
        if let Some(g) = g {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) if g == "root" => 0,
                Err(_) => self.group_id(g).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
            };
        }
        Ok(User {
            uid,
            gid,
            additional_gids: Vec::new(),
        })
    }

    /// The user with its supplementary groups as moby's `getUser` sets them: the primary
    /// group first (moby 20.10.18 on, CVE-2022-36109: a process must not shed its primary
    /// group to slip past a deny-by-group permission), then the user's memberships in
    /// `/etc/group` when the spec names no group, then `GroupAdd` (ids or names from the
    /// same file), in that order and without removing repeats, as moby.
    pub(crate) fn user(&self, spec: &str, group_add: &[String]) -> Result<User, EngineError> {
        let mut user = self.resolve_user(spec)?;
        user.additional_gids = self.supplementary_gids(spec, user.gid, group_add)?;
        Ok(user)
    }

    /// The home directory of `uid` in passwd; `/` when it has none (runc's default).
    pub(crate) fn home(&self, uid: u32) -> String {
        self.passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2).map(|s| s.parse()) == Some(Ok(uid))).then(|| f.get(5).copied())?
            })
            .filter(|h| !h.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    /// `(uid, gid)` of passwd entry `name`.
    fn passwd_entry(&self, name: &str) -> Option<(u32, u32)> {
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f.first() == Some(&name)).then(|| {
                let id = f.get(2)?.parse().ok()?;
                let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
                Some((id, gid))
            })?
        })
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        self.group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
        })
    }

    fn supplementary_gids(
        &self,
        user_spec: &str,
        primary: u32,
        group_add: &[String],
    ) -> Result<Vec<u32>, EngineError> {
        let (name, explicit_group) = match user_spec.split_once(':') {
            Some((n, _)) => (n, true),
            None => (user_spec, false),
        };
        let user_name = if name.parse::<u32>().is_ok() || name.is_empty() {
            // A numeric user's memberships go by its passwd name.
            let uid = name.parse::<u32>().unwrap_or(0);
            self.passwd
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f.get(2).map(|s| s.parse()) == Some(Ok(uid)))
                        .then(|| f.first().map(|s| s.to_string()))?
                })
                .unwrap_or_default()
        } else {
            name.to_string()
        };
        let mut out: Vec<u32> = vec![primary];
        let mut push = |g: u32| out.push(g);
        for l in self.group.lines().filter(|_| !explicit_group) {
            let f: Vec<&str> = l.split(':').collect();
            let member = f
                .get(3)
                .is_some_and(|m| !user_name.is_empty() && m.split(',').any(|m| m == user_name));
            if member {
                if let Some(g) = f.get(2).and_then(|g| g.parse::<u32>().ok()) {
                    push(g);
                }
            }
        }
        for g in group_add {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => self.group_id(g).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "Unable to find group {g}: no matching entries in group file"
                    ))
                })?,
            };
            push(gid);
        }
        Ok(out)
    }
}

/// Whether `env` sets a non-empty `HOME` (what the runtimes look for).
pub(crate) fn sets_home(env: &[String]) -> bool {
    env.iter()
        .any(|e| e.strip_prefix("HOME=").is_some_and(|h| !h.is_empty()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    crate::blocking::spawn(f)
        .await
        .map_err(|e| EngineError::Internal(format!("user lookup task failed: {e}")))?
}

/// `rel` below `root`: empty when absent, an error when it is not a regular file of at
/// most [`MAX_FILE`] bytes.
fn read_db_file(root: &File, rel: &str) -> Result<String, EngineError> {
    let bad = |why: String| EngineError::InvalidArgument(format!("cannot read /{rel}: {why}"));
    let o_path = nix::fcntl::OFlag::O_PATH.bits();
    let fd = match berth_sys::resolve::openat_in_root(root, Path::new(rel), o_path, 0) {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error().is_some_and(is_absent) => return Ok(String::new()),
        Err(e) => return Err(bad(e.to_string())),
    };
    // fstat on the O_PATH descriptor: nothing was opened for reading yet.
    let meta = fd.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_FILE {
        return Err(bad(format!("larger than {MAX_FILE} bytes")));
    }
    // Reopened through the descriptor (the same inode, a regular file) to read it.
    let f =
        File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|e| bad(e.to_string()))?;
    let mut buf = Vec::new();
    // A running container may grow the file after the fstat: the read is capped too.
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(bad(format!("larger than {MAX_FILE} bytes")));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Errors that mean "no such file" for the lookup (`etc` missing or not a directory).
fn is_absent(errno: i32) -> bool {
    errno == nix::errno::Errno::ENOENT as i32 || errno == nix::errno::Errno::ENOTDIR as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        tmp
    }

    fn read(tmp: &tempfile::TempDir) -> Result<UserDb, EngineError> {
        UserDb::read(&File::open(tmp.path()).unwrap())
    }

    #[test]
    fn users() {
        let tmp = rootfs();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\nbad\n:x\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "wheel:x:10:nobody\nstaff:x:50:other,nobody\nbroken\n",
        )
        .unwrap();
        let db = read(&tmp).unwrap();
        let u = |s| db.resolve_user(s).map(|u| (u.uid, u.gid));
        assert_eq!(u("").unwrap(), (0, 0));
        assert_eq!(u("1000:1001").unwrap(), (1000, 1001));
        assert_eq!(u("root").unwrap(), (0, 0));
        assert_eq!(u("nobody").unwrap(), (65534, 65533));
        assert_eq!(u("nobody:staff").unwrap(), (65534, 50));
        assert_eq!(
            u("ghost").unwrap_err().to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert!(u("nobody:ghosts").is_err());
        assert_eq!(db.home(0), "/root");
        assert_eq!(db.home(65534), "/");
        assert_eq!(db.home(4242), "/");
        assert!(sets_home(&["A=1".into(), "HOME=/h".into()]));
        assert!(!sets_home(&["HOME=".into(), "XHOME=/h".into()]));
        // moby's order, repeats kept: primary, memberships, then GroupAdd.
        let full = db.user("nobody", &["7".into(), "wheel".into()]).unwrap();
        assert_eq!(full.additional_gids, [65533, 10, 50, 7, 10]);
        // A group in the spec: no memberships (libcontainer's explicit form).
        let explicit = db.user("nobody:staff", &[]).unwrap();
        assert_eq!((explicit.gid, explicit.additional_gids), (50, vec![50]));
        assert!(db.user("nobody", &["ghosts".into()]).is_err());
    }

    #[test]
    fn missing_files_are_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let db = read(&tmp).unwrap();
        assert_eq!(db.resolve_user("12").unwrap().uid, 12);
        assert!(db.resolve_user("nobody").is_err());
        std::fs::write(tmp.path().join("etc"), "a file").unwrap();
        assert!(read(&tmp).is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = rootfs();
        // No writer ever opens it: a read-only open without O_NONBLOCK would hang.
        nix::unistd::mkfifo(
            &tmp.path().join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let err = read(&tmp).unwrap_err().to_string();
        assert_eq!(err, "cannot read /etc/passwd: not a regular file");
    }

    #[test]
    fn a_link_to_a_device_is_refused() {
        let tmp = rootfs();
        // Inside the root, /dev/zero is the host's only if the walk escapes: make it the
        // real device's path in both readings by linking to the host's directly too.
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        nix::sys::stat::mknod(
            &tmp.path().join("dev/zero"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        symlink("/dev/zero", tmp.path().join("etc/passwd")).unwrap();
        let err = read(&tmp).unwrap_err().to_string();
        assert_eq!(err, "cannot read /etc/passwd: not a regular file");
        // A link to the host's /dev/zero by a path that does not exist in the root.
        std::fs::remove_file(tmp.path().join("etc/passwd")).unwrap();
        std::fs::remove_file(tmp.path().join("dev/zero")).unwrap();
        symlink("/dev/zero", tmp.path().join("etc/passwd")).unwrap();
        assert!(read(&tmp).unwrap().resolve_user("nobody").is_err());
    }

    #[test]
    fn an_escaping_link_resolves_inside_the_root() {
        let tmp = rootfs();
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("etc")).unwrap();
        std::fs::write(
            host.path().join("etc/passwd"),
            "hostuser:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        // `../../../<host dir>/etc/passwd` would reach `host` from the rootfs by path.
        let depth = tmp.path().components().count();
        let up = "../".repeat(depth + 3);
        let target = format!("{up}{}/etc/passwd", host.path().display());
        symlink(&target, tmp.path().join("etc/passwd")).unwrap();
        assert!(std::fs::read_to_string(tmp.path().join("etc/passwd")).is_ok());
        let db = read(&tmp).unwrap();
        assert!(db.resolve_user("hostuser").is_err());
        // The same link's target planted inside the root is what it reads.
        let inside = tmp.path().join(host.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.join("etc")).unwrap();
        std::fs::write(inside.join("etc/passwd"), "imguser:x:7:8::/:/bin/sh\n").unwrap();
        let u = read(&tmp).unwrap().resolve_user("imguser").unwrap();
        assert_eq!((u.uid, u.gid), (7, 8));
    }

    #[test]
    fn a_huge_file_is_refused() {
        let tmp = rootfs();
        let f = File::create(tmp.path().join("etc/group")).unwrap();
        f.set_len(100 << 20).unwrap();
        let err = read(&tmp).unwrap_err().to_string();
        assert_eq!(err, "cannot read /etc/group: larger than 1048576 bytes");
        f.set_len(MAX_FILE).unwrap();
        assert!(read(&tmp).is_ok());
    }

    #[tokio::test]
    async fn a_running_process_root_is_read() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let h = ProcessHandle::open(pid, berth_sys::pidfd::start_time(pid).unwrap()).unwrap();
        // The child shares our root: the host's database, read through the handle.
        let got = UserDb::of_process(h).await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(got.unwrap().resolve_user("root").is_ok());
    }
}
