//! The layer unpacker: arbitrary bytes and structured-but-hostile tars (`..`, absolute
//! names, symlinks then entries through them, hard links out, whiteouts, huge sizes, PAX
//! records with bad numbers, GNU long names), plain or compressed, never panic and never
//! change anything outside the destination. The fixture is `<tmp>/outer/` holding the
//! destination `layer/`, a `secret` file and a `sibling/` directory; names and link
//! targets may spell `@OUTER@`, replaced by the fixture's absolute path.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::io::Read;

use berth_image::tarsplit::{SplitReader, SPLIT_DIR};
use berth_image::unpack::unpack_layer_split;
use berth_image::{unpack_layer, unpack_layer_into_fresh_dir, Compression, UnpackOptions};
use proptest::prelude::*;

const OUTER: &[u8] = b"@OUTER@";

struct Fixture {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
    /// `outer`'s mode as made (read back, not computed: the umask is per process).
    outer_mode: u32,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().join("outer");
        fs::create_dir(&outer).unwrap();
        fs::write(outer.join("secret"), b"secret").unwrap();
        fs::create_dir(outer.join("sibling")).unwrap();
        fs::write(outer.join("sibling/inner"), b"inner").unwrap();
        fs::create_dir(outer.join("layer")).unwrap();
        let outer_mode = fs::symlink_metadata(&outer).unwrap().mode();
        Fixture {
            _tmp: tmp,
            outer,
            outer_mode,
        }
    }

    fn dest(&self) -> PathBuf {
        self.outer.join("layer")
    }

    /// `outer` holds `layer`, `secret`, `sibling/inner` as made, plus `extra`.
    fn assert_outside_untouched(&self, extra: &[&str]) {
        let listing = |p: &Path| -> BTreeSet<String> {
            fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let mut want: BTreeSet<String> = ["layer", "secret", "sibling"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        want.extend(extra.iter().map(|s| s.to_string()));
        assert_eq!(
            listing(&self.outer),
            want,
            "something was written next to the layer"
        );
        let parent = self.outer.parent().unwrap();
        assert_eq!(listing(parent), BTreeSet::from(["outer".to_string()]));
        assert_eq!(
            listing(&self.outer.join("sibling")),
            BTreeSet::from(["inner".to_string()])
        );
        for (name, content) in [("secret", &b"secret"[..]), ("sibling/inner", b"inner")] {
            let p = self.outer.join(name);
            let m = fs::symlink_metadata(&p).unwrap();
            assert!(m.file_type().is_file(), "{name} replaced");
            assert_eq!(m.nlink(), 1, "{name} was hard-linked into the layer");
            assert_eq!(m.uid(), nix::unistd::geteuid().as_raw(), "{name} chowned");
            assert_eq!(fs::read(&p).unwrap(), content, "{name} written");
        }
        let m = fs::symlink_metadata(&self.outer).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode(), self.outer_mode, "outer chmodded");
    }

    /// Unpacks `data` as `docker load` does (keeping a tar-split index instead of the tar)
    /// and, when that succeeds, replays the index: the replay must give back `data` byte
    /// for byte (it is what `docker save` and push send).
    fn split_and_replay(&self, data: &[u8], opts: &UnpackOptions) {
        let layer = self.outer.join("split");
        fs::create_dir(&layer).unwrap();
        let result = unpack_layer_split(data, &layer.join("diff"), &layer.join(SPLIT_DIR), opts);
        if let Ok(stats) = result {
            if stats.compression == Compression::None {
                let mut replay = Vec::new();
                SplitReader::open(&layer, stats.diff_id)
                    .and_then(|mut r| r.read_to_end(&mut replay))
                    .unwrap_or_else(|e| panic!("replay of an accepted layer failed: {e}"));
                assert!(replay == data, "replay differs from the layer");
            }
        }
        fs::remove_dir_all(&layer).unwrap();
        self.assert_outside_untouched(&[]);
    }

    /// Unpacks `data` both ways (in place, and all-or-nothing into a fresh directory) and
    /// checks that nothing outside moved either time.
    fn unpack_both(&self, data: &[u8], opts: &UnpackOptions) {
        let _ = unpack_layer(data, &self.dest(), opts);
        self.assert_outside_untouched(&[]);
        let fresh = self.outer.join("fresh");
        match unpack_layer_into_fresh_dir(data, &fresh, opts) {
            Ok(_) => {
                self.assert_outside_untouched(&["fresh"]);
                fs::remove_dir_all(&fresh).unwrap();
            }
            // All or nothing: no `fresh`, no `fresh.tmp-*` left behind.
            Err(_) => self.assert_outside_untouched(&[]),
        }
        self.split_and_replay(data, opts);
    }
}

fn options(whiteouts: bool) -> UnpackOptions {
    UnpackOptions {
        // Without root, chown fails on every entry and hides the paths behind it.
        preserve_ownership: nix::unistd::geteuid().is_root(),
        overlay_whiteouts: whiteouts,
    }
}

