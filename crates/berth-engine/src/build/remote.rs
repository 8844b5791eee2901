//! `remote`: the build context fetched from a URL by the daemon (moby
//! `builder/remotecontext`): a tar (any compression the context accepts) or a lone
//! Dockerfile, read with a bounded size and an overall timeout; HTTPS trusts the system's
//! CA certificates. Git URLs are cloned (`git.rs`). `ADD <URL>` downloads through [`fetch`] too.

use std::time::Duration;

use super::*;

/// How long a remote context may take to download, all of it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The system's trusted roots as reqwest certificates, loaded once per process.
fn roots() -> &'static [reqwest::Certificate] {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "cannot load some system CA certificates");
        }
        found
            .certs
            .iter()
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
            .collect()
    })
}

/// Downloads `url` into `dest`, at most `limit` bytes; returns the response's
/// `Last-Modified` time when it has a readable one.
pub(super) async fn fetch(
    url: &str,
    dest: &Path,
    limit: u64,
) -> Result<Option<std::time::SystemTime>, EngineError> {
    let bad = |m: String| EngineError::InvalidArgument(m);
    let parsed =
        reqwest::Url::parse(url).map_err(|e| bad(format!("invalid remote URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "unable to prepare context: remote {url:?}: only http and https contexts are supported by this daemon"
        )));
    }
    // The first call reads the certificate files: on a blocking thread.
    let roots = crate::blocking::spawn(roots)
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let mut builder = reqwest::Client::builder();
    for c in roots {
        builder = builder.add_root_certificate(c.clone());
    }
    let client = builder
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| EngineError::Internal(format!("cannot make an HTTP client: {e}")))?;
    let mut resp = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| bad(format!("error downloading remote context {url}: {e}")))?;
    if !resp.status().is_success() {
        // moby `GetWithStatusError`.
        return Err(bad(format!(
            "error downloading remote context {url}: failed to GET {url} with status {}",
            resp.status()
        )));
    }
    let modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let mut f = tokio::fs::File::create(dest)
        .await
        .map_err(EngineError::io("cannot create", dest))?;
    let mut n: u64 = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad(format!("error downloading remote context {url}: {e}")))?
    {
        n = n.saturating_add(chunk.len() as u64);
        if n > limit {
            return Err(bad(format!(
                "error downloading remote context {url}: larger than {limit} bytes"
            )));
        }
        tokio::io::AsyncWriteExt::write_all(&mut f, &chunk)
            .await
            .map_err(EngineError::io("cannot write", dest))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut f)
        .await
        .map_err(EngineError::io("cannot write", dest))?;
    Ok(modified)
}
