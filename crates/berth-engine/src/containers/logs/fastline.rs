//! A fast reader for the json-file lines our shim writes, in its fixed key order:
//! `{"log":"…","stream":"stdout|stderr","time":"…"}`, with an `"attrs":{…}` object of
//! strings before the time when the container has attributes (skipped: the fast path
//! serves requests that do not show them). It unescapes the `log` string
//! straight into the output buffer; any line of another shape returns `None` and goes
//! through the general (serde) path instead, so correctness never depends on it.

/// What a line says besides its `log` (which went to `out`): its stream name.
pub(super) struct Parsed<'a> {
    pub stream: &'a [u8],
}

const LOG_KEY: &[u8] = br#"{"log":""#;
const STREAM_KEY: &[u8] = br#","stream":""#;
const TIME_KEY: &[u8] = br#","time":""#;
const ATTRS_KEY: &[u8] = br#","attrs":{"#;

/// Unescapes the `log` value of `line` onto `out` and returns the other fields; on `None`
/// `out` is left as it was.
pub(super) fn parse_into<'a>(line: &'a [u8], out: &mut Vec<u8>) -> Option<Parsed<'a>> {
    let mark = out.len();
    let parsed = parse(line, out);
    if parsed.is_none() {
        out.truncate(mark);
    }
    parsed
}

fn parse<'a>(line: &'a [u8], out: &mut Vec<u8>) -> Option<Parsed<'a>> {
    let rest = line.strip_prefix(LOG_KEY)?;
    let rest = unescape_string(rest, out)?;
    let rest = rest.strip_prefix(STREAM_KEY)?;
    let end = find2(rest, b'"', b'"')?;
    let (stream, mut rest) = (&rest[..end], &rest[end + 1..]);
    if let Some(attrs) = rest.strip_prefix(ATTRS_KEY) {
        rest = skip_attrs(attrs)?;
    }
    let rest = rest.strip_prefix(TIME_KEY)?;
    let end = find2(rest, b'"', b'"')?;
    let (time, rest) = (&rest[..end], &rest[end + 1..]);
    // The time is only checked for shape here: the fast path serves requests that do not
    // show or filter by it.
    if rest != b"}" || stream.contains(&b'\\') || time.contains(&b'\\') {
        return None;
    }
    Some(Parsed { stream })
}

/// Skips the members of an object of strings, `"k":"v",…}` (after its `{`), as our shim
/// and dockerd write it (no spaces); returns what follows the `}`.
fn skip_attrs(mut s: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(b"}") {
        return Some(rest);
    }
    loop {
        s = skip_string(s.strip_prefix(b"\"")?)?;
        s = skip_string(s.strip_prefix(b":\"")?)?;
        match s.split_first()? {
            (b',', rest) => s = rest,
            (b'}', rest) => return Some(rest),
            _ => return None,
        }
    }
}

/// What follows a JSON string body (after its opening quote), not unescaped.
fn skip_string(s: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    loop {
        match *s.get(i)? {
            b'"' => return s.get(i + 1..),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Copies a JSON string body (after its opening quote) onto `out`, unescaped; returns
/// what follows the closing quote.
fn unescape_string<'a>(mut s: &'a [u8], out: &mut Vec<u8>) -> Option<&'a [u8]> {
    loop {
        let i = find2(s, b'"', b'\\')?;
        out.extend_from_slice(&s[..i]);
        if s[i] == b'"' {
            return Some(&s[i + 1..]);
        }
        let esc = *s.get(i + 1)?;
        s = &s[i + 2..];
        match esc {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'u' => {
                let (c, after) = unicode_escape(s)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                s = after;
            }
            _ => return None,
        }
    }
}

/// The index of the first byte of `s` that is `a` or `b`, eight bytes at a time (a word
/// with neither is skipped whole: the SWAR zero-byte test); every byte of a log goes
/// through here.
pub(super) fn find2(s: &[u8], a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let (wa, wb) = (ONES * u64::from(a), ONES * u64::from(b));
    let mut i = 0;
    while let Some(w) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if has_zero(w ^ wa) || has_zero(w ^ wb) {
            break;
        }
        i += 8;
    }
    let rest = s.get(i..)?;
    rest.iter().position(|&c| c == a || c == b).map(|p| p + i)
}

