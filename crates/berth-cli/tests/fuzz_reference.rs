//! Bounded fuzzing (proptest) of how the CLI names an image it did not find
//! (`tagged_reference`, docker's "Unable to find image 'busybox:latest' locally"): any text
//! gives a name without a panic, and a reference that parses is named by its familiar form
//! with a tag or digest, which parses back with the same tag and digest. The reference parser itself is
//! fuzzed in `berth-api-types` (`tests/fuzz/reference.rs`). `PROPTEST_CASES` raises the case
//! count; shrunk failures are kept in `tests/proptest-regressions/`.

use berth_api_types::reference::Reference;
use berth_cli::container::tagged_reference;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        ..Config::default()
    }
}

fn check(s: &str) {
    let named = tagged_reference(s);
    let Ok(r) = Reference::parse(s) else {
        assert_eq!(named, s, "an unparsable reference is shown as typed");
        return;
    };
    let back = Reference::parse(&named).unwrap_or_else(|e| panic!("{s:?} named {named:?}: {e}"));
    assert!(
        back.tag().is_some() || back.digest().is_some(),
        "{s:?}: {named}"
    );
    assert_eq!(
        back.tag(),
        r.clone().with_default_tag().tag(),
        "{s:?}: {named}"
    );
    assert_eq!(back.digest(), r.digest(), "{s:?}: {named}");
}

/// The reference parser's seed corpus (`berth-api-types/tests/corpus/references.txt`):
/// every line, and every line with a tag or digest cut off, is named without a panic.
#[test]
fn reference_corpus() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../berth-api-types/tests/corpus/references.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        check(line);
        if let Some((name, _)) = line.rsplit_once([':', '@']) {
            check(name);
        }
        n += 1;
    }
    assert!(n > 20, "corpus has only {n} entries");
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        check(&s);
    }

    #[test]
    fn reference_shaped_text_never_panics(s in "[a-zA-Z0-9:/@._\\[\\]-]{0,80}") {
        check(&s);
    }
}
