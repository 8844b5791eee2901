//! Bounded fuzzing (proptest) of the CLI's own reference parsing (`NormalizedRef`, used for
//! docker's "Unable to find image 'busybox:latest' locally" and pull output): any text
//! parses or is refused without a panic, and what parses prints back to itself.
//! `PROPTEST_CASES` raises the case count; shrunk failures are kept in
//! `tests/proptest-regressions/`.

use berth_cli::container::tagged_reference;
use berth_cli::image::NormalizedRef;
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
    let _ = tagged_reference(s);
    let Ok(r) = NormalizedRef::parse(s) else {
        return;
    };
    assert_eq!(
        NormalizedRef::parse(&r.full()),
        Ok(r.clone()),
        "full form of {s:?}"
    );
    assert!(!r.domain.is_empty() && !r.path.is_empty(), "{s:?}");
    let _ = r.familiar_name();
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
