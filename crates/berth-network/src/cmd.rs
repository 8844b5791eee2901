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

/// Runs `ip args…` inside the network namespace of `pid`.
pub(crate) fn ip_in(pid: i32, args: &[&str]) -> Result<String, NetError> {
    let net = format!("--net=/proc/{pid}/ns/net");
    let mut a = vec![net.as_str(), "ip"];
    a.extend_from_slice(args);
    run("nsenter", &a)
}
