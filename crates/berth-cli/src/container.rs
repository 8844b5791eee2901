//! The container commands: `run`, `create`, `start`, `ps` (`container ls`), `logs`, `stop`,
//! `kill`, `rm`, `wait` and `inspect` (containers and images), with docker's flags, output
//! and exit statuses (docker/cli `cli/command/container/*.go`,
//! `cli/command/formatter/container.go`).
//!
//! Rendering is pure and tested here: `ps` rows and their columns ([`ps_row`],
//! [`quote_command`]), the status text a daemon would show ([`status_text`]), and `run`'s
//! exit statuses ([`run_status`]). The command functions call the daemon through bollard
//! and print.
//!
//! `run` follows docker's order: create (pulling the image when the daemon has none, as
//! docker does), attach before start, wait (`next-exit`, or `removed` with `--rm`) before
//! start, start, copy the output, exit with the container's status. `-t` puts the local
//! terminal in raw mode for the while (`crate::terminal`), and typing the detach keys
//! there leaves the container running and exits 0 (docker/cli `run.go`, `start.go`).
//!
//! A successful `run`/`start -a`/`wait` that must exit with a non-zero container status
//! leaves through [`std::process::exit`] after flushing, since [`Error`] always prints a
//! line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerSummary, HostConfig, PortSummary as Port};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, ResizeContainerTTYOptions,
    StartContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::BollardRequest;
use clap::{ArgAction, Args, Subcommand};
use futures_util::StreamExt;
use http::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

use berth_api_types::reference::Reference;

use crate::connect::Client;
use crate::cp::FsCommand;
use crate::error::Error;
use crate::format::Template;
use crate::host_flags::parse_ram;
use crate::humanize::{ellipsis, human_duration, human_size, human_size_precision, truncate_id};
use crate::image::pull_tag;
use crate::inspect::print_inspect;
use crate::progress::{JsonMessage, JsonProgress, ProgressPrinter};
use crate::prompt::confirm;
use crate::registry;
use crate::request::{collect, parse_filters, path_escape, raw_request};
use crate::table::render_list;
use crate::{write_err, write_out, Session};

const FORMAT_HELP: &str = "Format output using a custom template:\n\
'table':            Print output in table format with column headers (default)\n\
'table TEMPLATE':   Print output in table format using the given Go template\n\
'json':             Print in JSON format\n\
'TEMPLATE':         Print output using the given Go template.\n\
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

// ---------------------------------------------------------------------------------------
// Command line

/// `berth container ...`.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(WaitArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Restart one or more containers
    Restart(RestartArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::cp::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::cp::ExportArgs),
    /// Create a new image from a container's changes
    Commit(crate::cp::CommitArgs),
    #[command(flatten)]
    Ops(crate::ops::OpsCommand),
}

/// The container commands docker also offers at the top level (`docker run`, `docker ps`...).
#[derive(Debug, Subcommand)]
pub enum ContainerShortcut {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(WaitArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// Restart one or more containers
    Restart(RestartArgs),
    /// Rename a container
    Rename(RenameArgs),
}

/// The flags `create` and `run` share.
#[derive(Debug, Clone, Default, Args)]
pub struct ContainerOptions {
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes", value_parser = parse_ram)]
    pub memory: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Connect a container to a network
    #[arg(long, visible_alias = "net", value_name = "network")]
    pub network: Option<String>,
    #[command(flatten)]
    pub net: crate::network::NetFlags,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub mounts: crate::volume::MountFlags,
    #[command(flatten)]
    pub host: crate::host_flags::HostFlags,
    /// Restart policy to apply when a container exits (default "no")
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOptions,
}

#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub opts: ContainerOptions,
}

#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i32,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = FORMAT_HELP)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long, value_name = "int", allow_negative_numbers = true)]
    pub timeout: Option<i32>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    pub signal: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove the specified link
    #[arg(short, long)]
    pub link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long, value_name = "int", allow_negative_numbers = true)]
    pub timeout: Option<i32>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Debug, Clone, Args)]
