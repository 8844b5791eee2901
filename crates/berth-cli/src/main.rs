//! The `berth` binary: parses the command line, sets up logging and a runtime, runs the
//! command, and turns its error into docker's exit statuses (flag errors 125, template
//! errors 64, everything else 1).

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use berth_cli::cli::Cli;
use clap::error::ErrorKind;
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                // docker exits 125 when its own flags are wrong.
                _ => ExitCode::from(125),
            };
        }
    };
    init_logging(cli.global.debug, cli.global.log_level.as_deref());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(berth_cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// `-D` means debug; `-l` takes docker's level names (`fatal` is tracing's `error`).
fn init_logging(debug: bool, level: Option<&str>) {
    let level = match (debug, level) {
        (true, _) => "debug",
        (false, Some("fatal")) => "error",
        (false, Some(l)) => l,
        (false, None) => "info",
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "berth_cli={level}"
        )))
        .try_init();
}
