//! Response bodies streamed from a channel the engine fills: chunks are sent as they
//! come, and the body ends when the sender is dropped.

use axum::body::{Body, Bytes};
use tokio::sync::mpsc::Receiver;

/// A body of the chunks `rx` receives.
pub(super) fn receiver_body(rx: Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Body::from_stream(stream)
}

/// A body of the chunks `rx` receives, cut short by the first error.
pub(super) fn try_receiver_body(rx: Receiver<std::io::Result<Bytes>>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}
