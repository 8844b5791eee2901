//! Live resource changes (`docker update`): the files and values that apply [`Limits`] to
//! a v1 or v2 cgroup, in an order the kernel accepts (runc's v1→v2 translations), and
//! [`apply`], which writes them and puts every file back if one write fails.

use std::path::{Path, PathBuf};

use crate::dirs::read_u64;
use crate::Dirs;

/// Resource limits as `docker update` sends them; `None` leaves a limit alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
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
    /// Hugetlb limits in bytes by page size (`2MB`, `1GB`: [`valid_page_size`]), as the
    /// CRI sends them; empty leaves them alone.
    pub hugepages: Vec<(String, u64)>,
}

/// A hugepage size as the hugetlb controller names its files and the OCI spec writes it
/// (`64KB`, `2MB`, `1GB`): digits, then `KB`, `MB`, `GB` or `TB`; nothing that could
/// make a file name of it other than `hugetlb.<size>.…`.
pub fn valid_page_size(s: &str) -> bool {
    let digits = ["KB", "MB", "GB", "TB"]
        .iter()
        .find_map(|unit| s.strip_suffix(unit));
    digits.is_some_and(|d| (1..=10).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The hugetlb writes of `l` into `dir`, each page size's file `hugetlb.<size>.<file>`;
/// a page size [`valid_page_size`] refuses is left out (the engine refuses it first).
fn hugetlb(out: &mut Vec<Write>, dir: &Path, l: &Limits, file: &str) {
    for (size, limit) in &l.hugepages {
        if valid_page_size(size) {
            out.push(w(dir, &format!("hugetlb.{size}.{file}"), limit));
        } else {
            tracing::warn!(page_size = %size, "hugetlb: page size refused");
        }
    }
}

/// One file write of a live update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
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
pub fn writes(dirs: &Dirs, l: &Limits, raise_memory: bool) -> Vec<Write> {
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
            hugetlb(
                &mut out,
                dirs.v1("hugetlb").unwrap_or(none),
                l,
                "limit_in_bytes",
            );
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
            hugetlb(&mut out, d, l, "max");
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

/// A write of [`apply`] the kernel refused (the earlier ones were put back).
#[derive(Debug, thiserror::Error)]
#[error("write {value} to {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub value: String,
    #[source]
    pub source: std::io::Error,
}

/// Writes `writes` in order; when one fails, every file written before it gets back
/// what it held (nothing half-made).
pub fn apply(writes: Vec<Write>) -> Result<(), WriteError> {
    let mut done: Vec<(PathBuf, String)> = Vec::new();
    for w in writes {
        let before = std::fs::read_to_string(&w.path).unwrap_or_default();
        if let Err(source) = std::fs::write(&w.path, &w.value) {
            for (path, old) in done.iter().rev() {
                if let Err(e) = std::fs::write(path, old.trim()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot restore");
                }
            }
            return Err(WriteError {
                path: w.path,
                value: w.value,
                source,
            });
        }
        done.push((w.path, before));
    }
    Ok(())
}

/// The current memory limit in bytes (`None`: unlimited or unknown).
pub fn memory_limit(dirs: &Dirs) -> Option<u64> {
    let v = match dirs {
        Dirs::V1(_) => read_u64(dirs.v1("memory")?, "memory.limit_in_bytes")?,
        Dirs::V2(d) => read_u64(d, "memory.max")?,
    };
    (v < (1 << 62)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirs::tests::MOUNTINFO_V1;

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

    #[test]
    fn hugetlb_files_are_limit_in_bytes_on_v1_and_max_on_v2() {
        let l = Limits {
            hugepages: vec![
                ("2MB".into(), 4 << 20),
                ("1GB".into(), 0),
                ("../../memory".into(), 1),
            ],
            ..Limits::default()
        };
        let info = format!(
            "{MOUNTINFO_V1}40 26 0:40 / /sys/fs/cgroup/hugetlb rw - cgroup cgroup rw,hugetlb\n"
        );
        let v1 = Dirs::from_mountinfo(&info, false, "/berth/c");
        let got: Vec<(String, String)> = writes(&v1, &l, true)
            .into_iter()
            .map(|w| (w.path.to_string_lossy().into_owned(), w.value))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/sys/fs/cgroup/hugetlb/berth/c/hugetlb.2MB.limit_in_bytes".into(),
                    "4194304".into()
                ),
                (
                    "/sys/fs/cgroup/hugetlb/berth/c/hugetlb.1GB.limit_in_bytes".into(),
                    "0".into()
                ),
            ]
        );
        let got: Vec<(String, String)> = writes(&Dirs::V2(PathBuf::from("/cg/c")), &l, true)
            .into_iter()
            .map(|w| (w.path.to_string_lossy().into_owned(), w.value))
            .collect();
        assert_eq!(
            got,
            [
                ("/cg/c/hugetlb.2MB.max".into(), "4194304".into()),
                ("/cg/c/hugetlb.1GB.max".into(), "0".into()),
            ]
        );
    }

    #[test]
    fn page_sizes_are_digits_and_a_unit() {
        for ok in ["64KB", "2MB", "1GB", "16GB"] {
            assert!(valid_page_size(ok), "{ok}");
        }
        for bad in [
            "",
            "MB",
            "2mb",
            "2M",
            "2 MB",
            "-2MB",
            "2MB/",
            "../2MB",
            "12345678901MB",
        ] {
            assert!(!valid_page_size(bad), "{bad}");
        }
    }

    #[test]
    fn apply_puts_earlier_files_back_when_one_write_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        let ws = vec![
            w(d, "memory.max", 100),
            // No such directory: the second write fails.
            w(d, "missing/cpu.max", "1 2"),
        ];
        let e = apply(ws).unwrap_err();
        assert!(e.to_string().starts_with("write 1 2 to "), "{e}");
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
            "max"
        );
        apply(vec![w(d, "memory.max", 100)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
            "100"
        );
    }
}
