//! The container commands: `run`, `create`, `start`, `ps` (`container ls`), `logs`, `stop`,
//! `kill`, `rm`, `wait` and `inspect` (containers and images), with docker's flags, output
//! and exit statuses (docker/cli `cli/command/container/*.go`,
//! `cli/command/formatter/container.go`).
//!
//! This module holds the command line (flags as docker spells them) and the dispatch; the
//! commands are in `run` (run, create, start), `lifecycle` (stop, kill, rm, wait, restart,
//! rename, prune), `logs` and `list` (ps and inspect, with the pure `ps` row rendering:
//! [`ps_row`], [`quote_command`], [`status_text`]). `run`'s exit statuses are
//! [`run_status`]. The command functions call the daemon through bollard and print.
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

use clap::{ArgAction, Args, Subcommand};

use crate::cp::FsCommand;
use crate::error::Error;
use crate::host_flags::parse_ram;
use crate::Session;

mod lifecycle;
mod list;
mod logs;
mod run;

pub use lifecycle::{kill, prune, rename, render_prune, restart, rm, stop, wait};
pub use list::{
    created_at, display_ports, inspect, ps, ps_format, ps_headers, ps_row, quote_command,
    status_text,
};
pub use logs::logs;
pub use run::{
    create, create_body, parse_restart, run_container, run_status, start, tagged_reference,
};

const FORMAT_HELP: &str = "Format output using a custom template:\n\
'table':            Print output in table format with column headers (default)\n\
'table TEMPLATE':   Print output in table format using the given Go template\n\
'json':             Print in JSON format\n\
'TEMPLATE':         Print output using the given Go template.\n\
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

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
    /// List port mappings or a specific mapping for the container
    Port(crate::network::PortArgs),
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
    #[command(flatten)]
    pub health: crate::health_flags::HealthFlags,
    #[command(flatten)]
    pub fields: crate::field_flags::FieldFlags,
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
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
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
        ContainerCommand::Port(a) => crate::network::port(session, a).await,
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
