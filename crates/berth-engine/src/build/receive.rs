//! Context reception: the request body streamed straight into the unpacker on a blocking
//! thread while it arrives (no copy of the tar on disk: the request's task hands it over
//! in 1 MiB chunks, `crate::pump`), or the `remote` URL's content fetched to a file and
//! unpacked from there, or a git `remote` cloned; the Dockerfile and `.dockerignore` read
//! from the result. The unpacker reads plain, gzip and zstd tars; bzip2 is decompressed
//! on the way, xz (whose decoder only writes) spooled to a file and decompressed first.
//! Bounded: at most [`context::MAX_CONTEXT`] bytes of body, and as much decompressed.

use std::io::{self, Read, Write};

use super::*;

/// The compressions the unpacker does not read itself.
#[derive(Debug, PartialEq, Eq)]
enum Outer {
    Bzip2,
    Xz,
}

fn outer(magic: &[u8]) -> Option<Outer> {
    if magic.starts_with(b"BZh") {
        Some(Outer::Bzip2)
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Outer::Xz)
    } else {
        None
    }
}

/// docker's `IsArchive`: a compressed stream or a tar header.
fn is_archive(magic: &[u8]) -> bool {
    outer(magic).is_some()
        || magic.starts_with(&[0x1f, 0x8b])
        || magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || magic.get(257..262) == Some(b"ustar".as_slice())
}

/// The error of a context past its bound.
fn too_large(what: &str, limit: u64) -> String {
    format!("{what} is larger than {limit} bytes")
}

/// A writer that refuses to go past `left` bytes (a decompression bomb stops there).
struct Bounded<W> {
    inner: W,
    left: u64,
    limit: u64,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                too_large("the decompressed build context", self.limit),
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails once more than `limit` bytes come, and remembers that it did (the
/// unpacker wraps what it reads in errors of its own).
struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
    what: &'static str,
    exceeded: bool,
}

impl<R: Read> Limited<R> {
    fn new(inner: R, limit: u64, what: &'static str) -> Self {
        Limited {
            inner,
            left: limit,
            limit,
            what,
            exceeded: false,
        }
    }

