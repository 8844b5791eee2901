//! SIGUSR1: a snapshot of the daemon's state written to a file under the exec root, as
//! dockerd writes its goroutine stacks: the async runtime's load, every thread with its
//! kernel state and wait channel, and the requests being answered with how long each has
//! run — what an operator needs to see where a stuck daemon waits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What the async runtime reports about its load (taken on the runtime, read in the dump).
#[derive(Debug, Clone, Copy)]
pub struct RuntimeLoad {
    pub workers: usize,
    pub alive_tasks: usize,
    pub global_queue_depth: usize,
}

impl RuntimeLoad {
    pub fn current() -> Self {
        let m = tokio::runtime::Handle::current().metrics();
        Self {
            workers: m.num_workers(),
            alive_tasks: m.num_alive_tasks(),
            global_queue_depth: m.global_queue_depth(),
        }
    }
}

/// Writes the dump to `<exec_root>/berthd-dump-<unix seconds>.log` and returns its path.
/// Blocking: run it off the async workers.
pub fn write(exec_root: &Path, load: RuntimeLoad) -> anyhow::Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let path = exec_root.join(format!("berthd-dump-{}.log", now.as_secs()));
    let text = render(load, &berth_server::inflight::snapshot(), &threads());
    berth_sys::fs::atomic_write(&path, text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// One thread of this process, from `/proc/self/task/<tid>`.
#[derive(Debug)]
struct ThreadInfo {
    tid: u32,
    name: String,
    state: String,
    wchan: String,
}

fn threads() -> Vec<ThreadInfo> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out: Vec<ThreadInfo> = dir
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let read = |f: &str| {
                std::fs::read_to_string(e.path().join(f))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            Some(ThreadInfo {
                tid,
                name: read("comm"),
                state: thread_state(&read("stat")),
                wchan: read("wchan"),
            })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// The state letter of a `/proc/<pid>/stat` line (the field after the parenthesised name,
/// which may itself hold spaces and parentheses).
fn thread_state(stat: &str) -> String {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

fn render(
    load: RuntimeLoad,
    requests: &[berth_server::inflight::InFlight],
    threads: &[ThreadInfo],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "berthd {} (pid {}) state dump",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let _ = writeln!(
        s,
        "\n== async runtime\nworkers: {}\nalive tasks: {}\nglobal queue depth: {}",
        load.workers, load.alive_tasks, load.global_queue_depth
    );
    let _ = writeln!(s, "\n== requests being answered: {}", requests.len());
    for r in requests {
        let _ = writeln!(
            s,
            "request {} {} {} client={} running for {:.3}s",
            r.id,
            r.method,
            r.path,
            r.client,
            r.running_for.as_secs_f64()
        );
    }
    let _ = writeln!(s, "\n== threads: {}", threads.len());
    for t in threads {
        let wchan = if t.wchan.is_empty() || t.wchan == "0" {
            "-"
        } else {
            &t.wchan
        };
        let _ = writeln!(
            s,
            "thread {} {:?} state={} wchan={}",
            t.tid, t.name, t.state, wchan
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letter_after_a_name_with_parentheses() {
        assert_eq!(thread_state("42 (tokio (x) y) S 1 2 3"), "S");
        assert_eq!(thread_state("garbage"), "?");
    }

    #[test]
    fn render_lists_requests_and_threads() {
        let load = RuntimeLoad {
            workers: 2,
            alive_tasks: 7,
            global_queue_depth: 0,
        };
        let req = berth_server::inflight::InFlight {
            id: "1f".into(),
            method: "POST".into(),
            path: "/containers/x/wait".into(),
            client: "uid=0".into(),
            running_for: std::time::Duration::from_millis(1500),
        };
        let text = render(load, &[req], &threads());
        assert!(text.contains("alive tasks: 7"), "{text}");
        assert!(
            text.contains("request 1f POST /containers/x/wait client=uid=0 running for 1.500s"),
            "{text}"
        );
        assert!(text.contains("== threads: "), "{text}");
        assert!(!text.contains("== threads: 0\n"), "{text}");
    }
}
