//! The `HostConfig` fields Berth once stored and ignored: block I/O weights and throttles,
//! real-time CPU, memory swappiness, the OOM killer, `CpusetMems`, device cgroup rules,
//! GPU requests, `UsernsMode`, `StorageOpt`, `Annotations` and `CgroupParent`.
//!
//! [`settle`] runs at create with what the host's cgroups can do ([`Support`]): it refuses
//! in dockerd's words (moby `daemon/daemon_unix.go` `verifyPlatformContainerResources`),
//! or drops a setting the host cannot apply with dockerd's warning, as dockerd does, so
//! that nothing is accepted and then ignored. [`apply`] runs at each start: block devices
//! are looked up again (major:minor by `stat` of the host path, as dockerd does) and
//! everything goes into the spec input.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_api_types::container::HostConfig;
use berth_runtime::spec::{BlockIo, DeviceRule, ThrottleDevice, WeightDevice};
use berth_runtime::ContainerSpecInput;
use serde_json::{json, Map, Value};

use crate::EngineError;

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// The throttle fields, their spec lists, and dockerd's warning when the host has none.
const THROTTLES: [(&str, &str); 4] = [
    ("BlkioDeviceReadBps", "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded."),
    ("BlkioDeviceWriteBps", "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded."),
    ("BlkioDeviceReadIOps", "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded."),
    ("BlkioDeviceWriteIOps", "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded."),
];

const NO_WEIGHT: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";
const NO_WEIGHT_DEVICE: &str = "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.";
const NO_SWAPPINESS: &str = "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.";
const NO_OOM_KILL_DISABLE: &str =
    "Your kernel does not support OomKillDisable. OomKillDisable discarded.";
const OOM_KILL_NO_LIMIT: &str = "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.";
/// overlay2's answer when its backing filesystem has no project quota (moby
/// `daemon/graphdriver/overlay2`).
const NO_STORAGE_OPT: &str =
    "--storage-opt is supported only for overlay over xfs with 'pquota' mount option";

/// What the host's cgroups can apply (dockerd's `sysinfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Support {
    pub blkio_weight: bool,
    pub blkio_weight_device: bool,
    /// read bps, write bps, read iops, write iops (the order of [`THROTTLES`]).
    pub throttle: [bool; 4],
    pub swappiness: bool,
    pub oom_kill_disable: bool,
    pub cpu_rt_period: bool,
    pub cpu_rt_runtime: bool,
}

impl Support {
    /// Reads the host: on cgroup v1 the controllers' files at their mount points, on v2
    /// the root's `cgroup.controllers` (`io`; no swappiness, OOM-killer switch or
    /// real-time budget there, as dockerd says).
    pub(crate) fn probe() -> Support {
        let Ok(layout) = berth_cgroups::Layout::read() else {
            return Support::default();
        };
        if layout.unified() {
            let io = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"));
            return Support {
                blkio_weight: io,
                blkio_weight_device: io,
                throttle: [io; 4],
                ..Support::default()
            };
        }
        let has = |controller: &str, file: &str| {
            layout.hierarchies.iter().any(|h| {
                !h.v2
                    && h.controllers.iter().any(|c| c == controller)
                    && h.mountpoint.join(file).exists()
            })
        };
        Support {
            blkio_weight: has("blkio", "blkio.weight") || has("blkio", "blkio.bfq.weight"),
            blkio_weight_device: has("blkio", "blkio.weight_device")
                || has("blkio", "blkio.bfq.weight_device"),
            throttle: [
                has("blkio", "blkio.throttle.read_bps_device"),
                has("blkio", "blkio.throttle.write_bps_device"),
                has("blkio", "blkio.throttle.read_iops_device"),
                has("blkio", "blkio.throttle.write_iops_device"),
            ],
            swappiness: has("memory", "memory.swappiness"),
            oom_kill_disable: has("memory", "memory.oom_control"),
            cpu_rt_period: has("cpu", "cpu.rt_period_us"),
            cpu_rt_runtime: has("cpu", "cpu.rt_runtime_us"),
        }
    }
}

