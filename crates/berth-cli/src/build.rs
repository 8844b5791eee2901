//! `berth build` and `berth builder prune`, as docker's classic builder CLI
//! (docker/cli `cli/command/image/build.go`, `build/context.go`): the context made from a
//! directory with `.dockerignore` applied (berth-build's matcher; the Dockerfile and
//! `.dockerignore` always sent), a Dockerfile given with `-f -` or outside the context
//! added under a random name, a tar or a lone Dockerfile on stdin, a URL handed to the
//! daemon as `remote`; then `POST /build` with docker's query, its stream printed, and
//! a failure's exit code taken from the stream's `errorDetail`, as docker takes it.
//!
//! The context is written to an unlinked temporary file first (on a blocking thread), so
//! that a walk error is reported before the request and the size is known.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_build::dockerignore::{read_patterns, Matcher};
use bollard::BollardRequest;
use clap::{Args, Subcommand};
use futures_util::{Stream, StreamExt};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Method;
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::error::Error;
use crate::humanize::human_size_precision;
use crate::progress::{print_message, terminal_width, JsonLines, JsonMessage, ProgressPrinter};
use crate::prompt::confirm;
use crate::request::query_escape;
use crate::{write_out, Session};

/// The body type of bollard's requests.
type BuildBody = <BollardRequest as BodyOf>::Body;

/// Names the body type of an `http::Request`.
trait BodyOf {
    type Body;
}

impl<B> BodyOf for http::Request<B> {
    type Body = B;
}

/// Builds have no deadline in the docker CLI.
const LONG_REQUEST: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `berth build [OPTIONS] PATH | URL | -`.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag", value_name = "list")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long = "file", value_name = "string")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, value_name = "string", default_value = "default")]
    pub network: String,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, value_name = "bool", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    pub iidfile: Option<PathBuf>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from", value_name = "strings")]
    pub cache_from: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "bytes")]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// Limit the CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit the CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int")]
    pub cpu_quota: Option<i64>,
    /// Size of /dev/shm
    #[arg(long, value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Container isolation technology
    #[arg(long, value_name = "string")]
    pub isolation: Option<String>,
    /// Build context: a directory, a URL, or - to read a tar or a Dockerfile from stdin
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

/// `berth builder ...`.
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Amount of disk space to keep for cache
    #[arg(long, value_name = "bytes")]
    pub keep_storage: Option<String>,
}

/// docker's `units.RAMInBytes`: `512m`, `1g`, `1024` (binary multiples).
fn ram_in_bytes(s: &str) -> Result<i64, Error> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || Error::client(format!("invalid size: '{s}'"));
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim_end_matches(['b', 'i']) {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((n * mult) as i64)
}

