//! COPY and ADD: sources gathered from the context, a stage or an image into a tar,
//! extracted into a created container whose upper layer becomes the step's layer.

use super::*;

/// Removes a step's scratch directory on a blocking thread.
pub(super) async fn remove_dir(dir: PathBuf) {
    let _ = crate::blocking::spawn(move || std::fs::remove_dir_all(dir)).await;
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The file name a URL source gets (moby: the last element of its path).
fn url_file_name(url: &str) -> Result<String, EngineError> {
    let bad = || EngineError::InvalidArgument(format!("cannot determine filename from url: {url}"));
    let u = reqwest::Url::parse(url).map_err(|_| bad())?;
    let name = u
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string();
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad());
    }
    Ok(name)
}

/// The largest file `ADD <URL>` downloads.
const MAX_ADD_DOWNLOAD: u64 = 4 << 30;

/// Downloads an `ADD` URL into `dir` under its file name, mode 0600 and the times of its
/// `Last-Modified` (else the epoch) as moby writes it; `checksum` (`sha256:<hex>`), when
/// given, must match.
async fn download(url: &str, dir: &Path, checksum: &str) -> Result<(), StepError> {
    let name = url_file_name(url)?;
    let path = dir.join(&name);
    let modified = remote::fetch(url, &path, MAX_ADD_DOWNLOAD).await?;
    let want = checksum.to_string();
    let p = path.clone();
    crate::blocking::spawn(move || {
        use sha2::Digest as _;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .map_err(EngineError::io("cannot chmod", &p))?;
        let t = modified.unwrap_or(std::time::UNIX_EPOCH);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t)))
            .map_err(EngineError::io("cannot set the times of", &p))?;
        if want.is_empty() {
            return Ok(());
        }
        let Some(hex) = want.strip_prefix("sha256:") else {
            return Err(EngineError::InvalidArgument(format!(
                "unsupported digest algorithm in checksum {want:?}: only sha256 is supported"
            )));
        };
        let mut f = std::fs::File::open(&p).map_err(EngineError::io("cannot open", &p))?;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut f, &mut h).map_err(EngineError::io("cannot read", &p))?;
        let got = format!("{:x}", h.finalize());
        if !got.eq_ignore_ascii_case(hex) {
            return Err(EngineError::InvalidArgument(format!(
                "digest mismatch {want}: sha256:{got}"
            )));
        }
        Ok(())
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok(())
}

