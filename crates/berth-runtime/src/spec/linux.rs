//! Docker's translations into the spec: capabilities (add/drop/privileged), namespaces,
//! `linux.resources` and the mount list.

use serde_json::{json, Value};

use super::defaults::{self, ALL_CAPS, DEFAULT_CAPS, DEFAULT_SHM_SIZE};
use super::input::{BlockIo, ContainerSpecInput, DeviceRule, NamespaceMode, Namespaces, Resources};
use super::{invalid, to_strings};
use crate::RuntimeError;

/// `chown` → `CAP_CHOWN`; unknown names fail like Docker ("unknown capability").
fn normalize_cap(c: &str) -> Result<String, RuntimeError> {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(invalid(format!("unknown capability: {c:?}")))
    }
}

/// moby `oci/caps` `TweakCapabilities`: privileged gets all; `ALL` in add starts from all;
/// `ALL` in drop starts from none; then adds, then drops. Sorted for a stable spec.
pub(super) fn capabilities(i: &ContainerSpecInput) -> Result<Vec<String>, RuntimeError> {
    let add = i
        .cap_add
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = i
        .cap_drop
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<Vec<_>, _>>()?;
    let all = || i.all_caps.clone().unwrap_or_else(|| to_strings(ALL_CAPS));
    if i.privileged {
        return Ok(all());
    }
    let has = |v: &[String], c: &str| v.iter().any(|x| x == c);
    let mut caps: Vec<String> = if has(&add, "ALL") {
        all()
    } else if has(&drop, "ALL") {
        Vec::new()
    } else {
        to_strings(DEFAULT_CAPS)
    };
    for c in add.iter().filter(|c| *c != "ALL") {
        if !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    if !has(&add, "ALL") {
        caps.retain(|c| !has(&drop, c) || has(&add, c));
    } else {
        caps.retain(|c| !has(&drop, c));
    }
    caps.sort();
    Ok(caps)
}

pub(super) fn namespaces(ns: &Namespaces) -> Vec<Value> {
    let mut out = vec![json!({"type": "mount"})];
    for (kind, mode) in [
        ("pid", &ns.pid),
        ("ipc", &ns.ipc),
        ("uts", &ns.uts),
        ("network", &ns.net),
    ] {
        match mode {
            NamespaceMode::Private => out.push(json!({"type": kind})),
            NamespaceMode::Host => {}
            NamespaceMode::Path(p) => out.push(json!({"type": kind, "path": p})),
        }
    }
    if ns.cgroup {
        out.push(json!({"type": "cgroup"}));
    }
    out
}

/// A cpuset list: `0-3,5`.
fn valid_cpuset(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|part| {
            let mut it = part.splitn(2, '-');
            let a = it.next().and_then(|a| a.parse::<u32>().ok());
            match (a, it.next()) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b.parse::<u32>().is_ok_and(|b| b >= a),
                _ => false,
            }
        })
}