pub struct ContainerPruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ContainerInspectArgs {
    /// Format output using a custom template:
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template
    #[arg(short = 'f', long, value_name = "string", verbatim_doc_comment)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a custom template:
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template
    #[arg(short = 'f', long, value_name = "string", verbatim_doc_comment)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    pub size: bool,
    /// Only inspect objects of the given type
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

/// Runs `berth container ...`.
pub async fn run(session: &Session, cmd: &ContainerCommand) -> Result<(), Error> {
    match cmd {
        ContainerCommand::Run(a) => run_container(session, a).await,
        ContainerCommand::Create(a) => create(session, a).await,
        ContainerCommand::Start(a) => start(session, a).await,
        ContainerCommand::Ls(a) => ps(session, a).await,
        ContainerCommand::Logs(a) => logs(session, a).await,
        ContainerCommand::Stop(a) => stop(session, a).await,
        ContainerCommand::Kill(a) => kill(session, a).await,
        ContainerCommand::Rm(a) => rm(session, a).await,
        ContainerCommand::Wait(a) => wait(session, a).await,
        ContainerCommand::Inspect(a) => {
            let args = InspectArgs {
                format: a.format.clone(),
                size: a.size,
                kind: Some("container".into()),
                names: a.containers.clone(),
            };
            inspect(session, &args).await
        }
        ContainerCommand::Restart(a) => restart(session, a).await,
        ContainerCommand::Rename(a) => rename(session, a).await,
        ContainerCommand::Prune(a) => prune(session, a).await,
        ContainerCommand::Cp(a) => crate::cp::run(session, &FsCommand::Cp(a.clone())).await,
        ContainerCommand::Diff(a) => crate::cp::run(session, &FsCommand::Diff(a.clone())).await,
        ContainerCommand::Export(a) => crate::cp::run(session, &FsCommand::Export(a.clone())).await,
        ContainerCommand::Commit(a) => crate::cp::run(session, &FsCommand::Commit(a.clone())).await,
        ContainerCommand::Ops(c) => crate::ops::run(session, c).await,
    }
}

/// Runs the top-level spellings (`berth run`, `berth ps`, ...).
pub async fn run_shortcut(session: &Session, cmd: &ContainerShortcut) -> Result<(), Error> {
    match cmd {
        ContainerShortcut::Run(a) => run_container(session, a).await,
        ContainerShortcut::Create(a) => create(session, a).await,
        ContainerShortcut::Start(a) => start(session, a).await,
        ContainerShortcut::Ps(a) => ps(session, a).await,
        ContainerShortcut::Logs(a) => logs(session, a).await,
        ContainerShortcut::Stop(a) => stop(session, a).await,
        ContainerShortcut::Kill(a) => kill(session, a).await,
        ContainerShortcut::Rm(a) => rm(session, a).await,
        ContainerShortcut::Wait(a) => wait(session, a).await,
        ContainerShortcut::Inspect(a) => inspect(session, a).await,
        ContainerShortcut::Restart(a) => restart(session, a).await,
        ContainerShortcut::Rename(a) => rename(session, a).await,
    }
}

// ---------------------------------------------------------------------------------------
// create / run / start

/// The create request docker's `run`/`create` send for these flags.
pub fn create_body(o: &ContainerOptions, detach: bool) -> ContainerCreateBody {
    let image = o.image_and_command.first().cloned().unwrap_or_default();
    let cmd: Vec<String> = o.image_and_command.iter().skip(1).cloned().collect();
    let attach = !detach;
    let mut labels = HashMap::new();
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    ContainerCreateBody {
        image: Some(image),
        cmd: (!cmd.is_empty()).then_some(cmd),
        // `--entrypoint ""` resets the image's entrypoint: docker sends [""].
        entrypoint: o.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![String::new()]
            } else {
                vec![e.clone()]
            }
        }),
        env: (!o.env.is_empty()).then(|| o.env.iter().map(|e| expand_env(e)).collect()),
        working_dir: o.workdir.clone(),
        user: o.user.clone(),
        hostname: o.hostname.clone(),
        tty: Some(o.tty),
        open_stdin: Some(o.interactive),
        stdin_once: Some(o.interactive && attach),
        attach_stdin: Some(o.interactive && attach),
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        labels: (!labels.is_empty()).then_some(labels),
        host_config: Some(HostConfig {
            memory: o.memory,
            pids_limit: o.pids_limit,
            network_mode: Some(o.network.clone().unwrap_or_else(|| "default".into())),
            auto_remove: Some(o.rm),
            restart_policy: o.restart.as_deref().and_then(|r| parse_restart(r).ok()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `-e NAME` without `=` takes the client's value, or is dropped when unset (opts.ValidateEnv).
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_string(),
        }
    }
}

/// docker's `withHelp`: "docker: <err>\n\nRun 'docker run --help' ...".
fn with_help(err: &Error, cmd: &str, code: i32) -> Error {
    Error::Status {
        code,
        message: format!("berth: {err}\n\nRun 'berth {cmd} --help' for more information"),
    }
}

/// docker's `toStatusError` for a failed start: 127 when the command was not found, 126
/// when it could not be invoked, 125 otherwise.
pub fn run_status(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

/// The image reference docker names in "Unable to find image 'busybox:latest' locally".
pub fn tagged_reference(image: &str) -> String {
    match Reference::parse(image) {
        Ok(r) => r.with_default_tag().familiar_string(),
        Err(_) => image.to_string(),
    }
}

fn is_no_such_image(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, message }
        if message.contains("No such image"))
}

