//! Running the host's network tools, with their stderr in the error.

use std::process::{Command, Stdio};

use crate::NetError;

/// Runs `prog args…`; its stdout on success.
pub(crate) fn run(prog: &str, args: &[&str]) -> Result<String, NetError> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(NetError::io(format!("cannot run {prog}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Command {
            cmd: format!("{prog} {}", args.join(" ")),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
