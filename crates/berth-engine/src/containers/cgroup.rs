//! A running container's cgroup as files: where its directories are (v1 per controller,
//! or the one v2 directory), the stats dockerd reports from them (`docker stats`), its
//! process ids (`docker top`), and live resource changes (`docker update`).
//!
//! The shim creates and removes the cgroup (libcontainer); the engine only reads it and
//! writes limits into it. Everything takes the directories as arguments, so the parsing
//! and the v1/v2 translations are unit-tested on sample files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// Nanoseconds per clock tick of `/proc/stat` and `cpuacct.stat` (USER_HZ is 100 on Linux).
const NANOS_PER_TICK: u64 = 10_000_000;

/// Where one container's cgroup lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dirs {
    /// Controller name (`memory`, `cpuacct`, `pids`, …) → directory.
    V1(HashMap<String, PathBuf>),
    V2(PathBuf),
}

impl Dirs {
    /// The directories of cgroup `path` (e.g. `/berth/<id>`) on this host.
    pub(crate) fn of(path: &str) -> Dirs {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let v2 = berth_sys::host::cgroup_version() == berth_sys::host::CgroupVersion::V2;
        Dirs::from_mountinfo(&info, v2, path)
    }

    /// As [`Dirs::of`], from a mountinfo text.
    pub(crate) fn from_mountinfo(info: &str, v2: bool, path: &str) -> Dirs {
        let rel = path.trim_start_matches('/');
        let mut v1 = HashMap::new();
        for m in berth_sys::mountinfo::parse(info) {
            match m.fs_type.as_str() {
                "cgroup2" if v2 => return Dirs::V2(m.mount_point.join(rel)),
                "cgroup" if !v2 => {
                    for opt in m.super_options.split(',') {
                        if matches!(
                            opt,
                            "memory" | "cpu" | "cpuacct" | "cpuset" | "pids" | "blkio" | "freezer"
                        ) {
                            v1.entry(opt.to_string())
                                .or_insert_with(|| m.mount_point.join(rel));
                        }
                    }
                }
                _ => {}
            }
        }
        if v2 {
            Dirs::V2(Path::new("/sys/fs/cgroup").join(rel))
        } else {
            Dirs::V1(v1)
        }
    }

    fn v1(&self, controller: &str) -> Option<&Path> {
        match self {
            Dirs::V1(m) => m.get(controller).map(PathBuf::as_path),
            Dirs::V2(_) => None,
        }
    }

    /// Every pid in the cgroup and its descendants.
    pub(crate) fn pids(&self) -> Vec<i32> {
        let root = match self {
            Dirs::V2(d) => Some(d.as_path()),
            Dirs::V1(_) => self
                .v1("pids")
                .or_else(|| self.v1("memory"))
                .or_else(|| self.v1("freezer")),
        };
        let mut out = Vec::new();
        if let Some(root) = root {
            collect_procs(root, &mut out, 0);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>, depth: u32) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if depth > 16 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), out, depth + 1);
            }
        }
    }
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`).
fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Host facts a stats sample needs besides the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Host {
    /// `/proc/stat`'s cpu line in nanoseconds (Docker's `system_cpu_usage`).
    pub system_cpu_usage: u64,
    pub online_cpus: u64,
    /// RAM, the limit dockerd shows for a container without one.
    pub mem_total: u64,
}

impl Host {
    pub(crate) fn read() -> Host {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        Host {
            system_cpu_usage: system_cpu_usage(&stat),
            online_cpus: berth_sys::host::ncpu(),
            mem_total: berth_sys::host::mem_total(),
        }
    }
}

/// The sum of `/proc/stat`'s first (`cpu`) line in nanoseconds (moby
/// `daemon/stats_collector_unix.go`, `getSystemCPUUsage`).
pub(crate) fn system_cpu_usage(proc_stat: &str) -> u64 {
    proc_stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum::<u64>()
                * NANOS_PER_TICK
        })
        .unwrap_or(0)
}

/// `blkio.*_recursive` lines: `8:0 Read 4096`, plus a `Total` line that Docker drops.
fn blkio_v1(text: &str) -> Value {
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (maj, min) = f[0].split_once(':')?;
            Some(json!({
                "major": maj.parse::<u64>().ok()?,
                "minor": min.parse::<u64>().ok()?,
                "op": f[1],
                "value": f[2].parse::<u64>().ok()?,
            }))
        })
        .collect();
    if entries.is_empty() {
        Value::Null
    } else {
        Value::Array(entries)
    }
}

/// v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 …`) as Docker's two blkio lists.
fn blkio_v2(text: &str) -> (Value, Value) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "read"),
                "wbytes" => (&mut bytes, "write"),
                "rios" => (&mut ios, "read"),
                "wios" => (&mut ios, "write"),
                _ => continue,
            };
            list.push(json!({"major": maj, "minor": min, "op": op, "value": v}));
        }
    }
    let opt = |v: Vec<Value>| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::Array(v)
        }
    };
    (opt(bytes), opt(ios))
}

