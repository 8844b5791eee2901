//! Running the host's network tools, with their stderr in the error.

use std::io::Write;
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

/// Runs several `ip` commands in one process (`ip -batch -`), inside the network namespace
/// of `pid` when given: one fork and exec instead of one per step. Stops at the first
/// command that fails.
pub(crate) fn ip_batch(pid: Option<i32>, commands: &[String]) -> Result<(), NetError> {
    let net = pid.map(|p| format!("--net=/proc/{p}/ns/net"));
    let mut cmd = match &net {
        Some(n) => {
            let mut c = Command::new("nsenter");
            c.args([n.as_str(), "ip"]);
            c
        }
        None => Command::new("ip"),
    };
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NetError::io("cannot run ip".to_string()))?;
    let script = commands.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(NetError::io("cannot write to ip".to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(NetError::io("cannot run ip".to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            cmd: format!("ip -batch: {}", commands.join("; ")),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