/// A numeric header field: a number the tar crate writes, or raw bytes.
#[derive(Debug, Clone)]
enum Num {
    Value(u64),
    Raw(Vec<u8>),
}

/// One hostile tar member, written with raw headers so nothing is sanitised on the way.
#[derive(Debug, Clone)]
pub(super) struct Member {
    kind: u8,
    name: Vec<u8>,
    link: Vec<u8>,
    data: Vec<u8>,
    /// The size the header claims, when not the data's.
    claimed: Option<u64>,
    mode: u32,
    uid: Num,
    mtime: Num,
    dev: (u32, u32),
    pax: Vec<(Vec<u8>, Vec<u8>, bool)>,
    gnu_long: bool,
    ustar: bool,
}

fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
    path_of(1..4)
}

/// Link targets: short, so that hard links often find what they name.
fn link_strategy() -> impl Strategy<Value = Vec<u8>> {
    path_of(1..3)
}

fn path_of(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    // Mostly names that exist, so that later members meet earlier ones.
    let component = prop_oneof![
        12 => prop::sample::select(vec!["a", "b", "d"]).prop_map(|s| s.as_bytes().to_vec()),
        4 => prop::sample::select(vec![
            "a", "b", "d", "..", ".", "", ".wh.a", ".wh..wh..opq", ".wh.", ".wh..", ".wh...",
            ".wh..wh.plnk", "secret", "sibling", "layer", "outer", "@OUTER@",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>().prop_filter("no slash", |b| *b != b'/'), 1..6),
        1 => "[a-z]{90,120}".prop_map(String::into_bytes),
    ];
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(component, len),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(abs, comps, trailing)| {
            let mut p = if abs { b"/".to_vec() } else { Vec::new() };
            p.extend(comps.join(&b'/'));
            if trailing {
                p.push(b'/');
            }
            p
        })
}

fn num_strategy() -> impl Strategy<Value = Num> {
    prop_oneof![
        12 => (0u64..70_000).prop_map(Num::Value),
        1 => any::<u64>().prop_map(Num::Value),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Num::Raw),
        1 => prop::sample::select(vec!["", "       ", "-1", "zz", "77777777777"])
            .prop_map(|s| Num::Raw(s.as_bytes().to_vec())),
    ]
}

