//! The json-file log as one stream across rotation: the rotated files (`<log>.N` …
//! `<log>.1`, oldest first) and then the live file, each read through an open descriptor
//! so that a rotation (the shim renames the live file to `.1`, shifting the others up and
//! dropping the oldest) never loses the rest of a file being read. When the live file has
//! been rotated away, the files rotated after it are found by inode, so a reader that fell
//! behind by fewer than `max-file - 1` rotations loses nothing. A truncation (`max-file`
//! of 1) starts over from the top. `tail` places a reader by reading backwards from the
//! end in bounded chunks (moby `tailfile`), never the whole log.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where a log reader is: the files still to read, and the one open now.
#[derive(Debug)]
pub(crate) struct LogFiles {
    live: PathBuf,
    /// Rotated files not read yet, oldest first, opened when found.
    rotated: VecDeque<File>,
    /// The live file as opened when the reader was placed, read after `rotated` (so a
    /// rotation in between does not lose it); `None` opens the live path then.
    live_file: Option<Open>,
    cur: Option<Open>,
}

#[derive(Debug)]
struct Open {
    file: File,
    /// The live file's inode; `None` for a rotated file (read to its end, then the next).
    live_ino: Option<u64>,
}

/// Which file a log file is: its inode, modification time (ns) and size. An inode alone
/// is not enough once rotated files are compressed: the file removed after compression
/// frees its inode for a later live file; the time (of the kernel's coarse clock) and
/// the size tell them apart. A rotated file is not written again: both are final.
type FileId = (u64, i64, u64);

fn file_id(file: &File) -> io::Result<FileId> {
    let m = file.metadata()?;
    Ok((
        m.ino(),
        m.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.mtime_nsec()),
        m.len(),
    ))
}

/// The rotated files that exist now, oldest first, opened, with their [`FileId`]s; a
/// compressed one (`.N.gz`, the `local` driver's) is read decompressed, with the id it
/// had before compression (the shim writes it in the gzip comment).
fn rotated_files(live: &Path) -> Vec<(File, FileId)> {
    let mut out = Vec::new();
    let mut n = 1;
    loop {
        let opened = match File::open(numbered(live, n, "")) {
            Ok(file) => {
                let id = file_id(&file).unwrap_or((0, 0, 0));
                Some((file, id))
            }
            Err(_) => match File::open(numbered(live, n, ".gz")) {
                Ok(gz) => match decompress(gz, live.parent()) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        tracing::warn!(path = %live.display(), n, error = %e, "logs: unreadable compressed log");
                        None
                    }
                },
                Err(_) => None,
            },
        };
        let Some(f) = opened else { break };
        out.push(f);
        n += 1;
    }
    out.reverse();
    out
}

/// The most a compressed rotated file is read to (the shim writes at most `max-size`).
const DECOMPRESSED_MAX: u64 = 4 << 30;

/// A gzip-compressed rotated log as an unnamed temporary file beside it, read from its
/// start, with the id the shim recorded in the gzip comment (`berth-ino=INO:MTIME_NS`)
/// and its decompressed size (zeros if no comment).
fn decompress(gz: File, dir: Option<&Path>) -> io::Result<(File, FileId)> {
    let mut dec = flate2::read::GzDecoder::new(gz);
    let mut out = match dir {
        Some(d) => tempfile::tempfile_in(d)?,
        None => tempfile::tempfile()?,
    };
    let size = io::copy(&mut (&mut dec).take(DECOMPRESSED_MAX), &mut out)?;
    let id = dec
        .header()
        .and_then(|h| h.comment())
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.strip_prefix(berth_runtime::LOG_GZ_INO))
        .and_then(|c| c.split_once(':'))
        .and_then(|(i, t)| Some((i.parse().ok()?, t.parse().ok()?, size)))
        .unwrap_or((0, 0, 0));
    out.seek(SeekFrom::Start(0))?;
    Ok((out, id))
}

fn numbered(path: &Path, n: u32, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}{suffix}"));
    p.into()
}

/// How much of a file one backward step reads when looking for the last lines.
const TAIL_CHUNK: usize = 64 * 1024;

/// Where the last lines of one file start, counting backwards from its end.
#[derive(Debug, PartialEq, Eq)]
enum Back {
    /// `need` lines were found: they start at this offset.
    At(u64),
    /// The whole file holds fewer: this many complete lines.
    Short(usize),
}

