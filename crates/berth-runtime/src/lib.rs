//! The runtime driver of the engine: the pure OCI spec builder ([`spec`]) and the
//! [`Runtime`] trait with its implementation over `berth-shim` ([`ShimRuntime`]), which runs
//! containers through the embedded libcontainer or an external OCI runtime such as runc.
//!
//! This crate never runs libcontainer itself (DESIGN: berthd is multi-threaded; only the
//! single-threaded shim may fork container processes). See `berth_shim_protocol` for the
//! shim ↔ daemon contract and [`Runtime`] for who creates, reaps and cleans up what.

#![forbid(unsafe_code)]

pub mod error;
mod exit_hub;
pub mod runtime;
pub mod shim_client;
pub mod spec;

// The protocol types on the trait's surface, so that the engine names only this crate.
pub use berth_shim_protocol::{
    start_failure_exit_code, ExecProcess, ExecState, ExitRecord, ExternalRuntime, LogFormat,
    LogOptions, LogSink, State, Status, SyslogFormat, LOG_GZ_INO,
};
pub use error::{ErrorKind, RuntimeError};
pub use runtime::{AttachStreams, ContainerStart, Runtime, RuntimeFuture, Started};
pub use shim_client::ShimRuntime;
pub use spec::{build_spec, ContainerSpecInput};
