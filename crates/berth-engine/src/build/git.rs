//! `remote` git contexts (moby `builder/remotecontext/git`): which URLs are git
//! repositories, their `#ref:subdir` fragment, and the clone dockerd makes (`git init`,
//! `remote add origin`, a shallow `fetch origin <ref>` where the server allows it,
//! `checkout`, submodules at depth 1). Git runs with no system or user config, no
//! prompts and no `file`/`ext` transports, bounded in time and in the size of the clone,
//! on the blocking thread of the context's reception; the subdirectory is resolved inside
//! the clone, a symlink never leading out of it.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// How long the whole clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a running git command's clone is measured.
const POLL: Duration = Duration::from_millis(200);
/// The most of git's output kept for an error message.
const MAX_OUTPUT: u64 = 4096;

/// Why a git command failed, in the words dockerd's error wraps (moby `gitWithinDir`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    /// The command's output could not be captured, or its process not watched.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// git could not be started.
    #[error("exec: \"git\": {0}")]
    Exec(std::io::Error),
    /// git ended with a failure: its output's tail, then Go's exit text.
    #[error("{output}: {how}")]
    Failed { output: String, how: String },
    /// The checkout grew past the build context's size limit.
    #[error("the repository is larger than {0} bytes")]
    TooLarge(u64),
    /// The clone ran past its time limit.
    #[error("git took longer than {}s", CLONE_TIMEOUT.as_secs())]
    TimedOut,
}

/// moby `urlutil.IsURL`.
pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// moby `urlutil.IsGitURL`: `git://`, `git@`, `github.com/`, or an HTTP(S) URL matching
/// `.git(?:#.+)?$` (the dot any character, as Go's unescaped regexp has it).
pub(super) fn is_git_url(s: &str) -> bool {
    if ["git://", "github.com/", "git@"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        return true;
    }
    if !is_url(s) {
        return false;
    }
    s.match_indices("git").any(|(i, _)| {
        let before = s.get(..i).and_then(|b| b.chars().next_back());
        let rest = s.get(i + 3..).unwrap_or_default();
        let tail_ok = rest.is_empty()
            || rest
                .strip_prefix('#')
                .is_some_and(|f| !f.is_empty() && !f.contains('\n'));
        before.is_some_and(|c| c != '\n') && tail_ok
    })
}

/// A git context: where to fetch, which ref, which directory of it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct GitRepo {
    pub remote: String,
    pub reference: String,
    pub subdir: String,
}

/// moby `parseRemoteURL`: `github.com/x` becomes `https://github.com/x`; the fragment is
/// `ref:subdir`, the ref `master` when empty. A ref starting with `-` is refused (git
/// would read it as an option).
pub(super) fn parse_remote(url: &str) -> Result<GitRepo, EngineError> {
    let full = if is_url(url) || url.starts_with("git://") || url.starts_with("git@") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let (remote, fragment) = full.split_once('#').unwrap_or((&full, ""));
    if !remote.starts_with("git@") {
        reqwest::Url::parse(remote).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "unable to prepare context: invalid git URL {url:?}: {e}"
            ))
        })?;
    }
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let reference = if reference.is_empty() {
        "master"
    } else {
        reference
    };
    if reference.starts_with('-') {
        return Err(EngineError::InvalidArgument(format!(
            "invalid refspec: {reference}"
        )));
    }
    Ok(GitRepo {
        remote: remote.to_string(),
        reference: reference.to_string(),
        subdir: subdir.to_string(),
    })
}

/// The bytes of the tree below `dir` (symlinks not followed), stopping past `limit`.
fn tree_size(dir: &Path, limit: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            total = total.saturating_add(md.len());
            if total > limit {
                return total;
            }
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// One git command over the clone at `root`, in its own process group (killed with its
/// helpers past the deadline or when the clone outgrows `limit`); its output goes to
/// `log`, whose tail is the error message.
struct Git<'a> {
    root: &'a Path,
    home: &'a Path,
    log: &'a Path,
    deadline: Instant,
    limit: u64,
}