/// Docker's checks (moby `daemon/daemon_unix.go`, `verifyPlatformContainerResources`) and
/// the spec's `linux.resources`.
pub(super) fn resources(i: &ContainerSpecInput) -> Result<Value, RuntimeError> {
    let r = &i.resources;
    let mut out = json!({});
    if i.privileged {
        out["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        let mut devices = vec![json!({"allow": false, "access": "rwm"})];
        for (typ, major, minor, access) in defaults::DEVICE_ALLOW {
            let mut d = json!({"allow": true, "type": typ, "access": access});
            if let Some(m) = major {
                d["major"] = json!(m);
            }
            if let Some(m) = minor {
                d["minor"] = json!(m);
            }
            devices.push(d);
        }
        for d in &i.devices {
            devices.push(json!({
                "allow": true, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
                "access": d.permissions,
            }));
        }
        devices.extend(i.device_rules.iter().map(device_rule));
        out["devices"] = json!(devices);
    }
    let mut memory = json!({});
    if let Some(m) = r.memory.filter(|m| *m != 0) {
        if m < defaults::MIN_MEMORY {
            return Err(invalid("Minimum memory limit allowed is 6MB"));
        }
        memory["limit"] = json!(m);
    }
    match r.memory_swap.filter(|s| *s != 0) {
        Some(-1) => {
            if memory.get("limit").is_some() {
                memory["swap"] = json!(-1);
            }
        }
        Some(s) if s < 0 => return Err(invalid(format!("invalid memory swap: {s}"))),
        Some(s) => {
            let Some(m) = r.memory.filter(|m| *m > 0) else {
                return Err(invalid(
                    "You should always set the Memory limit when using Memoryswap limit, see usage",
                ));
            };
            if s < m {
                return Err(invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
            memory["swap"] = json!(s);
        }
        // moby `adaptContainerSettings`: swap defaults to twice the memory limit.
        None => {
            if let Some(m) = r.memory.filter(|m| *m > 0) {
                memory["swap"] = json!(m.saturating_mul(2));
            }
        }
    }
    if let Some(res) = r.memory_reservation.filter(|m| *m != 0) {
        if res < 0 || r.memory.is_some_and(|m| m > 0 && res > m) {
            return Err(invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        memory["reservation"] = json!(res);
    }
    if let Some(s) = r.memory_swappiness {
        if s > 100 {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        memory["swappiness"] = json!(s);
    }
    if r.oom_kill_disable {
        memory["disableOOMKiller"] = json!(true);
    }
    if memory != json!({}) {
        out["memory"] = memory;
    }
    let mut cpu = json!({});
    if let Some(s) = r.cpu_shares.filter(|s| *s != 0) {
        cpu["shares"] = json!(s.clamp(2, 262_144));
    }
    if let Some(n) = r.nano_cpus.filter(|n| *n != 0) {
        if r.cpu_period.is_some_and(|p| p != 0) {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if r.cpu_quota.is_some_and(|q| q != 0) {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ));
        }
        if n < 0 {
            return Err(invalid(
                "Range of CPUs is from 0.01 to the number of CPUs available on the system",
            ));
        }
        // moby daemon/oci_linux.go: period 100ms, quota = nanoCPUs × period / 10⁹.
        let period: i64 = 100_000;
        cpu["period"] = json!(period);
        // Saturating: the engine bounds `n` by the CPU count, but this is request data.
        cpu["quota"] = json!((n.saturating_mul(period) / 1_000_000_000).max(1000));
    }
    if let Some(p) = r.cpu_period.filter(|p| *p != 0) {
        if !(1000..=1_000_000).contains(&p) {
            return Err(invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
        }
        cpu["period"] = json!(p);
    }
    if let Some(q) = r.cpu_quota.filter(|q| *q != 0) {
        if q > 0 && q < 1000 {
            return Err(invalid(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ));
        }
        cpu["quota"] = json!(q);
    }
    for (key, value) in [("cpus", &r.cpuset_cpus), ("mems", &r.cpuset_mems)] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            if !valid_cpuset(v) {
                return Err(invalid(format!("Invalid value {v} for cpuset {key}")));
            }
            cpu[key] = json!(v);
        }
    }
    realtime(r, &mut cpu)?;
    if cpu != json!({}) {
        out["cpu"] = cpu;
    }
    let block_io = block_io(&r.block_io);
    if block_io != json!({}) {
        out["blockIO"] = block_io;
    }
    if let Some(p) = r.pids_limit.filter(|p| *p > 0) {
        out["pids"] = json!({"limit": p});
    }
    if !r.hugepage_limits.is_empty() {
        // The spec's limit is an int64: a larger one is unlimited in effect.
        let limits: Vec<Value> = r
            .hugepage_limits
            .iter()
            .map(|(size, limit)| {
                json!({"pageSize": size, "limit": i64::try_from(*limit).unwrap_or(i64::MAX)})
            })
            .collect();
        out["hugepageLimits"] = json!(limits);
    }
    Ok(out)
}

/// One `--device-cgroup-rule` as an allow entry; `*` is no major or minor.
fn device_rule(d: &DeviceRule) -> Value {
    let mut v = json!({"allow": true, "type": d.kind.to_string(), "access": d.access});
    if let Some(m) = d.major {
        v["major"] = json!(m);
    }
    if let Some(m) = d.minor {
        v["minor"] = json!(m);
    }
    v
}

/// `--cpu-rt-period` / `--cpu-rt-runtime` (moby `validateResources`).
fn realtime(r: &Resources, cpu: &mut Value) -> Result<(), RuntimeError> {
    if let (Some(p), Some(rt)) = (r.cpu_rt_period, r.cpu_rt_runtime) {
        if rt > 0 && u64::try_from(rt).is_ok_and(|rt| rt > p) {
            return Err(invalid(
                "cpu real-time runtime cannot be higher than cpu real-time period",
            ));
        }
    }
    if let Some(p) = r.cpu_rt_period {
        cpu["realtimePeriod"] = json!(p);
    }
    if let Some(rt) = r.cpu_rt_runtime {
        cpu["realtimeRuntime"] = json!(rt);
    }
    Ok(())
}

/// `linux.resources.blockIO`: weights and throttles by major:minor.
fn block_io(b: &BlockIo) -> Value {
    let mut out = json!({});
    if let Some(w) = b.weight {
        out["weight"] = json!(w);
    }
    if !b.weight_device.is_empty() {
        out["weightDevice"] = b
            .weight_device
            .iter()
            .map(|d| json!({"major": d.major, "minor": d.minor, "weight": d.weight}))
            .collect();
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &b.read_bps),
        ("throttleWriteBpsDevice", &b.write_bps),
        ("throttleReadIOPSDevice", &b.read_iops),
        ("throttleWriteIOPSDevice", &b.write_iops),
    ] {
        if !list.is_empty() {
            out[key] = list
                .iter()
                .map(|d| json!({"major": d.major, "minor": d.minor, "rate": d.rate}))
                .collect();
        }
    }
    out
}

/// Docker's default mounts, then `/dev/shm`, tmpfs mounts and binds; a user mount
/// replaces a default at the same destination; sorted parents first (moby
/// `daemon/oci_linux.go` `WithMounts`).
pub(super) fn mounts(i: &ContainerSpecInput) -> Vec<Value> {
    let mut user: Vec<(String, Value)> = Vec::new();
    for (dest, opts) in &i.tmpfs {
        let mut options = vec![
            "noexec".to_string(),
            "nosuid".to_string(),
            "nodev".to_string(),
        ];
        options.extend(
            opts.split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string),
        );
        user.push((
            dest.clone(),
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}),
        ));
    }
    for m in &i.mounts {
        let mut options = vec!["rbind".to_string()];
        options.push(if m.readonly { "ro" } else { "rw" }.to_string());
        options.push(
            m.propagation
                .clone()
                .unwrap_or_else(|| "rprivate".to_string()),
        );
        user.push((
            m.destination.clone(),
            json!({"destination": m.destination, "type": "bind", "source": m.source, "options": options}),
        ));
    }
    let taken = |d: &str| user.iter().any(|(u, _)| u.trim_end_matches('/') == d);
    let mut out: Vec<(String, Value)> = Vec::new();
    for m in defaults::MOUNTS {
        if taken(m.destination) {
            continue;
        }
        let mut options: Vec<&str> = m.options.to_vec();
        if i.privileged && (m.typ == "sysfs" || m.typ == "cgroup") {
            options.retain(|o| *o != "ro");
            options.push("rw");
        }
        out.push((
            m.destination.to_string(),
            json!({"destination": m.destination, "type": m.typ, "source": m.source, "options": options}),
        ));
    }
    if !taken("/dev/shm") && !i.no_shm {
        let shm = if i.namespaces.ipc == NamespaceMode::Host {
            json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                   "options": ["rbind", "nosuid", "noexec", "nodev"]})
        } else {
            let size = i
                .shm_size
                .filter(|s| *s > 0)
                .map(|s| s as u64)
                .unwrap_or(DEFAULT_SHM_SIZE);
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                   "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]})
        };
        out.push(("/dev/shm".to_string(), shm));
    }
    user.sort_by_key(|(d, _)| d.trim_end_matches('/').split('/').count());
    out.extend(user);
    out.into_iter().map(|(_, v)| v).collect()
}