/// A zeroed `cpu_stats` (the first `precpu_stats`, and a stopped container's).
pub(crate) fn zero_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// One sample: `cpu_stats`, `memory_stats`, `pids_stats`, `blkio_stats` in Docker's
/// shape (moby `api/types/container/stats.go`).
pub(crate) fn sample(dirs: &Dirs, host: &Host) -> Map<String, Value> {
    let mut out = Map::new();
    match dirs {
        Dirs::V1(_) => sample_v1(dirs, host, &mut out),
        Dirs::V2(d) => sample_v2(d, host, &mut out),
    }
    out
}

fn sample_v1(dirs: &Dirs, host: &Host, out: &mut Map<String, Value>) {
    let none = Path::new("/nonexistent");
    let cpuacct = dirs.v1("cpuacct").unwrap_or(none);
    let cpu = dirs.v1("cpu").unwrap_or(none);
    let percpu: Vec<u64> = read(cpuacct, "cpuacct.usage_percpu")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let ticks = flat_keyed(&read(cpuacct, "cpuacct.stat").unwrap_or_default());
    let throttle = flat_keyed(&read(cpu, "cpu.stat").unwrap_or_default());
    let mut usage = json!({
        "total_usage": read_u64(cpuacct, "cpuacct.usage").unwrap_or(0),
        "usage_in_kernelmode": ticks.get("system").copied().unwrap_or(0) * NANOS_PER_TICK,
        "usage_in_usermode": ticks.get("user").copied().unwrap_or(0) * NANOS_PER_TICK,
    });
    if !percpu.is_empty() {
        usage["percpu_usage"] = json!(percpu);
    }
    let online = if percpu.is_empty() {
        host.online_cpus
    } else {
        host.online_cpus.min(percpu.len() as u64).max(1)
    };
    out.insert(
        "cpu_stats".into(),
        json!({
            "cpu_usage": usage,
            "system_cpu_usage": host.system_cpu_usage,
            "online_cpus": online,
            "throttling_data": {
                "periods": throttle.get("nr_periods").copied().unwrap_or(0),
                "throttled_periods": throttle.get("nr_throttled").copied().unwrap_or(0),
                "throttled_time": throttle.get("throttled_time").copied().unwrap_or(0),
            },
        }),
    );
    let mem = dirs.v1("memory").unwrap_or(none);
    let stats = flat_keyed(&read(mem, "memory.stat").unwrap_or_default());
    let mut limit = read_u64(mem, "memory.limit_in_bytes").unwrap_or(0);
    // moby `daemon/stats_unix.go`: no limit shows as the machine's memory.
    if host.mem_total > 0 && (limit == 0 || limit > host.mem_total) {
        limit = host.mem_total;
    }
    out.insert(
        "memory_stats".into(),
        json!({
            "usage": read_u64(mem, "memory.usage_in_bytes").unwrap_or(0),
            "max_usage": read_u64(mem, "memory.max_usage_in_bytes").unwrap_or(0),
            "failcnt": read_u64(mem, "memory.failcnt").unwrap_or(0),
            "stats": stats,
            "limit": limit,
        }),
    );
    out.insert(
        "pids_stats".into(),
        pids_stats(dirs.v1("pids").unwrap_or(none)),
    );
    let blk = dirs.v1("blkio").unwrap_or(none);
    let pick = |cfq: &str, throttle: &str| {
        let v = blkio_v1(&read(blk, cfq).unwrap_or_default());
        if v.is_null() {
            blkio_v1(&read(blk, throttle).unwrap_or_default())
        } else {
            v
        }
    };
    out.insert(
        "blkio_stats".into(),
        json!({
            "io_service_bytes_recursive": pick(
                "blkio.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive"
            ),
            "io_serviced_recursive": pick(
                "blkio.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive"
            ),
            "io_queue_recursive": blkio_v1(&read(blk, "blkio.io_queued_recursive").unwrap_or_default()),
            "io_service_time_recursive": blkio_v1(&read(blk, "blkio.io_service_time_recursive").unwrap_or_default()),
            "io_wait_time_recursive": blkio_v1(&read(blk, "blkio.io_wait_time_recursive").unwrap_or_default()),
            "io_merged_recursive": blkio_v1(&read(blk, "blkio.io_merged_recursive").unwrap_or_default()),
            "io_time_recursive": blkio_v1(&read(blk, "blkio.time_recursive").unwrap_or_default()),
            "sectors_recursive": blkio_v1(&read(blk, "blkio.sectors_recursive").unwrap_or_default()),
        }),
    );
}