    /// The error to answer with when the bound was passed.
    fn check(&self) -> Result<(), EngineError> {
        if self.exceeded {
            return Err(EngineError::InvalidArgument(too_large(
                self.what, self.limit,
            )));
        }
        Ok(())
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the bound: one more byte means too large, none the end.
            let mut one = [0u8; 1];
            if self.inner.read(&mut one)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                too_large(self.what, self.limit),
            ));
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(buf.get_mut(..room).unwrap_or_default())?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end of `r`.
fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn unreadable(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(format!("failed to read the build context: {e}"))
}

/// Decompresses the xz stream at `path` into `out`, at most `limit` bytes.
fn decompress_xz(path: &Path, out: &Path, limit: u64) -> Result<(), EngineError> {
    let f = std::fs::File::open(path).map_err(EngineError::io("cannot open", path))?;
    let w = std::fs::File::create(out).map_err(EngineError::io("cannot create", out))?;
    let mut w = Bounded {
        inner: io::BufWriter::with_capacity(1 << 20, w),
        left: limit,
        limit,
    };
    lzma_rs::xz_decompress(&mut io::BufReader::new(f), &mut w).map_err(unreadable)?;
    w.flush().map_err(unreadable)
}

/// The bounds of a context: of what is read, and of what a bzip2 or xz stream inflates to.
#[derive(Debug, Clone, Copy)]
struct Limits {
    raw: u64,
    inflated: u64,
}

/// [`context::MAX_CONTEXT`] for both.
const LIMITS: Limits = Limits {
    raw: context::MAX_CONTEXT,
    inflated: context::MAX_CONTEXT,
};

/// Unpacks the context tar read from `r` (plain, gzip, zstd, bzip2 or xz) into the empty
/// directory `ctx`, within `limits`; an xz one is spooled in `work` first.
fn unpack_stream(r: impl Read, work: &Path, ctx: &Path, limits: Limits) -> Result<(), EngineError> {
    let limit = limits.inflated;
    let mut raw = Limited::new(r, limits.raw, "the build context");
    let mut magic = [0u8; 6];
    let n = read_head(&mut raw, &mut magic).map_err(unreadable)?;
    let head = magic.get(..n).unwrap_or_default();
    let res = match outer(head) {
        None => context::unpack(io::Cursor::new(head).chain(&mut raw), ctx),
        Some(Outer::Bzip2) => {
            let src = io::BufReader::new(io::Cursor::new(head).chain(&mut raw));
            let mut plain = Limited::new(
                bzip2::read::MultiBzDecoder::new(src),
                limit,
                "the decompressed build context",
            );
            let res = context::unpack(&mut plain, ctx);
            plain.check()?;
            res
        }
        Some(Outer::Xz) => {
            // lzma-rs decompresses into a writer only.
            let spool = work.join("context.tar.xz");
            let plain = work.join("context.decompressed.tar");
            let mut f =
                std::fs::File::create(&spool).map_err(EngineError::io("cannot create", &spool))?;
            let copied = io::copy(&mut io::Cursor::new(head).chain(&mut raw), &mut f);
            drop(f);
            raw.check()?;
            copied.map_err(unreadable)?;
            decompress_xz(&spool, &plain, limit)?;
            let _ = std::fs::remove_file(&spool);
            let tar =
                std::fs::File::open(&plain).map_err(EngineError::io("cannot open", &plain))?;
            let res = context::unpack(tar, ctx);
            let _ = std::fs::remove_file(&plain);
            res
        }
    };
    raw.check()?;
    res
}

/// Receives the context into `dir/context` and reads the Dockerfile and `.dockerignore`.
pub(super) async fn read_context(
    dir: &Path,
    body: BodyReader,
    opts: &BuildOptions,
) -> Result<(Dockerfile, Matcher), EngineError> {
    let name = if opts.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.clone()
    };
    let ctx = dir.join("context");
    if opts.remote.is_empty() {
        return receive_body(dir, body, name).await;
    }
    if git::is_git_url(&opts.remote) {
        // A git repository: cloned into the work dir, its checkout the context.
        git::clone_into(&opts.remote, dir, context::MAX_CONTEXT).await?;
        return crate::blocking::spawn(move || read_build_files(&ctx, &name))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
    }
    let tar_path = dir.join("context.tar");
    remote::fetch(&opts.remote, &tar_path, context::MAX_CONTEXT).await?;
    let work = dir.to_path_buf();
    crate::blocking::spawn(move || {
        let mut head = Vec::new();
        std::fs::File::open(&tar_path)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .map_err(EngineError::io("cannot read", &tar_path))?;
        if !is_archive(&head) {
            // A remote Dockerfile: the context is that file alone (moby `downloadRemote`).
            let target = ctx.join(berth_build::dockerignore::clean(&name).trim_start_matches('/'));
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(EngineError::io("cannot create", p))?;
            }
            std::fs::rename(&tar_path, &target).map_err(EngineError::io("cannot move", &target))?;
        } else {
            let tar = std::fs::File::open(&tar_path)
                .map_err(EngineError::io("cannot open", &tar_path))?;
            unpack_stream(tar, &work, &ctx, LIMITS)?;
            let _ = std::fs::remove_file(&tar_path);
        }
        read_build_files(&ctx, &name)
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))?
}

/// Unpacks the request body into `dir/context` while it arrives, then reads the build
/// files. A context refused part way has the rest of its body drained (bounded) so that
/// the client reads the answer.
async fn receive_body(
    dir: &Path,
    mut body: BodyReader,
    name: String,
) -> Result<(Dockerfile, Matcher), EngineError> {
    let (pump, reader) = crate::pump::channel();
    let work = dir.to_path_buf();
    let worker = crate::blocking::spawn(move || {
        let ctx = work.join("context");
        // The reader goes with this call: the pump stops when the unpacker does.
        unpack_stream(reader, &work, &ctx, LIMITS)?;
        read_build_files(&ctx, &name)
    });
    let pumped = pump.run(&mut body).await;
    let res = worker
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    match (res, pumped) {
        (_, Err(e)) => Err(unreadable(e)),
        (Err(e), Ok(())) => {
            crate::pump::drain(body).await;
            Err(e)
        }
        (Ok(files), Ok(())) => Ok(files),
    }
}

