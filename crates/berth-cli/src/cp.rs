//! The container filesystem commands: `cp` (both ways, `-` for a tar on stdin/stdout),
//! `diff`, `export` and `commit`, with docker's argument forms (docker/cli
//! `cli/command/container/{cp,diff,export,commit}.go`).
//!
//! `cp` follows docker's rules: copying into an existing directory puts the source inside
//! it, a missing destination is created under the source's new name, `SRC/.` copies a
//! directory's contents. Archives are built and extracted here with the `tar` crate.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bollard::models::{ChangeType, ContainerConfig};
use bollard::query_parameters::{
    CommitContainerOptions, ContainerArchiveInfoOptions, DownloadFromContainerOptions,
    UploadToContainerOptions,
};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use hyper::body::Bytes;

use crate::error::Error;
use crate::{write_out, Session};

/// Top-level commands on a container's filesystem.
#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    #[arg(value_name = "SRC")]
    pub src: String,
    #[arg(value_name = "DEST")]
    pub dst: String,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Clone, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true)]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Runs one of this module's commands.
pub async fn run(session: &Session, cmd: &FsCommand) -> Result<(), Error> {
    match cmd {
        FsCommand::Cp(a) => cp(session, a).await,
        FsCommand::Diff(a) => diff(session, a).await,
        FsCommand::Export(a) => export(session, a).await,
        FsCommand::Commit(a) => commit(session, a).await,
    }
}

/// `CONTAINER:PATH` → (container, path); a local path → `None`.
fn split_container(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

async fn cp(session: &Session, a: &CpArgs) -> Result<(), Error> {
    match (split_container(&a.src), split_container(&a.dst)) {
        (Some((c, p)), None) => copy_from(session, c, p, &a.dst, a.follow_link).await,
        (None, Some((c, p))) => copy_to(session, &a.src, c, p, a.archive, a.follow_link).await,
        (Some(_), Some(_)) => Err(Error::client("copying between containers is not supported")),
        (None, None) => Err(Error::client("must specify at least one container source")),
    }
}

/// Replaces the first component of `name` by `new` (docker's `RebaseArchiveEntries`).
fn rebase(name: &str, old: &str, new: &str) -> String {
    let trimmed = name.trim_start_matches("./");
    match trimmed.split_once('/') {
        Some((first, rest)) if first == old || (old == "." && name.starts_with("./")) => {
            if old == "." {
                format!("{new}/{trimmed}")
            } else {
                format!("{new}/{rest}")
            }
        }
        _ if trimmed == old || (old == "." && (name == "." || name == "./")) => new.to_string(),
        _ if old == "." => format!("{new}/{trimmed}"),
        _ => name.to_string(),
    }
}

/// Go's `filepath.Base` for the names cp deals with: trailing `/` dropped, `.` kept.
fn base_name(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// docker's `archive.GetRebaseName`: the followed path keeps the original's trailing
/// `/.` or `/`, and the entries are renamed to the original's base name when it differs.
fn rebase_name_for(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    let current_dir = |p: &str| p == "." || p.ends_with("/.");
    if current_dir(path) && !current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let rename = (base_name(path) != base_name(&resolved)).then(|| base_name(path));
    (resolved, rename)
}

/// A link target as a container path: relative ones are taken from the link's directory.
fn link_target_path(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_string();
    }
    let parent = match link.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((p, _)) => p,
        None => ".",
    };
    format!("{}/{target}", parent.trim_end_matches('/'))
}

/// Chunks of a response body, read on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Writes into a channel that an upload body streams from.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload ended"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where and under which name `copy_from` extracts.
struct Extraction {
    dir: PathBuf,
    /// The archive's first component (`.` for `SRC/.`).
    arch_base: String,
    /// What it becomes, if renamed.
    new_base: Option<String>,
}

