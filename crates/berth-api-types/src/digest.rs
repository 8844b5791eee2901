//! Content digests: the `sha256:<hex>` names that address every blob, config and layer,
//! their parsing and printing, and the digest of a byte slice.
//!
//! Only sha256 exists for now, as in practice on every registry; the parser still follows
//! go-digest (`github.com/opencontainers/go-digest`, `digest.Parse`) so that other algorithms
//! are refused with Docker's words rather than as garbage. No I/O: the streaming hashers
//! (`DigestReader`, `DigestWriter`) live in `berth-image`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Length of the hex encoding of a sha256 digest.
const SHA256_HEX_LEN: usize = 64;

/// Length of the short id Docker prints (`docker images`, `docker ps`).
pub const SHORT_ID_LEN: usize = 12;

/// Why a digest string was refused or content did not match its digest.
///
/// Parse messages are go-digest's, since Docker prints them verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `algorithm:encoded`, or the encoded part is not lowercase hex.
    #[error("invalid checksum digest format")]
    InvalidFormat,
    /// A well-formed digest of an algorithm we do not implement.
    #[error("unsupported digest algorithm")]
    Unsupported,
    /// The encoded part has the wrong length for its algorithm.
    #[error("invalid checksum digest length")]
    InvalidLength,
    /// Content hashed to something other than what was promised.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
}

/// A sha256 content digest, displayed as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The only algorithm we implement.
    pub const ALGORITHM: &'static str = "sha256";

    /// Parses `sha256:<64 lowercase hex>` with go-digest's checks and messages.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, encoded)) = s.split_once(':') else {
            return Err(DigestError::InvalidFormat);
        };
        if algorithm.is_empty() || encoded.is_empty() {
            return Err(DigestError::InvalidFormat);
        }
        if algorithm != Self::ALGORITHM {
            // go-digest: a digest that is well formed but of an unknown algorithm is
            // "unsupported"; anything else is "invalid format".
            return Err(if is_well_formed_digest(algorithm, encoded) {
                DigestError::Unsupported
            } else {
                DigestError::InvalidFormat
            });
        }
        if encoded.len() != SHA256_HEX_LEN {
            return Err(DigestError::InvalidLength);
        }
        Self::from_hex(encoded).ok_or(DigestError::InvalidFormat)
    }

    /// Builds a digest from 64 lowercase hex characters (no `sha256:` prefix).
    pub fn from_hex(hex: &str) -> Option<Digest> {
        let bytes = hex.as_bytes();
        if bytes.len() != SHA256_HEX_LEN {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
        }
        Some(Digest(out))
    }

    /// Wraps raw sha256 output.
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Always `"sha256"`.
    pub fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }

    /// The 64 lowercase hex characters, without the algorithm (the blob's file name).
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(SHA256_HEX_LEN);
        for b in self.0 {
            s.push(DIGITS[usize::from(b >> 4)] as char);
            s.push(DIGITS[usize::from(b & 0x0f)] as char);
        }
        s
    }

    /// The first 12 hex characters, as Docker shows image and layer ids.
    pub fn short_id(&self) -> String {
        let mut hex = self.hex();
        hex.truncate(SHORT_ID_LEN);
        hex
    }
}

/// go-digest's `DigestRegexp`: `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn is_well_formed_digest(algorithm: &str, encoded: &str) -> bool {
    let algorithm_ok = algorithm.split(['.', '+', '_', '-']).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let encoded_ok = encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_ok && encoded_ok
}

fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", Self::ALGORITHM, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_rejects_bad_input() {
        let long = format!("sha256:{EMPTY}00");
        let upper = format!("sha256:{}", EMPTY.to_uppercase());
        let sha512 = format!("sha512:{EMPTY}{EMPTY}");
        let cases: &[(&str, DigestError)] = &[
            ("", DigestError::InvalidFormat),
            (":", DigestError::InvalidFormat),
            ("sha256", DigestError::InvalidFormat),
            ("sha256:", DigestError::InvalidFormat),
            (EMPTY, DigestError::InvalidFormat),
            ("sha256:abc", DigestError::InvalidLength),
            (&long, DigestError::InvalidLength),
            (&upper, DigestError::InvalidFormat),
            (&sha512, DigestError::Unsupported),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                DigestError::Unsupported,
            ),
            ("SHA256:abc", DigestError::InvalidFormat),
            ("sha 256:abc", DigestError::InvalidFormat),
        ];
        for (input, want) in cases {
            assert_eq!(Digest::parse(input).unwrap_err(), *want, "input {input:?}");
        }
        let mut bad_char = format!("sha256:{EMPTY}");
        bad_char.replace_range(10..11, "g");
        assert_eq!(
            Digest::parse(&bad_char).unwrap_err(),
            DigestError::InvalidFormat
        );
    }

    #[test]
    fn parse_and_display_round_trip() {
        let s = format!("sha256:{EMPTY}");
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(d.short_id(), "e3b0c44298fc");
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d, Digest::of(b""));
        assert_eq!(Digest::from_hex(EMPTY), Some(d));
        assert_eq!(Digest::from_bytes(*d.as_bytes()), d);
        assert_eq!(format!("{d:?}"), format!("Digest(sha256:{EMPTY})"));
    }
}