/// Creates the container, pulling the image first when the daemon does not have it
/// (docker's `createContainer` with `--pull=missing`); progress goes to stderr.
async fn create_with_pull(
    session: &Session,
    client: &Client,
    opts: &ContainerOptions,
    body: ContainerCreateBody,
) -> Result<String, Error> {
    let create_opts = CreateContainerOptions {
        name: opts.name.clone(),
        ..Default::default()
    };
    let docker = client.docker();
    let resp = match docker
        .create_container(Some(create_opts.clone()), body.clone())
        .await
    {
        Ok(r) => r,
        Err(e) if is_no_such_image(&e) => {
            let image = body.image.clone().unwrap_or_default();
            write_err(&format!(
                "Unable to find image '{}' locally\n",
                tagged_reference(&image)
            ))?;
            pull_to_stderr(session, client, &image).await?;
            docker
                .create_container(Some(create_opts), body)
                .await
                .map_err(|e| client.daemon_err(e))?
        }
        Err(e) => return Err(client.daemon_err(e)),
    };
    for w in resp.warnings {
        write_err(&format!("WARNING: {w}\n"))?;
    }
    Ok(resp.id)
}

async fn pull_to_stderr(session: &Session, client: &Client, image: &str) -> Result<(), Error> {
    let reference = Reference::parse(image)?.with_default_tag();
    let auth = registry::auth_header(session, reference.domain())?;
    let opts = CreateImageOptions {
        from_image: Some(reference.full_name()),
        tag: pull_tag(&reference),
        ..Default::default()
    };
    let docker = client
        .docker()
        .clone()
        .with_timeout(Duration::from_secs(24 * 3600))
        .with_request_modifier(move |mut req: BollardRequest| {
            req.headers_mut().insert(auth.0.clone(), auth.1.clone());
            req
        });
    let mut stream = docker.create_image(Some(opts), None, None);
    let terminal = io::stderr().is_terminal();
    let mut printer = ProgressPrinter::new(terminal, 80);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| client.daemon_err(e))?;
        let jm = JsonMessage {
            status: info.status,
            id: info.id,
            progress_detail: info.progress_detail.map(JsonProgress::from),
            ..Default::default()
        };
        let mut out = String::new();
        let r = printer.message(&jm, &mut out);
        write_err(&out)?;
        r.map_err(Error::client)?;
    }
    Ok(())
}

/// `create`.
pub async fn create(session: &Session, args: &CreateArgs) -> Result<(), Error> {
    check_restart(&args.opts).map_err(|e| with_help(&e, "create", 125))?;
    let client = session.client().await?;
    let mut body = create_body(&args.opts, true);
    crate::volume::apply_mount_flags(&args.opts.mounts, &mut body)
        .map_err(|e| with_help(&e, "create", 125))?;
    crate::network::apply_net_flags(&args.opts.net, args.opts.network.as_deref(), &mut body)
        .map_err(|e| with_help(&e, "create", 125))?;
    args.opts
        .host
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "create", 125))?;
    let id = create_with_pull(session, &client, &args.opts, body)
        .await
        .map_err(|e| with_help(&e, "create", 125))?;
    write_out(&format!("{id}\n"))
}

/// `run`.
pub async fn run_container(session: &Session, args: &RunArgs) -> Result<(), Error> {
    let o = &args.opts;
    check_restart(o).map_err(|e| with_help(&e, "run", 125))?;
    if !args.detach {
        crate::terminal::check_tty(o.interactive, o.tty)?;
    }
    let client = session.client().await?;
    let mut body = create_body(o, args.detach);
    crate::volume::apply_mount_flags(&o.mounts, &mut body)
        .map_err(|e| with_help(&e, "run", 125))?;
    crate::network::apply_net_flags(&o.net, o.network.as_deref(), &mut body)
        .map_err(|e| with_help(&e, "run", 125))?;
    o.host
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "run", 125))?;
    let id = create_with_pull(session, &client, o, body)
        .await
        .map_err(|e| with_help(&e, "run", 125))?;
    if args.detach {
        // docker prints the ID before starting (run.go `waitDisplayID`).
        write_out(&format!("{id}\n"))?;
        return start_or_status(&client, &id).await;
    }
    let attach = Attach {
        stdin: o.interactive,
        tty: o.tty,
        removed: o.rm,
        detach_keys: crate::terminal::detach_keys(session, args.detach_keys.as_deref()),
    };
    match attach_start_wait(&client, &id, &attach).await? {
        Some(code) => exit_with(code),
        // docker/cli `run.go`: a detach is not an error.
        None => Ok(()),
    }
}

async fn start_or_status(client: &Client, id: &str) -> Result<(), Error> {
    client
        .docker()
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| {
            let err = client.daemon_err(e);
            let code = run_status(&err.to_string());
            with_help(&err, "run", code)
        })
}

/// How `run` and `start -a` attach.
struct Attach {
    stdin: bool,
    tty: bool,
    /// Wait for the removal (`--rm`) rather than the exit.
    removed: bool,
    detach_keys: Option<String>,
}

