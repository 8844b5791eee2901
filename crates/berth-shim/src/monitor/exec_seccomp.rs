//! The container's seccomp filter for its exec'd processes, compiled to BPF once per
//! container (the first exec) and loaded by every exec'd process just before it runs its
//! program (issue 17: the default profile took tens of milliseconds to compile on each
//! exec). libcontainer 0.7's exec (tenant) path leaves `linux.seccomp` out, while runc
//! gives exec'd processes the container's filter: [`super::container`]'s executor loads it.
//!
//! The translation from the OCI form to libseccomp's rules is written here because
//! libcontainer's only loads (it offers no way to export the program).

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_sys::seccomp::SeccompProgram;
use libcontainer::oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

/// The compiled filter of the bundle compiled last (a shim serves one container).
static COMPILED: Mutex<Option<(PathBuf, Option<Arc<SeccompProgram>>)>> = Mutex::new(None);

/// The seccomp program exec'd processes of the container at `bundle` load: `None` when
/// the container has no filter. Compiled on the first call, then taken from memory.
pub fn for_bundle(bundle: &Path) -> Result<Option<Arc<SeccompProgram>>, String> {
    let mut cached = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((path, program)) = cached.as_ref() {
        if path == bundle {
            return Ok(program.clone());
        }
    }
    let spec = Spec::load(bundle.join("config.json")).map_err(|e| e.to_string())?;
    let program = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(seccomp) => Some(Arc::new(compile(seccomp)?)),
        None => None,
    };
    *cached = Some((bundle.to_path_buf(), program.clone()));
    Ok(program)
}

/// Compiles `seccomp` to a BPF program as libseccomp would load it.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<SeccompProgram, String> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| format!("seccomp filter: {e}"))?;
    // Whether no_new_privs is set is the executor's decision, not libseccomp's.
    ctx.set_ctl_nnp(false)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    for arch in seccomp.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let arch: ScmpArch = name
            .parse()
            .map_err(|e| format!("seccomp architecture {name}: {e}"))?;
        ctx.add_arch(arch)
            .map_err(|e| format!("seccomp architecture {arch:?}: {e}"))?;
    }
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue; // libseccomp refuses a rule that repeats the default
        }
        let args = rule.args().clone().unwrap_or_default();
        let compares: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                ScmpArgCompare::new(a.index() as u32, compare(a.op(), a.value_two()), a.value())
            })
            .collect();
        let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w.first() == w.get(1));
        for name in rule.names() {
            // A name this kernel's libseccomp does not know is a syscall it lacks.
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if compares.is_empty() {
                ctx.add_rule(act, syscall).map(|_| ())
            } else if repeated {
                // One argument compared twice: libseccomp takes each in a rule of its own
                // (as runc adds them).
                compares.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))
                        .map(|_| ())
                })
            } else {
                ctx.add_rule_conditional(act, syscall, &compares)
                    .map(|_| ())
            };
            added.map_err(|e| format!("seccomp rule for {name}: {e}"))?;
        }
    }
    let flags = seccomp.flags().clone().unwrap_or_default();
    let log = flags.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagLog);
    let spec_allow = flags.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow);
    SeccompProgram::from_bpf(&export(&ctx)?, log, spec_allow).map_err(|e| e.to_string())
}

/// The filter's BPF, through a memory file (a pipe could fill up and block).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, String> {
    let fd =
        nix::sys::memfd::memfd_create(c"berth-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| format!("seccomp export: {e}"))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| format!("seccomp export: {e}"))?;
    let mut bpf = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bpf))
        .map_err(|e| format!("seccomp export: {e}"))?;
    Ok(bpf)
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    let errno = errno
        .and_then(|e| i32::try_from(e).ok())
        .unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(errno)
                .map_err(|_| format!("seccomp trace value {errno} out of range"))?,
        ),
        LinuxSeccompAction::ScmpActNotify => {
            return Err("seccomp user notification (SCMP_ACT_NOTIFY) is not supported".into())
        }
    })
}

fn compare(op: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_compiled_filter_answers_as_the_profile_says() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
                // A name no kernel has is skipped; a rule equal to the default too.
                {"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                // The same argument compared twice: one rule each.
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchdir"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }));
        let program = compile(&p).unwrap();
        assert!(program.len() > 4);
        std::thread::spawn(move || {
            nix::sys::prctl::set_no_new_privs().unwrap();
            program.load().unwrap();
            assert_eq!(nix::unistd::chdir("/"), Err(nix::errno::Errno::EOPNOTSUPP));
            assert!(nix::unistd::getcwd().is_ok());
        })
        .join()
        .unwrap();
        // The rest of the process is not filtered.
        assert!(nix::unistd::chdir(".").is_ok());
    }

    #[test]
    fn notify_is_refused_with_a_message() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let err = compile(&p).err().unwrap();
        assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
    }

    #[test]
    fn the_program_is_compiled_once_per_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}]}}
        });
        std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
        let first = for_bundle(dir.path()).unwrap().unwrap();
        // The spec is not read again: a broken one does not matter any more.
        std::fs::write(dir.path().join("config.json"), b"{").unwrap();
        let again = for_bundle(dir.path()).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
}
