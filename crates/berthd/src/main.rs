//! `berthd`: parses flags, sets up logging, and runs the daemon.
#![forbid(unsafe_code)]

mod config;
mod daemon;
mod flags;

use clap::{CommandFactory, FromArgMatches};

fn main() -> std::process::ExitCode {
    let matches = flags::Flags::command().get_matches();
    let flags = flags::Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match config::DaemonConfig::resolve(&flags, &matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    daemon::init_logging(&config.log_level);
    match daemon::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
