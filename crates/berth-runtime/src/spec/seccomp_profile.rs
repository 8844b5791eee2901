//! Custom seccomp profiles in Docker's JSON format (`--security-opt seccomp=profile.json`:
//! the docker CLI reads the file and sends its text) → the OCI `LinuxSeccomp`, with the
//! semantics of moby `profiles/seccomp` `setupSeccomp`: `archMap` picks this machine's
//! architectures, `name` is an old spelling of `names`, and `includes` / `excludes`
//! (`caps` against the container's bounding set, `arches`, `minKernel` against the host's
//! kernel) keep or drop each rule.
//!
//! Stricter than dockerd, at create rather than at start: an action, operator or
//! architecture the runtime does not know, an argument index past 5, a rule without
//! `action`, or a filter without `defaultAction` are refused with the reason. A seccomp
//! user notification listener (`listenerPath`, `SCMP_ACT_NOTIFY`) is refused: berthd runs
//! no listener, and a client-chosen socket path on the daemon's host is not for clients.

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use serde::Deserialize;
use serde_json::json;

use super::invalid;
use crate::RuntimeError;

/// A kernel's version as `minKernel` compares it: "6.1.0-13-amd64" is 6.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub kernel: u64,
    pub major: u64,
}

impl KernelVersion {
    /// The leading "<kernel>.<major>" of a `uname -r` release, as moby's `parseRelease`.
    pub fn from_release(release: &str) -> Option<Self> {
        let (kernel, rest) = release.split_once('.')?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        Some(Self {
            kernel: kernel.parse().ok()?,
            major: rest.get(..digits)?.parse().ok()?,
        })
    }

    /// A profile's `minKernel`: exactly "<kernel>.<major>", each 0-255, not "0.0"; `None`
    /// for "" (no condition).
    fn from_profile(v: &str) -> Result<Option<Self>, RuntimeError> {
        if v.is_empty() {
            return Ok(None);
        }
        let bad = || {
            decoding(format!(
                "invalid kernel version: {v:?}, expected \"<kernel>.<major>\""
            ))
        };
        let (kernel, major) = v.split_once('.').ok_or_else(bad)?;
        let parse = |s: &str| s.parse::<u8>().map(u64::from).map_err(|_| bad());
        let k = Self {
            kernel: parse(kernel)?,
            major: parse(major)?,
        };
        if k == Self::default() {
            return Err(bad());
        }
        Ok(Some(k))
    }
}

/// Docker's profile: the OCI fields plus `archMap` and conditional rules.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    default_action: Option<String>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<Arch>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    flags: Option<Vec<oci_spec::runtime::LinuxSeccompFilterFlag>>,
    listener_path: Option<String>,
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<Arg>>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u64,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: LinuxSeccompOperator,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

fn decoding(e: impl std::fmt::Display) -> RuntimeError {
    invalid(format!("Decoding seccomp profile failed: {e}"))
}

/// libseccomp's name for an architecture (moby's `goToNative`), as `includes.arches` and
/// `excludes.arches` use them.
fn native_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loongarch64",
        other => other, // x86, arm, s390x, riscv64, mips64, ...
    }
}

/// The seccomp architecture an `archMap` entry must name to apply here.
fn seccomp_arch(native: &str) -> Option<Arch> {
    Some(match native {
        "x86" => Arch::ScmpArchX86,
        "amd64" => Arch::ScmpArchX86_64,
        "arm" => Arch::ScmpArchArm,
        "arm64" => Arch::ScmpArchAarch64,
        "mips64" => Arch::ScmpArchMips64,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390" => Arch::ScmpArchS390,
        "s390x" => Arch::ScmpArchS390x,
        _ => return None,
    })
}

/// Checks that `text` is a profile berthd can apply, without resolving it for a
/// container: for create, so that a bad profile fails before anything is made.
pub fn check_seccomp_profile(
    text: &str,
    kernel: Option<KernelVersion>,
) -> Result<(), RuntimeError> {
    custom_profile(text, &[], std::env::consts::ARCH, kernel).map(drop)
}