/// A number field: `None` when absent or `null`; a field of another type is refused as
/// dockerd's JSON decoder refuses it.
fn number(extra: &Map<String, Value>, key: &str) -> Result<Option<i64>, EngineError> {
    match extra.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("invalid {key}: {n}"))),
        Some(v) => Err(bad(format!("invalid {key}: {v}"))),
    }
}

fn boolean(extra: &Map<String, Value>, key: &str) -> Result<bool, EngineError> {
    match extra.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(bad(format!("invalid {key}: {v}"))),
    }
}

/// A list field's items, `[]` when absent or `null`.
fn list<'a>(extra: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], EngineError> {
    match extra.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(bad(format!("invalid {key}: {v}"))),
    }
}

/// A `{"Path": ..., key: n}` item of the block device lists.
fn path_and(item: &Value, field: &str, key: &str) -> Result<(String, u64), EngineError> {
    let path = item.get("Path").and_then(Value::as_str);
    let n = item.get(key).and_then(Value::as_u64);
    match (path, n) {
        (Some(p), Some(n)) if !p.is_empty() => Ok((p.to_string(), n)),
        _ => Err(bad(format!("invalid {field}: {item}"))),
    }
}

/// At create: dockerd's refusals, and its warnings for settings the host cannot apply
/// (those are dropped from the stored `HostConfig`, as dockerd drops them).
pub(crate) fn settle(hc: &mut HostConfig, host: &Support) -> Result<Vec<String>, EngineError> {
    let mut warnings = Vec::new();
    let x = &mut hc.extra;
    if let Some(w) = number(x, "BlkioWeight")?.filter(|w| *w != 0) {
        if !host.blkio_weight {
            warnings.push(NO_WEIGHT.to_string());
            x.insert("BlkioWeight".into(), json!(0));
        } else if !(10..=1000).contains(&w) {
            return Err(bad("Range of blkio weight is from 10 to 1000"));
        }
    }
    if !list(x, "BlkioWeightDevice")?.is_empty() && !host.blkio_weight_device {
        warnings.push(NO_WEIGHT_DEVICE.to_string());
        x.insert("BlkioWeightDevice".into(), json!([]));
    }
    for ((key, warning), supported) in THROTTLES.iter().zip(host.throttle) {
        if !list(x, key)?.is_empty() && !supported {
            warnings.push(warning.to_string());
            x.insert(key.to_string(), json!([]));
        }
    }
    // The devices must exist now (dockerd finds out at start, with the same words).
    block_io(x)?;
    match number(x, "MemorySwappiness")? {
        None | Some(-1) => {}
        Some(_) if !host.swappiness => {
            warnings.push(NO_SWAPPINESS.to_string());
            x.insert("MemorySwappiness".into(), Value::Null);
        }
        Some(s) if !(0..=100).contains(&s) => {
            return Err(bad(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        Some(_) => {}
    }
    if boolean(x, "OomKillDisable")? {
        if !host.oom_kill_disable {
            warnings.push(NO_OOM_KILL_DISABLE.to_string());
            x.insert("OomKillDisable".into(), json!(false));
        } else if hc.resources.memory.get().is_none_or(|m| *m == 0) {
            warnings.push(OOM_KILL_NO_LIMIT.to_string());
        }
    }
    let x = &hc.extra;
    let period = number(x, "CpuRealtimePeriod")?.unwrap_or(0);
    let runtime = number(x, "CpuRealtimeRuntime")?.unwrap_or(0);
    if period > 0 && !host.cpu_rt_period {
        return Err(bad(
            "Your kernel does not support cgroup cpu real-time period",
        ));
    }
    if runtime > 0 && !host.cpu_rt_runtime {
        return Err(bad(
            "Your kernel does not support cgroup cpu real-time runtime",
        ));
    }
    if period < 0 || (period != 0 && runtime != 0 && runtime > period) {
        return Err(bad(
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ));
    }
    device_rules(x)?;
    let userns = match x.get("UsernsMode") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(v) => return Err(bad(format!("invalid UsernsMode: {v}"))),
    };
    // Without `--userns-remap` a container has the host's user namespace: `private` is
    // that too (dockerd's `UsernsMode.Valid`); nothing else can be honoured.
    if !["", "host", "private"].contains(&userns) {
        return Err(bad(format!("invalid USER mode: {userns}")));
    }
    match x.get("StorageOpt") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(Value::Object(_)) => return Err(bad(NO_STORAGE_OPT)),
        Some(v) => return Err(bad(format!("invalid StorageOpt: {v}"))),
    }
    annotations(x)?;
    cgroup_parent(x)?;
    if let Some(mems) = hc.resources.cpuset_mems.get().filter(|m| !m.is_empty()) {
        cpuset_mems(
            mems,
            std::fs::read_to_string("/sys/devices/system/node/online").ok(),
        )?;
    }
    Ok(warnings)
}

/// `CgroupParent`: `None` when unset or empty. A cgroup path, never one that climbs out
/// with `..` (dockerd's cgroupfs driver joins it as given, relative to the root here).
fn cgroup_parent(x: &Map<String, Value>) -> Result<Option<String>, EngineError> {
    let p = match x.get("CgroupParent") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s,
        Some(v) => return Err(bad(format!("invalid CgroupParent: {v}"))),
    };
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if p.contains('\0') || parts.contains(&"..") {
        return Err(bad(format!("invalid cgroup parent: {p:?}")));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("/{}", parts.join("/"))))
}

