//! `HostConfig.LogConfig`: the `json-file` driver (the default) with dockerd's options
//! (`max-size`, `max-file`, and the tagging ones, which change nothing in the file we
//! write), or `none`. Checked and stored in full at create; turned into the shim's
//! rotation settings at each start. A CRI container's driver is `cri` (the CRI log format
//! at the kubelet's path), set only by [`crate::Engine::container_set_cri_log`]: create
//! refuses it as any driver berthd does not have.

use std::collections::BTreeMap;
use std::path::Path;

use berth_api_types::container::{HostConfig, LogConfig};
use berth_api_types::field::Field;
use berth_runtime::{LogFormat, LogOptions};
use serde_json::Value;

use crate::EngineError;

pub(crate) const JSON_FILE: &str = "json-file";
pub(crate) const NONE: &str = "none";
/// The CRI log format at `Config.path` (never accepted from a create request).
pub(crate) const CRI: &str = "cri";
/// The `cri` driver's option: the log file.
pub(crate) const CRI_PATH_OPT: &str = "path";

/// json-file options dockerd accepts (moby `daemon/logger/jsonfilelog`).
const JSON_FILE_OPTS: &[&str] = &[
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// The log driver of a stored `HostConfig`.
pub(crate) fn driver(hc: &HostConfig) -> &str {
    hc.log_config
        .get()
        .and_then(|l| l.kind.get())
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(JSON_FILE)
}

/// The options as sent: the string ones, and the keys whose value is not a string (a map
/// holding one reads as invalid as a whole; create refuses them by name).
fn opts(hc: &HostConfig) -> (BTreeMap<String, String>, Vec<String>) {
    match hc.log_config.get().map(|l| &l.config) {
        Some(Field::Set(m)) => (m.clone(), Vec::new()),
        Some(Field::Invalid(Value::Object(m))) => {
            let mut strings = BTreeMap::new();
            let mut others = Vec::new();
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        strings.insert(k.clone(), s.clone());
                    }
                    _ => others.push(k.clone()),
                }
            }
            (strings, others)
        }
        _ => Default::default(),
    }
}

/// At create: applies the daemon's default driver and options as dockerd merges them (a
/// container naming no driver, or the daemon's, gets the daemon's options it does not set
/// itself), refuses drivers and options berthd does not have, stores `{Type, Config}`.
pub(crate) fn settle(
    hc: &mut HostConfig,
    default_driver: &str,
    default_opts: &BTreeMap<String, String>,
) -> Result<(), EngineError> {
    let asked = hc
        .log_config
        .get()
        .and_then(|l| l.kind.get())
        .filter(|t| !t.is_empty());
    let driver = asked.map_or(default_driver, String::as_str).to_string();
    let (mut config, not_strings) = opts(hc);
    if driver == default_driver {
        for (k, v) in default_opts {
            if !not_strings.contains(k) {
                config.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    let mut keys: Vec<&String> = config.keys().chain(&not_strings).collect();
    keys.sort();
    match driver.as_str() {
        JSON_FILE => {
            for k in keys {
                if !JSON_FILE_OPTS.contains(&k.as_str()) {
                    return Err(bad(format!(
                        "unknown log opt '{k}' for json-file log driver"
                    )));
                }
                if not_strings.contains(k) {
                    return Err(bad(format!("log opt '{k}' must be a string")));
                }
            }
            rotation(&config)?;
            if let Some(c) = config.get("compress") {
                if c != "false" {
                    return Err(bad(
                        "compress: compressed log rotation is not supported by berthd",
                    ));
                }
            }
        }
        NONE => {
            if let Some(k) = keys.first() {
                return Err(bad(format!("unknown log opt '{k}' for none log driver")));
            }
        }
        other => {
            // moby `daemon/logger/factory.go`
            return Err(bad(format!(
                "logger: no log driver named '{other}' is registered"
            )));
        }
    }
    hc.log_config = Field::Set(LogConfig {
        kind: Field::Set(driver),
        config: Field::Set(config),
        ..LogConfig::default()
    });
    Ok(())
}

/// (`max-size` in bytes, `max-file`) of json-file options.
fn rotation(config: &BTreeMap<String, String>) -> Result<(Option<u64>, u32), EngineError> {
    let get = |k: &str| config.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let size = match get("max-size") {
        None | Some("-1") => None,
        Some(s) => Some(parse_size(s).ok_or_else(|| bad(format!("invalid size: '{s}'")))?),
    };
    let files = match get("max-file") {
        None => 1,
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| bad(format!("strconv.Atoi: parsing \"{s}\": invalid syntax")))?;
            if n < 1 {
                return Err(bad("max-file cannot be less than 1"));
            }
            u32::try_from(n).map_err(|_| bad(format!("max-file {n} is too large")))?
        }
    };
    Ok((size, files))
}

/// go-units `RAMInBytes`: `512`, `10k`, `1.5m`, `2GiB`, … (binary multiples).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((num * mult as f64) as u64)
}