fn pids_stats(dir: &Path) -> Value {
    let mut v = json!({"current": read_u64(dir, "pids.current").unwrap_or(0)});
    if let Some(limit) = read_u64(dir, "pids.max") {
        v["limit"] = json!(limit);
    }
    v
}

fn sample_v2(dir: &Path, host: &Host, out: &mut Map<String, Value>) {
    let cpu = flat_keyed(&read(dir, "cpu.stat").unwrap_or_default());
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    out.insert(
        "cpu_stats".into(),
        json!({
            "cpu_usage": {
                "total_usage": us("usage_usec"),
                "usage_in_kernelmode": us("system_usec"),
                "usage_in_usermode": us("user_usec"),
            },
            "system_cpu_usage": host.system_cpu_usage,
            "online_cpus": host.online_cpus,
            "throttling_data": {
                "periods": cpu.get("nr_periods").copied().unwrap_or(0),
                "throttled_periods": cpu.get("nr_throttled").copied().unwrap_or(0),
                "throttled_time": us("throttled_usec"),
            },
        }),
    );
    let stats = flat_keyed(&read(dir, "memory.stat").unwrap_or_default());
    // `max` does not parse: unlimited.
    let mut limit = read_u64(dir, "memory.max").unwrap_or(0);
    if host.mem_total > 0 && (limit == 0 || limit > host.mem_total) {
        limit = host.mem_total;
    }
    out.insert(
        "memory_stats".into(),
        json!({
            "usage": read_u64(dir, "memory.current").unwrap_or(0),
            "stats": stats,
            "limit": limit,
        }),
    );
    out.insert("pids_stats".into(), pids_stats(dir));
    let (bytes, ios) = blkio_v2(&read(dir, "io.stat").unwrap_or_default());
    out.insert(
        "blkio_stats".into(),
        json!({
            "io_service_bytes_recursive": bytes,
            "io_serviced_recursive": ios,
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null,
        }),
    );
}

/// `/proc/<pid>/net/dev` as Docker's `networks` (loopback left out); `None` when there
/// is no other interface.
pub(crate) fn networks(net_dev: &str) -> Option<Value> {
    let mut out = Map::new();
    for l in net_dev.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Resource limits as `docker update` sends them; `None` leaves a limit alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes; -1 unlimited.
    pub memory: Option<i64>,
    /// Memory plus swap, bytes; -1 unlimited.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    /// Microseconds per period; -1 unlimited.
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// 0 or less: unlimited.
    pub pids_limit: Option<i64>,
}

/// One file write of a live update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub path: PathBuf,
    pub value: String,
}

fn w(dir: &Path, file: &str, value: impl ToString) -> Write {
    Write {
        path: dir.join(file),
        value: value.to_string(),
    }
}

