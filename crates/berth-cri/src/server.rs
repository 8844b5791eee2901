//! The CRI socket: bound 0660 (root's group), served by tonic until shutdown, and removed
//! when the server stops or its task is dropped; beside it, the streaming server's TCP
//! listener ([`crate::stream`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_engine::Engine;
use berth_server::ListenerOptions;
use tokio_stream::wrappers::UnixListenerStream;

use crate::images::Images;
use crate::proto::image_service_server::ImageServiceServer;
use crate::proto::runtime_service_server::RuntimeServiceServer;
use crate::runtime::Runtime;
use crate::stream::StreamServer;
use crate::CriError;

/// The CRI services bound to their socket, not yet serving.
pub struct CriServer {
    cni: crate::CniConfig,
    listener: tokio::net::UnixListener,
    stream: StreamServer,
    socket: SocketFile,
}

/// Removes the socket file when dropped: on a clean stop, and when the daemon gives up
/// waiting for CRI connections to close and drops the serving task.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => tracing::info!(socket = %self.0.display(), "CRI socket removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(socket = %self.0.display(), error = %e, "cannot remove the CRI socket")
            }
        }
    }
}

impl CriServer {
    /// Binds `path` (a stale socket there is replaced; any other file is an error) and the
    /// streaming server's TCP address `stream` (loopback, port 0: one the kernel picks).
    pub fn bind(path: &Path, cni: crate::CniConfig, stream: SocketAddr) -> Result<Self, CriError> {
        let stream = StreamServer::bind(stream)?;
        let listener = berth_server::bind_unix(path, &ListenerOptions::default())?;
        tracing::info!(socket = %path.display(), "CRI v1 API listening");
        Ok(CriServer {
            cni,
            listener,
            stream,
            socket: SocketFile(path.to_path_buf()),
        })
    }

    /// Serves until `shutdown` resolves and the open connections close, then removes the
    /// socket. A failing connection is that connection's end, never the server's.
    pub async fn serve(self, engine: Arc<Engine>, shutdown: impl Future<Output = ()> + Send) {
        let CriServer {
            cni,
            listener,
            stream,
            socket,
        } = self;
        let streams = stream.streams.clone();
        let (stop_streams, streams_stopped) = tokio::sync::oneshot::channel::<()>();
        let stream_task = tokio::spawn(stream.serve(engine.clone(), async move {
            let _ = streams_stopped.await;
        }));
        let result = tonic::transport::Server::builder()
            .layer(tower_layer::layer_fn(crate::deadline::Deadlines::new))
            .add_service(RuntimeServiceServer::new(Runtime::new(
                engine.clone(),
                cni,
                streams,
            )))
            .add_service(ImageServiceServer::new(Images::new(engine)))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await;
        let _ = stop_streams.send(());
        let _ = stream_task.await;
        if let Err(e) = result {
            tracing::error!(error = %e, "CRI server stopped");
        }
        drop(socket);
    }
}
