//! `.dockerignore` patterns and paths: arbitrary ones never panic, and matching stays
//! linear on patterns built to make a backtracking matcher explode.

use berth_build::dockerignore::{read_patterns, Matcher};
use proptest::prelude::*;

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                "*", "**", "?", "/", "!", "[", "]", "^", "-", "\\", ".", "..", "a", "b", "[a-c]",
                "[^a]", "**/"
            ])
            .prop_map(String::from),
            "\\PC{0,3}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(crate::config(300))]

    #[test]
    fn arbitrary_patterns_never_panic(
        pats in prop::collection::vec(pattern(), 0..6),
        path in "[ab/.]{0,24}",
        file in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(m) = Matcher::new(&pats) {
            let _ = m.excluded(&path);
            let _ = m.can_skip_dir(&path);
            let _ = m.removed_after_read("Dockerfile");
        }
        let _ = Matcher::keep_build_files(&pats, &path, false);
        let read = read_patterns(&file);
        if let Ok(m) = Matcher::new(&read) {
            let _ = m.excluded(&path);
        }
    }
}

#[test]
fn no_exponential_backtracking() {
    let pat = format!("{}b", "*a".repeat(2000));
    let path = "a".repeat(30_000);
    let m = Matcher::new(&[pat]).unwrap();
    // A backtracking matcher takes exponential time here; the NFA returns.
    assert!(!m.excluded(&path));
}
