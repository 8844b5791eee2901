//! The `filters` query parameter: JSON mapping a filter name to its values. Docker clients
//! send `{"name":["a","b"]}` and, from older versions, `{"name":{"a":true}}`; both parse.

use std::collections::BTreeMap;

/// Why a `filters` parameter is refused: Docker's 400 texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not JSON (serde's message).
    #[error("invalid filter: {0}")]
    Json(String),
    #[error("invalid filter: expected a JSON object")]
    NotAnObject,
    /// A value list with an item that is not a string, or a value of another type.
    #[error("invalid filter value for {0:?}")]
    BadValue(String),
    /// A filter name the endpoint does not know.
    #[error("invalid filter '{0}'")]
    Unknown(String),
    #[error("more than one until filter specified")]
    TwoUntils,
    #[error(transparent)]
    Until(#[from] crate::timestamp::TimestampError),
    /// A boolean filter with another value.
    #[error("invalid filter '{name}={value}'")]
    NotBool { name: String, value: String },
}

/// Parsed filters: name → values, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the raw query value (already URL-decoded). Empty means no filters.
    pub fn parse(raw: Option<&str>) -> Result<Self, FilterError> {
        let raw = raw.unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| FilterError::Json(e.to_string()))?;
        let obj = v.as_object().ok_or(FilterError::NotAnObject)?;
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let values = match v {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .ok_or_else(|| FilterError::BadValue(k.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(x, _)| x.clone())
                    .collect(),
                _ => return Err(FilterError::BadValue(k.clone())),
            };
            out.insert(k.clone(), values);
        }
        Ok(Self(out))
    }

    pub fn get(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuses filter names outside `allowed`, with dockerd's message.
    pub fn allow_only(&self, allowed: &[&str]) -> Result<(), FilterError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(FilterError::Unknown(k.clone())),
            None => Ok(()),
        }
    }

    /// The `until=` bound of a prune, in nanoseconds (`timestamp::parse_nanos`, durations
    /// counting back from `now_nanos`), as moby's `getUntilFromPruneFilters`: at most one
    /// value, and one that does not parse is the client's error.
    pub fn until(&self, now_nanos: i64) -> Result<Option<i64>, FilterError> {
        match self.get("until") {
            [] => Ok(None),
            [v] => Ok(Some(crate::timestamp::parse_nanos(v, now_nanos)?)),
            _ => Err(FilterError::TwoUntils),
        }
    }

    /// A boolean filter (`dangling=true`): `None` when absent, an error when not a boolean.
    pub fn bool_value(&self, name: &str) -> Result<Option<bool>, FilterError> {
        match self.get(name) {
            [] => Ok(None),
            [v, ..] => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(FilterError::NotBool {
                    name: name.to_string(),
                    value: v.clone(),
                }),
            },
        }
    }
}

/// The longest glob pattern a filter may carry; longer ones are refused (references are
/// at most 255 bytes, so this leaves room and bounds the matching work).
pub const MAX_PATTERN_LEN: usize = 1024;

/// Why a glob pattern cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobError {
    /// Malformed (an unclosed `[`, a trailing `\`, an empty class); Go's `ErrBadPattern`.
    BadPattern,
    /// Longer than [`MAX_PATTERN_LEN`].
    TooLong,
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadPattern => f.write_str("syntax error in pattern"),
            Self::TooLong => write!(f, "pattern too long: at most {MAX_PATTERN_LEN} bytes"),
        }
    }
}

impl std::error::Error for GlobError {}

/// Whether `pattern` is usable: short enough and well formed (Go's idiom of matching the
/// pattern against the empty string, which reads the whole pattern).
pub fn check_pattern(pattern: &str) -> Result<(), GlobError> {
    glob_match(pattern, "").map(drop)
}