/// The filter `text` gives a container holding `caps` (its bounding set) on `rust_arch`
/// and a kernel of version `kernel`. `None`: the profile disables seccomp (no
/// `defaultAction` and no rules, as dockerd reads it).
pub(crate) fn custom_profile(
    text: &str,
    caps: &[String],
    rust_arch: &str,
    kernel: Option<KernelVersion>,
) -> Result<Option<LinuxSeccomp>, RuntimeError> {
    // Through a `Value`, because serde would take an array for a struct, field by field.
    let v: serde_json::Value = serde_json::from_str(text).map_err(decoding)?;
    let kind = match &v {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Array(_) => Some("an array"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(decoding(format!("expected a JSON object, not {kind}")));
    }
    let p: Profile = serde_json::from_value(v).map_err(decoding)?;
    let syscalls = p.syscalls.unwrap_or_default();
    let default_action = p.default_action.unwrap_or_default();
    if default_action.is_empty() && syscalls.is_empty() {
        return Ok(None);
    }
    if default_action.is_empty() {
        return Err(invalid(
            "the seccomp profile has rules but no defaultAction",
        ));
    }
    let default_action: LinuxSeccompAction =
        serde_json::from_value(json!(default_action)).map_err(decoding)?;
    let architectures = p.architectures.unwrap_or_default();
    let arch_map = p.arch_map.unwrap_or_default();
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(invalid(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either \
             'architectures' or 'archMap'",
        ));
    }
    let notify = default_action == LinuxSeccompAction::ScmpActNotify
        || syscalls
            .iter()
            .any(|s| s.action == LinuxSeccompAction::ScmpActNotify);
    if notify || p.listener_path.is_some_and(|l| !l.is_empty()) {
        return Err(invalid(
            "seccomp user notification (SCMP_ACT_NOTIFY, listenerPath) is not supported by \
             berthd",
        ));
    }
    let native = native_arch(rust_arch);
    let mut arches = architectures;
    if let Some(here) = seccomp_arch(native) {
        if let Some(m) = arch_map.into_iter().find(|m| m.architecture == here) {
            arches.push(m.architecture);
            arches.extend(m.sub_architectures.unwrap_or_default());
        }
    }
    let has = |c: &String| caps.contains(c);
    // A rule's minKernel against the host: an unreadable kernel version fails, as moby.
    let kernel_at_least = |min: &Option<String>| -> Result<Option<bool>, RuntimeError> {
        let Some(min) = KernelVersion::from_profile(min.as_deref().unwrap_or(""))? else {
            return Ok(None);
        };
        let k = kernel.ok_or_else(|| invalid("cannot read the host's kernel version"))?;
        Ok(Some(k >= min))
    };
    let mut rules = Vec::with_capacity(syscalls.len());
    for call in syscalls {
        let names = match (call.name.filter(|n| !n.is_empty()), call.names) {
            (Some(_), Some(n)) if !n.is_empty() => {
                return Err(invalid(
                    "both 'name' and 'names' are specified in the seccomp profile, use either \
                     'name' or 'names'",
                ))
            }
            (Some(n), _) => vec![n],
            (None, n) => n.unwrap_or_default(),
        };
        let args = call.args.unwrap_or_default();
        if let Some(a) = args.iter().find(|a| a.index > 5) {
            return Err(invalid(format!(
                "seccomp profile: argument index {} out of range (0-5) for {names:?}",
                a.index
            )));
        }
        // Checked for every rule, kept or not, so that a profile fails the same everywhere.
        let excl_kernel = call
            .excludes
            .as_ref()
            .map(|f| kernel_at_least(&f.min_kernel))
            .transpose()?
            .flatten();
        let incl_kernel = call
            .includes
            .as_ref()
            .map(|f| kernel_at_least(&f.min_kernel))
            .transpose()?
            .flatten();
        if let Some(ex) = &call.excludes {
            if ex
                .arches
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a == native))
                || ex.caps.as_ref().is_some_and(|c| c.iter().any(has))
                || excl_kernel == Some(true)
            {
                continue;
            }
        }
        if let Some(inc) = &call.includes {
            if inc
                .arches
                .as_ref()
                .is_some_and(|a| !a.is_empty() && !a.iter().any(|a| a == native))
                || inc.caps.as_ref().is_some_and(|c| !c.iter().all(has))
                || incl_kernel == Some(false)
            {
                continue;
            }
        }
        let mut rule = json!({"names": names, "action": call.action});
        if let Some(e) = call.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if !args.is_empty() {
            rule["args"] = args
                .iter()
                .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                .collect();
        }
        rules.push(rule);
    }
    let mut out = json!({"defaultAction": default_action, "syscalls": rules});
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    if let Some(f) = p.flags.filter(|f| !f.is_empty()) {
        out["flags"] = json!(f);
    }
    serde_json::from_value(out).map(Some).map_err(decoding)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxSeccompAction as A;

    use super::*;

    const K6_1: Option<KernelVersion> = Some(KernelVersion {
        kernel: 6,
        major: 1,
    });

    fn resolve(v: serde_json::Value, caps: &[&str], arch: &str) -> LinuxSeccomp {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        custom_profile(&v.to_string(), &caps, arch, K6_1)
            .unwrap()
            .unwrap()
    }

    fn names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().iter().cloned())
            .collect()
    }

    fn err(text: &str) -> String {
        custom_profile(text, &[], "x86_64", K6_1)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn deny_one_syscall() {
        let p = resolve(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}),
            &[],
            "x86_64",
        );
        assert_eq!(p.default_action(), A::ScmpActAllow);
        assert_eq!(p.architectures(), &None);
        let s = &p.syscalls().as_ref().unwrap()[0];
        assert_eq!(
            (s.names().clone(), s.action(), s.errno_ret()),
            (
                vec!["mkdir".into(), "mkdirat".into()],
                A::ScmpActErrno,
                Some(1)
            )
        );
    }

    #[test]
    fn old_name_field_and_args() {
        let p = resolve(
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
                {"name": "personality", "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"name": "clone", "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]}),
            &[],
            "x86_64",
        );
        assert_eq!(p.default_errno_ret(), Some(38));
        let rules = p.syscalls().as_ref().unwrap();
        assert_eq!(rules[0].names(), &vec!["personality".to_string()]);
        let a = &rules[1].args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.value_two(), a.op()),
            (
                0,
                2_114_060_288,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq
            )
        );
    }

    #[test]
    fn arch_map_picks_this_machine() {
        let v = json!({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]});
        let json = |arch| serde_json::to_value(resolve(v.clone(), &[], arch)).unwrap();
        assert_eq!(
            json("x86_64")["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(
            json("aarch64")["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(json("riscv64").get("architectures").is_none());
        let plain =
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"]});
        assert_eq!(
            serde_json::to_value(resolve(plain, &[], "aarch64")).unwrap()["architectures"],
            json!(["SCMP_ARCH_X86_64"])
        );
    }

    #[test]
    fn includes_and_excludes() {
        let v = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["both"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_TIME"]}},
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["not_s390"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["s390x"]}},
            {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.4"}},
            {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
            {"names": ["old"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "6.1"}},
            {"names": ["empty"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": [], "minKernel": ""}}]});
        assert_eq!(
            names(&resolve(v.clone(), &[], "x86_64")),
            ["unshare", "arch_prctl", "not_s390", "new", "empty"]
        );
        assert_eq!(
            names(&resolve(v.clone(), &["CAP_SYS_ADMIN"], "s390x")),
            ["mount", "new", "empty"]
        );
        assert_eq!(
            names(&resolve(v, &["CAP_SYS_ADMIN", "CAP_SYS_TIME"], "aarch64")),
            ["mount", "both", "not_s390", "new", "empty"]
        );
    }

    #[test]
    fn empty_profile_disables_seccomp() {
        for text in ["{}", r#"{"defaultAction": "", "syscalls": null}"#] {
            assert!(custom_profile(text, &[], "x86_64", K6_1).unwrap().is_none());
        }
    }

    #[test]
    fn bad_profiles_refused_with_the_reason() {
        for (text, want) in [
            ("{", "Decoding seccomp profile failed: EOF while parsing"),
            (
                "[1]",
                "Decoding seccomp profile failed: expected a JSON object, not an array",
            ),
            (
                "null",
                "Decoding seccomp profile failed: expected a JSON object",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
                "Decoding seccomp profile failed: unknown variant `SCMP_ACT_NOPE`",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]}"#,
                "Decoding seccomp profile failed: missing field `action`",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
                "unknown variant `SCMP_CMP_SOMETIMES`",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
                "argument index 6 out of range (0-5)",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
                "both 'architectures' and 'archMap' are specified",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}"#,
                "both 'name' and 'names' are specified",
            ),
            (
                r#"{"syscalls": [{"names": ["b"], "action": "SCMP_ACT_ERRNO"}]}"#,
                "no defaultAction",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#,
                "not supported by berthd",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_NOTIFY"}]}"#,
                "not supported by berthd",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "4"}}]}"#,
                "invalid kernel version: \"4\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "0.0"}}]}"#,
                "invalid kernel version",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "4.300"}}]}"#,
                "invalid kernel version",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn kernel_release_parsing() {
        let k = |r| KernelVersion::from_release(r).map(|k| (k.kernel, k.major));
        assert_eq!(k("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(k("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(k("5.15"), Some((5, 15)));
        assert_eq!(k("x.1"), None);
        assert_eq!(k("6"), None);
        assert_eq!(k("6."), None);
    }
}
