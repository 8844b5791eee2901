//! The build context as docker's CLI makes it (`build/context.go`): a directory walked
//! with lstat only and `.dockerignore` applied (the Dockerfile and `.dockerignore` always
//! sent), a Dockerfile from stdin or outside the context added under a random name, a
//! tar or a lone Dockerfile on stdin; written to an unlinked temporary file.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use berth_build::dockerignore::{read_patterns, Matcher};

use super::BuildArgs;
use crate::error::Error;

/// A random `.dockerfile.<20 hex>` name, as docker's `AddDockerfileToBuildContext`.
fn random_dockerfile_name() -> String {
    let mut s = String::new();
    while s.len() < 20 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        s.push_str(&format!("{:016x}", h.finish()));
    }
    format!(".dockerfile.{}", s.get(..20).unwrap_or(&s))
}

/// A Dockerfile the CLI adds to the context (from stdin or outside the context dir).
struct ExtraDockerfile {
    name: String,
    data: Vec<u8>,
}

/// An unlinked temporary file.
fn temp_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    for i in 0..16u32 {
        let path = dir.join(format!(
            "berth-build-{}-{}-{i}.tar",
            std::process::id(),
            random_dockerfile_name().trim_start_matches(".dockerfile.")
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot create a temporary file"))
}

/// A header from `meta` with docker's `ChownOpts{0, 0}`.
fn header_for(meta: &std::fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// Writes the context directory `root` as a tar into `out`: lstat only (a symlink is
/// sent as a symlink), owners 0:0, paths `.dockerignore` excludes left out; `extra`
/// added with its name appended to `.dockerignore`, as docker does.
fn write_context(
    root: &Path,
    ignore: &Matcher,
    dockerignore: Option<&[u8]>,
    extra: Option<&ExtraDockerfile>,
    out: &mut File,
) -> Result<u64, Error> {
    let err = |p: &Path, e: io::Error| {
        Error::client(format!("error checking context: {}: {e}", p.display()))
    };
    let mut tar = tar::Builder::new(io::BufWriter::new(&mut *out));
    tar.follow_symlinks(false);
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| err(&dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if extra.is_some() && r == ".dockerignore" {
                continue;
            }
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| err(&path, e))?;
            if meta.is_dir() {
                if ignore.excluded(&r) {
                    if !ignore.can_skip_dir(&r) {
                        subdirs.push((path, r));
                    }
                    continue;
                }
                let mut h = header_for(&meta);
                h.set_size(0);
                tar.append_data(&mut h, format!("{r}/"), io::empty())
                    .map_err(|e| err(&path, e))?;
                subdirs.push((path, r));
                continue;
            }
            if ignore.excluded(&r) {
                continue;
            }
            let mut h = header_for(&meta);
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| err(&path, e))?;
                h.set_size(0);
                tar.append_link(&mut h, &r, &target)
                    .map_err(|e| err(&path, e))?;
            } else if meta.is_file() {
                let f = File::open(&path).map_err(|e| err(&path, e))?;
                tar.append_data(&mut h, &r, f).map_err(|e| err(&path, e))?;
            }
            // Sockets, fifos and devices are left out, as docker's archive walk does.
        }
        // Popped in name order, after this directory's files.
        stack.extend(subdirs.into_iter().rev());
    }
    if let Some(x) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_size(x.data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, &x.name, x.data.as_slice())
            .map_err(|e| Error::client(format!("cannot add the Dockerfile: {e}")))?;
        let mut ign = dockerignore.unwrap_or_default().to_vec();
        ign.extend_from_slice(format!("\n{}\n", x.name).as_bytes());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_size(ign.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, ".dockerignore", ign.as_slice())
            .map_err(|e| Error::client(format!("cannot add .dockerignore: {e}")))?;
    }
    let mut w = tar
        .into_inner()
        .map_err(|e| Error::client(format!("cannot write the build context: {e}")))?;
    w.flush()
        .map_err(|e| Error::client(format!("cannot write the build context: {e}")))?;
    drop(w);
    let size = out
        .stream_position()
        .map_err(|e| Error::client(format!("cannot write the build context: {e}")))?;
    out.rewind()
        .map_err(|e| Error::client(format!("cannot write the build context: {e}")))?;
    Ok(size)
}

/// docker's `build.IsArchive`: a compressed stream, or a tar header.
fn is_archive(head: &[u8]) -> bool {
    let magic: [&[u8]; 4] = [
        &[0x1f, 0x8b],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    magic.iter().any(|m| head.starts_with(m)) || head.get(257..262) == Some(b"ustar".as_slice())
}

/// A tar holding one file.
fn single_file_tar(name: &str, data: &[u8], out: &mut File) -> Result<u64, Error> {
    let e = |e: io::Error| Error::client(format!("cannot write the build context: {e}"));
    let mut tar = tar::Builder::new(&mut *out);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o600);
    h.set_size(data.len() as u64);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data).map_err(e)?;
    tar.finish().map_err(e)?;
    drop(tar);
    let size = out.stream_position().map_err(e)?;
    out.rewind().map_err(e)?;
    Ok(size)
}

/// What is sent: a context file (and its size), or nothing for a remote context.
pub(super) struct Prepared {
    pub(super) body: Option<(File, u64)>,
    pub(super) dockerfile: String,
    pub(super) remote: Option<String>,
}

fn read_stdin_all() -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| Error::client(format!("unable to read stdin: {e}")))?;
    Ok(data)
}