/// The container's cgroup path: `<CgroupParent>/<id>`, or under the daemon's
/// `--cgroup-parent` when it has none (moby `daemon/oci_linux.go`, cgroupfs driver).
pub(crate) fn cgroup_path(daemon_parent: &str, hc: &HostConfig, id: &str) -> String {
    match cgroup_parent(&hc.extra) {
        Ok(Some(p)) => format!("{p}/{id}"),
        _ => format!("{daemon_parent}/{id}"),
    }
}

/// moby `daemon/oci_linux.go`: `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`.
fn device_rules(x: &Map<String, Value>) -> Result<Vec<DeviceRule>, EngineError> {
    list(x, "DeviceCgroupRules")?
        .iter()
        .map(|v| {
            let s = v.as_str().unwrap_or_default();
            parse_device_rule(s)
                .ok_or_else(|| bad(format!("invalid device cgroup rule format: '{s}'")))
        })
        .collect()
}

fn parse_device_rule(s: &str) -> Option<DeviceRule> {
    let mut parts = s.split(' ');
    let (kind, numbers, access) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next()?,
        _ => return None,
    };
    let (major, minor) = numbers.split_once(':')?;
    let num = |n: &str| -> Option<Option<i64>> {
        if n == "*" {
            Some(None)
        } else if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            n.parse().ok().map(Some)
        } else {
            None
        }
    };
    if !(1..=3).contains(&access.len()) || !access.bytes().all(|b| b"rwm".contains(&b)) {
        return None;
    }
    Some(DeviceRule {
        kind,
        major: num(major)?,
        minor: num(minor)?,
        access: access.to_string(),
    })
}

/// String keys to string values.
fn annotations(x: &Map<String, Value>) -> Result<BTreeMap<String, String>, EngineError> {
    match x.get("Annotations") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) if !k.is_empty() => Ok((k.clone(), s.to_string())),
                _ => Err(bad(format!("invalid Annotations: {k:?}: {v}"))),
            })
            .collect(),
        Some(v) => Err(bad(format!("invalid Annotations: {v}"))),
    }
}

/// The memory nodes asked for must exist (moby `verifyPlatformContainerResources`);
/// `online` is `/sys/devices/system/node/online` (`None`: no NUMA information, no check).
fn cpuset_mems(mems: &str, online: Option<String>) -> Result<(), EngineError> {
    let Some(online) = online else {
        return Ok(());
    };
    let asked =
        node_list(mems).ok_or_else(|| bad(format!("Invalid value {mems} for cpuset mems")))?;
    let have = node_list(online.trim()).unwrap_or_default();
    if asked.iter().any(|n| !have.contains(n)) {
        return Err(bad(format!(
            "Requested memory nodes are not available - requested {mems}, available: {}",
            online.trim()
        )));
    }
    Ok(())
}

/// `0-2,4` → [0, 1, 2, 4]; at most 4096 nodes (the kernel's `MAX_NUMNODES` bound).
fn node_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        if b < a || b >= 4096 || out.len() > 4096 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// An I/O error as Go prints it (`no such file or directory`).
fn go_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_ascii_lowercase(),
        None => e.to_string(),
    }
}

