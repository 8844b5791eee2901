//! `docker stats` and `docker top`: samples of a running container's cgroup (read by
//! [`berth_cgroups`]) in Docker's stats JSON with the container's network counters, and
//! the host's `ps` filtered to the container's processes, as dockerd does (moby
//! `daemon/top_unix.go`).

use std::time::Duration;

use berth_api_types::container::NetworkMode;
use berth_cgroups::{self as cgroup, Dirs, Host};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::record::ZERO_TIME;
use super::{rid, Entry};
use crate::system::now_rfc3339;
use crate::{Engine, EngineError};

/// dockerd's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);

impl super::Containers {
    /// The cgroup path the runtime gives a container (`<cgroup-parent>/<id>`, its own
    /// `CgroupParent` when it has one). Takes the container map's lock, then the
    /// record's: callers holding a record use [`Self::cgroup_path_of`].
    pub(crate) fn cgroup_path(&self, id: &str) -> String {
        let entry = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        match entry {
            Some(e) => self.cgroup_path_of(&e.rec()),
            None => format!("{}/{id}", self.cgroup_parent),
        }
    }

    /// [`Self::cgroup_path`] of a record at hand.
    pub(crate) fn cgroup_path_of(&self, rec: &super::record::Record) -> String {
        super::create_fields::cgroup_path(&self.cgroup_parent, &rec.host_config, &rec.id)
    }
}

/// `GET /containers/{id}/top`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// `ps` output that [`parse_ps`] cannot read (moby's texts; a 500, as dockerd's).
#[derive(Debug, thiserror::Error)]
pub enum PsError {
    #[error("Couldn't find PID field in ps output")]
    NoPidField,
    #[error("Unexpected pid '{pid}': {source}")]
    BadPid {
        pid: String,
        source: std::num::ParseIntError,
    },
}

/// Parses `ps` output, keeping the rows whose PID is in `pids` (moby `parsePSOutput`): the
/// columns past the last title are joined into it (a command with spaces), and thread
/// rows (`-` as PID, with `ps m`) follow the process above them.
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<Top, PsError> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or(PsError::NoPidField)?;
    let mut processes = Vec::new();
    let mut in_container = false;
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        let keep = if *pid == "-" {
            in_container
        } else {
            let p: i32 = pid.parse().map_err(|source| PsError::BadPid {
                pid: pid.to_string(),
                source,
            })?;
            in_container = pids.contains(&p);
            in_container
        };
        if keep {
            let n = titles.len();
            let mut row: Vec<String> = fields
                .iter()
                .take(n.saturating_sub(1))
                .map(|s| s.to_string())
                .collect();
            row.push(fields.get(n - 1..).unwrap_or(&[]).join(" "));
            processes.push(row);
        }
    }
    Ok(Top { titles, processes })
}

/// A stats object for a container that does not run: zeros, as dockerd sends.
fn stopped_stats(id: &str, name: &str) -> Value {
    json!({
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cgroup::zero_cpu(),
        "precpu_stats": cgroup::zero_cpu(),
        "memory_stats": {},
        "name": name,
        "id": id,
    })
}

/// One sample, read off the async workers (cgroup and `/proc` files); the sampler goes
/// to the blocking thread and comes back (`None` if that thread failed).
async fn sample_off(slot: &mut Option<Sampler>) -> Option<Value> {
    let mut s = slot.take()?;
    let (s, v) = crate::blocking::spawn(move || {
        let v = s.sample();
        (s, v)
    })
    .await
    .ok()?;
    *slot = Some(s);
    Some(v)
}

struct Sampler {
    id: String,
    name: String,
    dirs: Dirs,
    /// The init process (pid and start time), whose `/proc/<pid>/net/dev` has the
    /// container's interfaces (`None` on the host network). Opened for each sample, so
    /// that a stream holds no descriptor but its connection's.
    net_process: Option<(i32, u64)>,
    prev: Option<(String, Value)>,
}

impl Sampler {
    fn sample(&mut self) -> Value {
        let read = now_rfc3339();
        let mut s: Map<String, Value> = cgroup::sample(&self.dirs, &Host::read());
        let (preread, precpu) = self
            .prev
            .clone()
            .unwrap_or_else(|| (ZERO_TIME.to_string(), cgroup::zero_cpu()));
        let cpu = s.get("cpu_stats").cloned().unwrap_or_else(cgroup::zero_cpu);
        s.insert("read".into(), json!(read));
        s.insert("preread".into(), json!(preread));
        s.insert("precpu_stats".into(), precpu);
        s.insert("num_procs".into(), json!(0));
        s.insert("storage_stats".into(), json!({}));
        s.insert("name".into(), json!(self.name));
        s.insert("id".into(), json!(self.id));
        if let Some((pid, start_time)) = self.net_process {
            let dev = berth_sys::pidfd::ProcessHandle::open(pid, start_time)
                .ok()
                .and_then(|p| p.read_entry("net/dev").ok())
                .unwrap_or_default();
            if let Some(n) = networks(&dev) {
                s.insert("networks".into(), n);
            }
        }
        self.prev = Some((read, cpu));
        Value::Object(s)
    }
}

