//! `HostConfig.LogConfig`: the `json-file` driver (the default), `local` (the same
//! records, gzip-compressed rotated files, dockerd's defaults 20m × 5), `journald`,
//! `syslog` or `none`, each with dockerd's options and error texts. Checked and stored in
//! full at create; turned into the shim's settings at each start (the tag template, the
//! journal fields and the syslog address settled here, so the shim only sends). A CRI container's driver is `cri` (the CRI log format
//! at the kubelet's path), set only by [`crate::Engine::container_set_cri_log`]: create
//! refuses it as any driver berthd does not have.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_api_types::container::{HostConfig, LogConfig};
use berth_api_types::field::Field;
use berth_runtime::{LogFormat, LogOptions, LogSink, SyslogFormat};
use serde_json::Value;

use crate::containers::record::Record;
use crate::EngineError;

pub(crate) const JSON_FILE: &str = "json-file";
pub(crate) const NONE: &str = "none";
pub(crate) const LOCAL: &str = "local";
pub(crate) const JOURNALD: &str = "journald";
pub(crate) const SYSLOG: &str = "syslog";
/// Where systemd's journal reads native-protocol datagrams.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
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

/// local options dockerd accepts (moby `daemon/logger/local`: no `labels`, `env` or
/// `tag`; dockerd 20.10 answers "unknown log opt 'labels' for log driver local").
const LOCAL_OPTS: &[&str] = &["max-size", "max-file", "compress"];

/// journald options dockerd accepts (moby `daemon/logger/journald`).
const JOURNALD_OPTS: &[&str] = &["labels", "labels-regex", "env", "env-regex", "tag"];

/// syslog options dockerd accepts (moby `daemon/logger/syslog`).
const SYSLOG_OPTS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "syslog-address",
    "syslog-facility",
    "syslog-tls-ca-cert",
    "syslog-tls-cert",
    "syslog-tls-key",
    "syslog-tls-skip-verify",
    "tag",
    "syslog-format",
];