/// `XXXX` (after `\u`), with a following `\uXXXX` low surrogate when needed.
fn unicode_escape(s: &[u8]) -> Option<(char, &[u8])> {
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b.get(..4)?).ok()?, 16).ok();
    let hi = hex(s)?;
    if (0xD800..0xDC00).contains(&hi) {
        let rest = s.get(4..)?.strip_prefix(b"\\u")?;
        let lo = hex(rest)?;
        if !(0xDC00..0xE000).contains(&lo) {
            return None;
        }
        let c = char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?;
        return Some((c, &rest[4..]));
    }
    Some((char::from_u32(hi)?, &s[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_serde(line: &[u8]) -> (String, String, String) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        (s("log"), s("stream"), s("time"))
    }

    #[test]
    fn agrees_with_serde_on_escapes() {
        for log in [
            "hi\n",
            "tab\there \"q\" back\\slash\r\n",
            "é ✓ 😀\u{1}\u{1f}\n",
            "",
        ] {
            let line = serde_json::to_vec(&serde_json::json!({"log": log, "stream": "stderr", "time": "2024-01-01T00:00:00.5Z"}))
                .unwrap();
            let mut out = b"prefix".to_vec();
            let p = parse_into(&line, &mut out).expect("our shape");
            let (l, st, _) = via_serde(&line);
            assert_eq!(&out[6..], l.as_bytes());
            assert_eq!(p.stream, st.as_bytes());
        }
        let surrogate = br#"{"log":"\ud83d\ude00\u00e9\n","stream":"stdout","time":"t"}"#;
        let mut out = Vec::new();
        parse_into(surrogate, &mut out).unwrap();
        assert_eq!(out, "😀é\n".as_bytes());
    }

    #[test]
    fn attrs_are_skipped() {
        for line in [
            &br#"{"log":"hi\n","stream":"stderr","attrs":{"a":"1 \"}\\","b.c":"\u0026"},"time":"t"}"#[..],
            br#"{"log":"hi\n","stream":"stderr","attrs":{},"time":"t"}"#,
        ] {
            let mut out = Vec::new();
            let p = parse_into(line, &mut out).expect("our shape");
            assert_eq!((out.as_slice(), p.stream), (&b"hi\n"[..], &b"stderr"[..]));
        }
    }

    #[test]
    fn find2_finds_the_first_of_either_byte() {
        for len in 0..40 {
            for at in 0..=len {
                // Bytes one bit away from '"' (0x22) and '\\' (0x5c) must not match.
                let mut s: Vec<u8> = (0..len).map(|i| [b'x', 0x23, 0x5d, 0xa2][i % 4]).collect();
                if at < len {
                    s[at] = if at % 2 == 0 { b'"' } else { b'\\' };
                    if at + 5 < len {
                        s[at + 5] = b'"';
                    }
                }
                let want = s.iter().position(|&c| c == b'"' || c == b'\\');
                assert_eq!(find2(&s, b'"', b'\\'), want, "len {len}, at {at}");
                let nl = s.iter().position(|&c| c == b'"');
                assert_eq!(find2(&s, b'"', b'"'), nl, "len {len}, at {at}");
            }
        }
    }

    #[test]
    fn other_shapes_fall_back_and_leave_out_alone() {
        for line in [
            &br#"{"stream":"stdout","log":"x","time":"t"}"#[..],
            br#"{"log":"x","stream":"stdout","time":"t","attrs":{}}"#,
            br#"{"log":"x","stream":"stdout","attrs":{"a":1},"time":"t"}"#,
            br#"{"log":"x","stream":"stdout","attrs":{"a":"1""#,
            br#"{"log":"x","stream":"stdout","attrs":{"a":"1\"},"time":"t"}"#,
            br#"{"log":"x","stream":"stdout","attrs":{"a" : "1"},"time":"t"}"#,
            br#"{"log":"x\q","stream":"stdout","time":"t"}"#,
            br#"{"log":"\ud83d","stream":"stdout","time":"t"}"#,
            br#"{"log":"unterminated"#,
        ] {
            let mut out = b"keep".to_vec();
            assert!(
                parse_into(line, &mut out).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(out, b"keep");
        }
    }
}
