//! Builds `pause/pause.c` into a static `berth-pause` (the process of a pod sandbox's infra
//! container, embedded in berthd and turned into an image on first use). Needs a C compiler
//! (`$CC`, else `cc`) and the static C library (Debian's libc6-dev, which linking Rust
//! already needs).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=pause/pause.c");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let binary = out.join("berth-pause");
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&binary)
        .arg("pause/pause.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        status.success(),
        "{cc} failed to build berth-pause (a static binary: is libc6-dev installed?)"
    );
}