impl Git<'_> {
    fn command(&self, args: &[&str], dir: &Path) -> Command {
        let mut c = Command::new("git");
        // No transport that reads local files or runs commands, even for submodules.
        c.args([
            "-c",
            "protocol.file.allow=never",
            "-c",
            "protocol.ext.allow=never",
        ]);
        c.args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.home)
            .env("XDG_CONFIG_HOME", self.home)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .stdin(Stdio::null());
        c
    }

    /// `git --work-tree <root> --git-dir <root>/.git <args>` (moby `gitWithinDir`).
    fn within(&self, args: &[&str]) -> Result<(), GitError> {
        let git_dir = self.root.join(".git");
        let (wt, gd) = (self.root.to_string_lossy(), git_dir.to_string_lossy());
        let mut full = vec!["--work-tree", wt.as_ref(), "--git-dir", gd.as_ref()];
        full.extend_from_slice(args);
        self.run(&full, self.root)
    }

    fn run(&self, args: &[&str], dir: &Path) -> Result<(), GitError> {
        let log = std::fs::File::create(self.log)?;
        let err = log.try_clone()?;
        let mut cmd = self.command(args, dir);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(GitError::Exec)?;
        let kill = |child: &mut std::process::Child| {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait();
        };
        loop {
            // The bounds first, so that a command past them never counts as done.
            if Instant::now() >= self.deadline {
                kill(&mut child);
                return Err(GitError::TimedOut);
            }
            let big = tree_size(self.root, self.limit) > self.limit;
            match child.try_wait() {
                _ if big => {
                    kill(&mut child);
                    return Err(GitError::TooLarge(self.limit));
                }
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    // Go's `exec.ExitError` text, after the output (moby `errors.Wrapf`).
                    let how = match status.code() {
                        Some(c) => format!("exit status {c}"),
                        None => status.to_string(),
                    };
                    return Err(GitError::Failed {
                        output: self.output(),
                        how,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    kill(&mut child);
                    return Err(GitError::Io(e));
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// The tail of the last command's output.
    fn output(&self) -> String {
        let Ok(mut f) = std::fs::File::open(self.log) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(MAX_OUTPUT)));
        let mut buf = Vec::new();
        let _ = f.take(MAX_OUTPUT).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// moby `supportsShallowClone`: a non-HTTP transport, or an HTTP server that answers the
/// smart protocol's advertisement.
async fn supports_shallow(remote: &str) -> bool {
    if !is_url(remote) {
        return true;
    }
    let url = format!("{remote}/info/refs?service=git-upload-pack");
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    else {
        return false;
    };
    let smart = |r: &reqwest::Response| {
        r.status().is_success()
            && r.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/x-git-upload-pack-advertisement")
    };
    match client.head(&url).send().await {
        Ok(r) if r.status().is_success() => smart(&r),
        _ => client.get(&url).send().await.is_ok_and(|r| smart(&r)),
    }
}

/// Clones `url` into `dir/git` and moves the context (the checkout or its subdirectory)
/// to `dir/context`, replacing that empty directory. The rest of the clone stays in the
/// build's work dir, removed with it.
pub(super) async fn clone_into(url: &str, dir: &Path, limit: u64) -> Result<(), EngineError> {
    let repo = parse_remote(url)?;
    let shallow = supports_shallow(&repo.remote).await;
    let dir = dir.to_path_buf();
    crate::blocking::spawn(move || clone_blocking(&repo, shallow, &dir, limit))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
}

fn clone_blocking(
    repo: &GitRepo,
    shallow: bool,
    dir: &Path,
    limit: u64,
) -> Result<(), EngineError> {
    let bad = EngineError::InvalidArgument;
    let root = dir.join("git");
    let home = dir.join("git-home");
    for d in [&root, &home] {
        std::fs::create_dir_all(d).map_err(EngineError::io("cannot create", d))?;
    }
    let git = Git {
        root: &root,
        home: &home,
        log: &dir.join("git.log"),
        deadline: Instant::now() + CLONE_TIMEOUT,
        limit,
    };
    git.within(&["init", "-q"])
        .map_err(|e| bad(format!("failed to init repo at {}: {e}", root.display())))?;
    git.within(&["remote", "add", "origin", &repo.remote])
        .map_err(|e| bad(format!("failed add origin repo at {}: {e}", repo.remote)))?;
    let mut fetch = vec!["fetch"];
    if shallow {
        fetch.extend(["--depth", "1"]);
    }
    fetch.extend(["origin", "--", &repo.reference]);
    git.within(&fetch)
        .map_err(|e| bad(format!("error fetching: {e}")))?;
    // A branch name first (it sets HEAD to the branch), else what was fetched.
    if let Err(e) = git.within(&["checkout", "-q", &repo.reference, "--"]) {
        git.within(&["checkout", "-q", "FETCH_HEAD"])
            .map_err(|_| bad(format!("error checking out {}: {e}", repo.reference)))?;
    }
    git.run(
        &["submodule", "update", "--init", "--recursive", "--depth=1"],
        &root,
    )
    .map_err(|e| bad(format!("error initializing submodules: {e}")))?;
    let ctx_root = if repo.subdir.is_empty() {
        root.clone()
    } else {
        // dockerd's texts, naming the subdirectory rather than the host path.
        let resolved = berth_sys::resolve::resolve_in_root(&root, Path::new(&repo.subdir));
        let p = resolved.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                bad(format!("stat {}: no such file or directory", repo.subdir))
            }
            _ => bad(format!(
                "error setting git context, {:?} not within git root: {e}",
                repo.subdir
            )),
        })?;
        let md = std::fs::symlink_metadata(&p).map_err(EngineError::io("cannot stat", &p))?;
        if !md.is_dir() {
            return Err(bad(format!(
                "error setting git context, not a directory: {}",
                repo.subdir
            )));
        }
        p
    };
    let ctx = dir.join("context");
    std::fs::remove_dir(&ctx).map_err(EngineError::io("cannot remove", &ctx))?;
    std::fs::rename(&ctx_root, &ctx).map_err(EngineError::io("cannot move", &ctx_root))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_as_moby_detects_them() {
        for yes in [
            "git://h/r",
            "git@github.com:a/b.git",
            "github.com/a/b",
            "https://h/r.git",
            "http://h/r.git#main:sub",
            "http://h/rxgit",
        ] {
            assert!(is_git_url(yes), "{yes}");
        }
        for no in [
            "https://h/r.tar",
            "http://h/r.git#",
            "ftp://h/r.git",
            "file:///r.git",
            "/tmp/r.git",
            "https://h/git/x",
        ] {
            assert!(!is_git_url(no), "{no}");
        }
    }

    #[test]
    fn fragments_give_ref_and_subdir() {
        let r = parse_remote("https://h/r.git#dev:sub/dir").unwrap();
        assert_eq!(
            r,
            GitRepo {
                remote: "https://h/r.git".into(),
                reference: "dev".into(),
                subdir: "sub/dir".into()
            }
        );
        let r = parse_remote("github.com/a/b").unwrap();
        assert_eq!(
            (r.remote.as_str(), r.reference.as_str()),
            ("https://github.com/a/b", "master")
        );
        let r = parse_remote("git@h:a/b.git#:d").unwrap();
        assert_eq!(
            (r.remote.as_str(), r.reference.as_str(), r.subdir.as_str()),
            ("git@h:a/b.git", "master", "d")
        );
        let e = parse_remote("git://h/r#--upload-pack=x").unwrap_err();
        assert!(e.to_string().contains("invalid refspec"), "{e}");
    }

    fn runner<'a>(d: &'a Path, log: &'a Path, limit: u64, deadline: Instant) -> Git<'a> {
        Git {
            root: d,
            home: d,
            log,
            deadline,
            limit,
        }
    }

    #[test]
    fn git_runs_within_its_bounds_and_reports_its_output() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        std::fs::create_dir(&root).unwrap();
        let log = d.path().join("log");
        let later = Instant::now() + Duration::from_secs(60);
        runner(&root, &log, 1 << 20, later)
            .within(&["init", "-q"])
            .unwrap();
        // A failure: git's own words, then Go's exit text.
        let e = runner(&root, &log, 1 << 20, later)
            .within(&["checkout", "-q", "nope", "--"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nope") && e.ends_with(": exit status 128"),
            "{e}"
        );
        // Past the size bound (a clone that grew too big) or the deadline: an error,
        // even for a command that succeeds.
        std::fs::write(root.join("big"), vec![0u8; 4096]).unwrap();
        let e = runner(&root, &log, 1024, later)
            .within(&["status", "-s"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 1024 bytes"), "{e}");
        let e = runner(&root, &log, 1 << 20, Instant::now())
            .within(&["status", "-s"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("took longer than"), "{e}");
    }

    #[test]
    fn tree_size_stops_past_the_limit_and_skips_symlink_targets() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(d.path().join("s")).unwrap();
        std::fs::write(d.path().join("s/b"), vec![0u8; 1000]).unwrap();
        std::os::unix::fs::symlink("/usr", d.path().join("l")).unwrap();
        let n = tree_size(d.path(), 1 << 20);
        assert!((2000..2000 + 4096 + 64).contains(&n), "{n}");
        assert!(tree_size(d.path(), 500) > 500);
    }
}
