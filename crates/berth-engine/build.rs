//! Records the compiler version, git commit and commit time, in the shapes `GET /version`
//! reports them (`rust1.95.0`, short commit, RFC 3339 time), as `BERTH_RUSTC_VERSION`,
//! `BERTH_GIT_COMMIT` and `BERTH_BUILD_TIME`. The one build script of the workspace:
//! berth-cli runs this file too (`build = "../berth-engine/build.rs"`), so `berth version`'s
//! Client and Server sections read alike. The commit time (not the wall clock) keeps builds
//! reproducible.
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
    println!("cargo:rustc-env=BERTH_RUSTC_VERSION={short}");
    let commit = output("git", &["rev-parse", "--short=7", "HEAD"]).unwrap_or_default();
    let time = output("git", &["log", "-1", "--format=%cI"]).unwrap_or_default();
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=BERTH_BUILD_TIME={time}");
    // A change to this script rebuilds it (and so reruns it) without being named here.
    // `--git-path` finds the refs of a worktree too (they live in the common git dir).
    for path in ["HEAD", "refs/heads"] {
        if let Some(p) = output("git", &["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