/// docker's context preparation (`runBuild`'s switch on the context argument).
pub(super) fn prepare(args: &BuildArgs) -> Result<Prepared, Error> {
    let file = args.file.clone().unwrap_or_default();
    let tmp =
        || temp_file().map_err(|e| Error::client(format!("cannot create a temporary file: {e}")));
    let ctx = args.context.as_str();
    if ctx == "-" {
        if file == "-" {
            return Err(Error::client(
                "invalid argument: can't use stdin for both build context and dockerfile",
            ));
        }
        // The first 512 bytes tell a tar (or a compressed stream) from a Dockerfile; a
        // tar is streamed on to the file, never held in memory.
        let mut stdin = io::stdin().lock();
        let mut head = Vec::new();
        (&mut stdin)
            .take(512)
            .read_to_end(&mut head)
            .map_err(|e| Error::client(format!("unable to read stdin: {e}")))?;
        let mut out = tmp()?;
        let werr = |e: io::Error| Error::client(format!("cannot write the build context: {e}"));
        if is_archive(&head) {
            out.write_all(&head).map_err(werr)?;
            let rest = io::copy(&mut stdin, &mut out).map_err(werr)?;
            out.rewind().map_err(werr)?;
            return Ok(Prepared {
                body: Some((out, head.len() as u64 + rest)),
                dockerfile: file,
                remote: None,
            });
        }
        let mut data = head;
        stdin
            .read_to_end(&mut data)
            .map_err(|e| Error::client(format!("unable to read stdin: {e}")))?;
        let size = single_file_tar("Dockerfile", &data, &mut out)?;
        return Ok(Prepared {
            body: Some((out, size)),
            dockerfile: "Dockerfile".into(),
            remote: None,
        });
    }
    if ["http://", "https://", "git://", "github.com/", "git@"]
        .iter()
        .any(|p| ctx.starts_with(p))
    {
        return Ok(Prepared {
            body: None,
            dockerfile: file,
            remote: Some(ctx.to_string()),
        });
    }
    let root = Path::new(ctx);
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::client(format!(
                "unable to prepare context: context must be a directory: {ctx}"
            )))
        }
        Err(_) => {
            return Err(Error::client(format!(
                "unable to prepare context: path {ctx:?} not found"
            )))
        }
    }
    // The Dockerfile: from stdin, outside the context (both added under a random name),
    // or a path inside it.
    let (rel, extra) = if file == "-" {
        let data = read_stdin_all()?;
        let name = random_dockerfile_name();
        (name.clone(), Some(ExtraDockerfile { name, data }))
    } else {
        let df = if file.is_empty() {
            root.join("Dockerfile")
        } else {
            PathBuf::from(&file)
        };
        let abs_root = std::fs::canonicalize(root)
            .map_err(|e| Error::client(format!("unable to prepare context: {e}")))?;
        let abs_df = std::fs::canonicalize(&df).map_err(|_| {
            Error::client(format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                df.display()
            ))
        })?;
        match abs_df.strip_prefix(&abs_root) {
            Ok(rel) => (rel.to_string_lossy().into_owned(), None),
            Err(_) => {
                let data = std::fs::read(&abs_df)
                    .map_err(|e| Error::client(format!("unable to open Dockerfile: {e}")))?;
                let name = random_dockerfile_name();
                (name.clone(), Some(ExtraDockerfile { name, data }))
            }
        }
    };
    let ignore_data = match std::fs::read(root.join(".dockerignore")) {
        Ok(d) => Some(d),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::client(format!("error reading .dockerignore: {e}"))),
    };
    let patterns = read_patterns(ignore_data.as_deref().unwrap_or_default());
    let patterns = Matcher::keep_build_files(&patterns, &rel, extra.is_some())
        .map_err(|e| Error::client(format!("error checking context: {e}")))?;
    let matcher = Matcher::new(&patterns)
        .map_err(|e| Error::client(format!("error checking context: {e}")))?;
    let mut out = tmp()?;
    let size = write_context(
        root,
        &matcher,
        ignore_data.as_deref(),
        extra.as_ref(),
        &mut out,
    )?;
    Ok(Prepared {
        body: Some((out, size)),
        dockerfile: rel,
        remote: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_args as args;

    #[test]
    fn archives_detected_as_docker_does() {
        assert!(is_archive(&[0x1f, 0x8b, 8]));
        assert!(is_archive(b"BZh91AY"));
        assert!(!is_archive(b"FROM busybox\n"));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert!(is_archive(&t));
        assert!(random_dockerfile_name().starts_with(".dockerfile."));
        assert_eq!(random_dockerfile_name().len(), ".dockerfile.".len() + 20);
    }

    #[test]
    fn context_honours_dockerignore_and_keeps_build_files() {
        let dir = std::env::temp_dir().join(format!("berth-cli-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/deep")).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            dir.join(".dockerignore"),
            "sub\n!sub/deep/keep\nDockerfile\n*.log\n",
        )
        .unwrap();
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        std::fs::write(dir.join("x.log"), "x").unwrap();
        std::fs::write(dir.join("sub/skip"), "s").unwrap();
        std::fs::write(dir.join("sub/deep/keep"), "k").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let a = args(&[dir.to_str().unwrap()]);
        let p = prepare(&a).unwrap();
        let (f, _) = p.body.unwrap();
        let mut ar = tar::Archive::new(f);
        let mut names: Vec<(String, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        names.sort();
        let just: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            just,
            [
                ".dockerignore",
                "Dockerfile",
                "a.txt",
                "link",
                "sub/deep/keep"
            ],
            "{names:?}"
        );
        assert!(names.iter().all(|(_, uid)| *uid == 0));
        assert_eq!(p.dockerfile, "Dockerfile");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