/// Attach (stdin when asked), register the wait, start, copy the streams; the
/// container's exit status, or `None` when the user detached.
async fn attach_start_wait(client: &Client, id: &str, how: &Attach) -> Result<Option<i64>, Error> {
    let (stdin, tty, removed) = (how.stdin, how.tty, how.removed);
    let docker = client.docker().clone();
    let attach = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stream: true,
                stdin,
                stdout: true,
                stderr: true,
                detach_keys: how.detach_keys.clone(),
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| with_help(&client.daemon_err(e), "run", 125))?;
    let condition = if removed { "removed" } else { "next-exit" };
    let waiter = {
        let docker = docker.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut s = docker.wait_container(
                &id,
                Some(WaitContainerOptions {
                    condition: condition.into(),
                }),
            );
            match s.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(e)) => Err(e),
                None => Ok(0),
            }
        })
    };
    // Let the wait request reach the daemon before the container can exit.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;

    let raw = if tty && io::stdin().is_terminal() {
        crate::terminal::RawTerminal::enter()
    } else {
        None
    };
    if let Err(e) = docker
        .start_container(id, None::<StartContainerOptions>)
        .await
    {
        drop(raw);
        let err = client.daemon_err(e);
        if removed {
            let _ = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        } else {
            waiter.abort();
        }
        let code = run_status(&err.to_string());
        return Err(with_help(&err, "run", code));
    }
    if tty {
        if let Some((rows, cols)) = crate::terminal::terminal_size() {
            let _ = docker
                .resize_container_tty(
                    id,
                    ResizeContainerTTYOptions {
                        w: i32::from(cols),
                        h: i32::from(rows),
                    },
                )
                .await;
        }
    }
    let input = attach.input;
    let escape = tty.then(|| crate::terminal::escape_bytes(how.detach_keys.as_deref()));
    let stdin_task = stdin.then(|| crate::terminal::pump_stdin(input, escape));
    let mut output = attach.output;
    let ended = crate::terminal::copy_until_detached(&mut output, client, stdin_task).await;
    drop(raw);
    if ended? == crate::terminal::Ended::Detached {
        waiter.abort();
        return Ok(None);
    }
    match tokio::time::timeout(Duration::from_secs(30), waiter).await {
        Ok(Ok(Ok(code))) => Ok(Some(code)),
        Ok(Ok(Err(e))) => Err(client.daemon_err(e)),
        Ok(Err(_)) | Err(_) => {
            // The wait missed the exit: ask for the state instead.
            let v = client.get_json(&format!("/containers/{id}/json")).await?;
            Ok(Some(v["State"]["ExitCode"].as_i64().unwrap_or(0)))
        }
    }
}

/// Leaves with the container's status, as docker does (0 returns normally).
fn exit_with(code: i64) -> Result<(), Error> {
    if code == 0 {
        return Ok(());
    }
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    std::process::exit(i32::try_from(code).unwrap_or(1).clamp(0, 255))
}

