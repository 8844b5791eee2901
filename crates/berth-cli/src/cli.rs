//! The command line: the subcommand tree over docker's global flags (those are in
//! [`crate::options`], spelled as `docker --help` spells them). The arguments of `version`,
//! `info`, `tls` and `system df` live here; the larger groups (`image`, `container`, `cp`,
//! `network`, `volume`, ...) keep theirs beside their code. What a command does lives in
//! its group's module. This is the root of the CLI's import graph: only it and `lib`
//! import the command modules wholesale.
//!
//! Environment variables are not bound through clap: several names feed one setting
//! (`BERTH_HOST` or `DOCKER_HOST`), so [`crate::connect::resolve`] applies them with an
//! explicit, tested precedence.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::options::GlobalOptions;

/// `berth`: a Docker-compatible client for the Berth container engine.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    about = "A self-sufficient runtime for containers (Berth, Docker-compatible)",
    disable_version_flag = true,
    disable_help_subcommand = true,
    after_help = "Run 'berth COMMAND --help' for more information on a command."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands. Each group is one module of this crate.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the Berth version information
    Version(FormatArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Create and manage the certificates of Berth's mutual-TLS endpoint
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Manage images
    #[command(subcommand)]
    Image(crate::image::ImageCommand),
    #[command(flatten)]
    ImageShortcut(crate::image::ImageShortcut),
    /// Manage containers
    #[command(subcommand)]
    Container(crate::container::ContainerCommand),
    #[command(flatten)]
    ContainerShortcut(crate::container::ContainerShortcut),
    #[command(flatten)]
    Ops(crate::ops::OpsCommand),
    #[command(flatten)]
    Fs(crate::cp::FsCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(crate::volume::VolumeCommand),
    /// Manage Berth
    #[command(subcommand)]
    System(SystemCommand),
    /// Get real time events from the server
    Events(crate::events::EventsArgs),
    /// Log in to a registry
    Login(crate::registry::LoginArgs),
    /// Log out from a registry
    Logout(crate::registry::LogoutArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(crate::network::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    Port(crate::network::PortArgs),
    /// Build an image from a Dockerfile
    Build(crate::build::BuildArgs),
    /// Manage builds
    #[command(subcommand)]
    Builder(crate::build::BuilderCommand),
    /// Search Docker Hub for images
    Search(crate::system_prune::SearchArgs),
    /// Manage contexts
    #[command(subcommand)]
    Context(crate::context::ContextCommand),
    /// Generate the autocompletion script for the specified shell
    Completion(crate::completion::CompletionArgs),
    /// Write a man page for every command into a directory (the package build uses it)
    #[command(name = "__man", hide = true)]
    Man(crate::completion::ManArgs),
}

/// `berth system ...`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info(FormatArgs),
    /// Get real time events from the server
    Events(crate::events::EventsArgs),
    /// Remove unused data
    Prune(crate::system_prune::SystemPruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// `-f/--format` as `docker version` and `docker info` take it.
#[derive(Debug, Clone, Default, Args)]
pub struct FormatArgs {
    /// Format output using a custom template:
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template
    #[arg(short = 'f', long, value_name = "string", verbatim_doc_comment)]
    pub format: Option<String>,
}

/// `berth tls ...`.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Create a CA, a server certificate and a client certificate in one directory
    Init(TlsInitArgs),
    /// Issue another client certificate from the CA made by `berth tls init`
    Client(TlsClientArgs),
    /// Revoke the client certificates issued under NAME and write the CA's revocation list
    /// (DIR/crl.pem) for `berthd --tlscrl`
    Revoke(TlsRevokeArgs),
}

/// Default validity of generated certificates, in days.
pub const DEFAULT_CERT_DAYS: u32 = 365;

#[derive(Debug, Clone, Args)]
pub struct TlsInitArgs {
    /// Directory to write ca.pem, ca-key.pem, server-cert.pem, server-key.pem, cert.pem, key.pem
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// A DNS name or IP address clients use to reach the daemon (repeatable; localhost and
    /// 127.0.0.1 are always included)
    #[arg(long = "san", value_name = "NAME_OR_IP")]
    pub sans: Vec<String>,

    /// Common name of the first client certificate (the identity berthd logs)
    #[arg(long, value_name = "NAME", default_value = "client")]
    pub client_name: String,

    /// Validity of the certificates in days
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CERT_DAYS)]
    pub days: u32,

    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

/// What `berth tls client --role` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientRole {
    Viewer,
    Operator,
    Admin,
}

impl ClientRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientRole::Viewer => "viewer",
            ClientRole::Operator => "operator",
            ClientRole::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TlsClientArgs {
    /// Common name of the new client certificate
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Role for `berthd --authorization roles`, written as OU=berth:ROLE in the subject
    #[arg(long, value_name = "ROLE")]
    pub role: Option<ClientRole>,

    /// Directory holding the CA (ca.pem and ca-key.pem from `berth tls init`)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Where to write cert.pem, key.pem and ca.pem (default DIR/clients/NAME)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Validity of the certificate in days
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CERT_DAYS)]
    pub days: u32,

    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TlsRevokeArgs {
    /// Name of the client certificate(s) to revoke, as given to `berth tls client`
    #[arg(
        value_name = "NAME",
        required_unless_present = "cert",
        conflicts_with = "cert"
    )]
    pub name: Option<String>,

    /// Revoke the certificate in this PEM file instead (one the CA signed that DIR/index.json
    /// does not list, e.g. issued by an older berth)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Directory holding the CA (ca.pem, ca-key.pem and index.json)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_before_the_command() {
        let cli = parse(&[
            "-H",
            "tcp://h:2376",
            "--tlsverify",
            "--tlscacert",
            "/c/ca.pem",
            "-D",
            "-l",
            "warn",
            "version",
        ]);
        assert_eq!(cli.global.host, vec!["tcp://h:2376"]);
        assert_eq!(cli.global.tls_verify, Some(true));
        assert_eq!(cli.global.tls_ca_cert, Some(PathBuf::from("/c/ca.pem")));
        assert!(cli.global.debug);
        assert_eq!(cli.global.log_level.as_deref(), Some("warn"));
        assert!(matches!(cli.command, Some(Command::Version(_))));
    }

    #[test]
    fn tlsverify_takes_an_optional_bool() {
        assert_eq!(
            parse(&["--tlsverify=false", "info"]).global.tls_verify,
            Some(false)
        );
        assert_eq!(
            parse(&["--tlsverify", "info"]).global.tls_verify,
            Some(true)
        );
        assert_eq!(parse(&["info"]).global.tls_verify, None);
    }

    #[test]
    fn format_flag() {
        let cli = parse(&["info", "-f", "{{.ServerVersion}}"]);
        let Some(Command::Info(f)) = cli.command else {
            panic!("not info")
        };
        assert_eq!(f.format.as_deref(), Some("{{.ServerVersion}}"));
    }

    #[test]
    fn tls_subcommands() {
        let cli = parse(&[
            "tls", "init", "--dir", "/d", "--san", "h1", "--san", "10.0.0.1", "--force",
        ]);
        let Some(Command::Tls(TlsCommand::Init(a))) = cli.command else {
            panic!("not tls init")
        };
        assert_eq!(a.sans, vec!["h1", "10.0.0.1"]);
        assert_eq!(a.client_name, "client");
        assert_eq!(a.days, DEFAULT_CERT_DAYS);
        assert!(a.force);

        let cli = parse(&["tls", "client", "bob", "--dir", "/d", "--days", "30"]);
        let Some(Command::Tls(TlsCommand::Client(c))) = cli.command else {
            panic!("not tls client")
        };
        assert_eq!(c.name, "bob");
        assert_eq!(c.out, None);
        assert_eq!(c.days, 30);
        assert_eq!(c.role, None);
        let cli = parse(&["tls", "client", "op", "--dir", "/d", "--role", "operator"]);
        let Some(Command::Tls(TlsCommand::Client(c))) = cli.command else {
            panic!("not tls client")
        };
        assert_eq!(c.role, Some(ClientRole::Operator));
        assert!(Cli::try_parse_from([
            "berth", "tls", "client", "x", "--dir", "/d", "--role", "root"
        ])
        .is_err());

        let cli = parse(&["tls", "revoke", "bob", "--dir", "/d"]);
        let Some(Command::Tls(TlsCommand::Revoke(r))) = cli.command else {
            panic!("not tls revoke")
        };
        assert_eq!(r.name.as_deref(), Some("bob"));
        assert_eq!(r.dir, PathBuf::from("/d"));
        let cli = parse(&["tls", "revoke", "--cert", "/c.pem", "--dir", "/d"]);
        let Some(Command::Tls(TlsCommand::Revoke(r))) = cli.command else {
            panic!("not tls revoke")
        };
        assert_eq!(r.cert, Some(PathBuf::from("/c.pem")));
        // One of NAME and --cert, not both, not neither.
        assert!(Cli::try_parse_from(["berth", "tls", "revoke", "--dir", "/d"]).is_err());
        assert!(Cli::try_parse_from([
            "berth", "tls", "revoke", "x", "--cert", "/c", "--dir", "/d"
        ])
        .is_err());
    }

    #[test]
    fn bad_log_level_is_refused() {
        assert!(Cli::try_parse_from(["berth", "-l", "loud", "info"]).is_err());
    }
}