/// syslog facilities by name (Go's `log/syslog`), unshifted.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
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
    let known = |allowed: &[&str], unknown: &dyn Fn(&str) -> String| {
        for k in &keys {
            if !allowed.contains(&k.as_str()) {
                return Err(bad(unknown(k)));
            }
            if not_strings.contains(k) {
                return Err(bad(format!("log opt '{k}' must be a string")));
            }
        }
        Ok(())
    };
    attribute_patterns(&config)?;
    match driver.as_str() {
        JSON_FILE => {
            known(JSON_FILE_OPTS, &|k| {
                format!("unknown log opt '{k}' for json-file log driver")
            })?;
            // `compress` is checked at start, as dockerd does.
            rotation(&config)?;
        }
        LOCAL => {
            known(LOCAL_OPTS, &|k| {
                format!("unknown log opt '{k}' for log driver local")
            })?;
            // `compress` is checked at start, as dockerd does.
            local_rotation(&config)?;
        }
        JOURNALD => {
            known(JOURNALD_OPTS, &|k| {
                format!("unknown log opt '{k}' for journald log driver")
            })?;
            tag_template(config.get("tag").map(String::as_str))?;
        }
        SYSLOG => {
            known(SYSLOG_OPTS, &|k| {
                format!("unknown log opt '{k}' for syslog log driver")
            })?;
            syslog_address(config.get("syslog-address").map_or("", String::as_str))?;
            facility(config.get("syslog-facility").map_or("", String::as_str))?;
            syslog_format(config.get("syslog-format").map_or("", String::as_str))?;
            tag_template(config.get("tag").map(String::as_str))?;
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

/// `compress` as Go's `strconv.ParseBool` reads it; `default` when absent.
fn compress(config: &BTreeMap<String, String>, default: bool) -> Result<bool, EngineError> {
    match config.get("compress").map(String::as_str) {
        None => Ok(default),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(bad(format!(
            "strconv.ParseBool: parsing {other:?}: invalid syntax"
        ))),
    }
}

/// The `local` driver's rotation: dockerd's defaults, `max-size` 20m and `max-file` 5.
fn local_rotation(config: &BTreeMap<String, String>) -> Result<(Option<u64>, u32), EngineError> {
    let mut c = config.clone();
    c.entry("max-size".into()).or_insert_with(|| "20m".into());
    c.entry("max-file".into()).or_insert_with(|| "5".into());
    rotation(&c)
}

/// `syslog-address` as (protocol, address): moby `syslog.parseAddress`. Empty is the
/// local syslog daemon (`/dev/log`).
fn syslog_address(a: &str) -> Result<(String, String), EngineError> {
    if a.is_empty() {
        return Ok(("unixgram".into(), "/dev/log".into()));
    }
    let form = || {
        bad(format!(
            "syslog-address should be in form proto://address, got {a}"
        ))
    };
    let (scheme, rest) = a.split_once("://").ok_or_else(form)?;
    match scheme {
        "unix" | "unixgram" => {
            if let Err(e) = std::fs::metadata(rest) {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                    _ => e.to_string(),
                };
                return Err(bad(format!("stat {rest}: {why}")));
            }
            Ok((scheme.into(), rest.into()))
        }
        "tcp" | "udp" => {
            let host = rest.split('/').next().unwrap_or_default();
            let has_port = match host.rsplit_once(':') {
                Some((h, _)) => !h.starts_with('[') || h.ends_with(']'),
                None => false,
            };
            let host = if has_port {
                host.to_string()
            } else {
                format!("{host}:514")
            };
            Ok((scheme.into(), host))
        }
        "tcp+tls" => Err(bad("syslog-address: tcp+tls is not supported by berthd")),
        _ => Err(form()),
    }
}

/// `syslog-facility`, shifted: a name, or a number 0 to 23; empty is `daemon`.
fn facility(f: &str) -> Result<u8, EngineError> {
    if f.is_empty() {
        return Ok(3 << 3);
    }
    if let Some((_, n)) = FACILITIES.iter().find(|(name, _)| *name == f) {
        return Ok(n << 3);
    }
    match f.parse::<u8>() {
        Ok(n) if n <= 23 => Ok(n << 3),
        _ => Err(bad("invalid syslog facility")),
    }
}

fn syslog_format(f: &str) -> Result<SyslogFormat, EngineError> {
    Ok(match f {
        "" => SyslogFormat::Unix,
        "rfc3164" => SyslogFormat::Rfc3164,
        "rfc5424" => SyslogFormat::Rfc5424,
        "rfc5424micro" => SyslogFormat::Rfc5424Micro,
        _ => return Err(bad("Invalid syslog format")),
    })
}

/// What a `tag` template may name (moby `logger.Info`).
#[derive(Default)]
struct TagInfo<'a> {
    id: &'a str,
    name: &'a str,
    image_id: &'a str,
    image_name: &'a str,
}

fn tag_template(t: Option<&str>) -> Result<String, EngineError> {
    render_tag(t, &TagInfo::default())
}

/// The `tag` option (default `{{.ID}}`) with its fields filled in: `{{.ID}}`,
/// `{{.FullID}}`, `{{.Name}}`, `{{.ImageID}}`, `{{.ImageFullID}}`, `{{.ImageName}}`,
/// `{{.DaemonName}}`.
fn render_tag(t: Option<&str>, info: &TagInfo<'_>) -> Result<String, EngineError> {
    let short = |s: &str| -> String {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        s.chars().take(12).collect()
    };
    let t = t.filter(|t| !t.is_empty()).unwrap_or("{{.ID}}");
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 2..).unwrap_or_default();
        let Some(j) = after.find("}}") else {
            return Err(bad("template: log-tag:1: unclosed action"));
        };
        let field = after.get(..j).unwrap_or_default().trim();
        let value = match field {
            ".ID" => short(info.id),
            ".FullID" => info.id.to_string(),
            ".Name" => info.name.trim_start_matches('/').to_string(),
            ".ImageID" => short(info.image_id),
            ".ImageFullID" => info.image_id.to_string(),
            ".ImageName" => info.image_name.to_string(),
            ".DaemonName" => "docker".to_string(),
            other => {
                return Err(bad(format!(
                    "template: log-tag:1:{}: executing \"log-tag\" at <{other}>: can't evaluate field {} in type *logger.Info",
                    i + 3,
                    other.trim_start_matches('.')
                )))
            }
        };
        out.push_str(&value);
        rest = after.get(j + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// A journal field name as moby's `sanitizeKeyMod` makes it: upper case, `[A-Z0-9_]`
/// only, no leading `_`.
fn journal_key(k: &str) -> String {
    let mut n = String::new();
    for c in k.chars() {
        let c = match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        };
        if !(n.is_empty() && c == '_') {
            n.push(c);
        }
    }
    n
}

