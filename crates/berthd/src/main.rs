//! `berthd`: parses flags, sets up logging, and runs the daemon.
#![forbid(unsafe_code)]

mod config;
mod daemon;
mod dump;
mod flags;
mod heap;
mod preflight;
#[cfg(test)]
mod reference;

use clap::{CommandFactory, FromArgMatches};

fn main() -> std::process::ExitCode {
    berth_sys::memory::tune_allocator_for_daemon();
    let matches = flags::Flags::command().get_matches();
    let flags = flags::Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if flags.man_page {
        let page = clap_mangen::Man::new(flags::Flags::command()).section("8");
        return match page.render(&mut std::io::stdout()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berthd: cannot write the man page: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    // Before reading anything: a user's start fails on root-only files otherwise, with an
    // error that hides the cause. `--validate` reads the configuration only.
    if !flags.validate {
        if let Err(e) = preflight::check_privileges() {
            eprintln!("berthd: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let config = match config::DaemonConfig::resolve(&flags, &matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // dockerd's `--validate`: the same checks as a start, nothing started.
    if flags.validate {
        println!("configuration OK");
        return std::process::ExitCode::SUCCESS;
    }
    daemon::init_logging(&config.log_level, config.log_format);
    match daemon::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