/// Reads the Dockerfile `name` and `.dockerignore` from the unpacked context `ctx`.
fn read_build_files(ctx: &Path, name: &str) -> Result<(Dockerfile, Matcher), EngineError> {
    let data = context::read_in_root(ctx, name, berth_build::parser::MAX_DOCKERFILE_SIZE as u64)
        .map_err(|e| {
            EngineError::InvalidArgument(format!("Cannot locate specified Dockerfile: {name}: {e}"))
        })?
        .ok_or_else(|| {
            EngineError::InvalidArgument(format!("Cannot locate specified Dockerfile: {name}"))
        })?;
    let ignore = match context::read_in_root(ctx, ".dockerignore", 1 << 20) {
        Ok(Some(d)) => Matcher::from_dockerignore(&d)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
        _ => Matcher::new::<&str>(&[]).map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
    };
    let df = berth_build::parse_dockerfile(&data)
        .map_err(|e| EngineError::InvalidArgument(e.client_message(name)))?;
    Ok((df, ignore))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn compressed(tar: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(tar).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut io::Cursor::new(tar), &mut xz).unwrap();
        vec![
            ("plain", tar.to_vec()),
            ("gzip", gz.finish().unwrap()),
            ("bzip2", bz.finish().unwrap()),
            ("xz", xz),
        ]
    }

    #[test]
    fn every_compression_unpacks_within_the_bounds() {
        let big = vec![b'#'; 100_000];
        let tar = tar_of(&[("Dockerfile", b"FROM scratch\n"), ("big", &big)]);
        for (name, data) in compressed(&tar) {
            let d = tempfile::tempdir().unwrap();
            let ctx = d.path().join("context");
            std::fs::create_dir(&ctx).unwrap();
            let limits = Limits {
                raw: 1 << 20,
                inflated: 1 << 20,
            };
            unpack_stream(io::Cursor::new(&data), d.path(), &ctx, limits).unwrap();
            assert_eq!(std::fs::read(ctx.join("big")).unwrap(), big, "{name}");
            // Nothing but the context is left in the work dir (no spooled stream).
            let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "{name}");
            // A context that inflates past the bound stops there with an error.
            if matches!(name, "bzip2" | "xz") {
                let d = tempfile::tempdir().unwrap();
                let limits = Limits {
                    raw: 1 << 20,
                    inflated: 50_000,
                };
                let e = unpack_stream(io::Cursor::new(&data), d.path(), d.path(), limits)
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains("the decompressed build context is larger than 50000 bytes"),
                    "{name}: {e}"
                );
            }
        }
        // A body past the bound: the bound's own words, whatever the unpacker was doing.
        let d = tempfile::tempdir().unwrap();
        let limits = Limits {
            raw: 1000,
            inflated: 1 << 20,
        };
        let e = unpack_stream(io::Cursor::new(&tar), d.path(), d.path(), limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the build context is larger than 1000 bytes"),
            "{e}"
        );
        assert!(is_archive(&tar) && !is_archive(b"FROM busybox\n"));
    }

    #[test]
    fn a_hostile_context_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("context");
        std::fs::create_dir(&ctx).unwrap();
        // A symlink out, then a file through it: refused, nothing written outside.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "out", d.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "out/escaped", &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let e = unpack_stream(io::Cursor::new(&tar), d.path(), &ctx, LIMITS).unwrap_err();
        assert!(e.to_string().contains("escapes through symlink"), "{e}");
        assert!(!d.path().join("escaped").exists());
    }

    /// A body that sends `data` and then stays open until `release` fires.
    fn held_body(data: Vec<u8>) -> (BodyReader, tokio::sync::oneshot::Sender<()>) {
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (mut w, r) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            w.write_all(&data).await.unwrap();
            let _ = held.await;
        });
        (Box::new(r), release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_body_is_unpacked_while_it_arrives() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("context");
        std::fs::create_dir(&ctx).unwrap();
        // Two 1 MiB files: the first is in the context long before the body ends (the
        // tar's end-of-archive blocks are not sent until released).
        let blob = vec![7u8; 1 << 20];
        let mut tar = tar_of(&[
            ("Dockerfile", b"FROM scratch\n"),
            ("a", &blob),
            ("b", &blob),
        ]);
        tar.truncate(tar.len() - 1024);
        let (body, release) = held_body(tar);
        let opts = BuildOptions::default();
        let dir = d.path().to_path_buf();
        let task = tokio::spawn(async move { read_context(&dir, body, &opts).await.map(drop) });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::metadata(ctx.join("a")).map_or(true, |m| m.len() < blob.len() as u64) {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was unpacked before the body ended"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Never stored whole on the way.
        assert!(!d.path().join("context.tar").exists());
        assert!(!task.is_finished());
        drop(release);
        // The body ended without its end-of-archive blocks, as Go's reader takes it.
        task.await.unwrap().unwrap();
        assert_eq!(std::fs::read(ctx.join("b")).unwrap(), blob);
    }
}