/// The writes that apply `l`, in an order the kernel accepts: with `raise_memory` the
/// memory+swap limit is written before the memory limit (v1 refuses a memory limit above
/// memsw), else after.
pub(crate) fn writes(dirs: &Dirs, l: &Limits, raise_memory: bool) -> Vec<Write> {
    let mut out = Vec::new();
    match dirs {
        Dirs::V1(_) => {
            let none = Path::new("/nonexistent");
            let mem = dirs.v1("memory").unwrap_or(none);
            let memsw = |out: &mut Vec<Write>| {
                if let Some(s) = l.memory_swap {
                    if mem.join("memory.memsw.limit_in_bytes").exists() {
                        out.push(w(mem, "memory.memsw.limit_in_bytes", s));
                    }
                }
            };
            if raise_memory {
                memsw(&mut out);
            }
            if let Some(m) = l.memory {
                out.push(w(mem, "memory.limit_in_bytes", m));
            }
            if !raise_memory {
                memsw(&mut out);
            }
            if let Some(r) = l.memory_reservation {
                out.push(w(mem, "memory.soft_limit_in_bytes", r));
            }
            let cpu = dirs.v1("cpu").unwrap_or(none);
            if let Some(s) = l.cpu_shares {
                out.push(w(cpu, "cpu.shares", s));
            }
            if let Some(p) = l.cpu_period {
                out.push(w(cpu, "cpu.cfs_period_us", p));
            }
            if let Some(q) = l.cpu_quota {
                out.push(w(cpu, "cpu.cfs_quota_us", q));
            }
            let cpuset = dirs.v1("cpuset").unwrap_or(none);
            if let Some(c) = &l.cpuset_cpus {
                out.push(w(cpuset, "cpuset.cpus", c));
            }
            if let Some(m) = &l.cpuset_mems {
                out.push(w(cpuset, "cpuset.mems", m));
            }
            if let Some(p) = l.pids_limit {
                let pids = dirs.v1("pids").unwrap_or(none);
                out.push(w(pids, "pids.max", pids_max(p)));
            }
        }
        Dirs::V2(d) => {
            let max = |v: i64| {
                if v < 0 {
                    "max".to_string()
                } else {
                    v.to_string()
                }
            };
            // runc's conversion: v2 has no memsw, swap.max is memsw minus memory.
            let swap = l.memory_swap.map(|s| match (s, l.memory) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(m)) if m > 0 => (s - m).max(0).to_string(),
                (s, _) => s.to_string(),
            });
            if let Some(m) = l.memory {
                out.push(w(d, "memory.max", max(m)));
            }
            if let Some(s) = swap {
                out.push(w(d, "memory.swap.max", s));
            }
            if let Some(r) = l.memory_reservation {
                out.push(w(d, "memory.low", max(r)));
            }
            if let Some(s) = l.cpu_shares {
                out.push(w(d, "cpu.weight", shares_to_weight(s)));
            }
            if l.cpu_quota.is_some() || l.cpu_period.is_some() {
                let quota = l
                    .cpu_quota
                    .filter(|q| *q > 0)
                    .map_or("max".into(), |q| q.to_string());
                let period = l.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
                out.push(w(d, "cpu.max", format!("{quota} {period}")));
            }
            if let Some(c) = &l.cpuset_cpus {
                out.push(w(d, "cpuset.cpus", c));
            }
            if let Some(m) = &l.cpuset_mems {
                out.push(w(d, "cpuset.mems", m));
            }
            if let Some(p) = l.pids_limit {
                out.push(w(d, "pids.max", pids_max(p)));
            }
        }
    }
    out
}

fn pids_max(p: i64) -> String {
    if p > 0 {
        p.to_string()
    } else {
        "max".into()
    }
}