fn plan_extraction(
    dst: &str,
    arch_base: &str,
    rename: Option<String>,
) -> Result<Extraction, Error> {
    let dst_path = Path::new(dst);
    let want = rename.unwrap_or_else(|| arch_base.to_string());
    // Into an existing directory: keep the names; else create `dst` from the source.
    if dst_path.is_dir() {
        return Ok(Extraction {
            dir: dst_path.to_path_buf(),
            arch_base: arch_base.to_string(),
            new_base: (want != "." && want != arch_base).then_some(want),
        });
    }
    if dst.ends_with('/') {
        return Err(Error::client(format!(
            "destination directory \"{dst}\" must exist"
        )));
    }
    let parent = dst_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::client(format!(
            "no such directory: \"{}\"",
            parent.display()
        )));
    }
    let base = dst_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Extraction {
        dir: parent.to_path_buf(),
        arch_base: arch_base.to_string(),
        new_base: Some(base),
    })
}

/// Extracts the tar read from `r` as `plan` says (entries escaping the directory refused).
fn extract_local(r: impl Read, plan: &Extraction) -> Result<(), Error> {
    let mut archive = tar::Archive::new(r);
    archive.set_preserve_permissions(true);
    let entries = archive
        .entries()
        .map_err(|e| Error::client(format!("invalid archive from the daemon: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::client(format!("invalid archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| Error::client(format!("invalid archive: {e}")))?
            .to_string_lossy()
            .into_owned();
        let target = match &plan.new_base {
            Some(b) => rebase(&name, &plan.arch_base, b),
            None => name.clone(),
        };
        if target.starts_with('/') || target.split('/').any(|c| c == "..") {
            return Err(Error::client(format!(
                "archive entry {name:?} escapes the destination"
            )));
        }
        let to = plan.dir.join(target.trim_start_matches("./"));
        let res = match to.parent() {
            Some(p) => std::fs::create_dir_all(p),
            None => Ok(()),
        };
        res.and_then(|()| entry.unpack(&to).map(|_| ()))
            .map_err(|e| Error::client(format!("cannot extract {name}: {e}")))?;
    }
    Ok(())
}

async fn copy_from(
    session: &Session,
    ctr: &str,
    path: &str,
    dst: &str,
    follow: bool,
) -> Result<(), Error> {
    let client = session.client().await?;
    let mut path = path.to_string();
    let mut rename = None;
    if follow {
        // docker/cli `copyFromContainer`: copy the link's target, named as the link.
        let opts = ContainerArchiveInfoOptions { path: path.clone() };
        if let Ok(s) = client
            .docker()
            .get_container_archive_info(ctr, Some(opts))
            .await
        {
            if s.file_mode & GO_MODE_SYMLINK != 0 {
                let target = link_target_path(&path, &s.link_target);
                (path, rename) = rebase_name_for(&path, &target);
            }
        }
    }
    let opts = DownloadFromContainerOptions { path: path.clone() };
    let mut stream = client.docker().download_from_container(ctr, Some(opts));
    // The first chunk (or the daemon's error) before anything is written locally.
    let first = match stream.next().await {
        Some(chunk) => chunk.map_err(|e| client.explain(e))?,
        None => Bytes::new(),
    };
    if dst == "-" {
        let mut out = std::io::stdout().lock();
        let werr = |e: std::io::Error| Error::client(format!("cannot write the archive: {e}"));
        out.write_all(&first).map_err(werr)?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(|e| client.explain(e))?)
                .map_err(werr)?;
        }
        return out.flush().map_err(werr);
    }
    let arch_base = if path.ends_with("/.") {
        ".".to_string()
    } else {
        base_name(&path)
    };
    let plan = plan_extraction(dst, &arch_base, rename)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let extractor = tokio::task::spawn_blocking(move || {
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        // Returning drops the receiver: a failed extraction stops the download.
        extract_local(&mut r, &plan)
    });
    let mut download = Ok(());
    let mut next = Some(Ok(first));
    while let Some(chunk) = next {
        match chunk {
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                download = Err(client.explain(e));
                break;
            }
        }
        next = stream.next().await;
    }
    drop(tx);
    let extracted = extractor
        .await
        .map_err(|e| Error::client(format!("extraction failed: {e}")))?;
    download.and(extracted)
}

