//! Images for Berth: content, not containers.
//!
//! This crate owns image references and their Docker normalisation ([`reference`]),
//! content digests ([`digest`]), the crash-safe content-addressed blob store ([`blobs`]) and
//! safe layer extraction into overlayfs-ready directories ([`unpack`]). Later it grows the
//! image and tag stores, manifests, the registry client and save/load; it never knows about
//! containers beyond handing out the layer directories a rootfs is made of.
//!
//! Nothing here speaks HTTP or touches daemon state; raw syscalls that need `unsafe` live in
//! `berth-sys`, so this crate forbids `unsafe` outright.

#![forbid(unsafe_code)]

pub mod archive;
pub mod blobs;
pub mod changes;
pub mod config;
pub mod digest;
pub mod reference;
pub mod store;
pub mod unpack;

pub use blobs::{BlobError, BlobStore};
pub use digest::{Digest, DigestError, DigestReader, DigestWriter};
pub use reference::{Reference, ReferenceError};
pub use unpack::{
    cleanup_partial_unpacks, unpack_layer, unpack_layer_into_fresh_dir, Compression, UnpackError,
    UnpackOptions, UnpackStats,
};
