//! A compiled seccomp program ([`SeccompProgram`]: classic BPF, as libseccomp exports it)
//! and loading it into the calling thread with `seccomp(SECCOMP_SET_MODE_FILTER)`. The
//! shim compiles a container's filter once and loads the program in every exec'd process.

use std::io;

/// The kernel's limit on a filter's length (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

/// A validated seccomp BPF program, ready to load.
#[derive(Clone)]
pub struct SeccompProgram {
    insns: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("insns", &self.insns.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl SeccompProgram {
    /// `bpf` is an array of `struct sock_filter` in the host's byte order (what
    /// `seccomp_export_bpf` writes); `log` and `spec_allow` are the filter flags
    /// `SECCOMP_FILTER_FLAG_LOG` and `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
    pub fn from_bpf(bpf: &[u8], log: bool, spec_allow: bool) -> io::Result<SeccompProgram> {
        const INSN: usize = std::mem::size_of::<libc::sock_filter>();
        if bpf.is_empty() || !bpf.len().is_multiple_of(INSN) || bpf.len() / INSN > MAX_INSNS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a seccomp program: {} bytes", bpf.len()),
            ));
        }
        let insns = bpf
            .chunks_exact(INSN)
            .map(|c| {
                let at = |i: usize| c.get(i).copied().unwrap_or(0);
                libc::sock_filter {
                    code: u16::from_ne_bytes([at(0), at(1)]),
                    jt: at(2),
                    jf: at(3),
                    k: u32::from_ne_bytes([at(4), at(5), at(6), at(7)]),
                }
            })
            .collect();
        let mut flags = 0;
        if log {
            flags |= libc::SECCOMP_FILTER_FLAG_LOG;
        }
        if spec_allow {
            flags |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        }
        Ok(SeccompProgram { insns, flags })
    }

    /// Instructions in the program.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program is empty (never: [`Self::from_bpf`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Loads the program into the calling thread. Needs `CAP_SYS_ADMIN` or
    /// `no_new_privs` already set; allocates nothing (fit for a forked child).
    pub fn load(&self) -> io::Result<()> {
        let prog = libc::sock_fprog {
            // At most MAX_INSNS (checked in from_bpf).
            len: self.insns.len() as libc::c_ushort,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `self.insns`, alive and unmodified for the call; the
        // kernel copies the program and does not keep the pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_programs_are_refused() {
        assert!(SeccompProgram::from_bpf(&[], false, false).is_err());
        assert!(SeccompProgram::from_bpf(&[0; 7], false, false).is_err());
        assert!(SeccompProgram::from_bpf(&vec![0; 8 * (MAX_INSNS + 1)], false, false).is_err());
        let p = SeccompProgram::from_bpf(&[6, 0, 0, 0, 0, 0, 0xff, 0x7f], true, false).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p.insns[0].code, 6);
        assert_eq!(p.insns[0].k, 0x7fff_0000);
        assert_eq!(p.flags, libc::SECCOMP_FILTER_FLAG_LOG);
    }

    #[test]
    fn a_loaded_program_filters_the_thread() {
        // In a thread of its own, with no_new_privs: a one-instruction program
        // (`RET ALLOW`) loads, and the thread shows a filter (mode 2).
        std::thread::spawn(|| {
            // SAFETY: prctl with constant arguments, on this thread only.
            let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            assert_eq!(rc, 0);
            // BPF_RET | BPF_K, SECCOMP_RET_ALLOW
            let allow = [6u8, 0, 0, 0, 0, 0, 0xff, 0x7f];
            SeccompProgram::from_bpf(&allow, false, false)
                .unwrap()
                .load()
                .unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
        })
        .join()
        .unwrap();
    }
}
