//! Property tests and a replayed corpus for the parsers of client input in this crate:
//! time arguments (`timestamp`), the `filters` JSON and glob patterns (`filters`), detach
//! keys and their stream scanner (`detach`), API versions (`version`).
//!
//! The properties: no input panics (arbitrary strings, multi-byte characters included,
//! and inputs shaped like the real thing so that the deep paths are reached); the results
//! that can be computed another way agree (durations, `to_wire` round trips, the glob
//! against a plain recursive matcher on patterns it handles). `PROPTEST_CASES` raises the
//! number of cases (256 by default, which keeps this under a second); a failure is
//! shrunk and kept in `proptest-regressions/`, which is committed. `corpus/*.txt` holds
//! hostile inputs found by hand or by these tests, replayed on every run.

use berth_api_types::detach::{self, Scan, Scanner};
use berth_api_types::filters::{check_pattern, glob_match, Filters, GlobError};
use berth_api_types::timestamp::{format_rfc3339, parse_nanos, parse_rfc3339, to_wire};
use berth_api_types::ApiVersion;
use proptest::prelude::*;

const S: i64 = 1_000_000_000;

/// The non-comment lines of a corpus file.
fn corpus(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.starts_with('#'))
}

#[test]
fn timestamp_corpus() {
    for line in corpus(include_str!("corpus/timestamps.txt")) {
        for now in [0, 1_700_000_000 * S, i64::MIN, i64::MAX] {
            let _ = parse_nanos(line, now);
        }
    }
}

#[test]
fn filters_corpus() {
    for line in corpus(include_str!("corpus/filters.txt")) {
        if let Ok(f) = Filters::parse(Some(line)) {
            let _ = f.bool_value("dangling");
            let _ = f.allow_only(&["dangling"]);
        }
    }
}

#[test]
fn glob_corpus() {
    for line in corpus(include_str!("corpus/globs.txt")) {
        let mut fields = line.split('\t');
        let (Some(p), Some(t), Some(want), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            panic!("corpus line is not pattern<TAB>text<TAB>answer: {line:?}");
        };
        let want = match want {
            "true" => Ok(true),
            "false" => Ok(false),
            "error" => Err(GlobError::BadPattern),
            other => panic!("unknown answer {other:?}"),
        };
        assert_eq!(glob_match(p, t), want, "{p:?} {t:?}");
    }
}

