//! How long a registry may stay silent ([`SILENCE_TIMEOUT`]) and [`within`], which ends a
//! request or a read that waits longer with dockerd's words; shared by `auth` (token
//! requests), `transport` (the `/v2/` probe), `client` and `pull`, so none of them imports
//! another for it.

use std::time::Duration;

use super::RegistryError;

/// A registry silent for this long (no answer, or no byte mid-download) counts as gone;
/// a download then resumes. Not reqwest's `read_timeout`: that one also runs while a
/// request body uploads, which can take longer.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `fut` unless the registry stays silent longer than [`SILENCE_TIMEOUT`].
pub(crate) async fn within<T>(
    fut: impl std::future::Future<Output = T>,
    method: &str,
    url: &str,
) -> Result<T, RegistryError> {
    tokio::time::timeout(SILENCE_TIMEOUT, fut)
        .await
        .map_err(|_| {
            RegistryError::Transport(format!(
                "{} \"{}\": no answer from the registry for {} s",
                capitalized(method),
                strip_query(url),
                SILENCE_TIMEOUT.as_secs()
            ))
        })
}

pub(super) fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

pub(super) fn capitalized(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}
