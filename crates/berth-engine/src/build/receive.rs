//! Context reception: the request body (or the `remote` URL's content) stored (bounded),
//! a bzip2 or xz context decompressed (bounded), unpacked into the build's work dir, or a
//! git `remote` cloned there; the Dockerfile and `.dockerignore` read from it. gzip and
//! zstd are read by the unpacker.

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
                format!(
                    "the decompressed build context is larger than {} bytes",
                    self.limit
                ),
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

/// Decompresses a bzip2 or xz context at `path` into `out` (at most `limit` bytes);
/// `false` when it is neither.
fn decompress_outer(path: &Path, out: &Path, limit: u64) -> Result<bool, EngineError> {
    let mut f = std::fs::File::open(path).map_err(EngineError::io("cannot open", path))?;
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match f.read(magic.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EngineError::io("cannot read", path)(e)),
        }
    }
    let Some(kind) = outer(magic.get(..n).unwrap_or_default()) else {
        return Ok(false);
    };
    let f = std::fs::File::open(path).map_err(EngineError::io("cannot open", path))?;
    let w = std::fs::File::create(out).map_err(EngineError::io("cannot create", out))?;
    let mut w = Bounded {
        inner: io::BufWriter::new(w),
        left: limit,
        limit,
    };
    let bad =
        |e: String| EngineError::InvalidArgument(format!("failed to read the build context: {e}"));
    match kind {
        Outer::Bzip2 => {
            let mut r = bzip2::read::MultiBzDecoder::new(io::BufReader::new(f));
            io::copy(&mut r, &mut w).map_err(|e| bad(e.to_string()))?;
        }
        Outer::Xz => {
            let mut r = io::BufReader::new(f);
            lzma_rs::xz_decompress(&mut r, &mut w).map_err(|e| bad(e.to_string()))?;
        }
    }
    w.flush().map_err(|e| bad(e.to_string()))?;
    Ok(true)
}

/// Receives the context into `dir/context` and reads the Dockerfile and `.dockerignore`.
pub(super) async fn read_context(
    dir: &Path,
    body: BodyReader,
    opts: &BuildOptions,
) -> Result<(Dockerfile, Matcher), EngineError> {
    // The body goes to a file first (bounded), then is unpacked on a blocking thread.
    let tar_path = dir.join("context.tar");
    let name = if opts.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.clone()
    };
    let ctx = dir.join("context");
    if opts.remote.is_empty() {
        receive_body(&tar_path, body).await?;
    } else if git::is_git_url(&opts.remote) {
        // A git repository: cloned into the work dir, its checkout the context.
        git::clone_into(&opts.remote, dir, context::MAX_CONTEXT).await?;
        return crate::blocking::spawn(move || read_build_files(&ctx, &name))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
    } else {
        remote::fetch(&opts.remote, &tar_path, context::MAX_CONTEXT).await?;
    }
    let plain = dir.join("context.decompressed.tar");
    let remote = !opts.remote.is_empty();
    let (df, ignore) = crate::blocking::spawn(move || {
        let mut head = Vec::new();
        std::fs::File::open(&tar_path)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .map_err(EngineError::io("cannot read", &tar_path))?;
        if remote && !is_archive(&head) {
            // A remote Dockerfile: the context is that file alone (moby `downloadRemote`).
            let target = ctx.join(berth_build::dockerignore::clean(&name).trim_start_matches('/'));
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(EngineError::io("cannot create", p))?;
            }
            std::fs::rename(&tar_path, &target).map_err(EngineError::io("cannot move", &target))?;
        } else {
            let src = if decompress_outer(&tar_path, &plain, context::MAX_CONTEXT)? {
                let _ = std::fs::remove_file(&tar_path);
                plain.clone()
            } else {
                tar_path.clone()
            };
            let tar = std::fs::File::open(&src).map_err(EngineError::io("cannot open", &src))?;
            context::unpack(tar, &ctx)?;
            let _ = std::fs::remove_file(&src);
        }
        read_build_files(&ctx, &name)
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok((df, ignore))
}

/// Stores the request body at `tar_path`, at most [`context::MAX_CONTEXT`] bytes.
async fn receive_body(tar_path: &Path, body: BodyReader) -> Result<(), EngineError> {
    let mut f = tokio::fs::File::create(tar_path)
        .await
        .map_err(EngineError::io("cannot create", tar_path))?;
    let mut limited = tokio::io::AsyncReadExt::take(body, context::MAX_CONTEXT + 1);
    let n = tokio::io::copy(&mut limited, &mut f).await.map_err(|e| {
        EngineError::InvalidArgument(format!("failed to read the build context: {e}"))
    })?;
    if n > context::MAX_CONTEXT {
        return Err(EngineError::InvalidArgument(format!(
            "the build context is larger than {} bytes",
            context::MAX_CONTEXT
        )));
    }
    drop(f);
    Ok(())
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

    fn tar_of(data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "Dockerfile", data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn bzip2_and_xz_decompress_within_the_bound() {
        let d = tempfile::tempdir().unwrap();
        let tar = tar_of(&vec![b'#'; 100_000]);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&tar).unwrap();
        let bz = bz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut io::Cursor::new(&tar), &mut xz).unwrap();
        for (name, data) in [("c.bz2", bz), ("c.xz", xz)] {
            let src = d.path().join(name);
            std::fs::write(&src, &data).unwrap();
            let out = d.path().join("out.tar");
            assert!(decompress_outer(&src, &out, 1 << 20).unwrap(), "{name}");
            assert_eq!(std::fs::read(&out).unwrap(), tar, "{name}");
            // A context that inflates past the bound stops there with an error.
            let e = decompress_outer(&src, &out, 50_000)
                .unwrap_err()
                .to_string();
            assert!(e.contains("larger than 50000 bytes"), "{name}: {e}");
        }
        let plain = d.path().join("plain.tar");
        std::fs::write(&plain, &tar).unwrap();
        assert!(!decompress_outer(&plain, &d.path().join("x"), 1 << 20).unwrap());
        assert!(is_archive(&tar) && !is_archive(b"FROM busybox\n"));
    }
}