/// Writes `COPY <<NAME` sources into the empty directory `root` as files named after
/// their heredocs, mode 0644 (buildkit's `Mkfile(name, 0644, data)`).
fn write_heredocs(
    root: &Path,
    contents: &[berth_build::instructions::SourceContent],
) -> Result<(), EngineError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).map_err(EngineError::io("cannot create", root))?;
    for h in contents {
        if h.path.is_empty() || h.path.contains('/') || h.path == "." || h.path == ".." {
            return Err(EngineError::InvalidArgument(format!(
                "invalid heredoc name {:?} for a COPY source",
                h.path
            )));
        }
        let p = root.join(&h.path);
        std::fs::write(&p, h.data.as_bytes()).map_err(EngineError::io("cannot write", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(EngineError::io("cannot chmod", &p))?;
    }
    Ok(())
}

/// What a COPY/ADD gathers, to run once for its hash and again for its tar.
#[derive(Clone)]
struct Gather {
    chown: String,
    layers: Vec<PathBuf>,
    chmod: Option<u32>,
    /// (root, path, downloaded) per source, in the instruction's order.
    sources: Vec<(PathBuf, String, bool)>,
    dest: String,
    matcher: Matcher,
    add: bool,
}

impl Gather {
    /// Hashes the sources and, with `out`, writes their tar there (blocking thread).
    async fn run(self, out: Option<PathBuf>) -> Result<context::Gathered, StepError> {
        crate::blocking::spawn(move || {
            let chown = context::resolve_chown(&self.chown, &self.layers)?;
            let perms = context::Perms {
                chown,
                chmod: self.chmod,
            };
            let sources: Vec<context::Source> = self
                .sources
                .iter()
                .map(|(root, name, downloaded)| context::Source {
                    root,
                    name: name.clone(),
                    downloaded: *downloaded,
                })
                .collect();
            context::gather_sources(
                &sources,
                &self.dest,
                perms,
                &self.matcher,
                out.as_deref(),
                self.add,
            )
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(StepError::from)
    }
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_step(
        &mut self,
        st: &mut StageState,
        c: &berth_build::instructions::Copy,
        name: &str,
        results: &[String],
        all: &[berth_build::Stage],
        current: usize,
    ) -> Result<(), StepError> {
        let heredocs = !c.contents.is_empty();
        if (heredocs && (!c.sources.is_empty() || !c.from.is_empty()))
            || c.link
            || c.parents
            || !c.excludes.is_empty()
        {
            return Err(EngineError::InvalidArgument(format!(
                "this {name} form requires BuildKit"
            ))
            .into());
        }
        // ADD may mix URLs and context paths (moby `getCopyInfoForSourcePath` per source).
        let urls = name == "ADD" && c.sources.iter().any(|s| is_url(s));
        let only_urls = urls && c.sources.iter().all(|s| is_url(s));
        if !c.checksum.is_empty() && !only_urls {
            return Err(EngineError::InvalidArgument(
                "checksum can't be specified for non-HTTP(S) sources".into(),
            )
            .into());
        }
        let layers = if st.image.is_empty() || c.chown.is_empty() {
            Vec::new()
        } else {
            self.engine
                .images
                .layer_diff_dirs(&st.image)
                .map_err(EngineError::from)?
        };
        let chown_spec = c.chown.clone();
        let chmod = context::parse_chmod(&c.chmod)?;
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let wd = if st.rc.working_dir.is_empty() {
                "/".to_string()
            } else {
                st.rc.working_dir.clone()
            };
            let joined = format!("{}/{}", wd.trim_end_matches('/'), c.dest);
            if c.dest.ends_with('/') || c.dest == "." {
                format!("{}/", berth_build::dockerignore::clean(&joined))
            } else {
                joined
            }
        };
        let work = self.p.work.0.clone();
        // Made when something is written there: a cache hit of context sources needs
        // none (their hash is made without writing their tar).
        let step_dir = work.join(format!("step-{}", unique_name()));
        // The source root: the context, the files of a stage or image for --from, or the
        // heredoc sources written out as files.
        // Each URL is downloaded into a directory of its own (two URLs may end in the
        // same file name); the other sources stay in the context.
        let mut downloaded = Vec::new();
        let (root, ignore) = if urls {
            for (i, u) in c.sources.iter().enumerate().filter(|(_, u)| is_url(u)) {
                let dir = step_dir.join(format!("url-{i}"));
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(EngineError::io("cannot create", &dir))?;
                self.say(format!("Downloading {u}\n"));
                download(u, &dir, &c.checksum).await?;
                downloaded.push((i, dir, url_file_name(u)?));
            }
            (work.join("context"), Some(()))
        } else if heredocs {
            let root = step_dir.join("heredoc");
            let contents = c.contents.clone();
            let r = root.clone();
            crate::blocking::spawn(move || write_heredocs(&r, &contents))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??;
            (root, None)
        } else if c.from.is_empty() {
            (work.join("context"), Some(()))
        } else {
            let image = match stages::resolve(all, current, &c.from)? {
                StageRef::Stage(j) => results
                    .get(j)
                    .cloned()
                    .ok_or_else(|| EngineError::Internal("stage result missing".into()))?,
                StageRef::Image(n) => self.base_image(&n).await?,
            };
            let root = step_dir.join("from");
            tokio::fs::create_dir_all(&root)
                .await
                .map_err(EngineError::io("cannot create", &root))?;
            self.export_paths(&image, &c.sources, &root).await?;
            (root, None)
        };
        let none = Matcher::new::<&str>(&[]).map_err(|e| EngineError::Internal(e.to_string()))?;
        let matcher = if ignore.is_some() {
            self.p.ignore.clone()
        } else {
            none
        };
        // (root, path, downloaded) per source, in the instruction's order.
        let sources: Vec<(PathBuf, String, bool)> = if heredocs {
            c.contents
                .iter()
                .map(|h| (root.clone(), h.path.clone(), false))
                .collect()
        } else {
            c.sources
                .iter()
                .enumerate()
                .map(|(i, s)| match downloaded.iter().find(|(j, _, _)| *j == i) {
                    Some((_, dir, file)) => (dir.clone(), file.clone(), true),
                    None => (root.clone(), s.clone(), false),
                })
                .collect()
        };
        // A downloaded archive is copied as it is, never extracted (moby).
        let add = name == "ADD";
        let tar = step_dir.join("copy.tar");
        let job = Gather {
            chown: chown_spec,
            layers,
            chmod,
            sources,
            dest: dest.clone(),
            matcher,
            add,
        };
        // Context sources: hashed first, written only on a cache miss (then read twice,
        // as dockerd's classic builder does). The others are in the step dir already.
        let from_context = !urls && !heredocs && c.from.is_empty();
        let gathered = if from_context {
            job.clone().run(None).await?
        } else {
            job.clone().run(Some(tar.clone())).await?
        };
        // The history names the destination as written (`in . `), as moby's does.
        let cmd = bc::copy_cmd(
            &st.rc.shell(),
            name,
            &c.chown,
            &c.chmod,
            &gathered.hash,
            &c.dest,
        );
        let Some(key) = self.missed(st, &cmd).await? else {
            if !from_context {
                remove_dir(step_dir).await;
            }
            return Ok(());
        };
        if from_context {
            tokio::fs::create_dir_all(&step_dir)
                .await
                .map_err(EngineError::io("cannot create", &step_dir))?;
            // The context is private to the build and does not change: the same hash.
            let written = job.run(Some(tar.clone())).await;
            let same = matches!(&written, Ok(g) if g.hash == gathered.hash);
            if !same {
                remove_dir(step_dir).await;
                return Err(match written {
                    Err(e) => e,
                    Ok(_) => EngineError::Internal("COPY sources changed mid-build".into()).into(),
                });
            }
        }
        let image = if st.image.is_empty() {
            self.scratch_image().await?
        } else {
            st.image.clone()
        };
        let id = self.step_container(&image, &cmd).await?;
        let f = tokio::fs::File::open(&tar)
            .await
            .map_err(EngineError::io("cannot open", &tar))?;
        self.engine
            .container_extract(&id, "/", Box::new(f), false, true)
            .await?;
        let layer = self.upper_layer(&id).await?;
        let _ = self.engine.container_delete(&id, true).await;
        self.containers.retain(|c| c != &id);
        remove_dir(step_dir).await;
        self.commit(st, bc::created_by(&cmd), &cmd, Some(layer.diff_id), &key)
            .await
    }

    /// Copies `paths` of `image` into `dest` (each path at the same place), through a
    /// created container's archive, as `docker cp` reads it.
    pub(super) async fn export_paths(
        &mut self,
        image: &str,
        paths: &[String],
        dest: &Path,
    ) -> Result<(), StepError> {
        let id = self.step_container(image, &["true".to_string()]).await?;
        for p in paths {
            let clean = berth_build::dockerignore::clean(&format!("/{p}"));
            let parent = Path::new(&clean)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = dest.join(parent.trim_start_matches('/'));
            tokio::fs::create_dir_all(&target)
                .await
                .map_err(EngineError::io("cannot create", &target))?;
            let (_, mut rx) = self
                .engine
                .container_archive(&id, &clean)
                .await
                .map_err(|_| {
                    EngineError::InvalidArgument(format!(
                        "COPY failed: stat {clean}: file does not exist"
                    ))
                })?;
            let tmp = dest.with_extension(format!("{}.tar", unique_name()));
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .map_err(EngineError::io("cannot create", &tmp))?;
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk.map_err(EngineError::io("cannot read", Path::new(&clean)))?;
                tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
                    .await
                    .map_err(EngineError::io("cannot write", &tmp))?;
            }
            drop(f);
            let t2 = tmp.clone();
            crate::blocking::spawn(move || {
                let r = std::fs::File::open(&t2)
                    .map_err(EngineError::io("cannot open", &t2))
                    .and_then(|f| context::unpack(f, &target));
                let _ = std::fs::remove_file(&t2);
                r
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        }
        let _ = self.engine.container_delete(&id, true).await;
        self.containers.retain(|c| c != &id);
        Ok(())
    }
}
