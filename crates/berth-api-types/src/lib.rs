//! Docker Engine wire types shared by the daemon and the client: API version range,
//! the `{"message": ...}` error body, the container model (create request, states and
//! modes, inspect and list), the network and volume objects (requests read tolerantly,
//! responses exact), the response shapes of the system and image routes, the multiplexed
//! stream framing (`stdcopy`), and the pure parsers both sides need: content digests
//! ([`digest`]) and image references with Docker's normalisation
//! ([`reference`](mod@reference)).
//!
//! Responses are our own structs that emit every field dockerd emits (nulls included),
//! because clients index them blindly. This crate does no I/O.
#![forbid(unsafe_code)]

pub mod container;
pub mod detach;
pub mod digest;
pub mod distribution;
pub mod error;
pub mod field;
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
