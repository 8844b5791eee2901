//! The json-file log as one stream across rotation: the rotated files (`<log>.N` …
//! `<log>.1`, oldest first) and then the live file, each read through an open descriptor
//! so that a rotation (the shim renames the live file to `.1`, shifting the others up and
//! dropping the oldest) never loses the rest of a file being read. When the live file has
//! been rotated away, the files rotated after it are found by inode, so a reader that fell
//! behind by fewer than `max-file - 1` rotations loses nothing. A truncation (`max-file`
//! 1) starts over from the top.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a log reader is: the files still to read, and the one open now.
#[derive(Debug)]
pub(crate) struct LogFiles {
    live: PathBuf,
    /// Rotated files not read yet, oldest first, opened when found.
    rotated: VecDeque<File>,
    cur: Option<Open>,
}

#[derive(Debug)]
struct Open {
    file: File,
    /// The live file's inode; `None` for a rotated file (read to its end, then the next).
    live_ino: Option<u64>,
}

/// The rotated files that exist now, oldest first, opened, with their inodes.
fn rotated_files(live: &Path) -> Vec<(File, u64)> {
    let mut out = Vec::new();
    let mut n = 1;
    loop {
        let Ok(file) = File::open(numbered(live, n)) else {
            break;
        };
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        out.push((file, ino));
        n += 1;
    }
    out.reverse();
    out
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    p.into()
}

impl LogFiles {
    /// A reader from the start of the oldest rotated file.
    pub(crate) fn new(live: PathBuf) -> Self {
        let rotated = rotated_files(&live).into_iter().map(|(f, _)| f).collect();
        LogFiles {
            live,
            rotated,
            cur: None,
        }
    }

    /// Appends up to `limit` bytes to `out`, crossing from file to file; stops early at
    /// the end of the live file. Returns how many bytes it appended.
    pub(crate) fn read_into(&mut self, out: &mut Vec<u8>, limit: u64) -> io::Result<u64> {
        let mut got = 0u64;
        let live = self.live.clone();
        while got < limit {
            let Some(open) = self.open_next()? else {
                break; // no live file yet
            };
            let n = (&open.file).take(limit - got).read_to_end(out)? as u64;
            got += n;
            if n > 0 {
                continue;
            }
            match open.live_ino {
                None => self.cur = None, // a rotated file is done: on to the next
                Some(ino) => {
                    let now = std::fs::metadata(&live);
                    if now.as_ref().is_ok_and(|m| m.ino() != ino) {
                        // Rotated away, and read to its end: on to the files rotated
                        // after it (all that are left if it is gone), then the live one.
                        let files = rotated_files(&live);
                        let after = files
                            .iter()
                            .position(|(_, i)| *i == ino)
                            .map_or(0, |p| p + 1);
                        self.rotated = files.into_iter().skip(after).map(|(f, _)| f).collect();
                        self.cur = None;
                        continue;
                    }
                    let pos = open.file.stream_position()?;
                    if now.is_ok_and(|m| m.len() < pos) {
                        // Truncated (`max-file` 1): what was written since is at the top.
                        let mut f = &open.file;
                        f.seek(SeekFrom::Start(0))?;
                        continue;
                    }
                    break;
                }
            }
        }
        Ok(got)
    }

    fn open_next(&mut self) -> io::Result<Option<&mut Open>> {
        while self.cur.is_none() {
            if let Some(file) = self.rotated.pop_front() {
                self.cur = Some(Open {
                    file,
                    live_ino: None,
                });
            } else {
                match File::open(&self.live) {
                    Ok(file) => {
                        let ino = file.metadata()?.ino();
                        self.cur = Some(Open {
                            file,
                            live_ino: Some(ino),
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(self.cur.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn read_all(r: &mut LogFiles) -> String {
        let mut out = Vec::new();
        r.read_into(&mut out, u64::MAX).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reads_rotated_files_oldest_first_then_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        fs::write(numbered(&live, 2), "a\n").unwrap();
        fs::write(numbered(&live, 1), "b\n").unwrap();
        fs::write(&live, "c\n").unwrap();
        let mut r = LogFiles::new(live.clone());
        assert_eq!(read_all(&mut r), "a\nb\nc\n");
        // More in the live file, then a rotation as the shim does it.
        fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap()
            .write_all(b"d\n")
            .unwrap();
        fs::rename(numbered(&live, 1), numbered(&live, 2)).unwrap();
        fs::rename(&live, numbered(&live, 1)).unwrap();
        fs::write(&live, "e\n").unwrap();
        assert_eq!(read_all(&mut r), "d\ne\n");
        assert_eq!(read_all(&mut r), "");
        // Two rotations while the reader is away: the file between is not skipped.
        fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap()
            .write_all(b"f\n")
            .unwrap();
        for next in ["g\n", "h\n"] {
            fs::rename(numbered(&live, 1), numbered(&live, 2)).unwrap();
            fs::rename(&live, numbered(&live, 1)).unwrap();
            fs::write(&live, next).unwrap();
        }
        assert_eq!(read_all(&mut r), "f\ng\nh\n");
    }

    #[test]
    fn a_truncated_log_is_read_from_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        fs::write(&live, "one\ntwo\n").unwrap();
        let mut r = LogFiles::new(live.clone());
        assert_eq!(read_all(&mut r), "one\ntwo\n");
        let f = fs::OpenOptions::new().write(true).open(&live).unwrap();
        f.set_len(0).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap()
            .write_all(b"3\n")
            .unwrap();
        assert_eq!(read_all(&mut r), "3\n");
    }

    #[test]
    fn limits_are_kept_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        fs::write(numbered(&live, 1), "0123").unwrap();
        fs::write(&live, "4567").unwrap();
        let mut r = LogFiles::new(live);
        let mut out = Vec::new();
        assert_eq!(r.read_into(&mut out, 6).unwrap(), 6);
        assert_eq!(out, b"012345");
        assert_eq!(r.read_into(&mut out, 6).unwrap(), 2);
        assert_eq!(out, b"01234567");
    }
}
