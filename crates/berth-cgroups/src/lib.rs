//! A container's cgroup as files, in one place for berthd and the shim: the host's layout
//! (v1 legacy/hybrid or v2 unified, from mountinfo: [`Layout`]), where a container's cgroup
//! is per controller ([`Dirs`]), the stats dockerd reports from it ([`sample`]), live
//! limits ([`writes`], [`apply`]), freezer state and thawing, the pids in it, its OOM
//! counter, and moving a process into a cgroup and back ([`join`]).
//!
//! A leaf crate (berth-sys, serde_json, thiserror, tracing; no tokio, no engine types), so
//! that the shim, which may depend only on leaf crates, and the engine share it. Every call
//! is blocking file I/O: async callers run it in `spawn_blocking`. Creating and removing a
//! container's own cgroup is the runtime's (libcontainer or runc); everything here takes
//! the directories as arguments, so the parsing and the v1/v2 translations are unit-tested
//! on sample files.

#![forbid(unsafe_code)]

mod dirs;
mod freezer;
mod join;
mod layout;
mod limits;
mod stats;

pub use dirs::Dirs;
pub use join::{join, sweep, Joined};
pub use layout::{parse_mountinfo, Hierarchy, Layout, LIBCGROUPS_V1};
pub use limits::{apply, memory_limit, valid_page_size, writes, Limits, Write, WriteError};
pub use stats::{sample, system_cpu_usage, zero_cpu, Host};
