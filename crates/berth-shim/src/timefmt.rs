//! Timestamps as Docker's shim writes them (Go's `time.RFC3339Nano` in UTC, fraction
//! trimmed, e.g. `2024-05-01T12:00:00.1234Z`): `berth_api_types::timestamp` formats them,
//! re-exported here under the name the monitor uses.

pub use berth_api_types::timestamp::rfc3339_nano;