/// Go's `os.ModeSymlink` in the stat header's mode.
const GO_MODE_SYMLINK: u32 = 1 << 27;
/// Go's `os.ModeDir`.
const GO_MODE_DIR: u32 = 1 << 31;

/// Writes a tar of the local `path` (not followed) into `w`, its top entry named `name`
/// (`.` entries for `SRC/.`).
fn write_local_tar(w: impl Write, path: &Path, name: &str, is_dir: bool) -> std::io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    if is_dir {
        b.append_dir_all(name, path)?;
    } else {
        b.append_path_with_name(path, name)?;
    }
    b.into_inner()?.flush()
}

async fn copy_to(
    session: &Session,
    src: &str,
    ctr: &str,
    path: &str,
    archive: bool,
    follow: bool,
) -> Result<(), Error> {
    let client = session.client().await?;
    let contents = src.ends_with("/.");
    let trimmed_src = src.trim_end_matches("/.");
    let src_base = Path::new(trimmed_src.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    // With -L the link's target is archived under the link's name (docker's
    // `ResolveHostSourcePath`); without, a link is copied as a link.
    let local = if follow {
        std::fs::canonicalize(trimmed_src)
            .map_err(|e| Error::client(format!("lstat {trimmed_src}: {e}")))?
    } else {
        PathBuf::from(trimmed_src)
    };
    let md = std::fs::symlink_metadata(&local)
        .map_err(|e| Error::client(format!("lstat {}: {}", local.display(), e)))?;
    let src_is_dir = md.is_dir();
    let stat = client
        .docker()
        .get_container_archive_info(
            ctr,
            Some(ContainerArchiveInfoOptions {
                path: path.to_string(),
            }),
        )
        .await;
    let (target_dir, name) = match stat {
        Ok(s) if s.file_mode & GO_MODE_DIR != 0 => (
            path.to_string(),
            if contents { ".".into() } else { src_base },
        ),
        Ok(_) if src_is_dir => {
            return Err(Error::client(format!(
                "cannot copy directory to a file: {ctr}:{path}"
            )))
        }
        _ => {
            // A missing (or file) destination: write the new name into its parent, which
            // must exist (the daemon's "Could not find the file" otherwise).
            let trimmed = path.trim_end_matches('/');
            let (parent, base) = match trimmed.rsplit_once('/') {
                Some(("", b)) => ("/".to_string(), b.to_string()),
                Some((p, b)) => (p.to_string(), b.to_string()),
                None => (".".to_string(), trimmed.to_string()),
            };
            client
                .docker()
                .get_container_archive_info(
                    ctr,
                    Some(ContainerArchiveInfoOptions {
                        path: parent.clone(),
                    }),
                )
                .await
                .map_err(|e| client.explain(e))?;
            (parent, base)
        }
    };
    // The tar is built on a blocking thread while it is sent.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
    let builder = tokio::task::spawn_blocking(move || {
        let w = BufWriter::with_capacity(TAR_BUF, ChannelWriter(tx.clone()));
        match write_local_tar(w, &local, &name, src_is_dir) {
            Ok(()) => {}
            // The upload ended first: its own error says why.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                let msg = format!("cannot archive {}: {e}", local.display());
                let _ = tx.blocking_send(Err(std::io::Error::other(msg.clone())));
                return Err(Error::client(msg));
            }
        }
        Ok(())
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let opts = UploadToContainerOptions {
        path: target_dir,
        no_overwrite_dir_non_dir: Some("true".into()),
        copy_uidgid: archive.then(|| "true".into()),
    };
    let sent = client
        .docker()
        .upload_to_container(ctr, Some(opts), bollard::body_try_stream(body))
        .await
        .map_err(|e| client.explain(e));
    let built = builder
        .await
        .map_err(|e| Error::client(format!("archiving failed: {e}")))?;
    // A local failure explains a failed upload better than the daemon's view of it.
    built.and(sent)
}

/// Size of the chunks the upload is sent in.
const TAR_BUF: usize = 1 << 20;

async fn diff(session: &Session, a: &DiffArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let changes = client
        .docker()
        .container_changes(&a.container)
        .await
        .map_err(|e| client.explain(e))?
        .unwrap_or_default();
    let mut out = String::new();
    for c in changes {
        let k = match c.kind {
            ChangeType::_0 => "C",
            ChangeType::_1 => "A",
            ChangeType::_2 => "D",
        };
        out.push_str(&format!("{k} {}\n", c.path));
    }
    write_out(&out)
}

async fn export(session: &Session, a: &ExportArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let mut stream = client.docker().export_container(&a.container);
    let mut sink: Box<dyn std::io::Write> = match &a.output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| {
            Error::client(format!("failed to export container: {}: {e}", p.display()))
        })?),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(Error::client(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                ));
            }
            Box::new(std::io::stdout().lock())
        }
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| client.explain(e))?;
        sink.write_all(&chunk)
            .map_err(|e| Error::client(format!("cannot write the archive: {e}")))?;
    }
    sink.flush()
        .map_err(|e| Error::client(format!("cannot write the archive: {e}")))
}

