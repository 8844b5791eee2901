//! The query of `POST /build` as docker's `imageBuildOptionsToQuery` writes it, with
//! docker's readings of sizes (`RAMInBytes`), ulimits and build args.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::BuildArgs;
use crate::error::Error;
use crate::request::query_escape;

/// docker's `units.RAMInBytes`: `512m`, `1g`, `1024` (binary multiples).
pub(super) fn ram_in_bytes(s: &str) -> Result<i64, Error> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || Error::client(format!("invalid size: '{s}'"));
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim_end_matches(['b', 'i']) {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((n * mult) as i64)
}

/// `--ulimit name=soft[:hard]` as docker's `units.ParseUlimit`.
fn parse_ulimit(s: &str) -> Result<Value, Error> {
    let bad = || Error::client(format!("invalid argument {s:?} for \"--ulimit\" flag"));
    let (name, limits) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--build-arg K=V`, `--build-arg K` (the value from the environment, else null), as
/// docker's `ValidateEnv` and `ConvertKVStringsToMapWithNil` read them.
fn build_arg_map(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, Option<String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), env(a)),
        })
        .collect()
}

/// The query of `POST /build` as docker's `imageBuildOptionsToQuery` writes it.
pub(super) fn build_query(
    args: &BuildArgs,
    dockerfile: &str,
    remote: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    let mut q: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| q.push((k.to_string(), v));
    for t in &args.tags {
        berth_api_types::reference::Reference::parse(t).map_err(|e| {
            Error::client(format!(
                "invalid argument {t:?} for \"-t, --tag\" flag: {e}"
            ))
        })?;
        push("t", t.clone());
    }
    if let Some(r) = remote {
        push("remote", r.to_string());
    }
    if !dockerfile.is_empty() {
        push("dockerfile", dockerfile.to_string());
    }
    if args.quiet {
        push("q", "1".into());
    }
    if args.no_cache {
        push("nocache", "1".into());
    }
    push("rm", if args.rm { "1" } else { "0" }.into());
    if args.force_rm {
        push("forcerm", "1".into());
    }
    if args.pull {
        push("pull", "1".into());
    }
    if let Some(m) = &args.memory {
        push("memory", ram_in_bytes(m)?.to_string());
    }
    if let Some(m) = &args.memory_swap {
        let v = if m.trim() == "-1" {
            -1
        } else {
            ram_in_bytes(m)?
        };
        push("memswap", v.to_string());
    }
    if let Some(v) = args.cpu_shares {
        push("cpushares", v.to_string());
    }
    if let Some(v) = args.cpu_quota {
        push("cpuquota", v.to_string());
    }
    if let Some(v) = args.cpu_period {
        push("cpuperiod", v.to_string());
    }
    if let Some(v) = &args.cpuset_cpus {
        push("cpusetcpus", v.clone());
    }
    if let Some(v) = &args.shm_size {
        push("shmsize", ram_in_bytes(v)?.to_string());
    }
    if let Some(v) = &args.isolation {
        push("isolation", v.clone());
    }
    push("networkmode", args.network.clone());
    if !args.ulimit.is_empty() {
        let u: Result<Vec<Value>, Error> = args.ulimit.iter().map(|s| parse_ulimit(s)).collect();
        push("ulimits", Value::Array(u?).to_string());
    }
    let ba = build_arg_map(&args.build_args, env);
    push("buildargs", json!(ba).to_string());
    let labels: BTreeMap<&str, &str> = args
        .labels
        .iter()
        .map(|l| l.split_once('=').unwrap_or((l.as_str(), "")))
        .collect();
    push("labels", json!(labels).to_string());
    if !args.cache_from.is_empty() {
        push("cachefrom", json!(args.cache_from).to_string());
    }
    for h in &args.add_host {
        push("extrahosts", h.clone());
    }
    if let Some(p) = &args.platform {
        push("platform", p.clone());
    }
    if let Some(t) = &args.target {
        push("target", t.clone());
    }
    push("version", "1".into());
    Ok(q.iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect::<Vec<_>>()
        .join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_args as args;

    #[test]
    fn query_as_docker_writes_it() {
        let a = args(&[
            "-t",
            "a:1",
            "-t",
            "b",
            "--build-arg",
            "X=1",
            "--build-arg",
            "HOME_UNSET",
            "--label",
            "l=v",
            "-m",
            "64m",
            "--ulimit",
            "nofile=10:20",
            "--add-host",
            "h:1.2.3.4",
            "--cache-from",
            "c",
            ".",
        ]);
        let q = build_query(&a, "Dockerfile", None, &|_| None).unwrap();
        assert!(
            q.starts_with("t=a%3A1&t=b&dockerfile=Dockerfile&rm=1&memory=67108864"),
            "{q}"
        );
        assert!(
            q.contains("buildargs=%7B%22HOME_UNSET%22%3Anull%2C%22X%22%3A%221%22%7D"),
            "{q}"
        );
        assert!(
            q.contains(
                "ulimits=%5B%7B%22Hard%22%3A20%2C%22Name%22%3A%22nofile%22%2C%22Soft%22%3A10%7D%5D"
            ),
            "{q}"
        );
        assert!(q.contains("extrahosts=h%3A1.2.3.4"), "{q}");
        assert!(q.contains("cachefrom=%5B%22c%22%5D"), "{q}");
        assert!(q.ends_with("version=1"));
        let a = args(&["--rm=false", "--build-arg", "E", "."]);
        let q = build_query(&a, "", None, &|k| (k == "E").then(|| "v".into())).unwrap();
        assert!(q.contains("rm=0"));
        assert!(q.contains("buildargs=%7B%22E%22%3A%22v%22%7D"), "{q}");
        assert!(build_query(&args(&["-t", "UPPER", "."]), "", None, &|_| None).is_err());
    }

    #[test]
    fn sizes_and_ulimits() {
        assert_eq!(ram_in_bytes("1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("1k").unwrap(), 1024);
        assert_eq!(ram_in_bytes("2MB").unwrap(), 2 << 20);
        assert!(ram_in_bytes("x").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(parse_ulimit("nproc=5").unwrap()["Hard"], 5);
    }
}
