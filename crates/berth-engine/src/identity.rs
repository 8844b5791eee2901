//! The daemon's stable identity, kept in `<data-root>/engine.json` so `/info`'s `ID`
//! survives restarts (moby keeps it in `engine-id`).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EngineError;

#[derive(Debug, Serialize, Deserialize)]
struct EngineFile {
    id: String,
}

pub(crate) fn load_or_create(data_root: &Path) -> Result<String, EngineError> {
    let path = data_root.join("engine.json");
    match fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<EngineFile>(&bytes) {
            Ok(f) if !f.id.is_empty() => return Ok(f.id),
            // A torn or hand-edited file: a new ID is better than refusing to start.
            _ => {
                tracing::warn!(path = %path.display(), "engine.json unreadable, writing a new daemon id")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io("cannot read", &path)(e)),
    }
    let bytes = berth_sys::host::random_bytes()
        .map_err(EngineError::io("cannot read", Path::new("/dev/urandom")))?;
    let id = format_uuid_v4(bytes);
    let body = serde_json::to_vec_pretty(&EngineFile { id: id.clone() })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    berth_sys::fs::atomic_write(&path, &body, 0o600)
        .map_err(EngineError::io("cannot write", &path))?;
    Ok(id)
}

/// RFC 4122 version-4 UUID text, as moby's engine ID.
fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant_bits() {
        let id = format_uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(
            format_uuid_v4([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn id_is_stable_across_opens() {
        let dir = std::env::temp_dir().join(format!("berth-id-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = load_or_create(&dir).unwrap();
        let b = load_or_create(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
    }
}