/// `--ulimit name=soft[:hard]` as docker's `units.ParseUlimit`.
fn parse_ulimit(s: &str) -> Result<Value, Error> {
    let bad = || Error::client(format!("invalid argument {s:?} for \"--ulimit\" flag"));
    let (name, limits) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--build-arg K=V`, `--build-arg K` (the value from the environment, else null), as
/// docker's `ValidateEnv` and `ConvertKVStringsToMapWithNil` read them.
fn build_arg_map(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, Option<String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), env(a)),
        })
        .collect()
}

/// The query of `POST /build` as docker's `imageBuildOptionsToQuery` writes it.
fn build_query(
    args: &BuildArgs,
    dockerfile: &str,
    remote: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    let mut q: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| q.push((k.to_string(), v));
    for t in &args.tags {
        berth_api_types::reference::Reference::parse(t).map_err(|e| {
            Error::client(format!(
                "invalid argument {t:?} for \"-t, --tag\" flag: {e}"
            ))
        })?;
        push("t", t.clone());
    }
    if let Some(r) = remote {
        push("remote", r.to_string());
    }
    if !dockerfile.is_empty() {
        push("dockerfile", dockerfile.to_string());
    }
    if args.quiet {
        push("q", "1".into());
    }
    if args.no_cache {
        push("nocache", "1".into());
    }
    push("rm", if args.rm { "1" } else { "0" }.into());
    if args.force_rm {
        push("forcerm", "1".into());
    }
    if args.pull {
        push("pull", "1".into());
    }
    if let Some(m) = &args.memory {
        push("memory", ram_in_bytes(m)?.to_string());
    }
    if let Some(m) = &args.memory_swap {
        let v = if m.trim() == "-1" {
            -1
        } else {
            ram_in_bytes(m)?
        };
        push("memswap", v.to_string());
    }
    if let Some(v) = args.cpu_shares {
        push("cpushares", v.to_string());
    }
    if let Some(v) = args.cpu_quota {
        push("cpuquota", v.to_string());
    }
    if let Some(v) = args.cpu_period {
        push("cpuperiod", v.to_string());
    }
    if let Some(v) = &args.cpuset_cpus {
        push("cpusetcpus", v.clone());
    }
    if let Some(v) = &args.shm_size {
        push("shmsize", ram_in_bytes(v)?.to_string());
    }
    if let Some(v) = &args.isolation {
        push("isolation", v.clone());
    }
    push("networkmode", args.network.clone());
    if !args.ulimit.is_empty() {
        let u: Result<Vec<Value>, Error> = args.ulimit.iter().map(|s| parse_ulimit(s)).collect();
        push("ulimits", Value::Array(u?).to_string());
    }
    let ba = build_arg_map(&args.build_args, env);
    push("buildargs", json!(ba).to_string());
    let labels: BTreeMap<&str, &str> = args
        .labels
        .iter()
        .map(|l| l.split_once('=').unwrap_or((l.as_str(), "")))
        .collect();
    push("labels", json!(labels).to_string());
    if !args.cache_from.is_empty() {
        push("cachefrom", json!(args.cache_from).to_string());
    }
    for h in &args.add_host {
        push("extrahosts", h.clone());
    }
    if let Some(p) = &args.platform {
        push("platform", p.clone());
    }
    if let Some(t) = &args.target {
        push("target", t.clone());
    }
    push("version", "1".into());
    Ok(q.iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect::<Vec<_>>()
        .join("&"))
}

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
struct Prepared {
    body: Option<(File, u64)>,
    dockerfile: String,
    remote: Option<String>,
}

fn read_stdin_all() -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| Error::client(format!("unable to read stdin: {e}")))?;
    Ok(data)
}

/// docker's context preparation (`runBuild`'s switch on the context argument).
fn prepare(args: &BuildArgs) -> Result<Prepared, Error> {
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

/// Reads a file on a thread and yields its chunks.
fn file_stream(mut f: File) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// `POST <path>` with `body`, the response's bytes as they come, through bollard (same
/// transport, version prefix and error handling): bollard's one call that hands out a
/// raw body is `export_image`, so its request is rewritten (method, path, body).
fn post_raw(
    docker: &bollard::Docker,
    path: String,
    body: Option<BuildBody>,
    registry_config: Option<String>,
) -> impl Stream<Item = Result<Bytes, bollard::errors::Error>> + Unpin {
    const PLACEHOLDER: &str = "berth-build-request";
    let suffix = format!("/images/{PLACEHOLDER}/get");
    let body = Arc::new(Mutex::new(body));
    let docker = docker
        .clone()
        .with_timeout(LONG_REQUEST)
        .with_request_modifier(move |mut req: BollardRequest| {
            let uri = req.uri().to_string();
            if let Some(base) = uri.strip_suffix(&suffix) {
                if let Ok(u) = format!("{base}{path}").parse() {
                    *req.uri_mut() = u;
                }
            }
            *req.method_mut() = Method::POST;
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
            if let Some(v) = registry_config
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                req.headers_mut().insert("x-registry-config", v);
            }
            if let Some(b) = body.lock().ok().and_then(|mut b| b.take()) {
                *req.body_mut() = b;
            }
            req
        });
    Box::pin(docker.export_image(PLACEHOLDER))
}

/// `berth build`.
pub async fn build(session: &Session, args: &BuildArgs) -> Result<(), Error> {
    if let Some(p) = &args.iidfile {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::client(format!("Removing image ID file: {e}")))
            }
            _ => {}
        }
    }
    let a = args.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&a))
        .await
        .map_err(|e| Error::client(format!("cannot prepare the context: {e}")))??;
    let query = build_query(
        args,
        &prepared.dockerfile,
        prepared.remote.as_deref(),
        &crate::connect::process_env,
    )?;
    let client = session.client().await?;
    let terminal = io::stdout().is_terminal();
    let body = match prepared.body {
        Some((f, size)) => {
            if !args.quiet {
                write_out(&format!(
                    "Sending build context to Docker daemon  {}\n",
                    human_size_precision(size as f64, 4)
                ))?;
            }
            Some(bollard::body_try_stream(file_stream(f)))
        }
        None => None,
    };
    let registry_config = crate::registry::registry_config_value(session);
    let mut stream = post_raw(
        client.docker(),
        format!("/build?{query}"),
        body,
        Some(registry_config),
    );
    let mut printer = ProgressPrinter::new(terminal, terminal_width(terminal));
    let mut lines = JsonLines::default();
    let mut quiet_out = String::new();
    let mut image_id = String::new();
    let mut failure: Option<(String, i64)> = None;
    let mut handle =
        |jm: JsonMessage, quiet_out: &mut String, image_id: &mut String| -> Result<(), Error> {
            if let Some(e) = &jm.error_detail {
                let code = e.code.unwrap_or(0);
                failure = Some((e.message.clone(), if code == 0 { 1 } else { code }));
                return Ok(());
            }
            if let Some(id) = jm.aux.as_ref().and_then(|a| a["ID"].as_str()) {
                *image_id = id.to_string();
                return Ok(());
            }
            if args.quiet {
                if let Some(s) = &jm.stream {
                    quiet_out.push_str(s);
                }
                return Ok(());
            }
            print_message(&mut printer, &jm)
        };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| client.daemon_err(e))?;
        for jm in lines.push(&chunk)? {
            handle(jm, &mut quiet_out, &mut image_id)?;
        }
    }
    for jm in lines.finish()? {
        handle(jm, &mut quiet_out, &mut image_id)?;
    }
    if let Some((message, code)) = failure {
        return Err(Error::Status {
            code: i32::try_from(code).unwrap_or(1),
            message,
        });
    }
    if args.quiet {
        write_out(&quiet_out)?;
        if image_id.is_empty() {
            image_id = quiet_out.trim().to_string();
        }
    }
    if let Some(p) = &args.iidfile {
        if !image_id.is_empty() {
            std::fs::write(p, &image_id)
                .map_err(|e| Error::client(format!("Writing image ID file: {e}")))?;
        }
    }
    Ok(())
}

/// `berth builder prune`.
pub async fn builder(session: &Session, cmd: &BuilderCommand) -> Result<(), Error> {
    let BuilderCommand::Prune(args) = cmd;
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all build cache.\nAre you sure you want to continue?"
        } else {
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?"
        };
        if !confirm(warning)? {
            return Ok(());
        }
    }
    let mut q = Vec::new();
    if args.all {
        q.push("all=1".to_string());
    }
    if let Some(k) = &args.keep_storage {
        q.push(format!("keep-storage={}", ram_in_bytes(k)?));
    }
    if !args.filter.is_empty() {
        let f = crate::request::parse_filters(&args.filter, "--filter")?;
        q.push(format!("filters={}", query_escape(&json!(f).to_string())));
    }
    let client = session.client().await?;
    let path = if q.is_empty() {
        "/build/prune".to_string()
    } else {
        format!("/build/prune?{}", q.join("&"))
    };
    let body = crate::request::collect(post_raw(client.docker(), path, None, None))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::client(format!("cannot read the daemon's answer: {e}")))?;
    write_out(&render_builder_prune(&v))
}

/// docker's `builder prune` output.
fn render_builder_prune(v: &Value) -> String {
    let mut out = String::new();
    let deleted: Vec<&str> = v["CachesDeleted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted build cache objects:\n");
        for d in deleted {
            out.push_str(d);
            out.push('\n');
        }
    }
    let space = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_precision(space as f64, 4)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> BuildArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            b: BuildArgs,
        }
        let mut v = vec!["build"];
        v.extend_from_slice(extra);
        <P as clap::Parser>::parse_from(v).b
    }

    #[test]
    fn query_as_docker_writes_it() {
        let a = args(&[
            "-t",
            "a:1",
            "-t",
            "b",
            "--build-arg",
            "X=1",
            "--build-arg",
            "HOME_UNSET",
            "--label",
            "l=v",
            "-m",
            "64m",
            "--ulimit",
            "nofile=10:20",
            "--add-host",
            "h:1.2.3.4",
            "--cache-from",
            "c",
            ".",
        ]);
        let q = build_query(&a, "Dockerfile", None, &|_| None).unwrap();
        assert!(
            q.starts_with("t=a%3A1&t=b&dockerfile=Dockerfile&rm=1&memory=67108864"),
            "{q}"
        );
        assert!(
            q.contains("buildargs=%7B%22HOME_UNSET%22%3Anull%2C%22X%22%3A%221%22%7D"),
            "{q}"
        );
        assert!(
            q.contains(
                "ulimits=%5B%7B%22Hard%22%3A20%2C%22Name%22%3A%22nofile%22%2C%22Soft%22%3A10%7D%5D"
            ),
            "{q}"
        );
        assert!(q.contains("extrahosts=h%3A1.2.3.4"), "{q}");
        assert!(q.contains("cachefrom=%5B%22c%22%5D"), "{q}");
        assert!(q.ends_with("version=1"));
        let a = args(&["--rm=false", "--build-arg", "E", "."]);
        let q = build_query(&a, "", None, &|k| (k == "E").then(|| "v".into())).unwrap();
        assert!(q.contains("rm=0"));
        assert!(q.contains("buildargs=%7B%22E%22%3A%22v%22%7D"), "{q}");
        assert!(build_query(&args(&["-t", "UPPER", "."]), "", None, &|_| None).is_err());
    }

    #[test]
    fn sizes_and_ulimits() {
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("1k").unwrap(), 1024);
        assert_eq!(ram_in_bytes("2MB").unwrap(), 2 << 20);
        assert!(ram_in_bytes("x").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(parse_ulimit("nproc=5").unwrap()["Hard"], 5);
    }

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
