//! More `run` / `create` flags, parsed as docker/cli's `opts` parse them and written into
//! the create body: block I/O (`--blkio-weight*`, `--device-read-bps` ...), real-time CPU,
//! `--cpuset-mems`, `--memory-swappiness`, `--oom-kill-disable`, `--device-cgroup-rule`,
//! `--gpus`, `--userns`, `--cgroup-parent`, `--annotation`, `--storage-opt`,
//! `--domainname`, `--env-file`, `--label-file` and `--link` (legacy links, kept in
//! `HostConfig.Links`); and the client-side `--cidfile`, `--pull`, `--platform`, `-q`.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, ResourcesBlkioWeightDevice, ThrottleDevice,
};
use clap::Args;

use crate::host_flags::parse_ram;

/// The flags; flattened into `ContainerOptions`.
#[derive(Debug, Clone, Default, Args)]
pub struct FieldFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long, value_name = "list", value_parser = parse_stream)]
    pub attach: Vec<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_name = "uint16", value_parser = parse_u16)]
    pub blkio_weight: Option<u16>,
    /// Block IO weight (relative device weight)
    #[arg(long = "blkio-weight-device", value_name = "list", value_parser = parse_weight_device)]
    pub blkio_weight_device: Vec<(String, u16)>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long = "device-read-bps", value_name = "list", value_parser = parse_bps)]
    pub device_read_bps: Vec<(String, i64)>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long = "device-write-bps", value_name = "list", value_parser = parse_bps)]
    pub device_write_bps: Vec<(String, i64)>,
    /// Limit read rate (IO per second) from a device
    #[arg(long = "device-read-iops", value_name = "list", value_parser = parse_iops)]
    pub device_read_iops: Vec<(String, i64)>,
    /// Limit write rate (IO per second) to a device
    #[arg(long = "device-write-iops", value_name = "list", value_parser = parse_iops)]
    pub device_write_iops: Vec<(String, i64)>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_name = "list", value_parser = parse_cgroup_rule)]
    pub device_cgroup_rule: Vec<String>,
    /// Limit CPU real-time period in microseconds
    #[arg(
        long = "cpu-rt-period",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(
        long = "cpu-rt-runtime",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub cpu_rt_runtime: Option<i64>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Tune container memory swappiness (0 to 100) (default -1)
    #[arg(
        long = "memory-swappiness",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub memory_swappiness: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long, value_name = "gpu-request", value_parser = parse_gpus)]
    pub gpus: Option<GpuRequest>,
    /// User namespace to use
    #[arg(long, value_name = "string")]
    pub userns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Add an annotation to the container (passed through to the OCI runtime)
    #[arg(long, value_name = "map")]
    pub annotation: Vec<String>,
    /// Storage driver options for the container
    #[arg(long = "storage-opt", value_name = "list")]
    pub storage_opt: Vec<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "list")]
    pub label_file: Vec<String>,
    /// Add link to another container
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    pub cidfile: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// One `--gpus` request (docker/cli `opts.GpuOpts`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuRequest {
    pub driver: String,
    pub count: i64,
    pub device_ids: Option<Vec<String>>,
    pub capabilities: Vec<String>,
    pub options: HashMap<String, String>,
}

/// `-a`: `stdin`, `stdout` or `stderr`, any case (docker/cli `ValidateAttach`).
fn parse_stream(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if ["stdin", "stdout", "stderr"].contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err("valid streams are STDIN, STDOUT and STDERR".into())
    }
}

/// Whether `-a` names `stream`.
pub fn attaches(streams: &[String], stream: &str) -> bool {
    streams.iter().any(|s| s == stream)
}

fn parse_u16(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("strconv.ParseUint: parsing {s:?}: invalid syntax"))
}

/// `path:value` with a `/dev/` path (docker/cli `opts/throttledevice.go`, `weightdevice.go`).
fn device_and(s: &str) -> Result<(&str, &str), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [path, value] = parts[..] else {
        return Err(format!("bad format: {s}"));
    };
    if !path.starts_with("/dev/") {
        return Err(format!("bad format for device path: {s}"));
    }
    Ok((path, value))
}

fn parse_weight_device(s: &str) -> Result<(String, u16), String> {
    let (path, w) = device_and(s)?;
    match w.parse::<u16>() {
        Ok(w) if w == 0 || (10..=1000).contains(&w) => Ok((path.to_string(), w)),
        _ => Err(format!("invalid weight for device: {s}")),
    }
}