/// A host block device's major:minor, `stat` following links as dockerd's does.
fn block_device(path: &str) -> Result<(i64, i64), EngineError> {
    let meta = std::fs::metadata(Path::new(path))
        .map_err(|e| bad(format!("stat {path}: {}", go_text(&e))))?;
    if !meta.file_type().is_block_device() {
        return Err(bad(format!("{path} is not a block device")));
    }
    let rdev = meta.rdev();
    Ok((
        i64::from(nix::sys::stat::major(rdev) as u32),
        i64::from(nix::sys::stat::minor(rdev) as u32),
    ))
}

/// `linux.resources.blockIO` from the stored fields.
fn block_io(x: &Map<String, Value>) -> Result<BlockIo, EngineError> {
    let mut out = BlockIo {
        weight: number(x, "BlkioWeight")?
            .filter(|w| *w != 0)
            .and_then(|w| u16::try_from(w).ok()),
        ..BlockIo::default()
    };
    for item in list(x, "BlkioWeightDevice")? {
        let (path, weight) = path_and(item, "BlkioWeightDevice", "Weight")?;
        let weight = u16::try_from(weight)
            .ok()
            .filter(|w| (10..=1000).contains(w))
            .ok_or_else(|| bad("Range of blkio weight is from 10 to 1000"))?;
        let (major, minor) = block_device(&path)?;
        out.weight_device.push(WeightDevice {
            major,
            minor,
            weight,
        });
    }
    for (key, _) in THROTTLES {
        let mut devices = Vec::new();
        for item in list(x, key)? {
            let (path, rate) = path_and(item, key, "Rate")?;
            let (major, minor) = block_device(&path)?;
            devices.push(ThrottleDevice { major, minor, rate });
        }
        match key {
            "BlkioDeviceReadBps" => out.read_bps = devices,
            "BlkioDeviceWriteBps" => out.write_bps = devices,
            "BlkioDeviceReadIOps" => out.read_iops = devices,
            _ => out.write_iops = devices,
        }
    }
    Ok(out)
}

