//! The `berth-shim` binary's library side: the protocol it speaks, re-exported from
//! `berth-shim-protocol` (the contract and its lifecycle are documented there) so the
//! monitor and the tests name it `berth_shim::…`, and the timestamp format of its records.
//! The monitor itself lives in the binary (`src/monitor/`).

#![forbid(unsafe_code)]

pub mod timefmt;

pub use berth_shim_protocol::*;
