//! `/proc/<pid>/mountinfo` read into entries, with the kernel's octal escapes (`\040` for
//! a space, `\011`, `\012`, `\134`) undone. The one parser of that file in Berth: cgroup
//! layouts, "is anything mounted under here", mount points.

use std::io;
use std::path::PathBuf;

/// One line of mountinfo (`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root
/// rw,errors=continue`), the fields Berth reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Field 5, where the filesystem is mounted, unescaped.
    pub mount_point: PathBuf,
    /// The filesystem type after the ` - ` separator (`cgroup2`, `overlay`, …).
    pub fs_type: String,
    /// The mount source after the type, unescaped.
    pub source: String,
    /// The per-superblock options (`rw,memory` for a v1 memory cgroup).
    pub super_options: String,
}

/// The entries of a mountinfo text; lines not in the kernel's shape are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// This process's mount table (`/proc/self/mountinfo`).
pub fn read_self() -> io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let source = right.next()?;
    let super_options = right.next()?;
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: unescape(fs_type),
        source: unescape(source),
        super_options: super_options.to_string(),
    })
}

/// Undoes mountinfo's escapes: a backslash and three octal digits stand for one byte.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| c == b'\\' && d.iter().all(|x| (b'0'..=b'7').contains(x)));
        match octal {
            Some(d) => {
                let v = (u32::from(d[0] - b'0') << 6)
                    | (u32::from(d[1] - b'0') << 3)
                    | u32::from(d[2] - b'0');
                // `\400` and above do not name a byte: keep the text as it is.
                match u8::try_from(v) {
                    Ok(v) => {
                        out.push(v);
                        i += 4;
                    }
                    Err(_) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn unescapes_octal_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/tab\011nl\012bs\134"), "/tab\tnl\nbs\\");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/end\"), r"/end\");
        assert_eq!(unescape(r"/short\04"), r"/short\04");
        assert_eq!(unescape(r"/not\08x"), r"/not\08x");
        assert_eq!(unescape(r"/big\777"), r"/big\777");
        assert_eq!(unescape(r"\303\251"), "é");
        assert_eq!(unescape(r"é\040é"), "é é");
    }

    #[test]
    fn parses_entries_and_skips_garbage() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                    30 25 0:26 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory\n\
                    \n 1 2 3\n1 2 3 - cgroup\nx - \n1 2 3 4 - ext4 a\n";
        let got = parse(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].mount_point, PathBuf::from("/mnt two"));
        assert_eq!(got[0].fs_type, "ext3");
        assert_eq!(got[0].source, "/dev/root");
        assert_eq!(got[0].super_options, "rw,errors=continue");
        assert_eq!(got[1].fs_type, "cgroup2");
        assert_eq!(got[2].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(got[2].super_options, "rw,memory");
    }

    #[test]
    fn reads_this_process_table() {
        let table = read_self().unwrap();
        assert!(table.iter().any(|e| e.mount_point == Path::new("/proc")));
    }
}
