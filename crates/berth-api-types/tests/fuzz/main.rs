//! Bounded fuzzing (proptest) of the pure parsers clients feed: image references. Each
//! target runs a few thousand cases at most so that `cargo test` stays fast;
//! `PROPTEST_CASES=100000` makes it a real fuzz run. Shrunk failures are kept next to
//! each target (`*.proptest-regressions`) and replayed first; the hand-made seeds in `tests/corpus/`
//! are replayed by `*_corpus` tests.

mod reference;

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
        ..Config::default()
    }
}

/// `tests/corpus/<name>` of this crate.
pub fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}