/// The `labels-regex` and `env-regex` patterns of a log config, compiled (the regex crate
/// matches in linear time and bounds the compiled size, so a hostile pattern costs
/// little). A pattern that does not compile is refused at create.
fn attribute_patterns(
    config: &BTreeMap<String, String>,
) -> Result<(Option<regex::Regex>, Option<regex::Regex>), EngineError> {
    let compile = |key: &str| -> Result<Option<regex::Regex>, EngineError> {
        match config.get(key).filter(|p| !p.is_empty()) {
            None => Ok(None),
            Some(p) => regex::Regex::new(p)
                .map(Some)
                .map_err(|e| bad(format!("invalid {key} {p:?}: {e}"))),
        }
    };
    Ok((compile("labels-regex")?, compile("env-regex")?))
}

/// moby `logger.Info.ExtraAttributes`: the labels named by `labels` or whose key matches
/// `labels-regex`, and the environment variables named by `env` or matching `env-regex`,
/// that the container has.
fn extra_attributes(rec: &Record, config: &BTreeMap<String, String>) -> Vec<(String, String)> {
    // Checked at create; a config that no longer compiles adds nothing.
    let (labels_re, env_re) = attribute_patterns(config).unwrap_or_default();
    let mut out = Vec::new();
    let names = |k: &str| -> Vec<String> {
        config
            .get(k)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    };
    if let Some(labels) = rec.config.labels.get() {
        let named = names("labels");
        for (k, v) in labels {
            let by_re = labels_re.as_ref().is_some_and(|re| re.is_match(k));
            if named.contains(k) || by_re {
                out.push((k.clone(), v.clone()));
            }
        }
    }
    if let Some(env) = rec.config.env.get() {
        let named = names("env");
        for (k, v) in env.iter().filter_map(|e| e.split_once('=')) {
            let by_re = env_re.as_ref().is_some_and(|re| re.is_match(k));
            if named.iter().any(|n| n == k) || by_re {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// The file the shim writes and `docker logs` reads: json-file's `<id>-json.log`, or the
/// `local` driver's `local-logs/container.log` (moby's name) in the container's directory.
pub(crate) fn log_file(hc: &HostConfig, data_dir: &Path, id: &str) -> PathBuf {
    match driver(hc) {
        LOCAL => data_dir.join("local-logs").join("container.log"),
        _ => data_dir.join(format!("{id}-json.log")),
    }
}

/// Whether `docker logs` can read what this driver wrote from the log file.
pub(crate) fn readable(hc: &HostConfig) -> bool {
    matches!(driver(hc), JSON_FILE | LOCAL)
}

/// With the `journald` driver, whether its journal can be read: dockerd opens a logger to
/// read a stopped container's log, and answers its error when no journal listens.
pub(crate) fn journal_readable(hc: &HostConfig) -> Option<Result<(), EngineError>> {
    (driver(hc) == JOURNALD).then(|| {
        if Path::new(JOURNAL_SOCKET).exists() {
            Ok(())
        } else {
            // moby `journald.New`.
            Err(EngineError::Internal(
                "journald is not enabled on this host".into(),
            ))
        }
    })
}

/// dockerd's wording for a log driver that cannot start.
fn init(e: EngineError) -> EngineError {
    bad(format!("failed to initialize logging driver: {e}"))
}

/// The shim's log settings for one start; `None` with the `none` driver. Refuses what
/// dockerd refuses when its logger starts (not at create): `compress` that cannot work,
/// the `journald` driver where no journal listens.
pub(crate) fn log_options(
    rec: &Record,
    data_dir: &Path,
) -> Result<Option<LogOptions>, EngineError> {
    let hc = &rec.host_config;
    let config = opts(hc).0;
    let file = |max_size, max_files, compress| LogOptions {
        path: log_file(hc, data_dir, &rec.id),
        max_size,
        max_files,
        format: LogFormat::JsonFile,
        compress,
        sink: None,
        attrs: Vec::new(),
    };
    let tag = || {
        render_tag(
            config.get("tag").map(String::as_str),
            &TagInfo {
                id: &rec.id,
                name: &rec.name,
                image_id: &rec.image_id,
                image_name: &rec.image,
            },
        )
    };
    Ok(Some(match driver(hc) {
        NONE => return Ok(None),
        CRI => {
            return Ok(config.get(CRI_PATH_OPT).map(|p| LogOptions {
                path: p.into(),
                max_size: None,
                max_files: 1,
                format: LogFormat::Cri,
                compress: false,
                sink: None,
                attrs: Vec::new(),
            }))
        }
        LOCAL => {
            let (max_size, max_files) = local_rotation(&config).map_err(init)?;
            let compress = compress(&config, true).map_err(init)?;
            if compress && max_files < 2 {
                // moby `local.validateConfig`.
                return Err(init(bad(
                    "compression cannot be enabled when max file count is 1",
                )));
            }
            file(max_size, max_files, compress)
        }
        JOURNALD => {
            if !Path::new(JOURNAL_SOCKET).exists() {
                // moby `journald.New`.
                return Err(init(bad("journald is not enabled on this host")));
            }
            let tag = tag()?;
            let mut fields = vec![
                (
                    "CONTAINER_ID".to_string(),
                    rec.id.chars().take(12).collect(),
                ),
                ("CONTAINER_ID_FULL".into(), rec.id.clone()),
                (
                    "CONTAINER_NAME".into(),
                    rec.name.trim_start_matches('/').into(),
                ),
                ("CONTAINER_TAG".into(), tag.clone()),
                ("IMAGE_NAME".into(), rec.image.clone()),
                ("SYSLOG_IDENTIFIER".into(), tag),
            ];
            for (k, v) in extra_attributes(rec, &config) {
                let k = journal_key(&k);
                if !k.is_empty() {
                    fields.push((k, v));
                }
            }
            LogOptions {
                sink: Some(LogSink::Journald {
                    socket: JOURNAL_SOCKET.into(),
                    fields,
                }),
                ..file(None, 1, false)
            }
        }
        SYSLOG => {
            let (proto, address) =
                syslog_address(config.get("syslog-address").map_or("", String::as_str))?;
            let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            LogOptions {
                sink: Some(LogSink::Syslog {
                    proto,
                    address,
                    format: syslog_format(config.get("syslog-format").map_or("", String::as_str))?,
                    facility: facility(config.get("syslog-facility").map_or("", String::as_str))?,
                    tag: tag()?,
                    hostname,
                }),
                ..file(None, 1, false)
            }
        }
        _ => {
            // Checked at create; a record from before that check rotates never.
            let (max_size, max_files) = rotation(&config).unwrap_or((None, 1));
            let compress = compress(&config, false).map_err(init)?;
            if compress && (max_files < 2 || max_size.is_none()) {
                // moby `jsonfilelog.New`.
                return Err(init(bad(
                    "compress cannot be true when max-file is less than 2 or max-size is not set",
                )));
            }
            let attrs = file_attrs(rec, &config, tag).map_err(init)?;
            LogOptions {
                attrs,
                ..file(max_size, max_files, compress)
            }
        }
    }))
}

/// json-file's `attrs` (moby `jsonfilelog.New`): the extra attributes, and `tag` when the
/// option is given (json-file has no default tag); a later key wins, as in moby's map.
/// Sorted by key.
fn file_attrs(
    rec: &Record,
    config: &BTreeMap<String, String>,
    tag: impl Fn() -> Result<String, EngineError>,
) -> Result<Vec<(String, String)>, EngineError> {
    let mut attrs: BTreeMap<String, String> = extra_attributes(rec, config).into_iter().collect();
    if config.get("tag").is_some_and(|t| !t.is_empty()) {
        attrs.insert("tag".into(), tag()?);
    }
    Ok(attrs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::containers::record::as_map;

    fn hc(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    fn rec(h: &HostConfig) -> Record {
        Record {
            version: 0,
            id: "0123456789abcdef0123".into(),
            name: "/web".into(),
            created: String::new(),
            image: "busybox:latest".into(),
            image_id: "sha256:fedcba9876543210".into(),
            path: String::new(),
            args: Vec::new(),
            config: serde_json::from_value(json!({
                "Env": ["A=1", "B=two"],
                "Labels": {"com.example.team": "blue"}
            }))
            .unwrap(),
            host_config: h.clone(),
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            image_mounts: Vec::new(),
            hugepage_limits: Vec::new(),
        }
    }

    fn log_options(h: &HostConfig, dir: &Path) -> Option<LogOptions> {
        super::log_options(&rec(h), dir).unwrap()
    }

    #[test]
    fn settles_each_driver_for_the_shim() {
        let none = BTreeMap::new();
        let settled = |cfg: Value| {
            let mut h = hc(json!({ "LogConfig": cfg }));
            super::settle(&mut h, JSON_FILE, &none).unwrap();
            h
        };
        let h = settled(json!({"Type": "local"}));
        let o = log_options(&h, Path::new("/c")).unwrap();
        assert_eq!(o.path, Path::new("/c/local-logs/container.log"));
        assert_eq!(
            (o.max_size, o.max_files, o.compress),
            (Some(20 << 20), 5, true)
        );
        assert!(readable(&h));
        let h = settled(json!({"Type": "local", "Config": {"compress": "false", "max-file": "1"}}));
        let o = log_options(&h, Path::new("/c")).unwrap();
        assert_eq!((o.max_files, o.compress), (1, false));
        let h = settled(json!({"Config": {"compress": "true", "max-file": "2", "max-size": "1k"}}));
        let o = log_options(&h, Path::new("/c")).unwrap();
        assert_eq!(o.path, Path::new("/c/0123456789abcdef0123-json.log"));
        assert!(o.compress);
        let h = settled(json!({"Type": "syslog", "Config": {
            "syslog-address": "tcp://127.0.0.1", "syslog-facility": "local3",
            "syslog-format": "rfc5424micro", "tag": "{{.Name}}/{{.ImageName}}/{{.ID}}/{{.ImageID}}"}}));
        assert!(!readable(&h));
        match log_options(&h, Path::new("/c")).unwrap().sink {
            Some(LogSink::Syslog {
                proto,
                address,
                format,
                facility,
                tag,
                ..
            }) => {
                assert_eq!((proto.as_str(), address.as_str()), ("tcp", "127.0.0.1:514"));
                assert_eq!((format, facility), (SyslogFormat::Rfc5424Micro, 19 << 3));
                assert_eq!(tag, "web/busybox:latest/0123456789ab/fedcba987654");
            }
            other => panic!("{other:?}"),
        }
        let h =
            settled(json!({"Type": "syslog", "Config": {"syslog-address": "udp://[::1]:5514"}}));
        match log_options(&h, Path::new("/c")).unwrap().sink {
            Some(LogSink::Syslog {
                address,
                format,
                facility,
                tag,
                ..
            }) => {
                assert_eq!(address, "[::1]:5514");
                assert_eq!((format, facility), (SyslogFormat::Unix, 3 << 3));
                assert_eq!(tag, "0123456789ab");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_file_attrs_settled_at_start_as_dockerd() {
        let none = BTreeMap::new();
        let settled = |cfg: Value| {
            let mut h = hc(json!({ "LogConfig": cfg }));
            super::settle(&mut h, JSON_FILE, &none).unwrap();
            h
        };
        // No options, or an empty tag: no attrs (json-file has no default tag).
        let h = settled(json!({"Config": {"tag": ""}}));
        assert!(log_options(&h, Path::new("/c")).unwrap().attrs.is_empty());
        let h = settled(json!({"Config": {
            "labels": "com.example.team,absent", "env": "B", "env-regex": "^A$",
            "tag": "{{.Name}}/{{.ID}}"}}));
        let o = log_options(&h, Path::new("/c")).unwrap();
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two"),
            ("com.example.team", "blue"),
            ("tag", "web/0123456789ab"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(o.attrs, want);
        // A tag that does not render refuses the start, as dockerd's json-file New.
        let h = settled(json!({"Config": {"tag": "{{.Nope}}"}}));
        let e = super::log_options(&rec(&h), Path::new("/c")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to initialize logging driver: template: log-tag"),
            "{e}"
        );
    }

    #[test]
    fn compress_is_refused_at_start_as_dockerd() {
        let none = BTreeMap::new();
        for (cfg, want) in [
            (
                json!({"Type": "local", "Config": {"max-file": "1"}}),
                "compression cannot be enabled when max file count is 1",
            ),
            (
                json!({"Config": {"compress": "true"}}),
                "compress cannot be true when max-file is less than 2 or max-size is not set",
            ),
            (
                json!({"Config": {"compress": "yes", "max-file": "2", "max-size": "1k"}}),
                "strconv.ParseBool: parsing \"yes\": invalid syntax",
            ),
        ] {
            let mut h = hc(json!({ "LogConfig": cfg }));
            super::settle(&mut h, JSON_FILE, &none).unwrap();
            let e = super::log_options(&rec(&h), Path::new("/c")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("failed to initialize logging driver: {want}")
            );
        }
    }

    #[test]
    fn journal_fields_as_dockerd() {
        assert_eq!(journal_key("com.example-team"), "COM_EXAMPLE_TEAM");
        assert_eq!(journal_key("_x.y"), "X_Y");
        let h = hc(json!({"LogConfig": {"Type": "journald",
            "Config": {"labels": "com.example.team,absent", "env": "B"}}}));
        let attrs = extra_attributes(&rec(&h), &opts(&h).0);
        assert_eq!(
            attrs,
            [
                ("com.example.team".to_string(), "blue".to_string()),
                ("B".into(), "two".into())
            ]
        );
        if !Path::new(JOURNAL_SOCKET).exists() {
            let e = super::log_options(&rec(&h), Path::new("/c")).unwrap_err();
            assert_eq!(
                e.to_string(),
                "failed to initialize logging driver: journald is not enabled on this host"
            );
        }
    }

    #[test]
    fn regex_options_select_labels_and_env_and_bad_patterns_are_refused() {
        let h = hc(json!({"LogConfig": {"Type": "journald",
            "Config": {"labels-regex": "^com\\.example\\.", "env-regex": "^A$"}}}));
        let attrs = extra_attributes(&rec(&h), &opts(&h).0);
        assert_eq!(
            attrs,
            [
                ("com.example.team".to_string(), "blue".to_string()),
                ("A".into(), "1".into())
            ]
        );
        for key in ["labels-regex", "env-regex"] {
            let mut h =
                hc(json!({"LogConfig": {"Type": "json-file", "Config": {key: "(unclosed"}}}));
            let e = super::settle(&mut h, JSON_FILE, &BTreeMap::new())
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("invalid {key} \"(unclosed\"")),
                "{e}"
            );
        }
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
                json!({"Type": "gelf"}),
                "logger: no log driver named 'gelf' is registered",
            ),
            (
                json!({"Type": "local", "Config": {"foo": "1"}}),
                "unknown log opt 'foo' for log driver local",
            ),
            (
                json!({"Type": "local", "Config": {"labels": "a"}}),
                "unknown log opt 'labels' for log driver local",
            ),
            (
                json!({"Type": "local", "Config": {"tag": "x"}}),
                "unknown log opt 'tag' for log driver local",
            ),
            (
                json!({"Type": "journald", "Config": {"max-size": "1m"}}),
                "unknown log opt 'max-size' for journald log driver",
            ),
            (
                json!({"Type": "journald", "Config": {"tag": "{{.Nope}}"}}),
                "template: log-tag:1:3: executing \"log-tag\" at <.Nope>: can't evaluate field Nope in type *logger.Info",
            ),
            (
                json!({"Type": "syslog", "Config": {"max-file": "1"}}),
                "unknown log opt 'max-file' for syslog log driver",
            ),
            (
                json!({"Type": "syslog", "Config": {"syslog-address": "localhost:514"}}),
                "syslog-address should be in form proto://address, got localhost:514",
            ),
            (
                json!({"Type": "syslog", "Config": {"syslog-address": "unix:///nonexistent/log"}}),
                "stat /nonexistent/log: no such file or directory",
            ),
            (
                json!({"Type": "syslog", "Config": {"syslog-address": "udp://h:1", "syslog-facility": "24"}}),
                "invalid syslog facility",
            ),
            (
                json!({"Type": "syslog", "Config": {"syslog-address": "udp://h:1", "syslog-format": "json"}}),
                "Invalid syslog format",
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
