//! The one home of raw system calls and `unsafe` in Berth: atomic file writes, walks and
//! writes relative to directory descriptors, bind-mount sources held open from check to
//! mount, mounts and the one mountinfo parser, the daemon's pidfile and data-root lock,
//! host facts for `/info`, systemd socket activation,
//! running code inside a container's network namespace, processes addressed by pidfd
//! (a container's `/proc/<pid>/root` and `ns/*` never a reused pid's), zero-copy socket
//! relaying (splice(2)) for the port proxy, the daemon's open-file limit, how much a
//! unix-socket peer has left unread, and what the shim needs for itself (fork while
//! single-threaded, `prctl`, signal dispositions, pty ioctls, descriptors received over a
//! socket).
//!
//! Every `unsafe` block carries a `// SAFETY:` comment. Every other crate denies
//! `unsafe_code` through the workspace lints, and all of them but `berth-cri` (whose
//! gRPC code is generated) also forbid it at their root.

pub mod activation;
pub mod bind_source;
pub mod dirfd;
pub mod fdpass;
pub mod fs;
pub mod host;
pub mod memory;
pub mod mount;
pub mod mountinfo;
pub mod netns;
pub mod pidfd;
pub mod pidfile;
pub mod process;
pub mod resolve;
pub mod rlimit;
pub mod seccomp;
pub mod socket;
pub mod splice;
pub mod tty;