async fn commit(session: &Session, a: &CommitArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let (repo, tag) = match &a.reference {
        Some(r) => {
            let (repo, tag) = crate::image::split_tag_target(r);
            (Some(repo), tag)
        }
        None => (None, None),
    };
    let opts = CommitContainerOptions {
        container: Some(a.container.clone()),
        repo,
        tag,
        comment: a.message.clone(),
        author: a.author.clone(),
        pause: a.pause,
        changes: (!a.change.is_empty()).then(|| a.change.join("\n")),
    };
    let id = client
        .docker()
        .commit_container(opts, ContainerConfig::default())
        .await
        .map_err(|e| client.explain(e))?;
    write_out(&format!("{}\n", id.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(split_container("ctr:/etc"), Some(("ctr", "/etc")));
        assert_eq!(split_container("/local:odd"), None);
        assert_eq!(split_container("./x"), None);
        assert_eq!(split_container("plain"), None);
    }

    #[test]
    fn rebases_first_component() {
        assert_eq!(rebase("src/sub/f", "src", "dst"), "dst/sub/f");
        assert_eq!(rebase("src", "src", "dst"), "dst");
        assert_eq!(rebase("./sub/f", ".", "dst"), "dst/sub/f");
        assert_eq!(rebase("./", ".", "dst"), "dst");
        assert_eq!(rebase("other/f", "src", "dst"), "other/f");
    }

    #[test]
    fn follows_links_as_docker_names_them() {
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/a/."), ".");
        assert_eq!(base_name("/"), "/");
        assert_eq!(link_target_path("/link", "/t/f"), "/t/f");
        assert_eq!(link_target_path("/link", "t/f"), "/t/f");
        assert_eq!(link_target_path("/d/link", "../t"), "/d/../t");
        assert_eq!(
            rebase_name_for("/link", "/target/data.txt"),
            ("/target/data.txt".to_string(), Some("link".to_string()))
        );
        assert_eq!(
            rebase_name_for("/dlink/", "/target"),
            ("/target/".to_string(), Some("dlink".to_string()))
        );
        assert_eq!(
            rebase_name_for("/dlink/.", "/target"),
            ("/target/.".to_string(), None)
        );
        assert_eq!(
            rebase_name_for("/same", "/x/same"),
            ("/x/same".to_string(), None)
        );
    }
}
