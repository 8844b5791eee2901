//! Layer extraction against a real filesystem, malicious layers first. Tests that need
//! root (ownership, device nodes, `trusted.*` xattrs) skip themselves without it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::{Builder, Header};

use super::*;
use crate::tarmeta::parse_pax_time;

const MTIME: u64 = 1_600_000_000;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// Builds layer tarballs entry by entry with raw header names, so tests can write names
/// (`../evil`) that `tar::Builder`'s path setters refuse.
struct Layer {
    b: Builder<Vec<u8>>,
}

fn header(kind: EntryType, name: &[u8], mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    let field = &mut h.as_old_mut().name;
    assert!(name.len() <= field.len(), "name too long for a raw header");
    field[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

fn set_link(h: &mut Header, target: &[u8]) {
    let field = &mut h.as_old_mut().linkname;
    assert!(
        target.len() <= field.len(),
        "link name too long for a raw header"
    );
    field[..target.len()].copy_from_slice(target);
}

impl Layer {
    fn new() -> Self {
        Layer {
            b: Builder::new(Vec::new()),
        }
    }

    fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_with(name, data, 0o644, 0, 0, MTIME)
    }

    fn file_with(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Self {
        let mut h = header(EntryType::Regular, name.as_bytes(), mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.push(h, data)
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.dir_with(name, mode, MTIME)
    }

    fn dir_with(&mut self, name: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut h = header(EntryType::Directory, name.as_bytes(), mode, 0);
        h.set_mtime(mtime);
        self.push(h, &[])
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = header(EntryType::Symlink, name.as_bytes(), 0o777, 0);
        set_link(&mut h, target.as_bytes());
        self.push(h, &[])
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = header(EntryType::Link, name.as_bytes(), 0o644, 0);
        set_link(&mut h, target.as_bytes());
        self.push(h, &[])
    }

    fn node(
        &mut self,
        name: &str,
        kind: EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = header(kind, name.as_bytes(), mode, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, &[])
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.b, Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

/// `<tmp>/outer/` holds the destination `layer/` and a `secret` file that no layer may
/// touch; `fresh` is where the fresh-dir helper may create its layer.
struct Fixture {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
    dest: PathBuf,
    fresh: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path().join("outer");
    fs::create_dir(&outer).unwrap();
    fs::write(outer.join("secret"), b"secret").unwrap();
    let dest = outer.join("layer");
    fs::create_dir(&dest).unwrap();
    let fresh = outer.join("fresh");
    Fixture {
        _tmp: tmp,
        outer,
        dest,
        fresh,
    }
}

impl Fixture {
    fn unpack(&self, data: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(data, &self.dest, &UnpackOptions::default())
    }

    /// Nothing outside the layer changed: `outer` holds exactly `layer`, `secret` (intact,
    /// not hard-linked) and whatever `extra` names.
    fn assert_outside_untouched(&self, extra: &[&str]) {
        let names: BTreeSet<String> = fs::read_dir(&self.outer)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut want: BTreeSet<String> =
            ["layer", "secret"].iter().map(|s| s.to_string()).collect();
        want.extend(extra.iter().map(|s| s.to_string()));
        assert_eq!(names, want, "something was written next to the layer");
        let secret = self.outer.join("secret");
        assert_eq!(fs::read(&secret).unwrap(), b"secret");
        let m = fs::symlink_metadata(&secret).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.nlink(), 1, "secret was hard-linked into the layer");
        assert_eq!(m.mode() & 0o7777, 0o666 & !umask_bits());
    }
}

fn umask_bits() -> u32 {
    let old = stat::umask(Mode::from_bits_truncate(0o022));
    stat::umask(old);
    old.bits()
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

// ---------------------------------------------------------------------------------------
// Malicious layers: each refused, nothing written outside, no fresh dir left behind.
// ---------------------------------------------------------------------------------------

type Check = fn(&UnpackError) -> bool;

fn malicious_cases(outer: &Path) -> Vec<(&'static str, Vec<u8>, Check)> {
    let outer_s = outer.to_str().unwrap().to_owned();
    let through_root = format!("lnk{outer_s}/evil");
    let dot_dot: Check = |e| matches!(e, UnpackError::DotDot { .. });
    let through_symlink: Check = |e| matches!(e, UnpackError::ThroughSymlink { .. });
    let bad_link: Check = |e| matches!(e, UnpackError::BadHardLink { .. });
    let bad_whiteout: Check = |e| matches!(e, UnpackError::BadWhiteout { .. });
    vec![
        (
            "../evil",
            Layer::new().file("../evil", b"x").bytes(),
            dot_dot,
        ),
        (
            "/abs/../../evil",
            Layer::new().file("/abs/../../evil", b"x").bytes(),
            dot_dot,
        ),
        (
            "a/../../evil",
            Layer::new().file("a/../../evil", b"x").bytes(),
            dot_dot,
        ),
        (
            "./../evil",
            Layer::new().file("./../evil", b"x").bytes(),
            dot_dot,
        ),
        (
            "a/b/../../../evil",
            Layer::new().file("a/b/../../../evil", b"x").bytes(),
            dot_dot,
        ),
        (
            "dir ..",
            Layer::new().dir("sub/../", 0o755).bytes(),
            dot_dot,
        ),
        (
            "symlink ..",
            Layer::new().symlink("..", "/").bytes(),
            dot_dot,
        ),
        (
            "lnk -> / then lnk/<outer>/evil",
            Layer::new()
                .symlink("lnk", "/")
                .file(&through_root, b"x")
                .bytes(),
            |e| matches!(e, UnpackError::ThroughSymlink { symlink, .. } if symlink == "lnk"),
        ),
        (
            "lnk -> .. then lnk/x",
            Layer::new()
                .symlink("lnk", "..")
                .file("lnk/x", b"x")
                .bytes(),
            through_symlink,
        ),
        (
            "lnk -> <outer> then dir lnk/sub",
            Layer::new()
                .symlink("lnk", &outer_s)
                .dir("lnk/sub/", 0o755)
                .bytes(),
            through_symlink,
        ),
        (
            "a/b -> ../.. then a/b/c/evil",
            Layer::new()
                .dir("a/", 0o755)
                .symlink("a/b", "../..")
                .file("a/b/c/evil", b"x")
                .bytes(),
            |e| matches!(e, UnpackError::ThroughSymlink { symlink, .. } if symlink == "a/b"),
        ),
        (
            "lnk -> .. then symlink lnk/evil",
            Layer::new()
                .symlink("lnk", "..")
                .symlink("lnk/evil", "/")
                .bytes(),
            through_symlink,
        ),
        (
            "hardlink to ../../etc/passwd",
            Layer::new().hardlink("hl", "../../etc/passwd").bytes(),
            bad_link,
        ),
        (
            "hardlink to /../secret",
            Layer::new().hardlink("hl", "/../secret").bytes(),
            bad_link,
        ),
        (
            "hardlink through symlink",
            Layer::new()
                .symlink("lnk", &outer_s)
                .hardlink("hl", "lnk/secret")
                .bytes(),
            through_symlink,
        ),
        (
            "hardlink through relative symlink",
            Layer::new()
                .dir("d/", 0o755)
                .symlink("d/up", "../..")
                .hardlink("hl", "d/up/secret")
                .bytes(),
            through_symlink,
        ),
        (
            "hardlink to missing target",
            Layer::new().hardlink("hl", "nowhere").bytes(),
            bad_link,
        ),
        (
            "hardlink to a directory",
            Layer::new().dir("d/", 0o755).hardlink("hl", "d").bytes(),
            bad_link,
        ),
        (
            "hardlink to the root",
            Layer::new().hardlink("hl", "./").bytes(),
            bad_link,
        ),
        (
            "whiteout through symlink",
            Layer::new()
                .symlink("lnk", &outer_s)
                .file("lnk/.wh.secret", b"")
                .bytes(),
            through_symlink,
        ),
        (
            "opaque through symlink",
            Layer::new()
                .symlink("lnk", &outer_s)
                .file("lnk/.wh..wh..opq", b"")
                .bytes(),
            through_symlink,
        ),
        (
            "whiteout of ..",
            Layer::new().file(".wh...", b"").bytes(),
            bad_whiteout,
        ),
        (
            "whiteout of .",
            Layer::new().file("a/.wh..", b"").bytes(),
            bad_whiteout,
        ),
        (
            "whiteout of nothing",
            Layer::new().file("a/.wh.", b"").bytes(),
            bad_whiteout,
        ),
        (
            "file below a file",
            Layer::new().file("f", b"x").file("f/x", b"y").bytes(),
            |e| matches!(e, UnpackError::ParentNotDirectory { parent, .. } if parent == "f"),
        ),
        (
            "volume label type",
            Layer::new()
                .push(header(EntryType::new(b'V'), b"label", 0o644, 0), &[])
                .bytes(),
            |e| matches!(e, UnpackError::UnsupportedType { kind: 'V', .. }),
        ),
        (
            "symlink without target",
            Layer::new().symlink("lnk", "").bytes(),
            |e| matches!(e, UnpackError::BadHeader { .. }),
        ),
    ]
}

#[test]
fn malicious_layers_are_refused_and_nothing_escapes() {
    let names = malicious_cases(Path::new("/x"));
    for i in 0..names.len() {
        let fx = fixture();
        let (label, data, check) = malicious_cases(&fx.outer).swap_remove(i);
        let err = fx
            .unpack(&data)
            .err()
            .unwrap_or_else(|| panic!("{label}: layer was accepted"));
        assert!(check(&err), "{label}: unexpected error {err}");
        assert!(
            err.is_invalid_layer(),
            "{label}: {err} not classed as invalid layer"
        );
        fx.assert_outside_untouched(&[]);

        let err = unpack_layer_into_fresh_dir(&data[..], &fx.fresh, &UnpackOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{label}: layer was accepted by the fresh-dir helper"));
        assert!(check(&err), "{label}: unexpected error {err}");
        // No `fresh`, no `fresh.tmp-*`: nothing half-made is left.
        fx.assert_outside_untouched(&[]);
    }
}

#[test]
fn error_messages_name_the_entry_and_the_symlink() {
    let fx = fixture();
    // The link points at the fixture, not at `/`: were the check ever broken, this test
    // must not overwrite the real /etc/passwd.
    let data = Layer::new()
        .symlink("lnk", fx.outer.to_str().unwrap())
        .file("lnk/etc/passwd", b"x")
        .bytes();
    let err = fx.unpack(&data).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"layer entry "lnk/etc/passwd" escapes through symlink "lnk""#
    );
    let err = fx
        .unpack(&Layer::new().file("../evil", b"x").bytes())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"layer entry "../evil" escapes the layer: `..` is not allowed in paths"#
    );
    let err = fx
        .unpack(&Layer::new().hardlink("hl", "../../etc/passwd").bytes())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"layer entry "hl" is a hard link to "../../etc/passwd", which is outside the layer"#
    );
}

#[test]
fn file_replaces_symlink_instead_of_writing_through_it() {
    let fx = fixture();
    let secret = fx.outer.join("secret");
    let ghost = fx.outer.join("ghost");
    let data = Layer::new()
        .symlink("victim", secret.to_str().unwrap())
        .file("victim", b"pwned")
        // A dangling symlink must not be followed to create its target either.
        .symlink("dangling", ghost.to_str().unwrap())
        .file("dangling", b"pwned")
        .bytes();
    fx.unpack(&data).unwrap();
    for name in ["victim", "dangling"] {
        let p = fx.dest.join(name);
        assert!(meta(&p).file_type().is_file(), "{name} is still a symlink");
        assert_eq!(fs::read(&p).unwrap(), b"pwned");
    }
    fx.assert_outside_untouched(&[]);

    let fx = fixture();
    unpack_layer_into_fresh_dir(&data[..], &fx.fresh, &UnpackOptions::default()).unwrap();
    fx.assert_outside_untouched(&["fresh"]);
}

#[test]
fn directory_replaces_symlink_and_children_land_inside() {
    let fx = fixture();
    let data = Layer::new()
        .symlink("d", fx.outer.to_str().unwrap())
        .dir("d/", 0o755)
        .file("d/x", b"inside")
        // A hard link replacing a symlink replaces it too.
        .symlink("s", fx.outer.join("secret").to_str().unwrap())
        .hardlink("s", "d/x")
        .bytes();
    fx.unpack(&data).unwrap();
    assert!(meta(&fx.dest.join("d")).is_dir());
    assert_eq!(fs::read(fx.dest.join("d/x")).unwrap(), b"inside");
    assert_eq!(
        meta(&fx.dest.join("s")).ino(),
        meta(&fx.dest.join("d/x")).ino()
    );
    fx.assert_outside_untouched(&[]);
}

#[test]
fn symlink_replacing_a_verified_directory_is_caught() {
    // The parent check must not trust an earlier "a is a directory" after `a` was
    // replaced by a symlink.
    let fx = fixture();
    let data = Layer::new()
        .dir("a/", 0o755)
        .file("a/one", b"1")
        .symlink("a", fx.outer.to_str().unwrap())
        .file("a/two", b"2")
        .bytes();
    let err = fx.unpack(&data).unwrap_err();
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err}");
    fx.assert_outside_untouched(&[]);
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink_itself() {
    let fx = fixture();
    let secret = fx.outer.join("secret");
    let data = Layer::new()
        .symlink("lnk", secret.to_str().unwrap())
        .hardlink("hl", "lnk")
        .bytes();
    fx.unpack(&data).unwrap();
    let hl = fx.dest.join("hl");
    assert!(meta(&hl).file_type().is_symlink());
    assert_eq!(fs::read_link(&hl).unwrap(), secret);
    assert_eq!(meta(&hl).ino(), meta(&fx.dest.join("lnk")).ino());
    fx.assert_outside_untouched(&[]);
}

#[test]
fn truncated_and_corrupt_streams_leave_nothing() {
    let full = Layer::new().file("big", &[7u8; 10_000]).bytes();
    let truncated = full[..3000].to_vec();
    let mut corrupt_gz = gzip(&full);
    let mid = corrupt_gz.len() / 2;
    corrupt_gz[mid] ^= 0xff;
    let mut bad_checksum = full.clone();
    bad_checksum[0] = b'X';
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 1, 2, 3].to_vec();
    for (label, data) in [
        ("truncated", truncated),
        ("corrupt gzip", corrupt_gz),
        ("bad header checksum", bad_checksum),
        ("xz", xz),
    ] {
        let fx = fixture();
        let err = unpack_layer_into_fresh_dir(&data[..], &fx.fresh, &UnpackOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{label}: accepted"));
        assert!(
            matches!(
                err,
                UnpackError::Read(_) | UnpackError::UnsupportedCompression(_)
            ),
            "{label}: {err}"
        );
        fx.assert_outside_untouched(&[]);
    }
}

#[test]
fn destination_must_be_a_real_directory() {
    let fx = fixture();
    let link = fx.outer.join("link");
    std::os::unix::fs::symlink(&fx.dest, &link).unwrap();
    let data = Layer::new().file("f", b"x").bytes();
    for bad in [
        link.as_path(),
        &fx.outer.join("secret"),
        &fx.outer.join("missing"),
    ] {
        let err = unpack_layer(&data[..], bad, &UnpackOptions::default()).unwrap_err();
        assert!(matches!(err, UnpackError::BadDestination { .. }), "{err}");
    }
    assert!(!fx.dest.join("f").exists());
}

#[test]
fn fresh_dir_refuses_an_existing_directory() {
    let fx = fixture();
    let data = Layer::new().file("f", b"x").bytes();
    let err =
        unpack_layer_into_fresh_dir(&data[..], &fx.dest, &UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, UnpackError::AlreadyExists { .. }), "{err}");
    assert!(!fx.dest.join("f").exists());
}

// ---------------------------------------------------------------------------------------
// Well-formed layers.
// ---------------------------------------------------------------------------------------

fn sample_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc/", 0o755)
        .file("etc/hostname", b"berth\n")
        .file("bin/busybox", &[0x7f; 5000])
        .symlink("bin/sh", "busybox")
        .hardlink("bin/ls", "bin/busybox")
        .bytes()
}

#[test]
fn detects_compression_and_computes_digests() {
    let plain = sample_layer();
    let want_diff_id = Digest::of(&plain);
    // Two gzip members, split mid-entry, as `pigz` or concatenation produce.
    let mut multi = gzip(&plain[..700]);
    multi.extend(gzip(&plain[700..]));
    for (label, input, compression) in [
        ("plain", plain.clone(), Compression::None),
        ("gzip", gzip(&plain), Compression::Gzip),
        ("multi-member gzip", multi, Compression::Gzip),
        ("zstd", zstd_compress(&plain), Compression::Zstd),
    ] {
        let fx = fixture();
        let stats = fx.unpack(&input).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(stats.compression, compression, "{label}");
        assert_eq!(stats.diff_id, want_diff_id, "{label}: diff_id");
        assert_eq!(stats.compressed_digest, Digest::of(&input), "{label}");
        assert_eq!(stats.entries, 5, "{label}");
        // Files plus the symlink target "busybox" (7 bytes), as dockerd counts sizes.
        assert_eq!(stats.size, 6 + 5000 + 7, "{label}");
        assert_eq!(fs::read(fx.dest.join("etc/hostname")).unwrap(), b"berth\n");
        assert_eq!(
            fs::read(fx.dest.join("bin/busybox")).unwrap(),
            vec![0x7f; 5000]
        );
    }
}

#[test]
fn diff_id_covers_trailing_padding() {
    // Real tars end with two zero blocks and are padded to 10 KiB records; the diffID is
    // the digest of all of it, not just of the entries.
    let mut plain = sample_layer();
    plain.extend(vec![0u8; 8192]);
    let fx = fixture();
    let stats = fx.unpack(&gzip(&plain)).unwrap();
    assert_eq!(stats.diff_id, Digest::of(&plain));
}

#[test]
fn empty_stream_is_an_empty_layer() {
    let fx = fixture();
    let stats = fx.unpack(b"").unwrap();
    assert_eq!(stats.entries, 0);
    assert_eq!(stats.diff_id, Digest::of(b""));
    assert_eq!(fs::read_dir(&fx.dest).unwrap().count(), 0);
}

#[test]
fn whiteout_becomes_char_device_0_0() {
    require_root!();
    let fx = fixture();
    let data = Layer::new()
        .file(".wh.gone", b"")
        .dir("a/", 0o755)
        .dir("a/victim/", 0o755)
        .file("a/victim/inner", b"x")
        .file("a/.wh.victim", b"")
        .file("a/.wh..wh.plnk", b"")
        .bytes();
    let stats = fx.unpack(&data).unwrap();
    assert_eq!(stats.entries, 6);
    for p in ["gone", "a/victim"] {
        let m = meta(&fx.dest.join(p));
        assert!(m.file_type().is_char_device(), "{p} is not a char device");
        assert_eq!(m.rdev(), 0, "{p}");
        assert_eq!(m.mode() & 0o7777, 0, "{p}");
    }
    let names: Vec<_> = fs::read_dir(fx.dest.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![OsString::from("victim")],
        "aufs metadata was written"
    );
    assert!(!fx.dest.join(".wh.gone").exists());
}

#[test]
fn opaque_marker_sets_overlay_xattr() {
    require_root!();
    let fx = fixture();
    let data = Layer::new()
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", b"")
        .file("d/kept", b"x")
        // A marker for a directory the layer does not list creates it.
        .file("new/deeper/.wh..wh..opq", b"")
        .bytes();
    fx.unpack(&data).unwrap();
    for d in ["d", "new/deeper"] {
        let v = xattr::get(fx.dest.join(d), OVERLAY_OPAQUE_XATTR).unwrap();
        assert_eq!(v.as_deref(), Some(&b"y"[..]), "{d}");
    }
    assert!(!fx.dest.join("d/.wh..wh..opq").exists());
    assert_eq!(fs::read(fx.dest.join("d/kept")).unwrap(), b"x");
    assert_eq!(
        xattr::get(fx.dest.join("new"), OVERLAY_OPAQUE_XATTR).unwrap(),
        None
    );
}

#[test]
fn whiteouts_can_be_kept_as_files() {
    let fx = fixture();
    let data = Layer::new().file(".wh.gone", b"").bytes();
    let opts = UnpackOptions {
        overlay_whiteouts: false,
        ..UnpackOptions::default()
    };
    unpack_layer(&data[..], &fx.dest, &opts).unwrap();
    assert!(meta(&fx.dest.join(".wh.gone")).file_type().is_file());
}

#[test]
fn hardlinks_share_the_inode() {
    let fx = fixture();
    let data = Layer::new()
        .file("bin/busybox", b"elf")
        .hardlink("bin/ls", "bin/busybox")
        .hardlink("bin/cat", "/bin/busybox")
        .hardlink("bin/echo", "./bin//busybox")
        .hardlink("bin/busybox", "bin/busybox")
        .bytes();
    fx.unpack(&data).unwrap();
    let ino = meta(&fx.dest.join("bin/busybox")).ino();
    for name in ["bin/ls", "bin/cat", "bin/echo"] {
        assert_eq!(meta(&fx.dest.join(name)).ino(), ino, "{name}");
    }
    assert_eq!(meta(&fx.dest.join("bin/busybox")).nlink(), 4);
}

#[test]
fn symlink_targets_are_kept_verbatim() {
    let fx = fixture();
    let targets = [
        "/etc/passwd",
        "../../../x",
        "a//b/./c",
        "dangling",
        "/",
        "..",
    ];
    let mut layer = Layer::new();
    for (i, t) in targets.iter().enumerate() {
        layer.symlink(&format!("links/l{i}"), t);
    }
    fx.unpack(&layer.bytes()).unwrap();
    for (i, t) in targets.iter().enumerate() {
        let p = fx.dest.join(format!("links/l{i}"));
        assert!(meta(&p).file_type().is_symlink());
        assert_eq!(fs::read_link(&p).unwrap(), Path::new(t));
    }
    fx.assert_outside_untouched(&[]);
}

#[test]
fn device_nodes_and_fifos() {
    require_root!();
    let fx = fixture();
    let data = Layer::new()
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("dev/loop0", EntryType::Block, 7, 0, 0o660)
        .node("run/fifo", EntryType::Fifo, 0, 0, 0o600)
        .bytes();
    fx.unpack(&data).unwrap();
    let null = meta(&fx.dest.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let lp = meta(&fx.dest.join("dev/loop0"));
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), stat::makedev(7, 0));
    assert_eq!(lp.mode() & 0o7777, 0o660);
    let fifo = meta(&fx.dest.join("run/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o600);
}

#[test]
fn setuid_and_ownership_are_preserved() {
    require_root!();
    let fx = fixture();
    let data = Layer::new()
        .file_with("bin/su", b"elf", 0o4755, 1000, 1001, MTIME)
        .file_with("bin/wall", b"elf", 0o2755, 0, 5, MTIME)
        .dir("tmp/", 0o1777)
        .symlink("bin/link", "su")
        .bytes();
    fx.unpack(&data).unwrap();
    let su = meta(&fx.dest.join("bin/su"));
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!((su.uid(), su.gid()), (1000, 1001));
    let wall = meta(&fx.dest.join("bin/wall"));
    assert_eq!(wall.mode() & 0o7777, 0o2755);
    assert_eq!(wall.gid(), 5);
    assert_eq!(meta(&fx.dest.join("tmp")).mode() & 0o7777, 0o1777);
    // Implied parent directories get 0755.
    assert_eq!(meta(&fx.dest.join("bin")).mode() & 0o7777, 0o755);
}

#[test]
fn large_ids_from_pax_records() {
    require_root!();
    let fx = fixture();
    let data = Layer::new()
        .pax(&[("uid", b"3000000"), ("gid", b"3000001")])
        .file("f", b"x")
        .bytes();
    fx.unpack(&data).unwrap();
    let m = meta(&fx.dest.join("f"));
    assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
}

#[test]
fn ownership_can_be_left_alone() {
    let fx = fixture();
    let data = Layer::new()
        .file_with("f", b"x", 0o640, 4242, 4242, MTIME)
        .bytes();
    let opts = UnpackOptions {
        preserve_ownership: false,
        ..UnpackOptions::default()
    };
    unpack_layer(&data[..], &fx.dest, &opts).unwrap();
    let m = meta(&fx.dest.join("f"));
    assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(m.mode() & 0o7777, 0o640);
}

#[test]
fn xattrs_are_preserved() {
    require_root!();
    // cap_net_raw+ep as a VFS_CAP_REVISION_2 blob: magic|effective, then permitted and
    // inheritable words for capabilities 0-31 and 32-63.
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    let fx = fixture();
    let data = Layer::new()
        .pax(&[
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.trusted.berth", b"\x00binary\xff"),
        ])
        .file_with("bin/ping", b"elf", 0o755, 1000, 1000, MTIME)
        .pax(&[("SCHILY.xattr.trusted.dir", b"d")])
        .dir("d/", 0o755)
        .bytes();
    fx.unpack(&data).unwrap();
    let ping = fx.dest.join("bin/ping");
    // Set after chown, which would have cleared it.
    assert_eq!(
        xattr::get(&ping, "security.capability").unwrap(),
        Some(cap.clone())
    );
    assert_eq!(meta(&ping).uid(), 1000);
    assert_eq!(
        xattr::get(&ping, "trusted.berth").unwrap().as_deref(),
        Some(&b"\x00binary\xff"[..])
    );
    assert_eq!(
        xattr::get(fx.dest.join("d"), "trusted.dir")
            .unwrap()
            .as_deref(),
        Some(&b"d"[..])
    );
}

#[test]
fn mtimes_are_restored_directories_last() {
    let fx = fixture();
    let data = Layer::new()
        .dir_with("d/", 0o755, 1_000_000_000)
        .file_with("d/f", b"x", 0o644, 0, 0, 1_500_000_000)
        .dir_with("d/sub/", 0o755, 1_100_000_000)
        .file("d/sub/g", b"y")
        .symlink("d/l", "f")
        .pax(&[("mtime", b"1234567890.5")])
        .file("precise", b"z")
        .bytes();
    fx.unpack(&data).unwrap();
    assert_eq!(meta(&fx.dest.join("d")).mtime(), 1_000_000_000);
    assert_eq!(meta(&fx.dest.join("d/sub")).mtime(), 1_100_000_000);
    assert_eq!(meta(&fx.dest.join("d/f")).mtime(), 1_500_000_000);
    assert_eq!(meta(&fx.dest.join("d/l")).mtime(), MTIME as i64);
    let precise = meta(&fx.dest.join("precise"));
    assert_eq!(
        (precise.mtime(), precise.mtime_nsec()),
        (1_234_567_890, 500_000_000)
    );
}

#[test]
fn names_are_cleaned_into_the_layer() {
    let fx = fixture();
    let data = Layer::new()
        .dir("./", 0o711)
        .file("/etc/abs", b"a")
        .file("./rel//x/./y", b"b")
        .file("", b"ignored")
        .bytes();
    let stats = fx.unpack(&data).unwrap();
    assert_eq!(stats.entries, 4);
    assert_eq!(fs::read(fx.dest.join("etc/abs")).unwrap(), b"a");
    assert_eq!(fs::read(fx.dest.join("rel/x/y")).unwrap(), b"b");
    assert_eq!(meta(&fx.dest).mode() & 0o7777, 0o711);
    assert_eq!(meta(&fx.dest).mtime(), MTIME as i64);
    fx.assert_outside_untouched(&[]);
}

#[test]
fn repeated_directory_keeps_children_and_takes_new_mode() {
    let fx = fixture();
    let data = Layer::new()
        .dir("d/", 0o755)
        .file("d/f", b"x")
        .dir("d/", 0o700)
        // A file replacing a directory removes the whole tree.
        .dir("gone/", 0o755)
        .file("gone/child", b"x")
        .file("gone", b"now a file")
        .bytes();
    fx.unpack(&data).unwrap();
    assert_eq!(fs::read(fx.dest.join("d/f")).unwrap(), b"x");
    assert_eq!(meta(&fx.dest.join("d")).mode() & 0o7777, 0o700);
    assert_eq!(fs::read(fx.dest.join("gone")).unwrap(), b"now a file");
}

#[test]
fn legacy_and_long_names() {
    let fx = fixture();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let mut layer = Layer::new();
    // Type '\0' with a trailing slash is a directory in pre-POSIX archives.
    let mut h = header(EntryType::Regular, b"olddir/", 0o755, 0);
    h.as_old_mut().linkflag = [0];
    layer.push(h, &[]);
    // GNU long name records for names over 100 bytes; uid, gid and mtime left empty (all
    // NUL), which Go's tar reads as 0.
    let mut h = Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(4);
    layer.b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    fx.unpack(&layer.bytes()).unwrap();
    assert!(meta(&fx.dest.join("olddir")).is_dir());
    assert_eq!(fs::read(fx.dest.join(&long)).unwrap(), b"long");
    assert_eq!(meta(&fx.dest.join(&long)).mtime(), 0);
}

#[test]
fn fresh_dir_is_published_whole() {
    let fx = fixture();
    let stats =
        unpack_layer_into_fresh_dir(&sample_layer()[..], &fx.fresh, &UnpackOptions::default())
            .unwrap();
    assert_eq!(stats.entries, 5);
    assert_eq!(fs::read(fx.fresh.join("etc/hostname")).unwrap(), b"berth\n");
    fx.assert_outside_untouched(&["fresh"]);
    assert_eq!(cleanup_partial_unpacks(&fx.outer).unwrap(), 0);
}

#[test]
fn partial_unpacks_are_cleaned_up() {
    let fx = fixture();
    let stale = fx.outer.join("abc.tmp-123-4");
    fs::create_dir_all(stale.join("deep/dir")).unwrap();
    fs::write(stale.join("deep/dir/f"), b"x").unwrap();
    fs::write(fx.outer.join("file.tmp-1-2"), b"x").unwrap();
    assert_eq!(cleanup_partial_unpacks(&fx.outer).unwrap(), 2);
    fx.assert_outside_untouched(&[]);
}

#[test]
fn partial_unpack_names() {
    for (name, want) in [
        ("abc.tmp-1-2", true),
        ("sha.x.tmp-99999-0", true),
        (".tmp-1-2", false),
        ("abc.tmp-", false),
        ("abc.tmp-1", false),
        ("abc.tmp-1-", false),
        ("abc.tmp-1-2-3", false),
        ("abc.tmp-a-2", false),
        ("abc", false),
    ] {
        assert_eq!(is_partial_unpack_name(name.as_bytes()), want, "{name}");
    }
}

#[test]
fn clean_components_table() {
    let cases: &[(&str, Option<&[&str]>)] = &[
        ("..", None),
        ("../x", None),
        ("a/..", None),
        ("/a/../b", None),
        ("a/b/../../..", None),
        ("", Some(&[])),
        ("/", Some(&[])),
        ("./", Some(&[])),
        (".//./", Some(&[])),
        ("a", Some(&["a"])),
        ("/a/b/", Some(&["a", "b"])),
        ("./a//./b", Some(&["a", "b"])),
        ("...", Some(&["..."])),
        ("..a/b..", Some(&["..a", "b.."])),
    ];
    for (input, want) in cases {
        let got = clean_components(input.as_bytes());
        let want: Option<Vec<&OsStr>> = want.map(|w| w.iter().map(OsStr::new).collect());
        assert_eq!(got, want, "{input:?}");
    }
}

#[test]
fn compression_detection_table() {
    let cases: &[(&[u8], Option<Compression>)] = &[
        (b"", Some(Compression::None)),
        (b"\x1f", Some(Compression::None)),
        (b"\x1f\x8b\x08", Some(Compression::Gzip)),
        (b"\x28\xb5\x2f\xfd\x00", Some(Compression::Zstd)),
        (b"\x28\xb5\x2f", Some(Compression::None)),
        (b"etc/\0\0", Some(Compression::None)),
        (b"\xfd7zXZ\x00", None),
        (b"BZh91", None),
    ];
    for (magic, want) in cases {
        assert_eq!(Compression::detect(magic).ok(), *want, "{magic:?}");
    }
}

#[test]
fn pax_time_parsing() {
    let cases: &[(&str, Option<(i64, i64)>)] = &[
        ("1", Some((1, 0))),
        ("1234567890.5", Some((1_234_567_890, 500_000_000))),
        ("10.123456789123", Some((10, 123_456_789))),
        ("10.", Some((10, 0))),
        ("-1.5", None),
        ("", None),
        ("1e9", None),
        (".5", None),
    ];
    for (input, want) in cases {
        let got = parse_pax_time(input.as_bytes()).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(got, *want, "{input:?}");
    }
}
