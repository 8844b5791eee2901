//! Docker's detach keys: the `detachKeys` format (`ctrl-p,ctrl-q`: comma-separated
//! `ctrl-<x>` names, single characters, `DEL`) as moby/term `ToBytes` reads it, and the
//! [`Scanner`] that finds the sequence in typed input. The daemon runs it on the stdin of a
//! tty attach or exec, the client on its terminal.
//!
//! The scanner works on whole buffers: input that cannot start the sequence passes
//! through without a copy; a partial match at the end of a buffer is held back until the
//! next buffer shows whether it completes (then none of it is forwarded) or diverges (then
//! it is forwarded as typed).

use std::borrow::Cow;
use std::fmt;

/// ctrl-p, ctrl-q: Docker's default (moby `container/stream/attach.go`).
pub const DEFAULT_KEYS: [u8; 2] = [16, 17];

/// moby/term `ASCII`: the names of the control characters 0 to 31.
const CTRL_NAMES: [&str; 32] = [
    "ctrl-@", "ctrl-a", "ctrl-b", "ctrl-c", "ctrl-d", "ctrl-e", "ctrl-f", "ctrl-g", "ctrl-h",
    "ctrl-i", "ctrl-j", "ctrl-k", "ctrl-l", "ctrl-m", "ctrl-n", "ctrl-o", "ctrl-p", "ctrl-q",
    "ctrl-r", "ctrl-s", "ctrl-t", "ctrl-u", "ctrl-v", "ctrl-w", "ctrl-x", "ctrl-y", "ctrl-z",
    "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_",
];

/// A key name that is neither one character, nor a `ctrl-` name, nor `DEL`; displayed as
/// moby/term words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey(pub String);

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unknown character: '{}'", self.0)
    }
}

impl std::error::Error for UnknownKey {}

/// moby/term `ToBytes`: `"ctrl-p,ctrl-q"` → `[16, 17]`. Names are case-sensitive and
/// a one-byte key stands for itself. An empty string is an empty key name, hence an error:
/// callers treat "no keys given" before calling.
pub fn parse(keys: &str) -> Result<Vec<u8>, UnknownKey> {
    keys.split(',')
        .map(|key| match key.as_bytes() {
            [b] => Ok(*b),
            _ if key == "DEL" => Ok(127),
            _ => CTRL_NAMES
                .iter()
                .position(|n| *n == key)
                .map(|code| code as u8)
                .ok_or_else(|| UnknownKey(key.to_string())),
        })
        .collect()
}

