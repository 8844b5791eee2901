//! The Kubernetes Container Runtime Interface (CRI v1, `runtime.v1`) served over gRPC on
//! its own unix socket, translating each call to engine calls as `berth-server` does for
//! the Docker API. It holds no state of its own.
//!
//! Served: the runtime's `Version`, `Status`, `RuntimeConfig` and `UpdateRuntimeConfig`,
//! pod sandboxes (infra containers running `berth-pause`, networked by CNI plugins, see
//! [`cni`]), their containers, `ExecSync`, `Exec`, `Attach` and `PortForward` (through
//! the streaming server, [`stream`]), `ReopenContainerLog`, stats and container events
//! ([`stats`]), and the whole `ImageService`; every other `RuntimeService` method answers
//! `Unimplemented` with its name. CRI objects are engine containers tagged by labels
//! ([`labels`]).

mod apparmor;
mod calls;
mod cni;
mod ctrs;
mod deadline;
mod error;
mod exec_sync;
mod images;
mod labels;
mod pause;
mod pods;
mod propagation;
mod runtime;
mod seccomp;
mod server;
mod stats;
mod stream;

pub use cni::CniConfig;
pub use error::{engine_status, CriError};
pub use server::CriServer;
pub use stream::{StreamError, DEFAULT_STREAM_ADDRESS};

/// The code `tonic-prost-build` generates from `proto/api.proto` (k8s.io/cri-api), committed
/// so that building needs no `protoc`; `scripts/gen-cri` regenerates it.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    include!("proto/runtime.v1.rs");
}

/// The name `Version` answers as `runtime_name`.
pub const RUNTIME_NAME: &str = "berth";
/// The CRI API version served.
pub const RUNTIME_API_VERSION: &str = "v1";
