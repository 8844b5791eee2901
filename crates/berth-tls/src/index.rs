//! The index of the certificates a `berth tls` CA directory issued (`DIR/index.json`):
//! serial, name, subject, expiry and, once revoked, when. `berth tls init` starts it,
//! `berth tls client` adds to it, `berth tls revoke` marks entries and bumps the number of
//! the revocation list. Written whole and atomically (0644: it holds nothing secret).
//!
//! Two `berth tls` commands writing the same directory at the same moment can lose one
//! entry (last writer wins); issuing certificates is an operator's act, not a hot path.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::TlsError;

pub(crate) const INDEX_FILE: &str = "index.json";
const INDEX_MODE: u32 = 0o644;
/// An index is a few hundred bytes per certificate; anything this large is not ours.
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// The serial number, lower-case hex (as `openssl x509 -serial` prints it).
    pub serial: String,
    /// The name given to `berth tls client` (the certificate's CN).
    pub name: String,
    /// The certificate's subject, e.g. "CN=alice".
    pub subject: String,
    /// RFC 3339.
    pub not_after: String,
    /// When `berth tls revoke` revoked it (RFC 3339); absent while valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The number of the last revocation list written (0: none yet).
    #[serde(default)]
    pub crl_number: u64,
    #[serde(default)]
    pub certificates: Vec<IssuedCert>,
}

impl Index {
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(INDEX_FILE)
    }

    /// The index of `dir`; an empty one if the file does not exist (a CA made before
    /// indexes existed).
    pub fn load(dir: &Path) -> Result<Index, TlsError> {
        let path = Index::path(dir);
        let bad = |reason: String| TlsError::BadIndex {
            path: path.clone(),
            reason,
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(TlsError::read(&path, &e, "")),
        };
        let mut bytes = Vec::new();
        file.take(MAX_INDEX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| TlsError::read(&path, &e, ""))?;
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(bad(format!("larger than {MAX_INDEX_BYTES} bytes")));
        }
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<(), TlsError> {
        let path = Index::path(dir);
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| TlsError::BadIndex {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        json.push(b'\n');
        berth_sys::fs::atomic_write(&path, &json, INDEX_MODE)
            .map_err(|e| TlsError::write(&path, &e))
    }

    pub(crate) fn has_serial(&self, serial_hex: &str) -> bool {
        self.certificates
            .iter()
            .any(|c| c.serial.eq_ignore_ascii_case(serial_hex))
    }
}

/// RFC 3339 to the second, e.g. "2027-12-07T13:31:39Z".
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Lower-case hex to bytes; `None` unless it is an even number of hex digits.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex_table() {
        assert_eq!(unhex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("0AfF"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex(""), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("éé"), None);
        assert_eq!(unhex("+1"), None);
    }

    #[test]
    fn missing_index_is_empty_and_bad_one_is_refused() {
        let dir = crate::test_support::TempDir::new("index");
        assert_eq!(Index::load(dir.path()).unwrap(), Index::default());
        std::fs::write(Index::path(dir.path()), b"{not json").unwrap();
        let err = Index::load(dir.path()).unwrap_err();
        assert!(matches!(err, TlsError::BadIndex { .. }), "{err}");
        let idx = Index {
            crl_number: 3,
            certificates: vec![IssuedCert {
                serial: "4a".into(),
                name: "bob".into(),
                subject: "CN=bob".into(),
                not_after: "2030-01-01T00:00:00Z".into(),
                revoked: None,
            }],
        };
        idx.save(dir.path()).unwrap();
        assert_eq!(Index::load(dir.path()).unwrap(), idx);
    }
}
