//! The global flags every command shares (`-H`, `--tls*`, `--config`, `-D`, `-l`, `-v`),
//! which go before the command name as with docker. A module of its own, so that the kit
//! that reads them ([`crate::connect`]) does not import the command tree in `cli`.

use std::path::PathBuf;

use clap::Args;

/// The flags every command shares; they go before the command name, as with docker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct GlobalOptions {
    /// Location of client config files (default ~/.docker; env DOCKER_CONFIG)
    #[arg(long, value_name = "string")]
    pub config: Option<PathBuf>,

    /// Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var
    /// and default context set with "berth context use")
    #[arg(short = 'c', long = "context", value_name = "string")]
    pub context: Option<String>,

    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,

    /// Daemon socket to connect to (env BERTH_HOST, DOCKER_HOST; default unix:///run/berth.sock)
    #[arg(short = 'H', long = "host", value_name = "list")]
    pub host: Vec<String>,

    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(
        short = 'l',
        long = "log-level",
        value_name = "string",
        value_parser = ["debug", "info", "warn", "error", "fatal"],
        hide_possible_values = true
    )]
    pub log_level: Option<String>,

    /// Use TLS; implied by --tlsverify (Berth always verifies the daemon)
    #[arg(long, value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls: Option<bool>,

    /// Trust certs signed only by this CA (default $DOCKER_CERT_PATH/ca.pem)
    #[arg(long = "tlscacert", value_name = "string")]
    pub tls_ca_cert: Option<PathBuf>,

    /// Path to TLS certificate file (default $DOCKER_CERT_PATH/cert.pem)
    #[arg(long = "tlscert", value_name = "string")]
    pub tls_cert: Option<PathBuf>,

    /// Path to TLS key file (default $DOCKER_CERT_PATH/key.pem)
    #[arg(long = "tlskey", value_name = "string")]
    pub tls_key: Option<PathBuf>,

    /// Use TLS and verify the remote (env BERTH_TLS_VERIFY, DOCKER_TLS_VERIFY)
    #[arg(
        long = "tlsverify",
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls_verify: Option<bool>,

    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}
