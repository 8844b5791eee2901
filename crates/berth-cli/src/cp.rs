//! The container filesystem commands: `cp` (both ways, `-` for a tar on stdin/stdout),
//! `diff`, `export` and `commit`, with docker's argument forms (docker/cli
//! `cli/command/container/{cp,diff,export,commit}.go`).
//!
//! `cp` follows docker's rules: copying into an existing directory puts the source inside
//! it, a missing destination is created under the source's new name, `SRC/.` copies a
//! directory's contents. Archives are built and extracted here with the `tar` crate.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bollard::models::{ChangeType, ContainerConfig};
use bollard::query_parameters::{
    CommitContainerOptions, ContainerArchiveInfoOptions, DownloadFromContainerOptions,
    UploadToContainerOptions,
};
use clap::{Args, Subcommand};
use futures_util::StreamExt;

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
    /// Manage volumes
    #[command(subcommand)]
    Volume(crate::volume::VolumeCommand),
    /// Manage Berth (disk usage)
    #[command(subcommand)]
    System(SystemCommand),
}

/// `berth system ...` (the parts this module owns).
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
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
        FsCommand::Volume(c) => crate::volume::run(session, c).await,
        FsCommand::System(SystemCommand::Df(a)) => crate::volume::df(session, a.verbose).await,
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
        (Some((c, p)), None) => copy_from(session, c, p, &a.dst).await,
        (None, Some((c, p))) => copy_to(session, &a.src, c, p, a.archive).await,
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

async fn copy_from(session: &Session, ctr: &str, path: &str, dst: &str) -> Result<(), Error> {
    let client = session.client().await?;
    let opts = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let mut stream = client.docker().download_from_container(ctr, Some(opts));
    let mut tar_bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar_bytes.extend_from_slice(&chunk.map_err(|e| client.explain(e))?);
    }
    if dst == "-" {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(&tar_bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Error::client(format!("cannot write the archive: {e}")));
    }
    let src_base = if path.ends_with("/.") {
        ".".to_string()
    } else {
        Path::new(path.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into())
    };
    let dst_path = Path::new(dst);
    // Into an existing directory: keep the names; else create `dst` from the source.
    let (dir, new_base) = if dst_path.is_dir() {
        (
            dst_path.to_path_buf(),
            if src_base == "." {
                None
            } else {
                Some(src_base.clone())
            },
        )
    } else {
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
        (parent.to_path_buf(), Some(base))
    };
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
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
        let target = match &new_base {
            Some(b) => rebase(&name, &src_base, b),
            None => name.clone(),
        };
        if target.starts_with('/') || target.split('/').any(|c| c == "..") {
            return Err(Error::client(format!(
                "archive entry {name:?} escapes the destination"
            )));
        }
        let to = dir.join(target.trim_start_matches("./"));
        let res = match to.parent() {
            Some(p) => std::fs::create_dir_all(p),
            None => Ok(()),
        };
        res.and_then(|()| entry.unpack(&to).map(|_| ()))
            .map_err(|e| Error::client(format!("cannot extract {name}: {e}")))?;
    }
    Ok(())
}

/// A tar of the local `src`, its top entry named `name` (`.` entries for `SRC/.`).
fn local_tar(src: &str, name: &str) -> Result<Vec<u8>, Error> {
    let path = Path::new(src);
    let md = std::fs::symlink_metadata(path)
        .map_err(|e| Error::client(format!("lstat {}: {}", path.display(), e)))?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let res = if md.is_dir() {
        if name == "." {
            b.append_dir_all(".", path)
        } else {
            b.append_dir_all(name, path)
        }
    } else {
        b.append_path_with_name(path, name)
    };
    res.and_then(|()| b.into_inner())
        .map_err(|e| Error::client(format!("cannot archive {src}: {e}")))
}

async fn copy_to(
    session: &Session,
    src: &str,
    ctr: &str,
    path: &str,
    archive: bool,
) -> Result<(), Error> {
    let client = session.client().await?;
    let src_is_dir = Path::new(src).is_dir();
    let contents = src.ends_with("/.");
    let src_base = Path::new(src.trim_end_matches("/.").trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
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
        Ok(s) if s.file_mode & (1 << 31) != 0 => (
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
    let bytes = local_tar(src.trim_end_matches("/."), &name)?;
    let opts = UploadToContainerOptions {
        path: target_dir,
        no_overwrite_dir_non_dir: Some("true".into()),
        copy_uidgid: archive.then(|| "true".into()),
    };
    client
        .docker()
        .upload_to_container(ctr, Some(opts), bollard::body_full(bytes.into()))
        .await
        .map_err(|e| client.explain(e))
}

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
}
