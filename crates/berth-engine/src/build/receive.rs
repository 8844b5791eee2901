//! Context reception: the request body stored (bounded) and unpacked into the build's
//! work dir, the Dockerfile and `.dockerignore` read from it.

use super::*;

/// Receives the context into `dir/context` and reads the Dockerfile and `.dockerignore`.
pub(super) async fn read_context(
    dir: &Path,
    body: BodyReader,
    opts: &BuildOptions,
) -> Result<(Dockerfile, Matcher), EngineError> {
    // The body goes to a file first (bounded), then is unpacked on a blocking thread.
    let tar_path = dir.join("context.tar");
    let mut f = tokio::fs::File::create(&tar_path)
        .await
        .map_err(EngineError::io("cannot create", &tar_path))?;
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
    let name = if opts.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.clone()
    };
    let ctx = dir.join("context");
    let (df, ignore) = crate::blocking::spawn(move || {
        let tar =
            std::fs::File::open(&tar_path).map_err(EngineError::io("cannot open", &tar_path))?;
        context::unpack(tar, &ctx)?;
        let _ = std::fs::remove_file(&tar_path);
        let data =
            context::read_in_root(&ctx, &name, berth_build::parser::MAX_DOCKERFILE_SIZE as u64)
                .map_err(|e| {
                    EngineError::InvalidArgument(format!(
                        "Cannot locate specified Dockerfile: {name}: {e}"
                    ))
                })?
                .ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "Cannot locate specified Dockerfile: {name}"
                    ))
                })?;
        let ignore = match context::read_in_root(&ctx, ".dockerignore", 1 << 20) {
            Ok(Some(d)) => Matcher::from_dockerignore(&d)
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
            _ => Matcher::new::<&str>(&[])
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?,
        };
        let df = berth_build::parse_dockerfile(&data)
            .map_err(|e| EngineError::InvalidArgument(e.client_message(&name)))?;
        Ok::<_, EngineError>((df, ignore))
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok((df, ignore))
}