/// `start`.
pub async fn start(session: &Session, args: &StartArgs) -> Result<(), Error> {
    let client = session.client().await?;
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            return Err(Error::client(
                "you cannot start and attach multiple containers at once",
            ));
        }
        let id = &args.containers[0];
        let v = client
            .get_json(&format!("/containers/{}/json", path_escape(id)))
            .await?;
        let attach = Attach {
            stdin: args.interactive,
            tty: v["Config"]["Tty"].as_bool().unwrap_or(false),
            removed: false,
            detach_keys: crate::terminal::detach_keys(session, args.detach_keys.as_deref()),
        };
        let code = attach_start_wait(&client, id, &attach)
            .await
            .map_err(|e| match e {
                Error::Status { code, message } => Error::Status {
                    code: if code == 125 { 1 } else { code },
                    message: message
                        .trim_start_matches("berth: ")
                        .split("\n\nRun 'berth")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                },
                other => other,
            })?;
        // docker/cli `start.go`: a detach is not an error.
        return code.map_or(Ok(()), exit_with);
    }
    let mut failed = Vec::new();
    for c in &args.containers {
        match client
            .docker()
            .start_container(c, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => write_out(&format!("{c}\n"))?,
            Err(e) => {
                write_err(&format!("{}\n", client.daemon_err(e)))?;
                failed.push(c.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::client(format!(
            "Error: failed to start containers: {}",
            failed.join(", ")
        )))
    }
}

// ---------------------------------------------------------------------------------------
// stop / kill / rm / wait / logs

/// Runs `f` on each container, printing the name on success; errors are joined, as
/// docker's `stop`, `kill` and `rm` report them.
async fn each<F, Fut>(containers: &[String], client: &Client, f: F) -> Result<(), Error>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), BollardError>>,
{
    let mut errors = Vec::new();
    for c in containers {
        match f(c.clone()).await {
            Ok(()) => write_out(&format!("{c}\n"))?,
            Err(e) => errors.push(client.daemon_err(e).to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::client(errors.join("\n")))
    }
}

/// `stop`.
pub async fn stop(session: &Session, args: &StopArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client
        .docker()
        .clone()
        .with_timeout(Duration::from_secs(24 * 3600));
    each(&args.containers, &client, |c| {
        let docker = docker.clone();
        let opts = StopContainerOptions {
            signal: args.signal.clone(),
            t: args.timeout,
        };
        async move { docker.stop_container(&c, Some(opts)).await }
    })
    .await
}

/// `kill`.
pub async fn kill(session: &Session, args: &KillArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client.docker().clone();
    each(&args.containers, &client, |c| {
        let docker = docker.clone();
        let opts = KillContainerOptions {
            signal: args.signal.clone().unwrap_or_else(|| "KILL".into()),
        };
        async move { docker.kill_container(&c, Some(opts)).await }
    })
    .await
}

/// `rm`.
pub async fn rm(session: &Session, args: &RmArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client.docker().clone();
    each(&args.containers, &client, |c| {
        let docker = docker.clone();
        let opts = RemoveContainerOptions {
            v: args.volumes,
            force: args.force,
            link: args.link,
        };
        async move { docker.remove_container(&c, Some(opts)).await }
    })
    .await
}

/// `wait`: prints each container's exit status.
pub async fn wait(session: &Session, args: &WaitArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let mut errors = Vec::new();
    for c in &args.containers {
        let mut s = client.docker().wait_container(
            c,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        match s.next().await {
            Some(Ok(r)) => write_out(&format!("{}\n", r.status_code))?,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => {
                write_out(&format!("{code}\n"))?
            }
            Some(Err(e)) => errors.push(client.daemon_err(e).to_string()),
            None => write_out("0\n")?,
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::client(errors.join("\n")))
    }
}

/// `logs`.
pub async fn logs(session: &Session, args: &LogsArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client
        .docker()
        .clone()
        .with_timeout(Duration::from_secs(365 * 24 * 3600));
    let mut s = docker.logs(
        &args.container,
        Some(LogsOptions {
            follow: args.follow,
            stdout: true,
            stderr: true,
            timestamps: args.timestamps,
            tail: args.tail.clone(),
            since: log_time(args.since.as_deref(), false)?,
            until: log_time(args.until.as_deref(), true)?,
        }),
    );
    while let Some(item) = s.next().await {
        match item.map_err(|e| client.daemon_err(e))? {
            LogOutput::StdErr { message } => {
                let mut e = io::stderr().lock();
                let _ = e.write_all(&message).and_then(|()| e.flush());
            }
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => {
                let mut o = io::stdout().lock();
                if o.write_all(&message).and_then(|()| o.flush()).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// inspect

/// `inspect` and `container inspect`: the daemon's JSON as sent, 4-space indented, or one
/// template rendering per object.
pub async fn inspect(session: &Session, args: &InspectArgs) -> Result<(), Error> {
    let kind = args.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image") {
        return Err(Error::client(format!(
            "\"{kind}\" is not a valid value for --type"
        )));
    }
    let template = args
        .format
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(Template::parse_format_flag)
        .transpose()?;
    let client = session.client().await?;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        let mut kinds: Vec<&str> = Vec::new();
        if kind != "image" {
            kinds.push("container");
        }
        if kind != "container" {
            kinds.push("image");
        }
        let mut got = None;
        for k in kinds {
            let path = if k == "container" {
                format!(
                    "/containers/{}/json{}",
                    path_escape(name),
                    if args.size { "?size=1" } else { "" }
                )
            } else {
                format!("/images/{}/json", path_escape(name))
            };
            match collect(raw_request(client.docker(), Method::GET, path, Vec::new())).await {
                Ok(body) => {
                    got = Some(body);
                    break;
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) if kind.is_empty() => {}
                Err(e) => {
                    errors.push(client.daemon_err(e).to_string());
                    got = Some(Vec::new());
                    break;
                }
            }
        }
        match got {
            Some(b) if b.is_empty() => {}
            Some(b) => found.push(b),
            None => errors.push(format!("Error: No such object: {name}")),
        }
    }
    print_inspect(&found, template.as_ref(), errors)
}

// ---------------------------------------------------------------------------------------
// ps

/// `ps` / `container ls`.
pub async fn ps(session: &Session, args: &PsArgs) -> Result<(), Error> {
    let filters = parse_filters(&args.filter, "-f, --filter")?;
    let client = session.client().await?;
    let limit = if args.latest { 1 } else { args.last };
    let opts = ListContainersOptions {
        all: args.all || limit > 0,
        limit: (limit > 0).then_some(limit),
        size: args.size,
        filters: (!filters.is_empty()).then_some(filters),
    };
    let list = client
        .docker()
        .list_containers(Some(opts))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let format = ps_format(args.format.as_deref(), args.quiet, args.size);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let rows: Vec<Value> = list
        .iter()
        .map(|c| ps_row(c, !args.no_trunc, now))
        .collect();
    write_out(&render_list(&format, &ps_headers(), &rows)?)
}

/// The resolved `--format` of `ps` (formatter.NewContainerFormat).
pub fn ps_format(format: Option<&str>, quiet: bool, size: bool) -> String {
    match format {
        None | Some("") | Some("table") if quiet => "{{.ID}}".into(),
        None | Some("") | Some("table") => {
            let mut f = String::from(
                "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
            );
            if size {
                f.push_str("\t{{.Size}}");
            }
            f
        }
        Some(f) => f.into(),
    }
}

/// The `table` header row of `ps`.
pub fn ps_headers() -> Value {
    json!({
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Ports": "PORTS",
        "State": "STATE",
        "Status": "STATUS",
        "Size": "SIZE",
        "Names": "NAMES",
        "Labels": "LABELS",
        "Mounts": "MOUNTS",
        "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES",
    })
}

/// One `ps` row with docker's field names and renderings.
pub fn ps_row(c: &ContainerSummary, trunc: bool, now: i64) -> Value {
    let id = c.id.clone().unwrap_or_default();
    let id = if trunc { truncate_id(&id) } else { id };
    let mut image = c.image.clone().unwrap_or_default();
    if trunc && image.starts_with("sha256:") {
        image = truncate_id(&image);
    }
    let command = c.command.clone().unwrap_or_default();
    let command = quote_command(&command, trunc);
    let created = c.created.unwrap_or(0);
    let names: Vec<String> = c
        .names
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let names = if trunc {
        names.into_iter().next().unwrap_or_default()
    } else {
        names.join(",")
    };
    let mut labels: Vec<String> = c
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    let networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    // formatter.ContainerContext.Size: always the writable layer, "0B" when not asked.
    let mut size = human_size_precision(c.size_rw.unwrap_or(0) as f64, 3);
    if let Some(root) = c.size_root_fs.filter(|r| *r > 0) {
        let _ = write!(size, " (virtual {})", human_size_precision(root as f64, 3));
    }
    json!({
        "ID": id,
        "Image": image,
        "Command": command,
        "CreatedAt": created_at(created),
        "RunningFor": format!("{} ago", human_duration(now - created)),
        "Platform": null,
        "Ports": display_ports(c.ports.as_deref().unwrap_or_default()),
        "State": c.state.map(|s| s.to_string()).unwrap_or_default(),
        "Status": c.status.clone().unwrap_or_default(),
        "Size": size,
        "Names": names,
        "Labels": labels.join(","),
        "Mounts": "",
        "Networks": networks.join(","),
        "LocalVolumes": "0",
    })
}

/// `CreatedAt`: Go's `time.Time.String()` of the creation time (in UTC here).
pub fn created_at(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `COMMAND`: cut to 20 characters with `…` when truncating, then Go's `strconv.Quote`.
pub fn quote_command(command: &str, trunc: bool) -> String {
    let c = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    go_quote(&c)
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `PORTS`: `0.0.0.0:8080->80/tcp, 53/udp` (formatter.DisplayablePorts, without ranges).
pub fn display_ports(ports: &[Port]) -> String {
    let mut items: Vec<String> = ports
        .iter()
        .map(|p| {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            match (p.ip.as_deref(), p.public_port) {
                (Some(ip), Some(public)) if !ip.is_empty() => {
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{ip}:{public}->{}/{proto}", p.private_port)
                }
                _ => format!("{}/{proto}", p.private_port),
            }
        })
        .collect();
    items.dedup();
    items.join(", ")
}

/// The `Status` text dockerd gives a container (container.State.String()), for daemons
/// that leave it out.
pub fn status_text(
    state: &str,
    started: i64,
    finished: i64,
    exit_code: i64,
    health: Option<&str>,
    now: i64,
) -> String {
    match state {
        "running" => {
            let mut s = format!("Up {}", human_duration(now - started));
            if let Some(h) = health.filter(|h| !h.is_empty() && *h != "none") {
                let h = if h == "starting" {
                    "health: starting"
                } else {
                    h
                };
                let _ = write!(s, " ({h})");
            }
            s
        }
        "paused" => format!("Up {} (Paused)", human_duration(now - started)),
        "restarting" => format!(
            "Restarting ({exit_code}) {} ago",
            human_duration(now - finished)
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        "created" => "Created".into(),
        "exited" if finished <= 0 => String::new(),
        "exited" => format!(
            "Exited ({exit_code}) {} ago",
            human_duration(now - finished)
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerSummaryStateEnum, PortSummaryTypeEnum as PortTypeEnum};
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn summary(command: &str) -> ContainerSummary {
        ContainerSummary {
            id: Some("c8cf011e7cc9a7e133fa674b1a72251649b2d6d0f58901066b0ee8726107d11b".into()),
            names: Some(vec!["/agitated_bhabha".into()]),
            image: Some("busybox".into()),
            command: Some(command.into()),
            created: Some(1000),
            state: Some(ContainerSummaryStateEnum::EXITED),
            status: Some("Exited (0) Less than a second ago".into()),
            ..Default::default()
        }
    }

    #[test]
    fn ps_table_matches_docker() {
        let rows = vec![
            ps_row(&summary("sh -c 'echo out; echo err >&2'"), true, 1000),
            ps_row(
                &ContainerSummary {
                    id: Some(
                        "c9a027cec6e2e1aeefff85df9427d51d79a3055783dc6844457fb2c77af4cd10".into(),
                    ),
                    names: Some(vec!["/sleeper".into()]),
                    command: Some("sleep 1000".into()),
                    status: Some("Up Less than a second".into()),
                    ..summary("")
                },
                true,
                1000,
            ),
        ];
        let out = render_list(&ps_format(None, false, false), &ps_headers(), &rows).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND                  CREATED                  STATUS                              PORTS     NAMES\n\
             c8cf011e7cc9   busybox   \"sh -c 'echo out; ec…\"   Less than a second ago   Exited (0) Less than a second ago             agitated_bhabha\n\
             c9a027cec6e2   busybox   \"sleep 1000\"             Less than a second ago   Up Less than a second                         sleeper\n"
        );
        let q = render_list(&ps_format(None, true, false), &ps_headers(), &rows).unwrap();
        assert_eq!(q, "c8cf011e7cc9\nc9a027cec6e2\n");
    }

    #[test]
    fn empty_ps_prints_the_header() {
        let out = render_list(&ps_format(None, false, false), &ps_headers(), &[]).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn command_truncation_and_quoting() {
        assert_eq!(quote_command("echo hello", true), "\"echo hello\"");
        assert_eq!(
            quote_command("sh -c 'echo out; echo err >&2'", true),
            "\"sh -c 'echo out; ec…\""
        );
        assert_eq!(
            quote_command("sh -c 'echo out; echo err >&2'", false),
            "\"sh -c 'echo out; echo err >&2'\""
        );
        assert_eq!(quote_command("a \"b\"\t\\", true), "\"a \\\"b\\\"\\t\\\\\"");
        assert_eq!(
            quote_command("12345678901234567890", true),
            "\"12345678901234567890\""
        );
    }

    #[test]
    fn status_strings() {
        assert_eq!(status_text("running", 98, 0, 0, None, 100), "Up 2 seconds");
        assert_eq!(
            status_text("running", 100, 0, 0, None, 100),
            "Up Less than a second"
        );
        assert_eq!(
            status_text("exited", 0, 97, 0, None, 100),
            "Exited (0) 3 seconds ago"
        );
        assert_eq!(status_text("exited", 0, 0, 137, None, 7300), "");
        assert_eq!(
            status_text("exited", 0, 100, 137, None, 7300),
            "Exited (137) 2 hours ago"
        );
        assert_eq!(status_text("created", 0, 0, 0, None, 100), "Created");
        assert_eq!(
            status_text("running", 0, 0, 0, Some("healthy"), 100),
            "Up About a minute (healthy)"
        );
        assert_eq!(
            status_text("paused", 40, 0, 0, None, 100),
            "Up About a minute (Paused)"
        );
    }

    #[test]
    fn ports_and_names() {
        let mut c = summary("x");
        c.ports = Some(vec![
            Port {
                ip: Some("0.0.0.0".into()),
                private_port: 80,
                public_port: Some(8080),
                typ: Some(PortTypeEnum::TCP),
            },
            Port {
                ip: None,
                private_port: 53,
                public_port: None,
                typ: Some(PortTypeEnum::UDP),
            },
        ]);
        c.names = Some(vec!["/web".into(), "/other/link".into()]);
        let r = ps_row(&c, true, 1000);
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp, 53/udp");
        assert_eq!(r["Names"], "web");
        let r = ps_row(&c, false, 1000);
        assert_eq!(r["Names"], "web,other/link");
        assert_eq!(r["CreatedAt"], "1970-01-01 00:16:40 +0000 UTC");
    }

    #[test]
    fn exit_statuses_of_failed_starts() {
        assert_eq!(
            run_status("exec: \"nonexist\": executable file not found in $PATH: unknown"),
            127
        );
        assert_eq!(
            run_status("exec: \"/etc\": permission denied: unknown"),
            126
        );
        assert_eq!(run_status("something else"), 125);
    }

    #[test]
    fn image_references() {
        assert_eq!(tagged_reference("busybox"), "busybox:latest");
        assert_eq!(tagged_reference("nosuchimg"), "nosuchimg:latest");
        assert_eq!(tagged_reference("a/b:1"), "a/b:1");
    }

    #[test]
    fn run_flags_stop_at_the_image() {
        let cli = Cli::try_parse_from([
            "berth",
            "run",
            "--rm",
            "-e",
            "A=1",
            "-h",
            "box",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo -e x",
            "--rm",
        ])
        .unwrap();
        let Some(Command::ContainerShortcut(ContainerShortcut::Run(r))) = cli.command else {
            panic!("not run");
        };
        assert!(r.opts.rm);
        assert_eq!(r.opts.hostname.as_deref(), Some("box"));
        assert_eq!(
            r.opts.image_and_command,
            ["busybox", "sh", "-c", "echo -e x", "--rm"]
        );
        let body = create_body(&r.opts, false);
        assert_eq!(body.image.as_deref(), Some("busybox"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.auto_remove, Some(true));
    }
}

// ---------------------------------------------------------------------------------------
// restart policies, restart / rename / prune

/// docker's `opts.ParseRestartPolicy`: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
pub fn parse_restart(policy: &str) -> Result<bollard::models::RestartPolicy, String> {
    use bollard::models::RestartPolicyNameEnum as N;
    let (name, count) = match policy.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (policy, None),
    };
    let name = match name {
        "" | "no" => N::NO,
        "always" => N::ALWAYS,
        "unless-stopped" => N::UNLESS_STOPPED,
        "on-failure" => N::ON_FAILURE,
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ))
        }
    };
    let maximum_retry_count = match count {
        None => None,
        Some(_) if name != N::ON_FAILURE => {
            return Err(format!(
                "invalid restart policy format: maximum retry count can only be used with 'on-failure': {policy}"
            ))
        }
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            format!("invalid restart policy format: maximum retry count must be an integer: {policy}")
        })?),
    };
    Ok(bollard::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    })
}

/// `--restart` checks docker's `run`/`create` make before calling the daemon.
fn check_restart(o: &ContainerOptions) -> Result<(), Error> {
    let Some(r) = o.restart.as_deref() else {
        return Ok(());
    };
    parse_restart(r).map_err(Error::client)?;
    if o.rm && !matches!(r, "" | "no") {
        return Err(Error::client(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

/// `--since`/`--until` of `logs` in whole seconds (bollard's query type); `until` rounds
/// up so that the second it names is included.
fn log_time(value: Option<&str>, round_up: bool) -> Result<i32, Error> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let n = berth_api_types::timestamp::parse_nanos(v, now).map_err(Error::client)?;
    let mut secs = n.div_euclid(1_000_000_000);
    if round_up && n.rem_euclid(1_000_000_000) != 0 {
        secs += 1;
    }
    Ok(secs.clamp(0, i32::MAX as i64) as i32)
}

/// `restart`.
pub async fn restart(session: &Session, args: &RestartArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client
        .docker()
        .clone()
        .with_timeout(Duration::from_secs(24 * 3600));
    each(&args.containers, &client, |c| {
        let docker = docker.clone();
        let opts = bollard::query_parameters::RestartContainerOptions {
            signal: args.signal.clone(),
            t: args.timeout,
        };
        async move { docker.restart_container(&c, Some(opts)).await }
    })
    .await
}

/// `rename`.
pub async fn rename(session: &Session, args: &RenameArgs) -> Result<(), Error> {
    let new_name = args.new_name.trim();
    if args.container.trim().is_empty() || new_name.is_empty() {
        return Err(Error::client(
            "Error: Neither old nor new names may be empty",
        ));
    }
    let client = session.client().await?;
    client
        .docker()
        .rename_container(
            &args.container,
            bollard::query_parameters::RenameContainerOptions {
                name: new_name.to_string(),
            },
        )
        .await
        .map_err(|e| client.daemon_err(e))
}

/// `container prune`.
pub async fn prune(session: &Session, args: &ContainerPruneArgs) -> Result<(), Error> {
    let filters = parse_filters(&args.filter, "--filter")?;
    if !args.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        return Ok(());
    }
    let client = session.client().await?;
    let report = client
        .docker()
        .prune_containers(Some(bollard::query_parameters::PruneContainersOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let deleted = report.containers_deleted.unwrap_or_default();
    let reclaimed = if deleted.is_empty() {
        0
    } else {
        report.space_reclaimed.unwrap_or(0)
    };
    write_out(&render_prune(&deleted, reclaimed))
}

/// docker's `container prune` output.
pub fn render_prune(deleted: &[String], reclaimed: i64) -> String {
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str("Deleted Containers:\n");
        for id in deleted {
            out.push_str(id);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    out
}

#[cfg(test)]
mod lifecycle_tests {
    use super::*;

    #[test]
    fn restart_policies_parse_like_docker() {
        use bollard::models::RestartPolicyNameEnum as N;
        assert_eq!(parse_restart("always").unwrap().name, Some(N::ALWAYS));
        let p = parse_restart("on-failure:2").unwrap();
        assert_eq!(
            (p.name, p.maximum_retry_count),
            (Some(N::ON_FAILURE), Some(2))
        );
        assert_eq!(parse_restart("no").unwrap().name, Some(N::NO));
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("on-failure:x").is_err());
    }

    #[test]
    fn prune_output() {
        assert_eq!(render_prune(&[], 0), "Total reclaimed space: 0B\n");
        assert_eq!(
            render_prune(&["abc".into()], 2048),
            "Deleted Containers:\nabc\n\nTotal reclaimed space: 2.048kB\n"
        );
    }

    #[test]
    fn log_times_are_whole_seconds() {
        assert_eq!(log_time(None, false).unwrap(), 0);
        assert_eq!(
            log_time(Some("1700000000.5"), false).unwrap(),
            1_700_000_000
        );
        assert_eq!(log_time(Some("1700000000.5"), true).unwrap(), 1_700_000_001);
        assert!(log_time(Some("nope"), false).is_err());
    }
}
