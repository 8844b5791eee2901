//! The one home of raw system calls and `unsafe` in Berth: atomic file writes, the daemon's
//! pidfile and data-root lock, host facts for `/info`, and systemd socket activation.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment; every other crate forbids `unsafe`.

pub mod activation;
pub mod fs;
pub mod host;
pub mod mount;
pub mod pidfile;
pub mod resolve;
