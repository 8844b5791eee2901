//! `berth completion SHELL` (as `docker completion`): the shell's completion script,
//! generated from the command definitions; and the hidden `berth __man DIR`, which writes
//! a man page per command (`berth.1`, `berth-container-run.1`, ...) for the package.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::Error;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory the pages go to (created if missing)
    pub dir: PathBuf,
}

/// Prints the completion script of `cmd` (berth's command line) on stdout.
pub fn completion(args: &CompletionArgs, mut cmd: clap::Command) -> Result<(), Error> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut buf);
    crate::write_out(&String::from_utf8_lossy(&buf))
}

/// Writes `berth.1` and one page per subcommand, named by its path (`berth-image-ls.1`).
pub fn man_pages(args: &ManArgs, cmd: clap::Command) -> Result<(), Error> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Error::client(format!("cannot create {}: {e}", args.dir.display())))?;
    write_pages(&cmd.name("berth"), "berth", args)
}

fn write_pages(cmd: &clap::Command, name: &str, args: &ManArgs) -> Result<(), Error> {
    let cmd = cmd
        .clone()
        .display_name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .map_err(|e| Error::client(format!("cannot render the man page of {name}: {e}")))?;
    let path = args.dir.join(format!("{name}.1"));
    std::fs::write(&path, buf)
        .map_err(|e| Error::client(format!("cannot write {}: {e}", path.display())))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), args)?;
    }
    Ok(())
}
