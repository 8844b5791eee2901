//! `berth build` and `berth builder prune`, as docker's classic builder CLI
//! (docker/cli `cli/command/image/build.go`, `build/context.go`): the context made from a
//! directory with `.dockerignore` applied (berth-build's matcher; the Dockerfile and
//! `.dockerignore` always sent), a Dockerfile given with `-f -` or outside the context
//! added under a random name, a tar or a lone Dockerfile on stdin, a URL handed to the
//! daemon as `remote`; then `POST /build` with docker's query, its stream printed, and
//! a failure's exit code taken from the stream's `errorDetail`, as docker takes it.
//!
//! The context is written to an unlinked temporary file first (on a blocking thread), so
//! that a walk error is reported before the request and the size is known. `context`
//! makes it, `query` writes the request's query.

mod context;
mod query;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bollard::BollardRequest;
use clap::{Args, Subcommand};
use futures_util::{Stream, StreamExt};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Method;
use hyper::body::Bytes;
use serde_json::{json, Value};

use self::context::prepare;
use self::query::{build_query, ram_in_bytes};
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
        &crate::endpoint::process_env,
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
            Some(bollard::body_try_stream(crate::image::read_in_background(
                Box::new(f),
            )))
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

/// `berth build ARGS...` parsed as the command line parses it (for the tests).
#[cfg(test)]
pub(super) fn test_args(extra: &[&str]) -> BuildArgs {
    #[derive(clap::Parser)]
    struct P {
        #[command(flatten)]
        b: BuildArgs,
    }
    let mut v = vec!["build"];
    v.extend_from_slice(extra);
    <P as clap::Parser>::parse_from(v).b
}