impl Engine {
    /// `GET /containers/{id}/stats`: one object (`stream=false`; with `one_shot` no
    /// second sample for `precpu_stats`), or one a second until the container stops or
    /// the receiver is dropped.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_stats(
        &self,
        name: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<mpsc::Receiver<Value>, EngineError> {
        let entry = self.containers.subject(name)?;
        let rec = entry.rec().clone();
        let (id, cname) = (rec.id.clone(), rec.name.clone());
        let (tx, rx) = mpsc::channel(4);
        if !rec.running() {
            let _ = tx.send(stopped_stats(&id, &cname)).await;
            return Ok(rx);
        }
        // The process (its /proc entries) and the cgroup's mounts are looked up off the
        // async workers.
        let cgroup = self.containers.cgroup_path(&id);
        let (dirs, net_process) = crate::blocking::spawn(move || {
            let host_net = rec.network_mode() == NetworkMode::Host;
            let process = (!host_net)
                .then(|| super::process::of_record(&rec).ok())
                .flatten()
                .map(|_| (rec.state.pid, rec.state.start_time));
            (Dirs::of(&cgroup), process)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut sampler = Some(Sampler {
            dirs,
            id,
            name: cname,
            net_process,
            prev: None,
        });
        let task = async move {
            let still_running = |e: &Entry| e.rec().running();
            if !stream {
                let Some(mut v) = sample_off(&mut sampler).await else {
                    return;
                };
                if !one_shot {
                    tokio::time::sleep(INTERVAL).await;
                    if still_running(&entry) {
                        v = sample_off(&mut sampler).await.unwrap_or(v);
                    }
                }
                let _ = tx.send(v).await;
                return;
            }
            loop {
                if !still_running(&entry) {
                    return;
                }
                let Some(v) = sample_off(&mut sampler).await else {
                    return;
                };
                if tx.send(v).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(INTERVAL) => {}
                    _ = tx.closed() => return,
                }
            }
        };
        tokio::spawn(task.in_current_span());
        Ok(rx)
    }

    /// `GET /containers/{id}/top`; `ps_args` default to `-ef`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_top(&self, name: &str, ps_args: &str) -> Result<Top, EngineError> {
        let (entry, id) = self.containers.running_subject(name)?;
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| EngineError::Internal(format!("Error running ps: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::Internal(format!(
                "ps: {}: {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            )));
        }
        let cgroup = self.containers.cgroup_path(&id);
        let pids = crate::blocking::spawn(move || Dirs::of(&cgroup).pids())
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        tracing::debug!(runtime_id = rid(&id), ?pids, "top");
        let top = parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.containers.emit(&entry.rec(), "top", &[]);
        Ok(top)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const PS_EF: &str = "\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         100       1  0 10:01 ?        00:00:00 sleep 1000
root         101     100  0 10:01 pts/0    00:00:00 sh -c echo  hi there
";

    #[test]
    fn ps_rows_are_filtered_and_the_command_kept_whole() {
        let t = parse_ps(PS_EF, &[100, 101]).unwrap();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.processes[0][1], "100");
        assert_eq!(t.processes[0][7], "sleep 1000");
        assert_eq!(t.processes[1][7], "sh -c echo hi there");
        assert!(parse_ps(PS_EF, &[]).unwrap().processes.is_empty());
    }

    #[test]
    fn ps_errors_and_threads() {
        assert_eq!(
            parse_ps("USER COMMAND\nroot x\n", &[1])
                .unwrap_err()
                .to_string(),
            "Couldn't find PID field in ps output"
        );
        assert_eq!(
            parse_ps("PID CMD\nabc x\n", &[1]).unwrap_err().to_string(),
            "Unexpected pid 'abc': invalid digit found in string"
        );
        assert!(parse_ps("", &[1]).is_err());
        let m = "PID TID CMD\n5 - sh\n- 5 -\n6 - other\n- 6 -\n";
        let t = parse_ps(m, &[5]).unwrap();
        assert_eq!(t.processes, vec![vec!["5", "-", "sh"], vec!["-", "5", "-"]]);
    }

    #[test]
    fn stopped_stats_are_zeros() {
        let v = stopped_stats("abc", "/n");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["name"], "/n");
        assert_eq!(v["read"], ZERO_TIME);
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
}
