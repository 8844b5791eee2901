//! Images for Berth: content, not containers.
//!
//! This crate owns the streaming digest hashers ([`digest`]; the `Digest` type and image
//! references with their Docker normalisation live in `berth-api-types` and are re-exported
//! here as [`Digest`], [`reference`](mod@reference) and [`Reference`]), the crash-safe content-addressed blob store ([`blobs`]),
//! safe layer extraction into overlayfs-ready directories ([`unpack`]), the image and tag
//! store ([`store`]), save/load/import ([`archive`]) and pull/push through the registry
//! client ([`registry`]), with the gzip encoder pushes compress layers with ([`gzip`]); it
//! never knows about containers beyond handing out the layer directories a rootfs is made
//! of.
//!
//! Nothing here serves HTTP (the registry module is only a client) or touches daemon
//! state; raw syscalls that need `unsafe` live in `berth-sys`, so this crate forbids
//! `unsafe` outright.

#![forbid(unsafe_code)]

pub mod archive;
pub mod blobs;
pub mod changes;
pub mod chunks;
pub mod config;
pub mod digest;
pub mod gzip;
mod hasher;
pub mod registry;
pub mod store;
pub mod tarmeta;
pub mod tarsplit;
pub mod unpack;

pub use berth_api_types::reference;
pub use berth_api_types::reference::{Reference, ReferenceError};
pub use blobs::{BlobError, BlobStore};
pub use digest::{Digest, DigestError, DigestReader, DigestWriter};
pub use unpack::{
    cleanup_partial_unpacks, unpack_layer, unpack_layer_into_fresh_dir, Compression, UnpackError,
    UnpackOptions, UnpackStats,
};
