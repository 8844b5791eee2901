//! Stats samples of a container's cgroup in Docker's stats JSON (`cpu_stats`,
//! `memory_stats`, `pids_stats`, `blkio_stats`; moby `api/types/container/stats.go`),
//! from the v1 controller files or the v2 directory, and the host facts a sample needs.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::dirs::{flat_keyed, read, read_u64};
use crate::Dirs;

/// Nanoseconds per clock tick of `/proc/stat` and `cpuacct.stat` (USER_HZ is 100 on Linux).
const NANOS_PER_TICK: u64 = 10_000_000;

/// Host facts a stats sample needs besides the cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// `/proc/stat`'s cpu line in nanoseconds (Docker's `system_cpu_usage`).
    pub system_cpu_usage: u64,
    pub online_cpus: u64,
    /// RAM, the limit dockerd shows for a container without one.
    pub mem_total: u64,
}

impl Host {
    pub fn read() -> Host {
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
pub fn system_cpu_usage(proc_stat: &str) -> u64 {
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
/// A v1 blkio file as Docker's entries: always a list, `[]` when empty (moby
/// `copyBlkioEntry` makes one of each v1 list).
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
    Value::Array(entries)
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
pub fn zero_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// One sample: `cpu_stats`, `memory_stats`, `pids_stats`, `blkio_stats` in Docker's
/// shape (moby `api/types/container/stats.go`).
pub fn sample(dirs: &Dirs, host: &Host) -> Map<String, Value> {
    let mut out = Map::new();
    match dirs {
        Dirs::V1(_) => sample_v1(dirs, host, &mut out),
        Dirs::V2(d) => sample_v2(d, host, &mut out),
    }
    out
}

/// The v1 memory.stat keys dockerd reports, each also as `total_<key>`.
const V1_MEMORY_STAT_KEYS: [&str; 15] = [
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
];
const HIERARCHICAL_LIMITS: [&str; 2] = ["hierarchical_memory_limit", "hierarchical_memsw_limit"];

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
    let stat = flat_keyed(&read(mem, "memory.stat").unwrap_or_default());
    // moby `daemon/stats_unix.go` statsV1: these keys of memory.stat, each (0 when the
    // kernel lacks it), not the others (shmem, swap, workingset_*...).
    let stats: Map<String, Value> = V1_MEMORY_STAT_KEYS
        .iter()
        .flat_map(|k| [k.to_string(), format!("total_{k}")])
        .chain(HIERARCHICAL_LIMITS.iter().map(|k| k.to_string()))
        .map(|k| {
            let v = stat.get(&k).copied().unwrap_or(0);
            (k, json!(v))
        })
        .collect();
    let mut limit = read_u64(mem, "memory.limit_in_bytes").unwrap_or(0);
    // moby `daemon/stats_unix.go`: no limit shows as the machine's memory.
    if host.mem_total > 0 && (limit == 0 || limit > host.mem_total) {
        limit = host.mem_total;
    }
    let mut memory = json!({
        "usage": read_u64(mem, "memory.usage_in_bytes").unwrap_or(0),
        "max_usage": read_u64(mem, "memory.max_usage_in_bytes").unwrap_or(0),
        "stats": stats,
        "limit": limit,
    });
    // `failcnt` is `omitempty` in moby's MemoryStats.
    let failcnt = read_u64(mem, "memory.failcnt").unwrap_or(0);
    if failcnt > 0 {
        memory["failcnt"] = json!(failcnt);
    }
    out.insert("memory_stats".into(), memory);
    out.insert(
        "pids_stats".into(),
        pids_stats(dirs.v1("pids").unwrap_or(none)),
    );
    let blk = dirs.v1("blkio").unwrap_or(none);
    let pick = |cfq: &str, throttle: &str| {
        let v = blkio_v1(&read(blk, cfq).unwrap_or_default());
        if v.as_array().is_none_or(Vec::is_empty) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(
            mem.join("memory.stat"),
            "cache 10\ntotal_inactive_file 7\nshmem 1\nswap 0\nworkingset_refault_anon 2\n",
        )
        .unwrap();
        std::fs::write(mem.join("memory.failcnt"), "0\n").unwrap();
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
        // dockerd's 32 keys, 0 where memory.stat lacks them, and none of the others.
        let keys = s["memory_stats"]["stats"].as_object().unwrap();
        assert_eq!(keys.len(), 32, "{keys:?}");
        assert_eq!(s["memory_stats"]["stats"]["total_rss"], 0);
        assert!(keys.get("shmem").is_none() && keys.get("swap").is_none());
        assert!(s["memory_stats"].get("failcnt").is_none(), "omitempty");
        assert_eq!(s["pids_stats"], json!({"current": 3}));
        let bytes = &s["blkio_stats"]["io_service_bytes_recursive"];
        assert_eq!(bytes.as_array().unwrap().len(), 2, "Total dropped");
        assert_eq!(
            bytes[1],
            json!({"major": 8, "minor": 0, "op": "Write", "value": 1024})
        );
        assert_eq!(s["blkio_stats"]["io_serviced_recursive"], json!([]));
        // A limit below RAM is reported as is.
        std::fs::write(mem.join("memory.limit_in_bytes"), "67108864\n").unwrap();
        let s = Value::Object(sample(&dirs, &host()));
        assert_eq!(s["memory_stats"]["limit"], 67108864);
        assert_eq!(crate::memory_limit(&dirs), Some(67108864));
        std::fs::write(mem.join("memory.failcnt"), "3\n").unwrap();
        let s = Value::Object(sample(&dirs, &host()));
        assert_eq!(s["memory_stats"]["failcnt"], 3);
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
        assert_eq!(crate::memory_limit(&dirs), None);
        std::fs::write(d.join("memory.max"), "1048576\n").unwrap();
        assert_eq!(crate::memory_limit(&dirs), Some(1048576));
    }
}