/// Go's `path.Match`, as distribution's `FamiliarMatch` uses it for `reference=` filters:
/// `*` is any run of characters but `/`, `?` one character but `/`, `[a-z]`/`[^...]` a
/// class, `\` escapes. An error for a malformed or over-long pattern.
///
/// The pattern is cut into chunks, each a `*` run and the literal/`?`/class items up to
/// the next `*`. Chunks are matched left to right, each at the first place it fits, and
/// never revisited (Go's algorithm): a chunk is tried at most `text.len() + 1` places at a
/// cost of its own length each, so the work is O(pattern.len() * text.len()) whatever the
/// number of `*`. Unlike Go, which steps by bytes, `*` steps by whole characters, so `?`
/// never matches part of a multi-byte character (references are ASCII, where both agree).
pub fn glob_match(pattern: &str, text: &str) -> Result<bool, GlobError> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(GlobError::TooLong);
    }
    let (mut pattern, mut name) = (pattern, text);
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` takes the rest of the name unless it has a `/`.
            return Ok(!name.contains('/'));
        }
        // Here; the last chunk must also end the name.
        if let Some(t) = match_chunk(chunk, name)? {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        if star {
            // Further on, skipping characters that are not `/`.
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                if let Some(t) = match_chunk(chunk, &name[i + c.len_utf8()..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'chunks;
                }
            }
        }
        // No match: still refuse a malformed rest of the pattern, as Go does.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, "")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// The leading `*` run (whether there was one), the chunk up to the next `*` outside a
/// class, and the rest. Splits only at ASCII `*`, so every piece is a valid `str`.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    let b = trimmed.as_bytes();
    let (mut i, mut in_class) = (0, false);
    while let Some(&c) = b.get(i) {
        match c {
            // A malformed trailing `\` is reported by `match_chunk`.
            b'\\' if i + 1 < b.len() => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'*' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    // `i` is the length or the index of an ASCII `*`: a character boundary either way
    // (the byte skipped after `\\` may start a character, but then the loop only stops
    // on an ASCII byte or at the end).
    let (chunk, rest) = trimmed.split_at(i.min(b.len()));
    (star, chunk, rest)
}

/// Matches one chunk at the start of `s`: the rest of `s` after it, `None` when it does
/// not match. After a mismatch the chunk is still read to the end to find syntax errors.
fn match_chunk<'a>(mut chunk: &str, mut s: &'a str) -> Result<Option<&'a str>, GlobError> {
    /// The next character of `s`, consumed; `None` once failed, setting `failed` at the end.
    fn take(s: &mut &str, failed: &mut bool) -> Option<char> {
        if *failed {
            return None;
        }
        let c = s.chars().next();
        match c {
            Some(c) => *s = &s[c.len_utf8()..],
            None => *failed = true,
        }
        c
    }
    let mut failed = false;
    while let Some(p) = chunk.chars().next() {
        chunk = &chunk[p.len_utf8()..];
        match p {
            '[' => {
                let r = take(&mut s, &mut failed);
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let (mut matched, mut ranges) = (false, 0);
                loop {
                    if ranges > 0 && chunk.starts_with(']') {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        (hi, chunk) = class_char(rest)?;
                    }
                    if r.is_some_and(|r| lo <= r && r <= hi) {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if take(&mut s, &mut failed) == Some('/') {
                    failed = true;
                }
            }
            _ => {
                let lit = if p == '\\' {
                    let Some(lit) = chunk.chars().next() else {
                        return Err(GlobError::BadPattern);
                    };
                    chunk = &chunk[lit.len_utf8()..];
                    lit
                } else {
                    p
                };
                if take(&mut s, &mut failed).is_some_and(|c| c != lit) {
                    failed = true;
                }
            }
        }
    }
    Ok((!failed).then_some(s))
}

/// One end of a class range (`a` in `[a-z]`), escaped or not, and the rest of the chunk,
/// which must go on (a class needs its `]`). Go's `getEsc`.
fn class_char(chunk: &str) -> Result<(char, &str), GlobError> {
    let chunk = match chunk.chars().next() {
        None | Some('-' | ']') => return Err(GlobError::BadPattern),
        Some('\\') => &chunk[1..],
        Some(_) => chunk,
    };
    let r = chunk.chars().next().ok_or(GlobError::BadPattern)?;
    let rest = &chunk[r.len_utf8()..];
    if rest.is_empty() {
        return Err(GlobError::BadPattern);
    }
    Ok((r, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wire_forms_parse() {
        let a = Filters::parse(Some(r#"{"dangling":["true"],"label":["a=b","c"]}"#)).unwrap();
        assert_eq!(a.get("label"), ["a=b", "c"]);
        let b = Filters::parse(Some(r#"{"dangling":{"true":true}}"#)).unwrap();
        assert_eq!(b.bool_value("dangling").unwrap(), Some(true));
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
    }

    #[test]
    fn bad_filters_are_errors() {
        assert!(Filters::parse(Some("[1]")).is_err());
        assert!(Filters::parse(Some("{")).is_err());
        assert!(Filters::parse(Some(r#"{"a":[1]}"#)).is_err());
        let f = Filters::parse(Some(r#"{"nope":["x"],"dangling":["maybe"]}"#)).unwrap();
        assert_eq!(
            f.allow_only(&["dangling"]).unwrap_err().to_string(),
            "invalid filter 'nope'"
        );
        assert!(f.bool_value("dangling").is_err());
    }

    #[test]
    fn error_texts_are_dockerds() {
        let text = |raw: &str| Filters::parse(Some(raw)).unwrap_err().to_string();
        assert_eq!(text("[1]"), "invalid filter: expected a JSON object");
        assert_eq!(
            text("{"),
            "invalid filter: EOF while parsing an object at line 1 column 1"
        );
        assert_eq!(text(r#"{"a":[1]}"#), r#"invalid filter value for "a""#);
        assert_eq!(text(r#"{"a":1}"#), r#"invalid filter value for "a""#);
        let f = Filters::parse(Some(r#"{"dangling":["maybe"],"until":["soon"]}"#)).unwrap();
        assert_eq!(
            f.bool_value("dangling").unwrap_err().to_string(),
            "invalid filter 'dangling=maybe'"
        );
        assert_eq!(
            f.until(0).unwrap_err().to_string(),
            r#"failed to parse value as time or duration: "soon""#
        );
    }

    #[test]
    fn until_bound() {
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        assert_eq!(f("{}").until(0), Ok(None));
        assert_eq!(
            f(r#"{"until":["10s"]}"#).until(20_000_000_000),
            Ok(Some(10_000_000_000))
        );
        assert_eq!(f(r#"{"until":["1"]}"#).until(0), Ok(Some(1_000_000_000)));
        assert!(f(r#"{"until":["soon"]}"#).until(0).is_err());
        assert_eq!(
            f(r#"{"until":["1","2"]}"#).until(0),
            Err(FilterError::TwoUntils)
        );
    }

    fn m(p: &str, t: &str) -> Result<bool, GlobError> {
        glob_match(p, t)
    }

    #[test]
    fn glob() {
        assert_eq!(m("busybox", "busybox"), Ok(true));
        assert_eq!(m("busy*", "busybox"), Ok(true));
        assert_eq!(m("busybox:*", "busybox:latest"), Ok(true));
        assert_eq!(m("*", "a/b"), Ok(false));
        assert_eq!(m("*/*", "a/b"), Ok(true));
        assert_eq!(m("b?sybox", "busybox"), Ok(true));
        assert_eq!(m("busybox", "busybox2"), Ok(false));
        assert_eq!(m("", ""), Ok(true));
        assert_eq!(m("", "a"), Ok(false));
        assert_eq!(m("a?", "a/"), Ok(false));
    }

    /// Go's `path.Match` test table (the cases its `TestMatch` lists).
    #[test]
    fn glob_agrees_with_go() {
        use GlobError::BadPattern as Bad;
        let cases: &[(&str, &str, Result<bool, GlobError>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(Bad)),
            ("[-]", "-", Err(Bad)),
            ("[x-]", "x", Err(Bad)),
            ("[x-]", "-", Err(Bad)),
            ("[x-]", "z", Err(Bad)),
            ("[-x]", "x", Err(Bad)),
            ("[-x]", "-", Err(Bad)),
            ("[-x]", "a", Err(Bad)),
            ("\\", "a", Err(Bad)),
            ("[a-b-c]", "a", Err(Bad)),
            ("[", "a", Err(Bad)),
            ("[^", "a", Err(Bad)),
            ("[^bc", "a", Err(Bad)),
            ("a[", "a", Err(Bad)),
            ("a[", "ab", Err(Bad)),
            ("a[", "x", Err(Bad)),
            ("a/b[", "x", Err(Bad)),
            ("*x", "xxx", Ok(true)),
        ];
        for (p, t, want) in cases {
            assert_eq!(m(p, t), *want, "{p:?} {t:?}");
        }
    }

    #[test]
    fn many_stars_are_linear() {
        // Exponential for the old recursive matcher (it did not finish).
        let p = "*a".repeat(50) + "b";
        assert_eq!(m(&p, &"a".repeat(100)), Ok(false));
        let p = "*a".repeat(500);
        assert_eq!(m(&p, &"a".repeat(1000)), Ok(true));
    }

    #[test]
    fn bad_and_long_patterns_are_errors() {
        assert_eq!(check_pattern("busybox:*"), Ok(()));
        assert_eq!(check_pattern("a[b"), Err(GlobError::BadPattern));
        // A malformed rest is found even after the start fails to match.
        assert_eq!(m("x*[", "abc"), Err(GlobError::BadPattern));
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert_eq!(m(&long, "a"), Err(GlobError::TooLong));
        assert_eq!(GlobError::BadPattern.to_string(), "syntax error in pattern");
        assert_eq!(m(&long[1..], &long[1..]), Ok(true));
    }
}
