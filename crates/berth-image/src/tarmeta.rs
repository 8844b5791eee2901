//! Reading what a tar entry says about itself, as Go's `archive/tar` (and so Docker) reads
//! it: names split into clean components, mode/uid/gid/mtime with empty numeric fields read
//! as 0, PAX sub-second mtimes and `SCHILY.xattr.*` records.
//!
//! Owns: header parsing shared by the layer unpacker ([`crate::unpack`]) and the engine's
//! `docker cp` extractor. Does not own: applying any of it to a filesystem.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;

use nix::sys::time::TimeSpec;

/// PAX record prefix for extended attributes.
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// The header fields applied to every created entry.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Permission bits with setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: TimeSpec,
    /// `SCHILY.xattr.<name>` records, in archive order.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// Why a header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A field that cannot be parsed or does not fit.
    #[error("invalid {field}: {reason}")]
    Field { field: &'static str, reason: String },
    /// The PAX records could not be read.
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
}

/// Splits a tar name into components: drops empty and `.` components (so leading `/` and
/// `./` vanish); `None` when any component is `..`.
pub fn clean_components(raw: &[u8]) -> Option<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Some(out)
}

/// Mode, owner, times and xattrs of `entry`.
pub fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, MetaError> {
    let bad = |field: &'static str, reason: String| MetaError::Field { field, reason };
    let h = entry.header();
    let old = h.as_old();
    // Go's archive/tar reads an empty numeric field as 0; the tar crate calls it an error.
    let numeric = |field: &'static str, raw: &[u8], v: io::Result<u64>| {
        v.or_else(|e| {
            if raw.iter().all(|&b| b == 0 || b == b' ') {
                Ok(0)
            } else {
                Err(bad(field, e.to_string()))
            }
        })
    };
    let id = |field: &'static str, raw: &[u8], v: io::Result<u64>| -> Result<u32, MetaError> {
        let v = numeric(field, raw, v)?;
        u32::try_from(v).map_err(|_| bad(field, format!("{v} is out of range")))
    };
    let mode = id("mode", &old.mode, h.mode().map(u64::from))? & 0o7777;
    let uid = id("uid", &old.uid, h.uid())?;
    let gid = id("gid", &old.gid, h.gid())?;
    let secs = numeric("mtime", &old.mtime, h.mtime())?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);

    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(MetaError::Read)? {
        for ext in exts {
            let ext = ext.map_err(MetaError::Read)?;
            let key = ext.key_bytes();
            if key == b"mtime" {
                // PAX times carry sub-second precision the ustar field cannot.
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            } else if let Some(attr) = key.strip_prefix(PAX_XATTR_PREFIX) {
                if attr.is_empty() {
                    return Err(bad("xattr", "empty attribute name".to_owned()));
                }
                xattrs.push((
                    OsStr::from_bytes(attr).to_os_string(),
                    ext.value_bytes().to_vec(),
                ));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// `<seconds>[.<fraction>]`, non-negative; anything else is ignored (header mtime wins).
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(TimeSpec::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pax_times() {
        let c = clean_components(b"/./a//b/").unwrap();
        assert_eq!(c, [OsStr::new("a"), OsStr::new("b")]);
        assert!(clean_components(b"a/../b").is_none());
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(TimeSpec::new(12, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"-1"), None);
        assert_eq!(parse_pax_time(b"1.x"), None);
    }
}
