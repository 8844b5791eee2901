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

fn reference_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9]{1,8}",
        "[A-Za-z0-9._-]{1,6}",
        Just("/".to_owned()),
        Just(":".to_owned()),
        Just("@".to_owned()),
        Just("sha256:".to_owned()),
        "[0-9a-f]{64}",
        Just("localhost".to_owned()),
        Just("docker.io/".to_owned()),
        Just("index.docker.io/".to_owned()),
        Just("[::1]".to_owned()),
        Just("]".to_owned()),
        "[0-9]{1,6}",
        "\\PC{1,3}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        check(&s);
    }

    #[test]
    fn reference_like_text_round_trips(s in reference_like()) {
        check(&s);
    }
}
