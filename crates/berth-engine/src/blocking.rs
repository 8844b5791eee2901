//! Blocking work (file system walks, mounts, reads) off the async workers, in the span of
//! the request or operation that asked for it, so that its log lines carry the request id.
//! In unit tests, the fakes check with [`assert_blocking`] that the engine called them
//! here and not on an async worker.

use tokio::task::JoinHandle;

#[cfg(test)]
thread_local! {
    /// Set on the threads that run [`spawn`]'s closures.
    static ON_BLOCKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `tokio::task::spawn_blocking` that keeps the caller's tracing span.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        #[cfg(test)]
        ON_BLOCKING.with(|b| b.set(true));
        span.in_scope(f)
    })
}

/// Panics unless called from a closure run by [`spawn`] (tests only): `what` blocks, and
/// the engine must not call it on an async worker.
#[cfg(test)]
pub(crate) fn assert_blocking(what: &str) {
    assert!(
        ON_BLOCKING.with(std::cell::Cell::get),
        "{what} called on an async worker, not through blocking::spawn"
    );
}

/// For a unit test that calls the engine's blocking layer directly (as the engine's
/// blocking threads do): [`assert_blocking`] passes on this thread until the guard goes.
#[cfg(test)]
pub(crate) fn as_blocking_thread() -> impl Drop {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            ON_BLOCKING.with(|b| b.set(false));
        }
    }
    ON_BLOCKING.with(|b| b.set(true));
    Guard
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn only_spawned_closures_count_as_blocking() {
        super::spawn(|| super::assert_blocking("x")).await.unwrap();
        let on_worker = std::panic::catch_unwind(|| super::assert_blocking("x"));
        assert!(on_worker.is_err());
        let guard = super::as_blocking_thread();
        super::assert_blocking("x");
        drop(guard);
        assert!(std::panic::catch_unwind(|| super::assert_blocking("x")).is_err());
    }
}