/// The matcher this crate had before (exponential in the number of `*`): right for
/// patterns of literals, `?` and `*`, so a reference on short inputs.
fn reference_glob(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            reference_glob(&p[1..], t)
                || (!t.is_empty() && t[0] != b'/' && reference_glob(p, &t[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => reference_glob(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => reference_glob(&p[1..], &t[1..]),
        _ => false,
    }
}

/// Strings shaped like dates, with the characters that broke the old parser.
fn date_like() -> impl Strategy<Value = String> {
    "[0-9é]{1,5}-[0-9é]{1,3}-[0-9é]{1,3}([Tt][0-9:.é€]{0,14})?([Zz]|[+-][0-9é:]{0,6})?"
}

/// Strings shaped like Go durations.
fn duration_like() -> impl Strategy<Value = String> {
    "[+-]?([0-9]{0,22}(\\.[0-9]{0,22})?(ns|us|µs|μs|ms|s|m|h|é|µ)?){1,4}"
}

proptest! {
    #[test]
    fn timestamps_never_panic(s in any::<String>(), now in any::<i64>()) {
        let _ = parse_nanos(&s, now);
    }

    /// What `format_rfc3339` writes, `parse_rfc3339` reads back to the same instant, over
    /// every year RFC 3339 can write.
    #[test]
    fn formatted_times_parse_back(secs in -62_167_219_200i64..253_402_300_800, nanos in 0u32..1_000_000_000) {
        let text = format_rfc3339(secs, nanos);
        let t = parse_rfc3339(&text);
        prop_assert_eq!(t.map(|t| (t.unix_timestamp(), t.nanosecond())), Some((secs, nanos)), "{}", text);
    }

    #[test]
    fn date_like_timestamps_never_panic(s in date_like(), now in any::<i64>()) {
        let _ = parse_nanos(&s, now);
    }

    #[test]
    fn duration_like_timestamps_never_panic(s in duration_like(), now in any::<i64>()) {
        let _ = parse_nanos(&s, now);
    }

    /// Whole-number durations count back exactly, and past Go's range they are refused
    /// as durations (then read as a time, which fails for these).
    #[test]
    fn durations_add_up(parts in prop::collection::vec((0u64..10_000_000_000_000, 0usize..6), 1..4)) {
        const UNITS: [(&str, i128); 6] = [
            ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
            ("m", 60_000_000_000), ("h", 3_600_000_000_000),
        ];
        let text: String = parts.iter().map(|(n, u)| format!("{n}{}", UNITS[*u].0)).collect();
        let total: i128 = parts.iter().map(|(n, u)| i128::from(*n) * UNITS[*u].1).sum();
        let got = parse_nanos(&text, 0);
        if total <= i128::from(i64::MAX) {
            prop_assert_eq!(got, Ok(-(total as i64)));
        } else {
            prop_assert!(got.is_err(), "{} -> {:?}", text, got);
        }
    }

    #[test]
    fn wire_form_round_trips(n in 0i64..=i64::MAX) {
        prop_assert_eq!(parse_nanos(&to_wire(n), 0), Ok(n));
    }

    #[test]
    fn filters_never_panic(s in any::<String>()) {
        let _ = Filters::parse(Some(&s));
    }

    #[test]
    fn filters_from_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Filters::parse(Some(&String::from_utf8_lossy(&b)));
    }

    #[test]
    fn json_like_filters_never_panic(s in "[{}\\[\\]\":, a-z0-9é\\\\tnul.e-]{0,64}") {
        if let Ok(f) = Filters::parse(Some(&s)) {
            let _ = f.bool_value("a");
            let _ = f.allow_only(&["a"]);
        }
    }

    #[test]
    fn glob_never_panics(p in any::<String>(), t in any::<String>()) {
        let r = glob_match(&p, &t);
        // A well-formed pattern never errs on any text; a malformed one errs on "".
        if check_pattern(&p).is_ok() {
            prop_assert!(r.is_ok());
        }
    }

    #[test]
    fn glob_syntax_like_never_panics(p in "[a-cé\\[\\]^\\-\\\\*?/]{0,24}", t in "[a-cé/\\-\\]]{0,24}") {
        let r = glob_match(&p, &t);
        if check_pattern(&p).is_ok() {
            prop_assert!(r.is_ok());
        }
    }

    #[test]
    fn glob_agrees_with_the_reference(p in "[ab/*?]{0,12}", t in "[ab/]{0,12}") {
        prop_assert_eq!(glob_match(&p, &t), Ok(reference_glob(p.as_bytes(), t.as_bytes())));
    }

    /// A pattern with no special character matches itself only.
    #[test]
    fn literal_patterns_match_themselves(p in "[a-z0-9:/._-]{0,40}", t in "[a-z0-9:/._-]{0,40}") {
        prop_assert_eq!(glob_match(&p, &p), Ok(true));
        prop_assert_eq!(glob_match(&p, &t), Ok(p == t));
    }

    #[test]
    fn detach_keys_and_versions_never_panic(s in any::<String>()) {
        let _ = detach::parse(&s);
        let _ = s.parse::<ApiVersion>();
    }

    /// Whatever the keys and however the input is cut, the scanner forwards exactly the
    /// input up to the detach sequence (with what it holds back at the end).
    #[test]
    fn detach_scanner_forwards_the_input(
        keys in prop::collection::vec(0u8..4, 1..5),
        chunks in prop::collection::vec(prop::collection::vec(0u8..5, 0..16), 0..8),
    ) {
        let mut scanner = Scanner::new(&keys);
        let mut forwarded = Vec::new();
        let input: Vec<u8> = chunks.concat();
        let mut detached = false;
        for chunk in &chunks {
            match scanner.scan(chunk) {
                Scan::Forward(b) => forwarded.extend_from_slice(&b),
                Scan::Detach(b) => {
                    forwarded.extend_from_slice(&b);
                    detached = true;
                    break;
                }
            }
        }
        if detached {
            // What was forwarded, then the keys, start the input.
            let seen = [forwarded.as_slice(), keys.as_slice()].concat();
            prop_assert!(input.starts_with(&seen));
        } else {
            forwarded.extend_from_slice(scanner.held());
            prop_assert_eq!(forwarded, input);
        }
    }
}