fn parse_bps(s: &str) -> Result<(String, i64), String> {
    let (path, rate) = device_and(s)?;
    match parse_ram(rate) {
        Ok(r) if r >= 0 => Ok((path.to_string(), r)),
        _ => Err(format!("invalid rate for device: {s}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb")),
    }
}

fn parse_iops(s: &str) -> Result<(String, i64), String> {
    let (path, rate) = device_and(s)?;
    match rate.parse::<u64>().ok().and_then(|r| i64::try_from(r).ok()) {
        Some(r) => Ok((path.to_string(), r)),
        None => Err(format!("invalid rate for device: {s}. The correct format is <device-path>:<number>. Number must be a positive integer")),
    }
}

/// docker/cli `ValidateDeviceCgroupRule`: `^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$`.
fn parse_cgroup_rule(s: &str) -> Result<String, String> {
    let bad = || format!("invalid device cgroup format '{s}'");
    let parts: Vec<&str> = s.split(' ').collect();
    let [kind, numbers, access] = parts[..] else {
        return Err(bad());
    };
    let num = |n: &str| n == "*" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let ok = ["a", "b", "c"].contains(&kind)
        && numbers
            .split_once(':')
            .is_some_and(|(a, b)| num(a) && num(b))
        && (1..=3).contains(&access.len())
        && access.bytes().all(|b| b"rwm".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(bad())
    }
}

