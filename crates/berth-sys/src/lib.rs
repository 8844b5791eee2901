//! The one home of raw system calls and `unsafe` in Berth: atomic file writes, walks and
//! writes relative to directory descriptors, bind-mount sources held open from check to mount, the daemon's
//! pidfile and data-root lock, host facts for `/info`, systemd socket activation,
//! running code inside a container's network namespace, processes addressed by pidfd
//! (a container's `/proc/<pid>/root` and `ns/*` never a reused pid's), zero-copy socket
//! relaying (splice(2)) for the port proxy, and the daemon's open-file limit.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment; every other crate forbids `unsafe`.

pub mod activation;
pub mod bind_source;
pub mod dirfd;
pub mod fs;
pub mod host;
pub mod memory;
pub mod mount;
pub mod netns;
pub mod pidfd;
pub mod pidfile;
pub mod resolve;
pub mod rlimit;
pub mod splice;
