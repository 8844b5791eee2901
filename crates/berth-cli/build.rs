//! Records the compiler version, git commit and commit time for `berth version`, in the
//! same shapes berthd reports them (`rust1.95.0`, short commit, RFC 3339 time), so the
//! Client and Server sections read alike. The commit time (not the wall clock) keeps
//! builds reproducible.
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = output(&rustc, &["--version"]).unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)" -> "rust1.95.0", the shape of Go's "go1.19.8".
    let short = version
        .split_whitespace()
        .nth(1)
        .map(|v| format!("rust{v}"))
        .unwrap_or_else(|| "rust".into());
    println!("cargo:rustc-env=BERTH_CLI_RUSTC_VERSION={short}");
    let commit = output("git", &["rev-parse", "--short=7", "HEAD"]).unwrap_or_default();
    let time = output("git", &["log", "-1", "--format=%cI"]).unwrap_or_default();
    println!("cargo:rustc-env=BERTH_CLI_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=BERTH_CLI_BUILD_TIME={time}");
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(git_dir) = output("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/refs/heads");
    }
}
