//! berth-cli: the `berth` command, a Docker-compatible client for berthd (and for any
//! Docker Engine). `main.rs` parses flags and calls [`run`]; each command group is one
//! module (`system`, `tls`, `container`, `image`, `network`, `volume`, `cp`, `ops`,
//! `events`, `registry`, `build`, `context`, `system_prune`), sharing a kit that imports no command module: [`connect`] (how
//! to reach the daemon), [`request`] (filters, escaping, raw requests), [`format`](mod@format) (the
//! `--format` template language), [`table`] (list output), [`inspect`] (inspect output),
//! [`humanize`] and [`timefmt`] (Go's renderings of sizes, ages and times), [`progress`]
//! (pull/push/load progress), `prompt`, `terminal` and [`Error`].
//!
//! Commands talk to the daemon through bollard on the transport [`connect`] builds; see
//! there for where and why we do not use bollard's own connectors.

#![forbid(unsafe_code)]

mod atomic_file;
pub mod build;
pub mod cli;
pub mod completion;
pub mod config_file;
pub mod connect;
pub mod container;
pub mod context;
pub mod cp;
pub mod endpoint;
mod error;
pub mod events;
pub mod field_flags;
pub mod format;
pub mod health_flags;
pub mod host_flags;
pub mod humanize;
pub mod image;
pub mod inspect;
pub mod network;
pub mod ops;
pub mod options;
pub mod progress;
mod prompt;
pub mod registry;
pub mod request;
pub mod system;
pub mod system_prune;
pub mod table;
mod terminal;
pub mod timefmt;
pub mod tls;
pub mod volume;

use std::io::{self, Write};

use clap::CommandFactory;

pub use error::Error;

use crate::cli::{Cli, Command};
use crate::connect::Client;
use crate::endpoint::Target;
use crate::options::GlobalOptions;

/// What every command gets: the global options and, resolved lazily, the daemon.
#[derive(Debug, Clone)]
pub struct Session {
    global: GlobalOptions,
    /// Resolution errors surface only when a command needs the daemon, so `berth tls`
    /// works whatever DOCKER_HOST says.
    target: Result<Target, Error>,
}

impl Session {
    /// Resolves `global` against the environment `env`.
    pub fn new(global: GlobalOptions, env: &dyn Fn(&str) -> Option<String>) -> Session {
        let target = connect::resolve(&global, env);
        Session { global, target }
    }

    /// `-D`: debug mode.
    pub fn debug(&self) -> bool {
        self.global.debug
    }

    /// The global options as given.
    pub fn options(&self) -> &GlobalOptions {
        &self.global
    }

    /// The context in use (`version` and `info` print it); `default` when it cannot be
    /// resolved (the connection then reports why).
    pub fn context_name(&self) -> String {
        context::resolve_name(&self.global, &endpoint::process_env)
            .unwrap_or_else(|_| context::DEFAULT_CONTEXT.to_string())
    }

    /// Connects to the daemon and negotiates the API version.
    pub async fn client(&self) -> Result<Client, Error> {
        let target = self.target.clone()?;
        Client::connect(&target).await
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let session = Session::new(cli.global, &endpoint::process_env);
    if session.global.version {
        let facts = system::ClientFacts::current();
        return write_out(&format!(
            "Berth version {}, build {}\n",
            facts.version, facts.git_commit
        ));
    }
    match &cli.command {
        // As `docker` alone: the help text, success.
        None => write_out(&format!("{}\n", cli::Cli::command().render_help())),
        Some(Command::Version(args)) => system::version(&session, args).await,
        Some(Command::Info(args)) => system::info(&session, args).await,
        Some(Command::Tls(cmd)) => tls::run(cmd),
        Some(Command::Image(cmd)) => image::run(&session, cmd).await,
        Some(Command::ImageShortcut(cmd)) => image::run_shortcut(&session, cmd).await,
        Some(Command::Container(cmd)) => container::run(&session, cmd).await,
        Some(Command::ContainerShortcut(cmd)) => container::run_shortcut(&session, cmd).await,
        Some(Command::Ops(cmd)) => ops::run(&session, cmd).await,
        Some(Command::Fs(cmd)) => cp::run(&session, cmd).await,
        Some(Command::Volume(cmd)) => volume::run(&session, cmd).await,
        Some(Command::System(cli::SystemCommand::Df(a))) => system::df(&session, a.verbose).await,
        Some(Command::System(cli::SystemCommand::Info(a))) => system::info(&session, a).await,
        Some(Command::System(cli::SystemCommand::Events(a))) => events::events(&session, a).await,
        Some(Command::System(cli::SystemCommand::Prune(a))) => {
            system_prune::system_prune(&session, a).await
        }
        Some(Command::Search(a)) => system_prune::search(&session, a).await,
        Some(Command::Events(args)) => events::events(&session, args).await,
        Some(Command::Login(args)) => registry::login(&session, args).await,
        Some(Command::Logout(args)) => registry::logout(&session, args).await,
        Some(Command::Network(cmd)) => network::run(&session, cmd).await,
        Some(Command::Port(args)) => network::port(&session, args).await,
        Some(Command::Build(args)) => build::build(&session, args).await,
        Some(Command::Builder(cmd)) => build::builder(&session, cmd).await,
        Some(Command::Context(cmd)) => context::run(&session, cmd),
        Some(Command::Completion(args)) => completion::completion(args, cli::Cli::command()),
        Some(Command::Man(args)) => completion::man_pages(args, cli::Cli::command()),
    }
}

/// Writes to stdout; a closed pipe (`berth info | head -1`) is not an error.
pub fn write_out(text: &str) -> Result<(), Error> {
    write_to(&mut io::stdout().lock(), text)
}

/// Writes to stderr.
pub fn write_err(text: &str) -> Result<(), Error> {
    write_to(&mut io::stderr().lock(), text)
}

fn write_to(w: &mut dyn Write, text: &str) -> Result<(), Error> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::client(format!("cannot write output: {e}"))),
    }
}
