//! Image references: any string parses or is refused without a panic, and what parses
//! prints back to itself (full and familiar forms).

use berth_api_types::digest::Digest;
use berth_api_types::reference::Reference;
use proptest::prelude::*;

/// Checks every invariant of one input; panics (a failed case) when one breaks.
fn check(s: &str) {
    let parsed = Reference::parse(s);
    let docker_ref = Reference::parse_docker_ref(s);
    assert_eq!(parsed.is_ok(), docker_ref.is_ok(), "{s:?}");
    let Ok(r) = parsed else { return };
    let full = r.to_string();
    assert_eq!(
        Reference::parse(&full).as_ref(),
        Ok(&r),
        "full form of {s:?}"
    );
    // The familiar form drops `docker.io/` (and `library/`), so a Hub path whose first
    // component reads as a registry (`docker.io/foo.bar/x` shows as `foo.bar/x`) or an
    // official image named by 64 hex digits (shown bare, read as an image ID) cannot come
    // back; Docker's `FamiliarString` has the same ambiguity. Every other one round-trips.
    let familiar = r.familiar_name();
    let first = familiar.split('/').next().unwrap_or_default();
    let ambiguous = r.domain() == "docker.io"
        && ((familiar.contains('/') && (first.contains(['.', ':']) || first == "localhost"))
            || (familiar.len() == 64 && familiar.bytes().all(|b| b.is_ascii_hexdigit())));
    if !ambiguous {
        assert_eq!(
            Reference::parse(&r.familiar_string()).as_ref(),
            Ok(&r),
            "familiar form of {s:?}"
        );
    }
    assert!(r.full_name().len() <= 255, "{s:?}: name too long");
    assert!(!r.domain().is_empty() && !r.path().is_empty(), "{s:?}");
    let d = docker_ref.expect("checked above");
    assert!(d.tag().is_some() != d.digest().is_some(), "{s:?}: {d}");
    assert_eq!(Reference::parse(&d.to_string()).as_ref(), Ok(&d));
    // Re-tagging with whatever the input had after its last ':' never panics either.
    let tail = s.rsplit(':').next().unwrap_or_default();
    if let Ok(t) = r.clone().with_tag(tail) {
        assert_eq!(Reference::parse(&t.to_string()).as_ref(), Ok(&t));
    }
}

/// Strings made of the characters references are made of, so that the grammar's corners
/// (separators, ports, digests) come up far more often than in random text.
fn reference_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9]{1,8}",
        "[A-Za-z0-9._-]{1,6}",
        Just("/".to_owned()),
        Just(":".to_owned()),
        Just("@".to_owned()),
        Just("sha256:".to_owned()),
        "[0-9a-f]{64}",
        "[0-9a-fA-F]{30,70}",
        Just("localhost".to_owned()),
        Just("docker.io/".to_owned()),
        Just("index.docker.io/".to_owned()),
        Just("library/".to_owned()),
        Just("[::1]".to_owned()),
        "[0-9]{1,6}",
        Just("__".to_owned()),
        Just("--".to_owned()),
        Just("..".to_owned()),
        "\\PC{1,3}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

/// References valid by construction: `[domain/]path[:tag][@digest]`.
fn valid_reference() -> impl Strategy<Value = (String, Option<String>, Option<Digest>)> {
    let component = "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}";
    let domain = prop_oneof![
        Just(None),
        Just(Some("localhost".to_owned())),
        "[a-z0-9]{1,8}(\\.[a-zA-Z0-9]([a-z0-9-]{0,5}[a-z0-9])?){1,3}(:[0-9]{1,5})?".prop_map(Some),
        "localhost:[0-9]{1,5}".prop_map(Some),
        "\\[[0-9a-f]{0,4}:[0-9a-f:]{0,8}\\](:[0-9]{1,5})?".prop_map(Some),
    ];
    let path = prop::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    let digest = prop::option::of(any::<[u8; 32]>().prop_map(Digest::from_bytes));
    (domain, path, tag, digest).prop_map(|(domain, path, tag, digest)| {
        let mut s = match domain {
            Some(d) => format!("{d}/{path}"),
            // Without a domain, a first component with a '.' would be read as one.
            None => path.replacen('.', "-", usize::MAX),
        };
        if let Some(t) = &tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        (s, tag, digest)
    })
}

proptest! {
    #![proptest_config(super::config(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        check(&s);
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn reference_like_text_round_trips(s in reference_like()) {
        check(&s);
    }

    #[test]
    fn valid_references_parse_and_round_trip((s, tag, digest) in valid_reference()) {
        match Reference::parse(&s) {
            Ok(r) => {
                prop_assert_eq!(r.tag(), tag.as_deref());
                prop_assert_eq!(r.digest(), digest.as_ref());
            }
            // The only refusal a grammatical reference can get.
            Err(e) => prop_assert!(s.len() > 255, "{s:?}: {e}"),
        }
        check(&s);
    }

    #[test]
    fn huge_inputs_are_refused_not_panicked_on(
        unit in "[a-z0-9:/@._-]{1,4}",
        n in 1usize..20_000,
    ) {
        let s = unit.repeat(n);
        check(&s);
        if s.len() > 300 {
            // No reference is this long: tags stop at 128, names at 255, digests at 71.
            prop_assert!(Reference::parse(&s).is_err());
        }
    }
}

/// The seed corpus: one input per line (escapes as in Rust strings: `\n`, `\u{…}`).
#[test]
fn reference_corpus() {
    let text = std::fs::read_to_string(super::corpus("references.txt")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        check(&unescape(line));
        n += 1;
    }
    assert!(n > 20, "corpus has only {n} entries");
}

/// `\\`, `\n`, `\t` and `\u{hex}` escapes, so that the corpus can hold any string.
fn unescape(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars
                    .by_ref()
                    .skip_while(|&c| c == '{')
                    .take_while(|&c| c != '}')
                    .collect();
                let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                out.push(c.expect("corpus: bad \\u escape"));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
