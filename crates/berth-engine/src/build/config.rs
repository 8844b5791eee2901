//! The container config a build carries from step to step (moby's `runConfig`): read from
//! the base image's `config`, changed by each metadata instruction, written back into the
//! JSON of each step's image, and turned into the cache probe dockerd compares.

use std::collections::{BTreeMap, BTreeSet};

use berth_build::cache::CacheProbe;
use berth_build::instructions::Health;
use serde_json::{json, Map, Value};

/// The fields of an image's `config` a Dockerfile can change. Fields it cannot change
/// (`Hostname`, `AttachStdin`...) stay in `rest`, as the base image had them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunConfig {
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub shell: Option<Vec<String>>,
    pub on_build: Vec<String>,
    pub exposed_ports: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub user: String,
    pub working_dir: String,
    pub stop_signal: String,
    pub healthcheck: Option<Health>,
    pub args_escaped: bool,
    rest: Map<String, Value>,
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    })
}

fn keys(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn string(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

impl RunConfig {
    /// Reads an image's `config` object (anything else reads as empty).
    pub(crate) fn from_json(v: &Value) -> RunConfig {
        let mut rest = v.as_object().cloned().unwrap_or_default();
        let take = |rest: &mut Map<String, Value>, k: &str| rest.remove(k);
        let env = strings(take(&mut rest, "Env").as_ref()).unwrap_or_default();
        let cmd = strings(take(&mut rest, "Cmd").as_ref());
        let entrypoint = strings(take(&mut rest, "Entrypoint").as_ref());
        let shell = strings(take(&mut rest, "Shell").as_ref());
        let on_build = strings(take(&mut rest, "OnBuild").as_ref()).unwrap_or_default();
        let exposed_ports = keys(take(&mut rest, "ExposedPorts").as_ref());
        let volumes = keys(take(&mut rest, "Volumes").as_ref());
        let labels = take(&mut rest, "Labels")
            .and_then(|l| l.as_object().cloned())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let user = string(take(&mut rest, "User").as_ref());
        let working_dir = string(take(&mut rest, "WorkingDir").as_ref());
        let stop_signal = string(take(&mut rest, "StopSignal").as_ref());
        let healthcheck = take(&mut rest, "Healthcheck").and_then(|h| health_from_json(&h));
        let args_escaped = take(&mut rest, "ArgsEscaped")
            .and_then(|b| b.as_bool())
            .unwrap_or(false);
        RunConfig {
            env,
            cmd,
            entrypoint,
            shell,
            on_build,
            exposed_ports,
            volumes,
            labels,
            user,
            working_dir,
            stop_signal,
            healthcheck,
            args_escaped,
            rest,
        }
    }

    /// The `config` object of an image (dockerd's field names; empty fields left out as
    /// dockerd's `omitempty` does, `Cmd`/`Entrypoint` null when unset).
    pub(crate) fn to_json(&self) -> Value {
        let mut m = self.rest.clone();
        let set = |m: &mut Map<String, Value>, k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        set(&mut m, "Env", json!(self.env));
        set(&mut m, "Cmd", json!(self.cmd));
        set(&mut m, "Entrypoint", json!(self.entrypoint));
        if let Some(s) = &self.shell {
            set(&mut m, "Shell", json!(s));
        }
        // Empty lists and maps are null, as dockerd's images carry them.
        let or_null = |empty: bool, v: Value| if empty { Value::Null } else { v };
        set(
            &mut m,
            "OnBuild",
            or_null(self.on_build.is_empty(), json!(self.on_build)),
        );
        if !self.exposed_ports.is_empty() {
            let p: Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|k| (k.clone(), json!({})))
                .collect();
            set(&mut m, "ExposedPorts", Value::Object(p));
        }
        let v: Map<String, Value> = self
            .volumes
            .iter()
            .map(|k| (k.clone(), json!({})))
            .collect();
        set(
            &mut m,
            "Volumes",
            if v.is_empty() {
                Value::Null
            } else {
                Value::Object(v)
            },
        );
        set(
            &mut m,
            "Labels",
            or_null(self.labels.is_empty(), json!(self.labels)),
        );
        set(&mut m, "User", json!(self.user));
        set(&mut m, "WorkingDir", json!(self.working_dir));
        if !self.stop_signal.is_empty() {
            set(&mut m, "StopSignal", json!(self.stop_signal));
        }
        if let Some(h) = &self.healthcheck {
            set(&mut m, "Healthcheck", health_to_json(h));
        }
        if self.args_escaped {
            set(&mut m, "ArgsEscaped", json!(true));
        }
        Value::Object(m)
    }

    /// The shell of shell-form commands: `SHELL`'s, else `/bin/sh -c`.
    pub(crate) fn shell(&self) -> Vec<String> {
        self.shell
            .clone()
            .unwrap_or_else(berth_build::cache::default_shell)
    }

    /// The cache key of a step on `parent` whose container config has `cmd` (the step's
    /// history text) and, for RUN, an entrypoint override.
    pub(crate) fn cache_key(&self, parent: &str, cmd: &[String], entrypoint: &[String]) -> String {
        let ports: Vec<String> = self.exposed_ports.iter().cloned().collect();
        let volumes: Vec<String> = self.volumes.iter().cloned().collect();
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let shell = self.shell.clone().unwrap_or_default();
        CacheProbe {
            parent,
            cmd,
            env: &self.env,
            entrypoint,
            shell: &shell,
            on_build: &self.on_build,
            exposed_ports: &ports,
            volumes: &volumes,
            labels: &labels,
            user: &self.user,
            working_dir: &self.working_dir,
            stop_signal: &self.stop_signal,
            stop_timeout: None,
            args_escaped: self.args_escaped,
            healthcheck: self.healthcheck.as_ref(),
        }
        .key()
    }
}

fn health_to_json(h: &Health) -> Value {
    let mut m = Map::new();
    m.insert("Test".into(), json!(h.test));
    for (k, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if v != 0 {
            m.insert(k.into(), json!(v));
        }
    }
    if h.retries != 0 {
        m.insert("Retries".into(), json!(h.retries));
    }
    Value::Object(m)
}

fn health_from_json(v: &Value) -> Option<Health> {
    let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(Health {
        test: strings(v.get("Test"))?,
        interval: n("Interval"),
        timeout: n("Timeout"),
        start_period: n("StartPeriod"),
        start_interval: n("StartInterval"),
        retries: n("Retries"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_fields_and_sets_dockerds() {
        let v = json!({"Hostname": "", "Env": ["PATH=/bin"], "Cmd": ["sh"],
            "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "b", "n": 5}});
        let rc = RunConfig::from_json(&v);
        assert_eq!(rc.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(rc.labels.len(), 1, "a non-string label value is dropped");
        let out = rc.to_json();
        assert_eq!(out["Hostname"], "");
        assert_eq!(out["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(out["Entrypoint"], Value::Null);
        assert_eq!(out["OnBuild"], Value::Null);
        assert_eq!(RunConfig::default().to_json()["Labels"], Value::Null);
    }

    #[test]
    fn cache_key_changes_with_parent_cmd_and_env() {
        let mut rc = RunConfig::default();
        let cmd = vec!["/bin/sh".to_string(), "-c".into(), "true".into()];
        let a = rc.cache_key("sha256:a", &cmd, &[]);
        assert_ne!(a, rc.cache_key("sha256:b", &cmd, &[]));
        assert_ne!(a, rc.cache_key("sha256:a", &cmd[..2], &[]));
        rc.env.push("A=1".into());
        assert_ne!(a, rc.cache_key("sha256:a", &cmd, &[]));
    }
}