/// The shim's log settings for one start; `None` with the `none` driver.
pub(crate) fn log_options(hc: &HostConfig, path: &Path) -> Option<LogOptions> {
    match driver(hc) {
        NONE => return None,
        CRI => {
            return opts(hc).0.get(CRI_PATH_OPT).map(|p| LogOptions {
                path: p.into(),
                max_size: None,
                max_files: 1,
                format: LogFormat::Cri,
            })
        }
        _ => {}
    }
    // Checked at create; a record from before that check rotates never.
    let (max_size, max_files) = rotation(&opts(hc).0).unwrap_or((None, 1));
    Some(LogOptions {
        path: path.to_path_buf(),
        max_size,
        max_files,
        format: LogFormat::JsonFile,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::containers::record::as_map;

    fn hc(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("10k"), Some(10 << 10));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("1.5M"), Some(3 << 19));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("2 gb"), Some(2 << 30));
        assert_eq!(parse_size("abc"), None);
        assert_eq!(parse_size("10x"), None);
    }

    #[test]
    fn settles_and_refuses_like_dockerd() {
        let none = BTreeMap::new();
        let settle = |h: &mut HostConfig| super::settle(h, JSON_FILE, &none);
        let mut h = hc(json!({}));
        settle(&mut h).unwrap();
        assert_eq!(
            as_map(&h)["LogConfig"],
            json!({"Type": "json-file", "Config": {}})
        );
        // The daemon's defaults fill what the container leaves out, for its driver only.
        let daemon = BTreeMap::from([("max-size".to_string(), "1m".to_string())]);
        let mut h = hc(json!({"LogConfig": {"Type": "", "Config": {"max-file": "2"}}}));
        super::settle(&mut h, JSON_FILE, &daemon).unwrap();
        assert_eq!(
            as_map(&h)["LogConfig"]["Config"],
            json!({"max-file": "2", "max-size": "1m"})
        );
        let mut h = hc(json!({}));
        super::settle(&mut h, NONE, &BTreeMap::new()).unwrap();
        assert_eq!(
            as_map(&h)["LogConfig"],
            json!({"Type": "none", "Config": {}})
        );
        let mut h = hc(
            json!({"LogConfig": {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}}),
        );
        settle(&mut h).unwrap();
        let o = log_options(&h, Path::new("/l")).unwrap();
        assert_eq!((o.max_size, o.max_files), (Some(1024), 3));
        let mut h = hc(json!({"LogConfig": {"Type": "none"}}));
        settle(&mut h).unwrap();
        assert!(log_options(&h, Path::new("/l")).is_none());
        for (cfg, want) in [
            (
                json!({"Type": "syslog"}),
                "logger: no log driver named 'syslog' is registered",
            ),
            (
                json!({"Config": {"foo": "1"}}),
                "unknown log opt 'foo' for json-file log driver",
            ),
            (
                json!({"Config": {"max-file": "0"}}),
                "max-file cannot be less than 1",
            ),
            (
                json!({"Config": {"max-size": "ten"}}),
                "invalid size: 'ten'",
            ),
            (
                json!({"Config": {"max-file": 2, "max-size": "1m"}}),
                "log opt 'max-file' must be a string",
            ),
            (
                json!({"Config": {"max-file": 2, "foo": "1"}}),
                "unknown log opt 'foo' for json-file log driver",
            ),
            (
                json!({"Type": "none", "Config": {"max-file": 2}}),
                "unknown log opt 'max-file' for none log driver",
            ),
        ] {
            let mut h = hc(json!({ "LogConfig": cfg }));
            assert_eq!(settle(&mut h).unwrap_err().to_string(), want);
        }
    }
}