fn pax_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, bool)> {
    let key = prop::sample::select(vec![
        "path",
        "linkpath",
        "size",
        "uid",
        "gid",
        "mtime",
        "atime",
        "uname",
        "SCHILY.xattr.user.a",
        "SCHILY.xattr.",
        "SCHILY.xattr.trusted.overlay.opaque",
        "SCHILY.xattr.security.capability",
        "GNU.sparse.size",
        "GNU.sparse.map",
        "GNU.sparse.major",
        "GNU.sparse.name",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let value = prop_oneof![
        prop::sample::select(vec![
            "-1",
            "1e99",
            "99999999999999999999999",
            "18446744073709551615",
            "abc",
            "",
            "1.5",
            "-1.5",
            "1.99999999999999999",
            ".",
            "..",
            "../x",
            "@OUTER@/secret",
            "a",
            "0,1,2",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    // The bool: write a wrong record length.
    (key, value, prop::bool::weighted(0.1))
}

pub(super) fn member_strategy() -> impl Strategy<Value = Member> {
    let kind = prop_oneof![
        24 => prop::sample::select(vec![b'0', b'0', b'0', b'5', b'5', b'2', b'2', b'1']),
        1 => prop::sample::select(vec![b'\0', b'3', b'4', b'6', b'7', b'S', b'V', b'M', b'g', b'x', b'L', b'K']),
        1 => any::<u8>(),
    ];
    let claimed = prop_oneof![
        24 => Just(None),
        1 => any::<u64>().prop_map(Some),
        1 => (0u64..5000).prop_map(Some),
    ];
    (
        kind,
        path_strategy(),
        link_strategy(),
        prop::collection::vec(any::<u8>(), 0..600),
        claimed,
        prop_oneof![4 => Just(0o755u32), 1 => any::<u32>()],
        num_strategy(),
        num_strategy(),
        (0u32..300, 0u32..300),
        prop_oneof![
            4 => Just(Vec::new()),
            1 => prop::collection::vec(pax_strategy(), 1..3),
        ],
        prop::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(
            |(kind, name, link, data, claimed, mode, uid, mtime, dev, pax, gnu_long, ustar)| {
                Member {
                    kind,
                    name,
                    link,
                    data,
                    claimed,
                    mode,
                    uid,
                    mtime,
                    dev,
                    pax,
                    gnu_long,
                    ustar,
                }
            },
        )
}

fn subst(b: &[u8], outer: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = b;
    while let Some(i) = rest.windows(OUTER.len()).position(|w| w == OUTER) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(outer);
        rest = &rest[i + OUTER.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// A raw header of `kind` named `name` with `data` after it.
fn raw_member(out: &mut Vec<u8>, kind: u8, name: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    put(&mut h.as_old_mut().name, name);
    h.as_old_mut().linkflag = [kind];
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    pad(out);
}

pub(super) fn build(members: &[Member], outer: &Path, end: bool) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let outer = outer.as_os_str().as_bytes();
    let mut out = Vec::new();
    for m in members {
        let name = subst(&m.name, outer);
        let link = subst(&m.link, outer);
        if !m.pax.is_empty() {
            let mut records = Vec::new();
            for (k, v, wrong_len) in &m.pax {
                let v = subst(v, outer);
                let body = k.len() + v.len() + 3;
                // The length counts its own digits.
                let mut len = body + body.to_string().len();
                if len.to_string().len() + body != len {
                    len += 1;
                }
                if *wrong_len {
                    len = len * 7 + 3;
                }
                records.extend_from_slice(format!("{len} ").as_bytes());
                records.extend_from_slice(k);
                records.push(b'=');
                records.extend_from_slice(&v);
                records.push(b'\n');
            }
            raw_member(&mut out, b'x', b"PaxHeaders/x", &records);
        }
        if m.gnu_long {
            let mut n = name.clone();
            n.push(0);
            raw_member(&mut out, b'L', b"././@LongLink", &n);
            let mut l = link.clone();
            l.push(0);
            raw_member(&mut out, b'K', b"././@LongLink", &l);
        }
        let mut h = if m.ustar {
            tar::Header::new_ustar()
        } else {
            tar::Header::new_gnu()
        };
        put(&mut h.as_old_mut().name, &name);
        put(&mut h.as_old_mut().linkname, &link);
        h.as_old_mut().linkflag = [m.kind];
        h.set_mode(m.mode);
        match &m.uid {
            Num::Value(v) => {
                h.set_uid(*v);
                h.set_gid(*v);
            }
            Num::Raw(b) => {
                put(&mut h.as_old_mut().uid, b);
                put(&mut h.as_old_mut().gid, b);
            }
        }
        match &m.mtime {
            Num::Value(v) => h.set_mtime(*v),
            Num::Raw(b) => put(&mut h.as_old_mut().mtime, b),
        }
        let _ = h.set_device_major(m.dev.0);
        let _ = h.set_device_minor(m.dev.1);
        h.set_size(m.claimed.unwrap_or(m.data.len() as u64));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&m.data);
        pad(&mut out);
    }
    if end {
        out.extend_from_slice(&[0; 1024]);
    }
    out
}

/// How the finished tar is damaged and wrapped.
#[derive(Debug, Clone)]
struct Mangle {
    flips: Vec<(usize, u8)>,
    truncate: Option<usize>,
    compression: u8,
}

fn mangle_strategy() -> impl Strategy<Value = Mangle> {
    (
        prop_oneof![
            5 => Just(Vec::new()),
            1 => prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ],
        prop_oneof![4 => Just(None), 1 => any::<usize>().prop_map(Some)],
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(|(flips, truncate, compression)| Mangle {
            flips,
            truncate,
            compression,
        })
}

fn apply(mut data: Vec<u8>, m: &Mangle) -> Vec<u8> {
    if !data.is_empty() {
        for (pos, b) in &m.flips {
            let len = data.len();
            data[pos % len] = *b;
        }
        if let Some(t) = m.truncate {
            data.truncate(t % data.len());
        }
    }
    match m.compression {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        }
        2 => zstd::stream::encode_all(&data[..], 1).unwrap(),
        _ => data,
    }
}

proptest! {
    #![proptest_config(super::config(64))]

    #[test]
    fn arbitrary_bytes_never_escape(
        prefix in prop::sample::select(vec![
            &b""[..], b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\0", b"BZh",
        ]),
        data in prop::collection::vec(any::<u8>(), 0..3000),
        whiteouts in any::<bool>(),
    ) {
        let fx = Fixture::new();
        let mut input = prefix.to_vec();
        input.extend_from_slice(&data);
        fx.unpack_both(&input, &options(whiteouts));
    }

    #[test]
    fn hostile_tars_never_escape(
        members in prop::collection::vec(member_strategy(), 1..8),
        end in any::<bool>(),
        mangle in mangle_strategy(),
        whiteouts in prop::bool::weighted(0.8),
    ) {
        let fx = Fixture::new();
        let data = apply(build(&members, &fx.outer, end), &mangle);
        fx.unpack_both(&data, &options(whiteouts));
    }
}

/// The seed corpus: every file in `tests/corpus/layers/` (hostile layers found or made by
/// hand; `@OUTER@` in them is not substituted, they are replayed as they are).
#[test]
fn layer_corpus() {
    let dir = super::corpus("layers");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let data = fs::read(e.unwrap().path()).unwrap();
        let fx = Fixture::new();
        fx.unpack_both(&data, &options(true));
        n += 1;
    }
    assert!(n >= 5, "corpus has only {n} layers");
}