/// docker/cli `GpuOpts.Set`: `all`, a count, or `count=,device=,driver=,capabilities=`.
fn parse_gpus(s: &str) -> Result<GpuRequest, String> {
    let mut req = GpuRequest::default();
    let mut rest = s;
    while !rest.is_empty() {
        // `device=0,1` (quoted in docker's CSV) takes the rest of the value.
        let (field, next) = if rest.starts_with("\"device=") || rest.starts_with("device=") {
            (rest.trim_matches('"'), "")
        } else {
            rest.split_once(',').unwrap_or((rest, ""))
        };
        rest = next;
        let (key, val) = field.split_once('=').unwrap_or(("count", field));
        match key {
            "driver" => req.driver = val.to_string(),
            "count" if val == "all" => req.count = -1,
            "count" => {
                req.count = val.parse().map_err(|_| {
                    format!("invalid count ({val}): value must be either \"all\" or an integer: invalid syntax")
                })?
            }
            "device" => req.device_ids = Some(val.split(',').map(str::to_string).collect()),
            "capabilities" => req.capabilities = val.split(',').map(str::to_string).collect(),
            "options" => {
                for o in val.split(',') {
                    let (k, v) = o.split_once('=').unwrap_or((o, ""));
                    req.options.insert(k.to_string(), v.to_string());
                }
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    req.capabilities.push("gpu".into());
    Ok(req)
}

/// docker/cli `opts.ParseEnvFile` / `ReadKVStrings`: `KEY=value` lines, `#` comments;
/// a bare `KEY` takes the client's value when `lookup` and it is set.
pub fn read_kv_file(path: &str, lookup: bool) -> Result<Vec<String>, String> {
    let text =
        std::fs::read(Path::new(path)).map_err(|e| format!("open {path}: {}", go_text(&e)))?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("env file {path} contains invalid utf8 bytes"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = if n == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (var, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if var.contains([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']) {
            return Err(format!(
                "poorly formatted environment: variable '{var}' contains whitespaces"
            ));
        }
        match value {
            Some(v) => out.push(format!("{var}={v}")),
            None if lookup => match std::env::var(var) {
                Ok(v) => out.push(format!("{var}={v}")),
                Err(_) => out.push(var.to_string()),
            },
            None => out.push(var.to_string()),
        }
    }
    Ok(out)
}

/// An I/O error as Go prints it: `no such file or directory`.
fn go_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_ascii_lowercase()
}

/// Writes the new container's ID to `--cidfile` (a file made now; docker's refusal of
/// one already there came before the create).
pub fn write_cidfile(path: &str, id: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("failed to create the container ID file: {}", go_text(&e)))?;
    f.write_all(id.as_bytes()).map_err(|e| {
        format!(
            "failed to write the container ID to the file: {}",
            go_text(&e)
        )
    })
}

/// docker's `--pull` values.
pub fn check_pull(p: &str) -> Result<(), String> {
    if ["always", "missing", "never"].contains(&p) {
        Ok(())
    } else {
        Err(format!(
            "invalid pull option: '{p}': must be one of \"always\", \"missing\" or \"never\""
        ))
    }
}

/// docker's `--cidfile`: refused when the file is there already (before any create).
pub fn check_cidfile(path: &str) -> Result<(), String> {
    if Path::new(path).symlink_metadata().is_ok() {
        return Err(format!(
            "container ID file found, make sure the other container isn't running or delete {path}"
        ));
    }
    Ok(())
}

fn throttles(v: &[(String, i64)]) -> Option<Vec<ThrottleDevice>> {
    (!v.is_empty()).then(|| {
        v.iter()
            .map(|(p, r)| ThrottleDevice {
                path: Some(p.clone()),
                rate: Some(*r),
            })
            .collect()
    })
}

impl FieldFlags {
    /// Writes the flags into `body`, as docker's `parse` does.
    pub fn apply(&self, body: &mut ContainerCreateBody) -> Result<(), String> {
        check_pull(&self.pull)?;
        if let Some(s) = self.memory_swappiness.filter(|s| *s != -1) {
            if !(0..=100).contains(&s) {
                return Err(format!(
                    "invalid value: {s}. Valid memory swappiness range is 0-100"
                ));
            }
        }
        if let Some(u) = &self.userns {
            if !["", "host", "private"].contains(&u.as_str()) {
                return Err("--userns: invalid USER mode".into());
            }
        }
        for l in &self.link {
            if l.split(':').count() > 2 || l.is_empty() {
                return Err(format!("bad format for links: {l}"));
            }
        }
        let mut storage = HashMap::new();
        for o in &self.storage_opt {
            let (k, v) = o.split_once('=').ok_or("invalid storage option")?;
            storage.insert(k.to_string(), v.to_string());
        }
        if !self.env_file.is_empty() {
            let mut env = Vec::new();
            for f in &self.env_file {
                env.extend(read_kv_file(f, true)?);
            }
            env.extend(body.env.take().unwrap_or_default());
            body.env = Some(env);
        }
        if !self.label_file.is_empty() {
            let mut labels = HashMap::new();
            for f in &self.label_file {
                for l in read_kv_file(f, false)? {
                    let (k, v) = l.split_once('=').unwrap_or((&l, ""));
                    labels.insert(k.to_string(), v.to_string());
                }
            }
            // `--label` wins over the files.
            labels.extend(body.labels.take().unwrap_or_default());
            body.labels = Some(labels);
        }
        if self.domainname.is_some() {
            body.domainname = self.domainname.clone();
        }
        // docker/cli `parse`: `-a` picks the streams (stdout and stderr without it; `run`
        // refuses it with `-d`).
        if !self.attach.is_empty() {
            let a = |s| Some(attaches(&self.attach, s));
            body.attach_stdout = a("stdout");
            body.attach_stderr = a("stderr");
            if attaches(&self.attach, "stdin") {
                body.attach_stdin = Some(true);
            }
        }
        let hc: &mut HostConfig = body.host_config.get_or_insert_with(Default::default);
        if !self.link.is_empty() {
            hc.links = Some(self.link.clone());
        }
        hc.blkio_weight = self.blkio_weight.or(hc.blkio_weight);
        if !self.blkio_weight_device.is_empty() {
            hc.blkio_weight_device = Some(
                self.blkio_weight_device
                    .iter()
                    .map(|(p, w)| ResourcesBlkioWeightDevice {
                        path: Some(p.clone()),
                        weight: Some(usize::from(*w)),
                    })
                    .collect(),
            );
        }
        hc.blkio_device_read_bps = throttles(&self.device_read_bps);
        hc.blkio_device_write_bps = throttles(&self.device_write_bps);
        hc.blkio_device_read_iops = throttles(&self.device_read_iops);
        hc.blkio_device_write_iops = throttles(&self.device_write_iops);
        if !self.device_cgroup_rule.is_empty() {
            hc.device_cgroup_rules = Some(self.device_cgroup_rule.clone());
        }
        hc.cpu_realtime_period = self.cpu_rt_period.or(hc.cpu_realtime_period);
        hc.cpu_realtime_runtime = self.cpu_rt_runtime.or(hc.cpu_realtime_runtime);
        hc.cpuset_mems = self.cpuset_mems.clone().or(hc.cpuset_mems.take());
        hc.memory_swappiness = self.memory_swappiness.filter(|s| *s != -1);
        hc.oom_kill_disable = Some(self.oom_kill_disable);
        if let Some(g) = &self.gpus {
            hc.device_requests = Some(vec![DeviceRequest {
                driver: Some(g.driver.clone()),
                count: Some(g.count),
                device_ids: g.device_ids.clone(),
                capabilities: Some(vec![g.capabilities.clone()]),
                options: Some(g.options.clone()),
            }]);
        }
        hc.userns_mode = self.userns.clone().or(hc.userns_mode.take());
        hc.cgroup_parent = self.cgroup_parent.clone().or(hc.cgroup_parent.take());
        if !self.annotation.is_empty() {
            let map = self
                .annotation
                .iter()
                .map(|a| {
                    let (k, v) = a.split_once('=').unwrap_or((a, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            hc.annotations = Some(map);
        }
        if !storage.is_empty() {
            hc.storage_opt = Some(storage);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_read_as_dockers() {
        assert_eq!(
            parse_weight_device("/dev/vda").unwrap_err(),
            "bad format: /dev/vda"
        );
        assert_eq!(
            parse_weight_device("vda:10").unwrap_err(),
            "bad format for device path: vda:10"
        );
        assert_eq!(
            parse_weight_device("/dev/vda:5").unwrap_err(),
            "invalid weight for device: /dev/vda:5"
        );
        assert_eq!(
            parse_bps("/dev/vda:1mb").unwrap(),
            ("/dev/vda".into(), 1 << 20)
        );
        assert!(parse_bps("/dev/vda:x").unwrap_err().starts_with("invalid rate for device: /dev/vda:x. The correct format is <device-path>:<number>[<unit>]."));
        assert_eq!(parse_iops("/dev/vda:100").unwrap().1, 100);
        assert!(parse_iops("/dev/vda:1k").is_err());
        assert_eq!(
            parse_cgroup_rule("x").unwrap_err(),
            "invalid device cgroup format 'x'"
        );
        assert!(parse_cgroup_rule("c 42:* rmw").is_ok());
        let g = parse_gpus("all").unwrap();
        assert_eq!(
            (g.count, g.capabilities.clone()),
            (-1, vec!["gpu".to_string()])
        );
        assert_eq!(
            parse_gpus("foo").unwrap_err(),
            "invalid count (foo): value must be either \"all\" or an integer: invalid syntax"
        );
        let g = parse_gpus("\"device=0,1\"").unwrap();
        assert_eq!(g.device_ids, Some(vec!["0".into(), "1".into()]));
        assert!(check_pull("sometimes").is_err() && check_pull("never").is_ok());
    }

    #[test]
    fn writes_the_body_as_docker() {
        let f = FieldFlags {
            blkio_weight: Some(300),
            device_read_bps: vec![("/dev/vda".into(), 1 << 20)],
            memory_swappiness: Some(10),
            oom_kill_disable: true,
            gpus: Some(parse_gpus("all").unwrap()),
            annotation: vec!["a=b".into()],
            storage_opt: vec!["size=1G".into()],
            domainname: Some("example.org".into()),
            pull: "missing".into(),
            ..Default::default()
        };
        let mut body = ContainerCreateBody::default();
        f.apply(&mut body).unwrap();
        let v = serde_json::to_value(&body).unwrap();
        let hc = &v["HostConfig"];
        assert_eq!(hc["BlkioWeight"], 300);
        assert_eq!(
            hc["BlkioDeviceReadBps"],
            serde_json::json!([{"Path": "/dev/vda", "Rate": 1048576}])
        );
        assert_eq!(hc["MemorySwappiness"], 10);
        assert_eq!(hc["OomKillDisable"], true);
        assert_eq!(hc["DeviceRequests"][0]["Count"], -1);
        assert_eq!(
            hc["DeviceRequests"][0]["Capabilities"],
            serde_json::json!([["gpu"]])
        );
        assert_eq!(hc["Annotations"]["a"], "b");
        assert_eq!(hc["StorageOpt"]["size"], "1G");
        assert_eq!(v["Domainname"], "example.org");
        let bad = FieldFlags {
            memory_swappiness: Some(200),
            pull: "missing".into(),
            ..Default::default()
        };
        assert_eq!(
            bad.apply(&mut body).unwrap_err(),
            "invalid value: 200. Valid memory swappiness range is 0-100"
        );
    }

    #[test]
    fn env_files_read_like_dockers() {
        let dir = std::env::temp_dir().join(format!("berth-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("env");
        std::fs::write(&p, "# c\n\n  A=1 2\nB=\nBERTH_ENVFILE_UNSET\n").unwrap();
        let got = read_kv_file(p.to_str().unwrap(), true).unwrap();
        assert_eq!(got, ["A=1 2", "B=", "BERTH_ENVFILE_UNSET"]);
        std::fs::write(&p, "A B=1\n").unwrap();
        assert_eq!(
            read_kv_file(p.to_str().unwrap(), true).unwrap_err(),
            "poorly formatted environment: variable 'A B' contains whitespaces"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            read_kv_file("/nonexistent-berth", true).unwrap_err(),
            "open /nonexistent-berth: no such file or directory"
        );
    }
}
