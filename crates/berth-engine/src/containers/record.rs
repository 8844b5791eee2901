//! The persisted container record (`<data-root>/containers/<id>/record.json`) and the
//! Docker-shaped JSON views of it (inspect, list).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One container, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    /// With the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the client named it.
    pub image: String,
    /// `sha256:…`.
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    /// Docker's `Config`, image defaults merged in.
    pub config: Map<String, Value>,
    /// Docker's `HostConfig`, as sent.
    pub host_config: Map<String, Value>,
    pub state: StateRecord,
    #[serde(default)]
    pub restart_count: u32,
    /// Stopped or killed by a user: `unless-stopped` stays down (dockerd's
    /// `HasBeenManuallyStopped`).
    #[serde(default)]
    pub manually_stopped: bool,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    /// With the maximum retry count (0: unlimited).
    OnFailure(u32),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    /// `created`, `running`, `exited`, `removing`, `dead`.
    pub status: String,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Frozen by `docker pause`; meaningful only while running.
    #[serde(default)]
    pub paused: bool,
    /// The start time of process `pid` (`/proc/<pid>/stat` field 22), what tells it from a
    /// later process given the same pid; 0 in records made before it was kept.
    #[serde(default)]
    pub start_time: u64,
}

impl Default for StateRecord {
    fn default() -> Self {
        StateRecord {
            status: "created".into(),
            pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            paused: false,
            start_time: 0,
        }
    }
}

impl Record {
    pub fn running(&self) -> bool {
        self.state.status == "running"
    }

    /// Waiting to be restarted by its policy; dockerd counts it as running.
    pub fn restarting(&self) -> bool {
        self.state.status == "restarting"
    }

    pub fn restart_policy(&self) -> RestartPolicy {
        let p = self.host_config.get("RestartPolicy");
        let name = p.and_then(|p| p.get("Name")).and_then(Value::as_str);
        let max = p
            .and_then(|p| p.get("MaximumRetryCount"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match name.unwrap_or("") {
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure(max.min(u32::MAX as u64) as u32),
            _ => RestartPolicy::No,
        }
    }

    /// Docker's `State.Status`: `paused` for a frozen running container.
    pub fn status_word(&self) -> &str {
        if self.running() && self.state.paused {
            "paused"
        } else {
            &self.state.status
        }
    }

    pub fn tty(&self) -> bool {
        self.config
            .get("Tty")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn auto_remove(&self) -> bool {
        self.host_config
            .get("AutoRemove")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn network_mode(&self) -> String {
        match self.host_config.get("NetworkMode").and_then(Value::as_str) {
            None | Some("") | Some("default") => "bridge".into(),
            Some(m) => m.to_string(),
        }
    }

    /// `docker inspect`'s object.
    pub fn inspect(&self, data_dir: &Path, exec_dir: &Path) -> Value {
        let s = &self.state;
        let mut host_config = self.host_config.clone();
        host_config
            .entry("LogConfig")
            .or_insert_with(|| json!({"Type": "json-file", "Config": {}}));
        host_config
            .entry("NetworkMode")
            .or_insert_with(|| json!(self.network_mode()));
        for (k, v) in [
            ("AutoRemove", json!(false)),
            ("Privileged", json!(false)),
            ("Binds", Value::Null),
            ("PortBindings", json!({})),
            (
                "RestartPolicy",
                json!({"Name": "no", "MaximumRetryCount": 0}),
            ),
            ("Memory", json!(0)),
            ("CpuShares", json!(0)),
            ("PidsLimit", Value::Null),
        ] {
            host_config.entry(k).or_insert(v);
        }
        let hostname = self.config.get("Hostname").cloned().unwrap_or(json!(""));
        json!({
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": self.args,
            "State": {
                "Status": self.status_word(),
                "Running": self.running() || self.restarting(),
                "Paused": self.status_word() == "paused",
                "Restarting": self.restarting(),
                "OOMKilled": s.oom_killed,
                "Dead": s.status == "dead",
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error,
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
            },
            "Image": self.image_id,
            "ResolvConfPath": data_dir.join("resolv.conf"),
            "HostnamePath": data_dir.join("hostname"),
            "HostsPath": data_dir.join("hosts"),
            "LogPath": data_dir.join(format!("{}-json.log", self.id)),
            "Name": self.name,
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": Value::Null,
            "HostConfig": host_config,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "UpperDir": data_dir.join("rw/diff"),
                    "WorkDir": data_dir.join("rw/work"),
                    "MergedDir": exec_dir.join("rootfs"),
                },
            },
            "Mounts": [],
            "Config": self.config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "SandboxKey": "",
                "HairpinMode": false,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "Ports": {},
                "SecondaryIPAddresses": Value::Null,
                "SecondaryIPv6Addresses": Value::Null,
                "EndpointID": "",
                "Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "MacAddress": "",
                "Networks": {},
            },
            "Hostname": hostname,
        })
    }

    /// One entry of `GET /containers/json`.
    pub fn summary(&self, now_unix: i64) -> Value {
        let command = std::iter::once(self.path.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        json!({
            "Id": self.id,
            "Names": [self.name],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": command,
            "Created": parse_unix(&self.created).unwrap_or(0),
            "Ports": [],
            "Labels": self.config.get("Labels").cloned().unwrap_or(json!({})),
            "State": self.status_word(),
            "Status": self.status_text(now_unix),
            "HostConfig": {"NetworkMode": self.network_mode()},
            "NetworkSettings": {"Networks": {}},
            "Mounts": [],
        })
    }

    /// "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
    pub fn status_text(&self, now: i64) -> String {
        let s = &self.state;
        match s.status.as_str() {
            "running" => format!(
                "Up {}{}",
                human_duration(now - parse_unix(&s.started_at).unwrap_or(now)),
                if s.paused { " (Paused)" } else { "" }
            ),
            "exited" => format!(
                "Exited ({}) {} ago",
                s.exit_code,
                human_duration(now - parse_unix(&s.finished_at).unwrap_or(now))
            ),
            "restarting" => format!(
                "Restarting ({}) {} ago",
                s.exit_code,
                human_duration(now - parse_unix(&s.finished_at).unwrap_or(now))
            ),
            "removing" => "Removal In Progress".into(),
            "dead" => "Dead".into(),
            _ => "Created".into(),
        }
    }
}

/// go-units `HumanDuration`, abridged.
fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if secs < 120 {
        "About a minute".into()
    } else if secs < 3600 {
        format!("{} minutes", secs / 60)
    } else if secs < 7200 {
        "About an hour".into()
    } else if secs < 48 * 3600 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} days", secs / 86400)
    }
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.123Z`); `None` for
/// Go's zero time (`0001-01-01T00:00:00Z`, "never") and for what is not a time.
pub(crate) fn parse_unix(t: &str) -> Option<i64> {
    if t.starts_with("0001-") {
        return None;
    }
    berth_api_types::timestamp::parse_rfc3339(t).map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_and_words_durations() {
        assert_eq!(parse_unix("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_unix("2024-01-01T00:00:01.5Z"), Some(1_704_067_201));
        assert_eq!(parse_unix(ZERO_TIME), None);
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
    }
}
