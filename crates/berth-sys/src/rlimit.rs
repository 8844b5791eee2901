//! The daemon's open-file limit: raised to the hard limit at start (every published port,
//! connection and container costs descriptors), while the processes it starts keep the
//! limit the daemon was given, so containers see the `ulimit -n` they saw before.

use std::io;
use std::os::unix::process::CommandExt;
use std::sync::OnceLock;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft `RLIMIT_NOFILE` this process started with, once [`raise_nofile`] has raised it.
static STARTED_WITH: OnceLock<u64> = OnceLock::new();

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (never the hard limit
/// itself: that needs `CAP_SYS_RESOURCE`) and remembers the original soft limit for
/// [`keep_nofile_for_child`]. Returns `(before, now)`. Call once, at start.
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        let _ = STARTED_WITH.set(soft);
    }
    Ok((soft, hard.max(soft)))
}

/// Makes `cmd`'s child start with the soft `RLIMIT_NOFILE` this process started with
/// (before [`raise_nofile`]); a no-op when the limit was never raised (children then
/// inherit it unchanged, and `std` may still spawn them with `posix_spawn`).
pub fn keep_nofile_for_child(cmd: &mut std::process::Command) {
    let Some(&soft) = STARTED_WITH.get() else {
        return;
    };
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // getrlimit/setrlimit system calls, which are async-signal-safe; it allocates nothing
    // and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
            setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard)?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_to_hard_and_children_keep_the_original() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let lower = soft.min(hard).min(512);
        setrlimit(Resource::RLIMIT_NOFILE, lower, hard).unwrap();
        let (before, now) = raise_nofile().unwrap();
        assert_eq!((before, now), (lower, hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "ulimit -n"]);
        keep_nofile_for_child(&mut cmd);
        let out = cmd.output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            lower.to_string()
        );
    }
}
