//! `context export`/`import` archives in docker's tar layout: `meta.json`, then `tls/`,
//! `tls/docker/` and the endpoint's PEM files. Reading takes only those names (an entry's
//! name never becomes a path) and bounds every entry to [`MAX_FILE`].

use std::io::{self, Read};

use super::store::{Meta, TlsMaterial, DOCKER_ENDPOINT, MAX_FILE, TLS_FILES};
use crate::error::Error;

/// docker's export archive: `meta.json`, then `tls/`, `tls/docker/` and its files, all
/// owned by 0:0 with time 0.
pub fn export_tar(meta: &Meta, tls: &TlsMaterial) -> Result<Vec<u8>, Error> {
    let mut b = tar::Builder::new(Vec::new());
    let err = |e: io::Error| Error::client(format!("cannot write the archive: {e}"));
    let meta_json = serde_json::to_vec(meta).map_err(|e| Error::client(e.to_string()))?;
    let file = |path: &str, data: &[u8], mode: u32, b: &mut tar::Builder<Vec<u8>>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        b.append_data(&mut h, path, data)
    };
    file("meta.json", &meta_json, 0o644, &mut b).map_err(err)?;
    if !tls.files.is_empty() {
        for dir in ["tls/", "tls/docker/"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(0o700);
            h.set_mtime(0);
            b.append_data(&mut h, dir, io::empty()).map_err(err)?;
        }
        for f in TLS_FILES {
            if let Some(data) = tls.files.get(f) {
                file(&format!("tls/docker/{f}"), data, 0o600, &mut b).map_err(err)?;
            }
        }
    }
    b.into_inner().map_err(err)
}

/// Reads an export archive: `meta.json` and the docker endpoint's TLS files; other
/// entries are ignored. Sizes are bounded.
pub fn import_tar(data: &[u8]) -> Result<(Meta, TlsMaterial), Error> {
    let bad = |why: String| Error::client(format!("invalid context archive: {why}"));
    // docker's `context export` ends the archive without padding its last file or writing
    // the two zero blocks; zeros up to a block boundary plus an end marker make it whole
    // (trailing zero blocks after a proper end are ignored).
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(512) * 512 + 1024, 0);
    let mut archive = tar::Archive::new(padded.as_slice());
    let mut meta = None;
    let mut tls = TlsMaterial::default();
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(|e| bad(e.to_string()))?;
        let name = path.to_string_lossy().trim_start_matches("./").to_string();
        if entry.size() > MAX_FILE {
            return Err(bad(format!("{name} is larger than {MAX_FILE} bytes")));
        }
        let parts: Vec<&str> = name.split('/').collect();
        let mut body = Vec::new();
        match parts.as_slice() {
            ["meta.json"] => {
                entry
                    .read_to_end(&mut body)
                    .map_err(|e| bad(e.to_string()))?;
                let m: Meta =
                    serde_json::from_slice(&body).map_err(|e| bad(format!("meta.json: {e}")))?;
                meta = Some(m);
            }
            ["tls", ep, f] if *ep == DOCKER_ENDPOINT && TLS_FILES.contains(f) => {
                entry
                    .read_to_end(&mut body)
                    .map_err(|e| bad(e.to_string()))?;
                tls.files.insert(f.to_string(), body);
            }
            _ => {}
        }
    }
    let meta = meta.ok_or_else(|| bad("no meta.json".into()))?;
    Ok((meta, tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn export_then_import_round_trips_and_ignores_other_entries() {
        let mut m = Meta {
            name: "a1".into(),
            metadata: Map::new(),
            endpoints: Map::new(),
        };
        m.set_endpoint("tcp://h:2376");
        let mut tls = TlsMaterial::default();
        for f in TLS_FILES {
            tls.files.insert(f.into(), f.as_bytes().to_vec());
        }
        let data = export_tar(&m, &tls).unwrap();
        let (m2, tls2) = import_tar(&data).unwrap();
        assert_eq!(m2, m);
        assert_eq!(tls2, tls);

        let mut b = tar::Builder::new(Vec::new());
        let mut add = |p: &str, d: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, d).unwrap();
        };
        add("meta.json", br#"{"Name":"z"}"#);
        add("tls/docker/evil.pem", b"x");
        add("tls/other/ca.pem", b"x");
        let (_, t) = import_tar(&b.into_inner().unwrap()).unwrap();
        assert!(t.files.is_empty());
        assert!(import_tar(b"not a tar").is_err());

        // docker's export stops right after the last file's bytes (no padding, no end
        // blocks): cut ours the same way.
        let data = export_tar(&m, &tls).unwrap();
        let end = data.len() - 1024 - (512 - "key.pem".len());
        let (_, t) = import_tar(&data[..end]).unwrap();
        assert_eq!(t, tls);
    }
}
