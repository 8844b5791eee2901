//! Docker Engine wire types shared by the daemon and the client: API version range,
//! the `{"message": ...}` error body, the response shapes of the system routes, and the
//! network and volume objects (requests read tolerantly, responses exact), the
//! multiplexed stream framing (`stdcopy`), and the pure parsers both sides need: content
//! digests ([`digest`]) and image references with Docker's normalisation
//! ([`reference`](mod@reference)).
//!
//! Responses are our own structs that emit every field dockerd emits (nulls included),
//! because clients index them blindly. This crate does no I/O.
#![forbid(unsafe_code)]

pub mod detach;
pub mod digest;
pub mod distribution;
pub mod error;
pub mod filters;
pub mod image;
pub mod lenient;
pub mod network;
pub mod reference;
pub mod stdcopy;
pub mod system;
pub mod timestamp;
pub mod version;
pub mod volume;

pub use error::ErrorBody;
pub use version::ApiVersion;