/// What [`Scanner::scan`] found in one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan<'a> {
    /// Forward these bytes (possibly none: a partial match is held back) and go on.
    Forward(Cow<'a, [u8]>),
    /// The whole sequence was typed: forward these bytes (typed before it), then detach.
    /// Nothing of the sequence, nor what followed it in the buffer, is forwarded.
    Detach(Cow<'a, [u8]>),
}

/// Finds a detach sequence in a stream of buffers (Knuth–Morris–Pratt, so that a repeated
/// key such as `ctrl-p ctrl-p ctrl-q` still detaches after forwarding the first `ctrl-p`).
#[derive(Debug, Clone)]
pub struct Scanner {
    keys: Vec<u8>,
    /// `fail[i]`: the length of the longest proper prefix of `keys[..=i]` that is also a
    /// suffix of it.
    fail: Vec<usize>,
    /// How many bytes of `keys` the input ended with (held back, not yet forwarded).
    matched: usize,
}

impl Scanner {
    /// A scanner for `keys`; no keys means Docker's default.
    pub fn new(keys: &[u8]) -> Scanner {
        let keys = if keys.is_empty() {
            DEFAULT_KEYS.to_vec()
        } else {
            keys.to_vec()
        };
        let mut fail = vec![0; keys.len()];
        let mut k = 0;
        for i in 1..keys.len() {
            while k > 0 && keys[i] != keys[k] {
                k = fail[k - 1];
            }
            if keys[i] == keys[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Scanner {
            keys,
            fail,
            matched: 0,
        }
    }

    /// The bytes held back as a partial match: what to forward when the input ends.
    pub fn held(&self) -> &[u8] {
        &self.keys[..self.matched]
    }

    /// Scans the next buffer of input.
    pub fn scan<'a>(&mut self, input: &'a [u8]) -> Scan<'a> {
        let first = self.keys[0];
        if self.matched == 0 && !input.contains(&first) {
            return Scan::Forward(Cow::Borrowed(input));
        }
        let mut out = Vec::with_capacity(input.len() + self.matched);
        let mut i = 0;
        while i < input.len() {
            if self.matched == 0 {
                match input[i..].iter().position(|&b| b == first) {
                    Some(p) => {
                        out.extend_from_slice(&input[i..i + p]);
                        i += p;
                    }
                    None => {
                        out.extend_from_slice(&input[i..]);
                        break;
                    }
                }
            }
            let b = input[i];
            while self.matched > 0 && self.keys[self.matched] != b {
                // The held bytes diverge: forward those that can no longer start a match.
                let keep = self.fail[self.matched - 1];
                out.extend_from_slice(&self.keys[..self.matched - keep]);
                self.matched = keep;
            }
            if self.keys[self.matched] == b {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scan::Detach(Cow::Owned(out));
                }
            } else {
                out.push(b);
            }
            i += 1;
        }
        Scan::Forward(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_key_names_are_refused_as_moby_words_them() {
        for (keys, bad) in [
            ("", ""),
            ("ctrl-p,", ""),
            ("foo", "foo"),
            ("ctrl-P", "ctrl-P"),
            ("ctrl-p,ctrl-qq", "ctrl-qq"),
            ("é", "é"),
            ("del", "del"),
            ("ctrl-`", "ctrl-`"),
        ] {
            let err = parse(keys).unwrap_err();
            assert_eq!(err, UnknownKey(bad.into()), "{keys:?}");
            assert_eq!(err.to_string(), format!("Unknown character: '{bad}'"));
        }
    }

    #[test]
    fn key_names_parse_like_moby_term() {
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), DEFAULT_KEYS);
        assert_eq!(parse("ctrl-a,a").unwrap(), [1, b'a']);
        assert_eq!(parse("ctrl-@,ctrl-_,DEL").unwrap(), [0, 31, 127]);
        assert_eq!(
            parse("ctrl-[,ctrl-\\,ctrl-],ctrl-^").unwrap(),
            [27, 28, 29, 30]
        );
        assert_eq!(parse("ctrl-z,x,,,").unwrap_err(), UnknownKey(String::new()));
        assert_eq!(parse(",").unwrap_err(), UnknownKey(String::new()));
        assert_eq!(parse("X").unwrap(), [b'X']);
        assert_eq!(parse(" ").unwrap(), [b' ']);
    }

    fn feed(s: &mut Scanner, input: &[u8]) -> (Vec<u8>, bool) {
        match s.scan(input) {
            Scan::Forward(b) => (b.into_owned(), false),
            Scan::Detach(b) => (b.into_owned(), true),
        }
    }

    #[test]
    fn sequences_detach_and_partial_ones_are_forwarded() {
        let default = Scanner::new(&[]);
        for (keys, input, forwarded, detached) in [
            (&default, &b"ls\r"[..], &b"ls\r"[..], false),
            (&default, b"ab\x10\x11cd", b"ab", true),
            (&default, b"\x10\x11", b"", true),
            (&default, b"\x10x", b"\x10x", false),
            (&default, b"\x11\x10", b"\x11", false),
            (&default, b"\x10\x10\x11", b"\x10", true),
            (&default, b"\x10\x10\x10", b"\x10\x10", false),
        ] {
            let mut s = keys.clone();
            assert_eq!(
                feed(&mut s, input),
                (forwarded.to_vec(), detached),
                "{input:?}"
            );
        }
        let mut s = Scanner::new(b"abac");
        assert_eq!(feed(&mut s, b"xababac!"), (b"xab".to_vec(), true));
        let mut s = Scanner::new(b"aab");
        assert_eq!(feed(&mut s, b"aaab"), (b"a".to_vec(), true));
        let mut s = Scanner::new(&[1]);
        assert_eq!(feed(&mut s, b"q\x01r"), (b"q".to_vec(), true));
    }

    #[test]
    fn a_partial_match_waits_for_the_next_buffer() {
        let mut s = Scanner::new(&[]);
        assert_eq!(feed(&mut s, b"echo\x10"), (b"echo".to_vec(), false));
        assert_eq!(s.held(), b"\x10");
        assert_eq!(feed(&mut s, b"\x11rest"), (Vec::new(), true));
        let mut s = Scanner::new(&[]);
        assert_eq!(feed(&mut s, b"\x10"), (Vec::new(), false));
        assert_eq!(feed(&mut s, b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(s.held(), b"");
        // Input without the first key passes through as it is.
        assert!(matches!(
            s.scan(b"plain"),
            Scan::Forward(Cow::Borrowed(b"plain"))
        ));
    }

    /// Any split of the input into buffers forwards the same bytes as one whole buffer:
    /// everything before the first occurrence of the keys.
    #[test]
    fn chunking_does_not_change_the_result() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for keys in [&b"ab"[..], b"aab", b"abab", b"a", b"abc"] {
            for _ in 0..300 {
                let len = (next() % 24) as usize;
                let input: Vec<u8> = (0..len).map(|_| b"abcx"[(next() % 4) as usize]).collect();
                let first = input.windows(keys.len()).position(|w| w == keys);
                let mut s = Scanner::new(keys);
                let mut out = Vec::new();
                let mut detached = false;
                let mut rest = &input[..];
                while !rest.is_empty() && !detached {
                    let n = 1 + (next() as usize) % rest.len();
                    let (d, forwarded) = match s.scan(&rest[..n]) {
                        Scan::Forward(b) => (false, b),
                        Scan::Detach(b) => (true, b),
                    };
                    out.extend_from_slice(&forwarded);
                    detached = d;
                    rest = &rest[n..];
                }
                match first {
                    Some(p) => {
                        assert!(detached, "{keys:?} {input:?}");
                        assert_eq!(out, &input[..p], "{keys:?} {input:?}");
                    }
                    None => {
                        assert!(!detached, "{keys:?} {input:?}");
                        out.extend_from_slice(s.held());
                        assert_eq!(out, input, "{keys:?} {input:?}");
                    }
                }
            }
        }
    }
}
