//! The engine's side of the daemon's Prometheus metrics (`metrics-addr`): containers by
//! state, the shims' memory, and the bytes pulled from registries. The HTTP side, request
//! counts and latencies, is berth-server's.

use std::path::Path;

use crate::Engine;

/// One reading of the engine's gauges and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineMetrics {
    /// dockerd's three states: running (restarting counted in), paused, stopped (the rest).
    pub running: u64,
    pub paused: u64,
    pub stopped: u64,
    /// Processes in `<cgroup-parent>/shims` and the sum of their resident memory.
    pub shims: u64,
    pub shim_rss_bytes: u64,
    /// Bytes of blobs downloaded from registries since the daemon started.
    pub pulled_bytes: u64,
    /// Healthcheck probes that passed and failed, and times a container turned unhealthy.
    pub health_probes_passed: u64,
    pub health_probes_failed: u64,
    pub health_turned_unhealthy: u64,
}

impl Engine {
    /// Reads the metrics. Blocking (it reads `/proc` and the shims' cgroup): call it off
    /// the async workers.
    pub fn metrics(&self) -> EngineMetrics {
        let (running, paused, stopped) = self.container_state_counts();
        let (passed, failed, unhealthy) = crate::containers::health::PROBE_COUNTS.read();
        let mut m = EngineMetrics {
            running,
            paused,
            stopped,
            pulled_bytes: berth_image::registry::pulled_bytes(),
            health_probes_passed: passed,
            health_probes_failed: failed,
            health_turned_unhealthy: unhealthy,
            ..Default::default()
        };
        if let Ok(layout) = berth_cgroups::Layout::read() {
            let mut pids = layout.procs(&self.config.shim_cgroup());
            pids.sort_unstable();
            pids.dedup();
            m.shims = pids.len() as u64;
            m.shim_rss_bytes = pids.iter().filter_map(|p| rss_bytes(*p)).sum();
        }
        m
    }
}

/// Resident memory of a process from `/proc/<pid>/statm` (pages × page size).
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let statm =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("statm")).ok()?;
    statm_rss(&statm).map(|pages| pages * page_size())
}

/// Resident memory of this process.
pub fn own_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    statm_rss(&statm).map(|pages| pages * page_size())
}

fn statm_rss(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_second_field_is_resident_pages() {
        assert_eq!(statm_rss("1000 250 30 1 0 400 0\n"), Some(250));
        assert_eq!(statm_rss("1000"), None);
        assert_eq!(statm_rss(""), None);
    }

    #[test]
    fn own_rss_is_plausible() {
        let rss = own_rss_bytes().unwrap();
        assert!(rss > 100 * 1024, "{rss}");
    }
}
