//! Docker Engine wire types shared by the daemon and the client: API version range,
//! the `{"message": ...}` error body, the container model (create request, states and
//! modes, inspect and list), and the response shapes of the system and image routes.
//!
//! Responses are our own structs that emit every field dockerd emits (nulls included),
//! because clients index them blindly. This crate does no I/O.
#![forbid(unsafe_code)]

pub mod container;
pub mod detach;
pub mod distribution;
pub mod error;
pub mod field;
pub mod filters;
pub mod image;
pub mod system;
pub mod timestamp;
pub mod version;

pub use error::ErrorBody;
pub use version::ApiVersion;
