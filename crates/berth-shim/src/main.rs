//! `berth-shim`: the per-container monitor. Reads one JSON `StartOptions` on stdin, answers
//! one JSON `StartReply` on stdout, and leaves a detached monitor behind; see the library
//! docs (`berth_shim`) for the contract and `monitor` for the moving parts.

mod monitor;

fn main() {
    std::process::exit(monitor::main())
}