/// `could not select device driver "" with capabilities: [[gpu]]`: Go's `%v` of the
/// request's capability lists.
fn device_request_error(req: &Value) -> String {
    let driver = req.get("Driver").and_then(Value::as_str).unwrap_or("");
    let caps: Vec<String> = match req.get("Capabilities") {
        Some(Value::Array(sets)) => sets
            .iter()
            .map(|set| {
                let words: Vec<&str> = match set {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                format!("[{}]", words.join(" "))
            })
            .collect(),
        _ => Vec::new(),
    };
    format!(
        "could not select device driver {} with capabilities: [{}]",
        serde_json::to_string(driver).unwrap_or_default(),
        caps.join(" ")
    )
}

/// At start: the fields into the spec input. No device driver (GPU) is known here, so a
/// device request fails as dockerd's does when none matches.
pub(crate) fn apply(hc: &HostConfig, input: &mut ContainerSpecInput) -> Result<(), EngineError> {
    let x = &hc.extra;
    if let Some(req) = list(x, "DeviceRequests")?.first() {
        return Err(bad(device_request_error(req)));
    }
    let r = &mut input.resources;
    r.block_io = block_io(x)?;
    r.memory_swappiness = number(x, "MemorySwappiness")?
        .filter(|s| *s != -1)
        .and_then(|s| u64::try_from(s).ok());
    r.oom_kill_disable = boolean(x, "OomKillDisable")?;
    r.cpu_rt_period = number(x, "CpuRealtimePeriod")?
        .filter(|p| *p != 0)
        .and_then(|p| u64::try_from(p).ok());
    r.cpu_rt_runtime = number(x, "CpuRealtimeRuntime")?.filter(|p| *p != 0);
    r.cpuset_mems = hc
        .resources
        .cpuset_mems
        .get()
        .filter(|s| !s.is_empty())
        .cloned();
    input.device_rules = device_rules(x)?;
    input.annotations = annotations(x)?;
    Ok(())
}

/// After the runtime made the container's cgroup, before its process runs: libcontainer
/// 0.7 never writes `memory.oom_control` (its cgroup options hard-code the OOM killer on),
/// so `OomKillDisable` is written here, on v1 (v2 has no such switch and [`settle`]
/// dropped it there). runc has written it already; the same value again is harmless.
pub(crate) fn after_create(hc: &HostConfig, cgroups_path: &str) -> Result<(), EngineError> {
    if !boolean(&hc.extra, "OomKillDisable")? {
        return Ok(());
    }
    let layout = berth_cgroups::Layout::read().map_err(EngineError::io(
        "cannot read",
        Path::new("/proc/self/mountinfo"),
    ))?;
    if layout.unified() {
        return Ok(());
    }
    let dirs = layout.dirs(cgroups_path);
    let Some(dir) = dirs.v1("memory") else {
        return Ok(());
    };
    let file = dir.join("memory.oom_control");
    std::fs::write(&file, "1").map_err(EngineError::io("cannot write", &file))
}

/// `ConsoleSize` (`[height, width]`) of a TTY container as (width, height); `None`
/// without a TTY, or for `[0, 0]` (the CLI's value when it has no terminal).
pub(crate) fn console_size(rec: &super::record::Record) -> Option<(u16, u16)> {
    if !rec.config.tty() {
        return None;
    }
    let size = rec.host_config.extra.get("ConsoleSize")?.as_array()?;
    let n = |i: usize| size.get(i)?.as_u64().and_then(|v| u16::try_from(v).ok());
    let (h, w) = (n(0)?, n(1)?);
    (h != 0 && w != 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    const ALL: Support = Support {
        blkio_weight: true,
        blkio_weight_device: true,
        throttle: [true; 4],
        swappiness: true,
        oom_kill_disable: true,
        cpu_rt_period: true,
        cpu_rt_runtime: true,
    };

    fn refused(v: Value, host: &Support) -> String {
        match settle(&mut hc(v), host) {
            Err(EngineError::InvalidArgument(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Each field the host cannot do is refused in dockerd's words, or dropped with its
    /// warning; before, all were stored and ignored.
    #[test]
    fn refusals_and_warnings_in_dockerds_words() {
        assert_eq!(
            refused(json!({"BlkioWeight": 5}), &ALL),
            "Range of blkio weight is from 10 to 1000"
        );
        assert_eq!(
            refused(json!({"MemorySwappiness": 101}), &ALL),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        assert_eq!(
            refused(json!({"CpuRealtimePeriod": 1000}), &Support::default()),
            "Your kernel does not support cgroup cpu real-time period"
        );
        assert_eq!(
            refused(json!({"CpuRealtimeRuntime": 1000}), &Support::default()),
            "Your kernel does not support cgroup cpu real-time runtime"
        );
        assert_eq!(
            refused(
                json!({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 2000}),
                &ALL
            ),
            "cpu real-time runtime cannot be higher than cpu real-time period"
        );
        assert_eq!(
            refused(json!({"DeviceCgroupRules": ["c 1:2"]}), &ALL),
            "invalid device cgroup rule format: 'c 1:2'"
        );
        assert_eq!(
            refused(json!({"UsernsMode": "ns:x"}), &ALL),
            "invalid USER mode: ns:x"
        );
        assert_eq!(
            refused(json!({"StorageOpt": {"size": "1G"}}), &ALL),
            NO_STORAGE_OPT
        );
        assert_eq!(
            refused(
                json!({"BlkioDeviceReadBps": [{"Path": "/dev/berth-none", "Rate": 1}]}),
                &ALL
            ),
            "stat /dev/berth-none: no such file or directory"
        );
        assert_eq!(
            refused(
                json!({"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1}]}),
                &ALL
            ),
            "/dev/null is not a block device"
        );
        let mut h = hc(json!({"BlkioWeight": 300, "MemorySwappiness": 10,
                               "OomKillDisable": true,
                               "BlkioDeviceWriteIOps": [{"Path": "/dev/x", "Rate": 1}]}));
        let w = settle(&mut h, &Support::default()).unwrap();
        assert_eq!(
            w,
            [
                NO_WEIGHT,
                THROTTLES[3].1,
                NO_SWAPPINESS,
                NO_OOM_KILL_DISABLE
            ]
        );
        assert_eq!(h.extra["BlkioWeight"], 0);
        assert_eq!(h.extra["BlkioDeviceWriteIOps"], json!([]));
        assert_eq!(h.extra["MemorySwappiness"], Value::Null);
        assert_eq!(h.extra["OomKillDisable"], false);
        let w = settle(&mut hc(json!({"OomKillDisable": true})), &ALL).unwrap();
        assert_eq!(w, [OOM_KILL_NO_LIMIT]);
        let w = settle(
            &mut hc(
                json!({"OomKillDisable": true, "Memory": 1 << 30, "MemorySwappiness": -1,
                           "UsernsMode": "host", "StorageOpt": {}}),
            ),
            &ALL,
        )
        .unwrap();
        assert!(w.is_empty());
    }

    #[test]
    fn cgroup_parent_is_the_containers_or_the_daemons() {
        let id = "abc";
        assert_eq!(cgroup_path("/berth", &hc(json!({})), id), "/berth/abc");
        assert_eq!(
            cgroup_path("/berth", &hc(json!({"CgroupParent": ""})), id),
            "/berth/abc"
        );
        assert_eq!(
            cgroup_path("/berth", &hc(json!({"CgroupParent": "/custom/"})), id),
            "/custom/abc"
        );
        assert_eq!(
            cgroup_path("/berth", &hc(json!({"CgroupParent": "rel/x"})), id),
            "/rel/x/abc"
        );
        assert_eq!(
            refused(json!({"CgroupParent": "/a/../../etc"}), &ALL),
            "invalid cgroup parent: \"/a/../../etc\""
        );
    }

    #[test]
    fn device_rules_parse_like_dockerd() {
        let r = parse_device_rule("c 42:* rmw").unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('c', Some(42), None));
        assert!(parse_device_rule("a *:* r").is_some());
        for bad in [
            "",
            "x 1:2 r",
            "c 1:2 rwmm",
            "c 1:2 q",
            "c 1-2 r",
            "c 1:2  r",
            "c -1:2 r",
        ] {
            assert!(parse_device_rule(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn gpu_requests_fail_as_dockerds() {
        let mut input = ContainerSpecInput::default();
        let h = hc(json!({"DeviceRequests": [{"Driver": "", "Count": -1,
                                              "Capabilities": [["gpu"]]}]}));
        match apply(&h, &mut input) {
            Err(EngineError::InvalidArgument(m)) => assert_eq!(
                m,
                "could not select device driver \"\" with capabilities: [[gpu]]"
            ),
            other => panic!("{other:?}"),
        }
        let h = hc(json!({"DeviceRequests": [{"Driver": "nvidia",
                                              "Capabilities": [["gpu", "utility"], ["compute"]]}]}));
        let Err(e) = apply(&h, &mut input) else {
            panic!()
        };
        assert_eq!(
            e.to_string(),
            "could not select device driver \"nvidia\" with capabilities: [[gpu utility] [compute]]"
        );
    }

    #[test]
    fn cpuset_mems_must_be_online() {
        assert!(cpuset_mems("0", Some("0\n".into())).is_ok());
        assert!(cpuset_mems("1", None).is_ok());
        let Err(e) = cpuset_mems("1", Some("0\n".into())) else {
            panic!()
        };
        assert_eq!(
            e.to_string(),
            "Requested memory nodes are not available - requested 1, available: 0"
        );
        assert!(cpuset_mems("0-99999", Some("0".into())).is_err());
    }

    #[test]
    fn fields_reach_the_spec_input() {
        let mut input = ContainerSpecInput::default();
        let h = hc(
            json!({"BlkioWeight": 300, "MemorySwappiness": 7, "OomKillDisable": true,
                          "CpuRealtimePeriod": 1000000, "CpuRealtimeRuntime": 950000,
                          "CpusetMems": "0", "DeviceCgroupRules": ["b 7:* rw"],
                          "Annotations": {"a": "b"}}),
        );
        apply(&h, &mut input).unwrap();
        let r = &input.resources;
        assert_eq!(r.block_io.weight, Some(300));
        assert_eq!(r.memory_swappiness, Some(7));
        assert!(r.oom_kill_disable);
        assert_eq!(
            (r.cpu_rt_period, r.cpu_rt_runtime),
            (Some(1_000_000), Some(950_000))
        );
        assert_eq!(r.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(input.device_rules.len(), 1);
        assert_eq!(input.annotations["a"], "b");
    }
}