/// Looks for the last `need` complete, non-empty lines of `file` (the first `len` bytes
/// of it), reading backwards `TAIL_CHUNK` at a time. What follows the last newline is
/// a line still being written: not counted. `need` 0 is the end of the last line.
fn back_lines(file: &File, len: u64, need: usize, buf: &mut [u8]) -> io::Result<Back> {
    let mut count = 0usize;
    // Still in the unfinished tail (no newline seen yet, going backwards).
    let mut in_tail = true;
    // The segment after the newline last seen (going backwards) has bytes.
    let mut content = false;
    let mut pos = len;
    while pos > 0 {
        let step = (buf.len() as u64).min(pos);
        let start = pos - step;
        let chunk = buf.get_mut(..step as usize).unwrap_or_default();
        file.read_exact_at(chunk, start)?;
        for (i, b) in chunk.iter().enumerate().rev() {
            if *b != b'\n' {
                content = true;
                continue;
            }
            if !in_tail && content {
                count += 1;
            }
            in_tail = false;
            content = false;
            if count == need {
                return Ok(Back::At(start + i as u64 + 1));
            }
        }
        pos = start;
    }
    if !in_tail && content {
        count += 1;
    }
    Ok(if count >= need {
        Back::At(0)
    } else {
        Back::Short(count)
    })
}

