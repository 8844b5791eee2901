//! `run` / `create` flags for resources, security, namespaces, logging and the runtime:
//! `--init`, `--cpus` and the other CPU and memory knobs, `--privileged`, `--cap-add/drop`,
//! `--security-opt`, `--ulimit`, `--sysctl`, `--device`, `--group-add`,
//! `--oom-score-adj`, `--pid/--ipc/--uts/--cgroupns`, `--log-driver/--log-opt`,
//! `--runtime`, `--shm-size`, `--stop-signal/--stop-timeout`, parsed as docker/cli's
//! `opts` do and written into the create body.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigLogConfig, ResourcesUlimits,
};
use clap::Args;

/// The flags; flattened into `ContainerOptions`.
#[derive(Debug, Clone, Default, Args)]
pub struct HostFlags {
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", value_parser = parse_swap, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes", value_parser = parse_ram)]
    pub memory_reservation: Option<i64>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes", value_parser = parse_ram)]
    pub shm_size: Option<i64>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Sysctl options
    #[arg(long, value_name = "map")]
    pub sysctl: Vec<String>,
    /// Add a host device to the container
    #[arg(long, value_name = "list")]
    pub device: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(
        long = "oom-score-adj",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub oom_score_adj: Option<i64>,
    /// PID namespace to use
    #[arg(long, value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long, value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long, value_name = "string")]
    pub uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long, value_name = "string")]
    pub cgroupns: Option<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int")]
    pub stop_timeout: Option<i64>,
}

/// go-units `RAMInBytes`: `512m`, `1g`, `1.5GiB`, binary multiples.
pub(crate) fn parse_ram(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim_end_matches(['b', 'B']);
    let t = t.strip_suffix(['i', 'I']).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m: i64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                'p' => 1 << 50,
                _ => return Err(bad()),
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1),
    };
    let num = num.strip_suffix(' ').unwrap_or(num);
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    Ok((n * mult as f64) as i64)
}

/// `--memory-swap`: a size, or -1 for unlimited.
pub(crate) fn parse_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        Ok(-1)
    } else {
        parse_ram(s)
    }
}

/// `--cpus 1.5` → NanoCpus (docker/cli `opts.NanoCPUs`).
fn parse_cpus(s: &str) -> Result<i64, String> {
    let v: f64 = s.parse().map_err(|_| {
        format!(
            "invalid argument {s:?} for \"--cpus\" flag: failed to parse {s} as a rational number"
        )
    })?;
    Ok((v * 1e9).round() as i64)
}

/// `--ulimit nofile=1024:2048` (or a single value for both).
fn parse_ulimit(s: &str) -> Result<ResourcesUlimits, String> {
    let bad =
        || format!("invalid argument {s:?} for \"--ulimit\" flag: invalid ulimit argument: {s}");
    let (name, limits) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (a, b),
        None => (limits, limits),
    };
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    if soft > hard && hard >= 0 {
        return Err(format!(
            "invalid argument {s:?} for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

/// `--device /dev/x[:/dev/y[:rwm]]` (docker/cli `parseDevice`).
fn parse_device(s: &str) -> Result<DeviceMapping, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let is_mode = |m: &str| !m.is_empty() && m.chars().all(|c| "rwm".contains(c));
    let (host, inside, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, m] if is_mode(m) => (*h, *h, *m),
        [h, c] => (*h, *c, "rwm"),
        [h, c, m] if is_mode(m) => (*h, *c, *m),
        _ => {
            return Err(format!(
                "invalid argument {s:?} for \"--device\" flag: invalid device specification: {s}"
            ))
        }
    };
    Ok(DeviceMapping {
        path_on_host: Some(host.to_string()),
        path_in_container: Some(inside.to_string()),
        cgroup_permissions: Some(perms.to_string()),
    })
}

fn key_values(flag: &str, items: &[String]) -> Result<HashMap<String, String>, String> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("invalid argument {kv:?} for \"--{flag}\" flag: {kv} is not a key=value pair"))
        })
        .collect()
}