/// runc's `ConvertCPUSharesToCgroupV2Value`.
fn shares_to_weight(shares: i64) -> i64 {
    if shares <= 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// The current memory limit in bytes (`None`: unlimited or unknown).
pub(crate) fn memory_limit(dirs: &Dirs) -> Option<u64> {
    let v = match dirs {
        Dirs::V1(_) => read_u64(dirs.v1("memory")?, "memory.limit_in_bytes")?,
        Dirs::V2(d) => read_u64(d, "memory.max")?,
    };
    (v < (1 << 62)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn finds_v1_controllers_and_v2_dir() {
        let d = Dirs::from_mountinfo(MOUNTINFO_V1, false, "/berth/abc");
        assert_eq!(
            d.v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/berth/abc"))
        );
        assert_eq!(
            d.v1("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/abc"))
        );
        assert_eq!(d.v1("cpu"), d.v1("cpuacct"));
        assert_eq!(d.v1("systemd"), None);
        assert_eq!(d.v1("blkio"), None);
        let v2 = "31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Dirs::from_mountinfo(v2, true, "/berth/abc"),
            Dirs::V2(PathBuf::from("/sys/fs/cgroup/berth/abc"))
        );
        // Mount points come unescaped (`\040` is a space).
        let spaced = "31 30 0:27 / /cg\\040root rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            Dirs::from_mountinfo(spaced, true, "/berth/abc"),
            Dirs::V2(PathBuf::from("/cg root/berth/abc"))
        );
        // Garbage lines are skipped.
        assert_eq!(
            Dirs::from_mountinfo("x\n - \n1 2 3 - cgroup\n", false, "/a"),
            Dirs::V1(HashMap::new())
        );
    }

    #[test]
    fn system_cpu_usage_sums_the_cpu_line() {
        let stat = "cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 1 1 1 1 1 1\n";
        assert_eq!(system_cpu_usage(stat), 280 * NANOS_PER_TICK);
        assert_eq!(system_cpu_usage("garbage"), 0);
    }

    fn host() -> Host {
        Host {
            system_cpu_usage: 5_000,
            online_cpus: 2,
            mem_total: 1 << 30,
        }
    }

    #[test]
    fn v1_sample_from_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |c: &str| {
            let p = tmp.path().join(c);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (mem, cpu, pids, blk) = (dir("memory"), dir("cpu"), dir("pids"), dir("blkio"));
        std::fs::write(mem.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(mem.join("memory.max_usage_in_bytes"), "8192\n").unwrap();
        std::fs::write(mem.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(mem.join("memory.stat"), "cache 10\ntotal_inactive_file 7\n").unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123456\n").unwrap();
        std::fs::write(cpu.join("cpuacct.usage_percpu"), "100 23456 \n").unwrap();
        std::fs::write(cpu.join("cpuacct.stat"), "user 3\nsystem 2\n").unwrap();
        std::fs::write(
            cpu.join("cpu.stat"),
            "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n",
        )
        .unwrap();
        std::fs::write(pids.join("pids.current"), "3\n").unwrap();
        std::fs::write(pids.join("pids.max"), "max\n").unwrap();
        std::fs::write(
            blk.join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 512\n8:0 Write 1024\nTotal 1536\n",
        )
        .unwrap();
        let dirs = Dirs::V1(
            [
                ("memory", &mem),
                ("cpu", &cpu),
                ("cpuacct", &cpu),
                ("pids", &pids),
                ("blkio", &blk),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        );
        let s = Value::Object(sample(&dirs, &host()));
        assert_eq!(s["cpu_stats"]["cpu_usage"]["total_usage"], 123456);
        assert_eq!(
            s["cpu_stats"]["cpu_usage"]["percpu_usage"],
            json!([100, 23456])
        );
        assert_eq!(
            s["cpu_stats"]["cpu_usage"]["usage_in_usermode"],
            3 * NANOS_PER_TICK
        );
        assert_eq!(s["cpu_stats"]["system_cpu_usage"], 5_000);
        assert_eq!(s["cpu_stats"]["online_cpus"], 2);
        assert_eq!(s["cpu_stats"]["throttling_data"]["throttled_time"], 99);
        assert_eq!(s["memory_stats"]["usage"], 4096);
        assert_eq!(s["memory_stats"]["max_usage"], 8192);
        assert_eq!(
            s["memory_stats"]["limit"],
            1u64 << 30,
            "unlimited shows RAM"
        );
        assert_eq!(s["memory_stats"]["stats"]["total_inactive_file"], 7);
        assert_eq!(s["pids_stats"], json!({"current": 3}));
        let bytes = &s["blkio_stats"]["io_service_bytes_recursive"];
        assert_eq!(bytes.as_array().unwrap().len(), 2, "Total dropped");
        assert_eq!(
            bytes[1],
            json!({"major": 8, "minor": 0, "op": "Write", "value": 1024})
        );
        assert!(s["blkio_stats"]["io_serviced_recursive"].is_null());
        // A limit below RAM is reported as is.
        std::fs::write(mem.join("memory.limit_in_bytes"), "67108864\n").unwrap();
        let s = Value::Object(sample(&dirs, &host()));
        assert_eq!(s["memory_stats"]["limit"], 67108864);
        assert_eq!(memory_limit(&dirs), Some(67108864));
    }

    #[test]
    fn v2_sample_from_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(
            d.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 2\nnr_throttled 1\nthrottled_usec 7\n",
        )
        .unwrap();
        std::fs::write(d.join("memory.current"), "2048\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 1\ninactive_file 5\n").unwrap();
        std::fs::write(d.join("pids.current"), "2\n").unwrap();
        std::fs::write(d.join("pids.max"), "64\n").unwrap();
        std::fs::write(
            d.join("io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\nbad line\n",
        )
        .unwrap();
        let dirs = Dirs::V2(d.to_path_buf());
        let s = Value::Object(sample(&dirs, &host()));
        assert_eq!(s["cpu_stats"]["cpu_usage"]["total_usage"], 1_500_000);
        assert_eq!(s["cpu_stats"]["cpu_usage"]["usage_in_kernelmode"], 500_000);
        assert_eq!(s["cpu_stats"]["throttling_data"]["throttled_time"], 7000);
        assert!(s["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
        assert_eq!(s["memory_stats"]["usage"], 2048);
        assert_eq!(s["memory_stats"]["limit"], 1u64 << 30);
        assert!(s["memory_stats"].get("max_usage").is_none());
        assert_eq!(s["pids_stats"], json!({"current": 2, "limit": 64}));
        let b = &s["blkio_stats"]["io_service_bytes_recursive"];
        assert_eq!(
            b[0],
            json!({"major": 8, "minor": 0, "op": "read", "value": 10})
        );
        assert_eq!(s["blkio_stats"]["io_serviced_recursive"][1]["value"], 2);
        assert_eq!(memory_limit(&dirs), None);
        std::fs::write(d.join("memory.max"), "1048576\n").unwrap();
        assert_eq!(memory_limit(&dirs), Some(1048576));
    }

    #[test]
    fn networks_skip_loopback() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n";
        let n = networks(dev).unwrap();
        assert_eq!(n["eth0"]["rx_bytes"], 1000);
        assert_eq!(n["eth0"]["tx_dropped"], 4);
        assert!(n.get("lo").is_none());
        assert!(networks("a\nb\n    lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").is_none());
    }

    #[test]
    fn update_writes_v1_in_a_kernel_order() {
        let dirs = Dirs::from_mountinfo(MOUNTINFO_V1, false, "/berth/c");
        let l = Limits {
            memory: Some(100),
            memory_swap: Some(200),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            pids_limit: Some(0),
            ..Limits::default()
        };
        let names = |ws: &[Write]| -> Vec<String> {
            ws.iter()
                .map(|w| {
                    format!(
                        "{}={}",
                        w.path.file_name().unwrap().to_string_lossy(),
                        w.value
                    )
                })
                .collect()
        };
        // memsw only where the host has it (not in this fake tree).
        let ws = writes(&dirs, &l, true);
        assert_eq!(
            names(&ws),
            [
                "memory.limit_in_bytes=100",
                "cpu.shares=512",
                "cpu.cfs_quota_us=50000",
                "pids.max=max"
            ]
        );
        assert!(ws[0].path.starts_with("/sys/fs/cgroup/memory/berth/c"));
    }

    #[test]
    fn update_writes_v2_translations() {
        let dirs = Dirs::V2(PathBuf::from("/cg/c"));
        let l = Limits {
            memory: Some(100),
            memory_swap: Some(300),
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            pids_limit: Some(10),
            ..Limits::default()
        };
        let ws = writes(&dirs, &l, false);
        let got: Vec<(String, String)> = ws
            .iter()
            .map(|w| (w.path.to_string_lossy().into_owned(), w.value.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("/cg/c/memory.max".into(), "100".into()),
                ("/cg/c/memory.swap.max".into(), "200".into()),
                ("/cg/c/cpu.weight".into(), "39".into()),
                ("/cg/c/cpu.max".into(), "50000 100000".into()),
                ("/cg/c/pids.max".into(), "10".into()),
            ]
        );
        let unlimited = Limits {
            memory: Some(-1),
            memory_swap: Some(-1),
            ..Limits::default()
        };
        let ws = writes(&dirs, &unlimited, true);
        assert_eq!(ws[0].value, "max");
        assert_eq!(ws[1].value, "max");
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