impl LogFiles {
    /// A reader placed so that it reads the last `n` complete lines of the log and then
    /// what follows: the files are searched newest first, backwards from their ends, in
    /// bounded steps. Fewer than `n` lines in all is the whole log.
    pub(crate) fn from_tail(live: PathBuf, n: usize) -> io::Result<Self> {
        // The live file first: a rotation after this shows up as a rotated file with the
        // same inode, dropped here (the reader finds later files by inode).
        let live_file = match File::open(&live) {
            Ok(f) => {
                let ino = f.metadata()?.ino();
                Some((f, ino))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        // Oldest first, as the reader reads them. The live file's id is taken after the
        // listing: if it was rotated in between, its time is final and matches.
        let listed = rotated_files(&live);
        let live_id = match &live_file {
            Some((f, _)) => Some(file_id(f)?),
            None => None,
        };
        let mut rotated: Vec<File> = listed
            .into_iter()
            .filter(|(_, id)| Some(*id) != live_id)
            .map(|(f, _)| f)
            .collect();
        let mut buf = vec![0u8; TAIL_CHUNK];
        let mut need = n;
        let mut live_open = None;
        if let Some((mut file, ino)) = live_file {
            let len = file.metadata()?.len();
            match back_lines(&file, len, need, &mut buf)? {
                Back::At(off) => {
                    file.seek(SeekFrom::Start(off))?;
                    return Ok(LogFiles {
                        live,
                        rotated: VecDeque::new(),
                        live_file: None,
                        cur: Some(Open {
                            file,
                            live_ino: Some(ino),
                        }),
                    });
                }
                Back::Short(found) => {
                    need -= found;
                    live_open = Some(Open {
                        file,
                        live_ino: Some(ino),
                    });
                }
            }
        }
        // Then the rotated files, newest (the end of the list) first.
        let mut at = None;
        for i in (0..rotated.len()).rev() {
            let Some(file) = rotated.get(i) else { break };
            let len = file.metadata()?.len();
            match back_lines(file, len, need, &mut buf)? {
                Back::At(off) => {
                    at = Some((i, off));
                    break;
                }
                Back::Short(found) => need -= found,
            }
        }
        let (first, off) = at.unwrap_or((0, 0));
        let mut newer = rotated.split_off(first.min(rotated.len()));
        let cur = if newer.is_empty() {
            None
        } else {
            let mut file = newer.remove(0);
            file.seek(SeekFrom::Start(off))?;
            Some(Open {
                file,
                live_ino: None,
            })
        };
        Ok(LogFiles {
            live,
            rotated: newer.into(),
            live_file: live_open,
            cur,
        })
    }

    /// A reader from the start of the oldest rotated file.
    pub(crate) fn new(live: PathBuf) -> Self {
        let rotated = rotated_files(&live).into_iter().map(|(f, _)| f).collect();
        LogFiles {
            live,
            rotated,
            live_file: None,
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
                        let id = file_id(&open.file)?;
                        let after = files
                            .iter()
                            .position(|(_, i)| *i == id)
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
            } else if let Some(open) = self.live_file.take() {
                self.cur = Some(open);
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
        fs::write(numbered(&live, 2, ""), "a\n").unwrap();
        fs::write(numbered(&live, 1, ""), "b\n").unwrap();
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
        fs::rename(numbered(&live, 1, ""), numbered(&live, 2, "")).unwrap();
        fs::rename(&live, numbered(&live, 1, "")).unwrap();
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
            fs::rename(numbered(&live, 1, ""), numbered(&live, 2, "")).unwrap();
            fs::rename(&live, numbered(&live, 1, "")).unwrap();
            fs::write(&live, next).unwrap();
        }
        assert_eq!(read_all(&mut r), "f\ng\nh\n");
    }

    /// A rotation as the shim does it with `compress`: `.1.gz` → `.2.gz`, the live
    /// file → `.1`, deflated to `.1.gz` with its inode in the comment, `.1` removed.
    fn rotate_compressed(live: &Path, next: &str) {
        use std::os::unix::fs::MetadataExt;
        if numbered(live, 1, ".gz").exists() {
            fs::rename(numbered(live, 1, ".gz"), numbered(live, 2, ".gz")).unwrap();
        }
        let one = numbered(live, 1, "");
        fs::rename(live, &one).unwrap();
        fs::write(live, next).unwrap();
        let m = fs::metadata(&one).unwrap();
        let (ino, t) = (m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec());
        let mut enc = flate2::GzBuilder::new()
            .comment(format!("{}{ino}:{t}", berth_runtime::LOG_GZ_INO))
            .write(
                fs::File::create(numbered(live, 1, ".gz")).unwrap(),
                flate2::Compression::fast(),
            );
        enc.write_all(&fs::read(&one).unwrap()).unwrap();
        enc.finish().unwrap();
        fs::remove_file(one).unwrap();
    }

    #[test]
    fn compressed_rotated_files_are_read_and_followed_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("container.log");
        fs::write(&live, "a\n").unwrap();
        rotate_compressed(&live, "b\n");
        let mut r = LogFiles::new(live.clone());
        assert_eq!(read_all(&mut r), "a\nb\n");
        // Two compressed rotations while the reader is away: nothing lost, nothing twice.
        for next in ["c\n", "d\n"] {
            rotate_compressed(&live, next);
        }
        assert_eq!(read_all(&mut r), "c\nd\n");
        assert_eq!(tail(&live, 3), "b\nc\nd\n");
        // Left over from no-longer-compressed names: ignored by the reader.
        assert!(!dir.path().join("container.log.1").exists());
    }

    #[test]
    fn a_reused_inode_is_not_taken_for_the_live_file() {
        use std::os::unix::fs::MetadataExt;
        // `.1.gz` came from a file whose inode the live file has now (freed when the
        // compressed file's source was removed): a different file all the same.
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("container.log");
        fs::write(&live, "b\n").unwrap();
        let m = fs::metadata(&live).unwrap();
        // Even the same time (one tick of a coarse clock): the size differs.
        let t = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        let mut enc = flate2::GzBuilder::new()
            .comment(format!("{}{}:{t}", berth_runtime::LOG_GZ_INO, m.ino()))
            .write(
                fs::File::create(numbered(&live, 1, ".gz")).unwrap(),
                flate2::Compression::fast(),
            );
        enc.write_all(b"a\nz\n").unwrap();
        enc.finish().unwrap();
        assert_eq!(tail(&live, 2), "z\nb\n");
        assert_eq!(read_all(&mut LogFiles::new(live.clone())), "a\nz\nb\n");
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

    /// The complete, non-empty lines of `s` (what the reader shows), as strings.
    fn complete_lines(s: &[u8]) -> Vec<String> {
        let end = s.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        s[..end]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn backward_search_agrees_with_a_forward_count_at_every_chunk_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let texts: [&[u8]; 9] = [
            b"",
            b"\n",
            b"partial",
            b"a\n",
            b"a\nb\nc\n",
            b"a\nb\nc",
            b"\n\na\n\n\nbb\n\n",
            b"long line here\nx\n\nanother long line\nunfinished tail",
            b"one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n",
        ];
        for text in texts {
            fs::write(&path, text).unwrap();
            let file = File::open(&path).unwrap();
            let all = complete_lines(text);
            for chunk in [1, 2, 3, 5, 64] {
                let mut buf = vec![0u8; chunk];
                for need in 0..all.len() + 3 {
                    let got = back_lines(&file, text.len() as u64, need, &mut buf).unwrap();
                    let what = format!(
                        "{:?} need {need} chunk {chunk}",
                        String::from_utf8_lossy(text)
                    );
                    match got {
                        Back::At(off) => {
                            let off = off as usize;
                            assert!(off == 0 || text[off - 1] == b'\n', "{what}");
                            let want = &all[all.len().saturating_sub(need)..];
                            assert_eq!(complete_lines(&text[off..]), want, "{what}");
                        }
                        Back::Short(n) => {
                            assert!(need > all.len(), "{what}");
                            assert_eq!(n, all.len(), "{what}");
                        }
                    }
                }
            }
        }
    }

    fn tail(live: &Path, n: usize) -> String {
        read_all(&mut LogFiles::from_tail(live.to_path_buf(), n).unwrap())
    }

    #[test]
    fn tail_reads_back_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        // Nothing yet: an empty reader that finds the live file once it appears.
        let mut r = LogFiles::from_tail(live.clone(), 3).unwrap();
        assert_eq!(read_all(&mut r), "");
        fs::write(numbered(&live, 2, ""), "a\nb\n").unwrap();
        fs::write(numbered(&live, 1, ""), "c\n").unwrap();
        fs::write(&live, "d\ne").unwrap();
        assert_eq!(tail(&live, 0), "e");
        assert_eq!(tail(&live, 1), "d\ne");
        assert_eq!(tail(&live, 2), "c\nd\ne");
        assert_eq!(tail(&live, 3), "b\nc\nd\ne");
        assert_eq!(tail(&live, 4), "a\nb\nc\nd\ne");
        assert_eq!(tail(&live, 100), "a\nb\nc\nd\ne");
        // A reader placed in a rotated file goes on through rotation as any other.
        let mut r = LogFiles::from_tail(live.clone(), 2).unwrap();
        assert_eq!(read_all(&mut r), "c\nd\ne");
        fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        fs::rename(numbered(&live, 2, ""), numbered(&live, 3, "")).unwrap();
        fs::rename(numbered(&live, 1, ""), numbered(&live, 2, "")).unwrap();
        fs::rename(&live, numbered(&live, 1, "")).unwrap();
        fs::write(&live, "f\n").unwrap();
        assert_eq!(read_all(&mut r), "\nf\n");
        assert_eq!(tail(&live, 2), "e\nf\n");
    }

    #[test]
    fn a_rotation_between_placing_and_reading_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        fs::write(numbered(&live, 1, ""), "a\nb\n").unwrap();
        fs::write(&live, "c\n").unwrap();
        // Placed in the rotated file, the live one already open.
        let mut r = LogFiles::from_tail(live.clone(), 2).unwrap();
        fs::rename(numbered(&live, 1, ""), numbered(&live, 2, "")).unwrap();
        fs::rename(&live, numbered(&live, 1, "")).unwrap();
        fs::write(&live, "d\n").unwrap();
        assert_eq!(read_all(&mut r), "b\nc\nd\n");
    }

    #[test]
    fn tail_of_a_long_log_reads_only_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        let mut text = String::new();
        for i in 0..200_000 {
            text.push_str(&format!("line {i}\n"));
        }
        fs::write(&live, &text).unwrap();
        let mut r = LogFiles::from_tail(live.clone(), 3).unwrap();
        let at = r.cur.as_mut().unwrap().file.stream_position().unwrap();
        assert_eq!(
            at as usize,
            text.len() - "line 199997\nline 199998\nline 199999\n".len()
        );
        assert_eq!(read_all(&mut r), "line 199997\nline 199998\nline 199999\n");
    }

    #[test]
    fn limits_are_kept_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        fs::write(numbered(&live, 1, ""), "0123").unwrap();
        fs::write(&live, "4567").unwrap();
        let mut r = LogFiles::new(live);
        let mut out = Vec::new();
        assert_eq!(r.read_into(&mut out, 6).unwrap(), 6);
        assert_eq!(out, b"012345");
        assert_eq!(r.read_into(&mut out, 6).unwrap(), 2);
        assert_eq!(out, b"01234567");
    }
}
