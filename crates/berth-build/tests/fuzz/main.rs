//! Bounded fuzzing (proptest) of what berth-build reads from clients: Dockerfiles (the
//! parser, the instruction checks, the expansion of every instruction), shell words (the
//! lexer) and `.dockerignore` patterns. Every target must return (Ok or Err), never panic,
//! and stay within the crate's size bounds. Each runs a few hundred cases so that `cargo
//! test` stays fast; `PROPTEST_CASES=100000` makes it a real fuzz run. The Dockerfiles in
//! `tests/corpus/` are replayed as they are (`ok-*` must parse, `err-*` must fail with a
//! line) and used as seeds for mutation.

mod dockerfile;
mod ignore;

use std::path::PathBuf;

use proptest::test_runner::Config;

/// `PROPTEST_CASES` when set (a long fuzz run), else `default` (bounded for CI).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        max_shrink_iters: 1024,
        ..Config::default()
    }
}

/// The corpus files, sorted, with their contents.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read corpus file"))
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "corpus has {} files", out.len());
    out
}
