//! `berth-shim`: the per-container monitor. Reads one JSON `StartOptions` on stdin, answers
//! one JSON `StartReply` on stdout, and leaves a detached monitor behind; see the library
//! docs (`berth_shim`) for the contract and `monitor` for the moving parts.

#![forbid(unsafe_code)]

mod monitor;

fn main() {
    // The shim forks (the monitor, then libcontainer's init processes): a panic that
    // unwound in a forked child could run the parent's destructors or return into the
    // parent's code paths as a second copy. The workspace builds with `panic = "unwind"`
    // for berthd's sake; here any panic still aborts the process that panicked, after the
    // default hook has printed it.
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        std::process::abort();
    }));
    std::process::exit(monitor::main())
}
