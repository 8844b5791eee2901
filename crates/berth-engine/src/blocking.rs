//! Blocking work (file system walks, mounts, reads) off the async workers, in the span of
//! the request or operation that asked for it, so that its log lines carry the request id.

use tokio::task::JoinHandle;

/// `tokio::task::spawn_blocking` that keeps the caller's tracing span.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