fn some_vec(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// One `--security-opt` as docker/cli's `parseSecurityOpts` sends it: every option but
/// `no-new-privileges` needs a value, and `seccomp=FILE` (other than `builtin` and
/// `unconfined`) becomes `seccomp=<the file's JSON, compacted>`.
fn security_opt(opt: &str) -> Result<String, String> {
    let (k, v) = match opt.split_once('=') {
        Some(kv) => kv,
        None if opt == "no-new-privileges" => return Ok(opt.to_string()),
        None => opt.split_once(':').unwrap_or((opt, "")),
    };
    if v.is_empty() && k != "no-new-privileges" {
        return Err(format!("Invalid --security-opt: {opt:?}"));
    }
    if k != "seccomp" || v == "builtin" || v == "unconfined" {
        return Ok(opt.to_string());
    }
    let text =
        std::fs::read(v).map_err(|e| format!("opening seccomp profile ({v}) failed: {e}"))?;
    let compact = compact_json(&text)
        .map_err(|e| format!("compacting json for seccomp profile ({v}) failed: {e}"))?;
    Ok(format!("seccomp={compact}"))
}

/// Go's `json.Compact`: the same JSON, keys in their order, without insignificant spaces.
fn compact_json(text: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(text.len()), false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    Ok(out)
}

impl HostFlags {
    /// Writes the flags into `body` (its `HostConfig` already exists or is made here).
    pub fn apply(&self, body: &mut ContainerCreateBody) -> Result<(), String> {
        if self.stop_signal.is_some() {
            body.stop_signal = self.stop_signal.clone();
        }
        if self.stop_timeout.is_some() {
            body.stop_timeout = self.stop_timeout;
        }
        let hc: &mut HostConfig = body.host_config.get_or_insert_with(Default::default);
        if self.init {
            hc.init = Some(true);
        }
        if let Some(c) = &self.cpus {
            hc.nano_cpus = Some(parse_cpus(c)?);
        }
        hc.cpu_shares = self.cpu_shares.or(hc.cpu_shares);
        hc.cpu_period = self.cpu_period.or(hc.cpu_period);
        hc.cpu_quota = self.cpu_quota.or(hc.cpu_quota);
        hc.cpuset_cpus = self.cpuset_cpus.clone().or(hc.cpuset_cpus.take());
        hc.memory_swap = self.memory_swap.or(hc.memory_swap);
        hc.memory_reservation = self.memory_reservation.or(hc.memory_reservation);
        hc.shm_size = self.shm_size.or(hc.shm_size);
        if self.privileged {
            hc.privileged = Some(true);
        }
        hc.cap_add = some_vec(&self.cap_add).or(hc.cap_add.take());
        hc.cap_drop = some_vec(&self.cap_drop).or(hc.cap_drop.take());
        if !self.security_opt.is_empty() {
            let mut opts = Vec::new();
            for o in &self.security_opt {
                // docker/cli: systempaths=unconfined clears the masked and read-only paths.
                if o == "systempaths=unconfined" {
                    hc.masked_paths = Some(Vec::new());
                    hc.readonly_paths = Some(Vec::new());
                } else {
                    opts.push(security_opt(o)?);
                }
            }
            hc.security_opt = (!opts.is_empty()).then_some(opts);
        }
        if !self.ulimit.is_empty() {
            hc.ulimits = Some(
                self.ulimit
                    .iter()
                    .map(|u| parse_ulimit(u))
                    .collect::<Result<_, _>>()?,
            );
        }
        if !self.sysctl.is_empty() {
            hc.sysctls = Some(key_values("sysctl", &self.sysctl)?);
        }
        if !self.device.is_empty() {
            hc.devices = Some(
                self.device
                    .iter()
                    .map(|d| parse_device(d))
                    .collect::<Result<_, _>>()?,
            );
        }
        hc.group_add = some_vec(&self.group_add).or(hc.group_add.take());
        hc.oom_score_adj = self.oom_score_adj.or(hc.oom_score_adj);
        hc.pid_mode = self.pid.clone().or(hc.pid_mode.take());
        hc.ipc_mode = self.ipc.clone().or(hc.ipc_mode.take());
        hc.uts_mode = self.uts.clone().or(hc.uts_mode.take());
        if let Some(m) = &self.cgroupns {
            hc.cgroupns_mode = Some(match m.as_str() {
                "host" => HostConfigCgroupnsModeEnum::HOST,
                "private" => HostConfigCgroupnsModeEnum::PRIVATE,
                _ => {
                    return Err(format!(
                        "invalid argument {m:?} for \"--cgroupns\" flag: invalid CGROUP mode"
                    ))
                }
            });
        }
        if self.log_driver.is_some() || !self.log_opt.is_empty() {
            hc.log_config = Some(HostConfigLogConfig {
                typ: self.log_driver.clone(),
                config: Some(key_values("log-opt", &self.log_opt)?),
            });
        }
        hc.runtime = self.runtime.clone().or(hc.runtime.take());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_docker_cli() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        let u = parse_ulimit("nofile=100:200").unwrap();
        assert_eq!((u.soft, u.hard), (Some(100), Some(200)));
        let u = parse_ulimit("nproc=50").unwrap();
        assert_eq!((u.soft, u.hard), (Some(50), Some(50)));
        assert!(parse_ulimit("nofile=300:200").is_err());
        assert!(parse_ulimit("nofile").is_err());
        let d = parse_device("/dev/null:/dev/n:rw").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/n"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rw"));
        let d = parse_device("/dev/null:r").unwrap();
        assert_eq!(
            (
                d.path_in_container.as_deref(),
                d.cgroup_permissions.as_deref()
            ),
            (Some("/dev/null"), Some("r"))
        );
        assert_eq!(parse_swap("-1").unwrap(), -1);
    }

    #[test]
    fn writes_the_body() {
        let f = HostFlags {
            init: true,
            security_opt: vec!["systempaths=unconfined".into(), "no-new-privileges".into()],
            log_opt: vec!["max-size=1m".into()],
            ..Default::default()
        };
        let mut body = ContainerCreateBody::default();
        f.apply(&mut body).unwrap();
        let hc = body.host_config.unwrap();
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.masked_paths, Some(vec![]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
        let lc = hc.log_config.unwrap();
        assert_eq!(lc.typ, None);
        assert_eq!(lc.config.unwrap()["max-size"], "1m");
    }

    #[test]
    fn seccomp_profile_files_are_sent_as_compact_json() {
        let file = std::env::temp_dir().join(format!("berth-seccomp-{}.json", std::process::id()));
        std::fs::write(
            &file,
            "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"x\": \"a \\\" b\",\n  \"syscalls\": [ ]\n}\n",
        )
        .unwrap();
        let f = format!("seccomp={}", file.display());
        assert_eq!(
            security_opt(&f).unwrap(),
            r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","x":"a \" b","syscalls":[]}"#
        );
        for kept in [
            "seccomp=unconfined",
            "seccomp=builtin",
            "no-new-privileges",
            "label=disable",
            "apparmor:unconfined",
        ] {
            assert_eq!(security_opt(kept).unwrap(), kept);
        }
        assert_eq!(
            security_opt("label").unwrap_err(),
            "Invalid --security-opt: \"label\""
        );
        let missing = security_opt("seccomp=/nonexistent/p.json").unwrap_err();
        assert!(
            missing.starts_with("opening seccomp profile (/nonexistent/p.json) failed: "),
            "{missing}"
        );
        std::fs::write(&file, "{nope").unwrap();
        let bad = security_opt(&f).unwrap_err();
        assert!(
            bad.starts_with(&format!(
                "compacting json for seccomp profile ({}) failed: ",
                file.display()
            )),
            "{bad}"
        );
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(parse_ram("512m"), Ok(512 << 20));
        assert_eq!(parse_ram("1g"), Ok(1 << 30));
        assert_eq!(parse_ram("1GiB"), Ok(1 << 30));
        assert_eq!(parse_ram("100"), Ok(100));
        assert_eq!(parse_ram("1.5k"), Ok(1536));
        assert_eq!(parse_ram("abc"), Err("invalid size: 'abc'".into()));
        assert!(parse_ram("").is_err());
    }
}
