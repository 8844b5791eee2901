//! Pod networking through CNI plugins, executed as containerd does: the first network
//! configuration of the conf dir in lexical order (`.conflist`, or a single plugin's
//! `.conf`/`.json`), each plugin run with `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME=eth0`, `CNI_PATH` and its config (with `prevResult` and the
//! `runtimeConfig` its `capabilities` ask for) on stdin.
//!
//! The pod's network namespace is its infra container's (`/proc/<pid>/ns/net` of the
//! running `berth-pause`; the engine made it as for `--network none`): ADD runs once the
//! infra container started, DEL before it is stopped. What ADD did (the network list, the
//! runtime config and the pod IPs) is kept in `<data-root>/cri/cni/<sandbox>.json`, so that
//! DEL undoes exactly that (portmap needs the same port mappings) and the IPs survive a
//! daemon restart. DEL is idempotent: it runs again on remove, and with no netns once the
//! infra process is gone (the plugins then release the IP allocation and the port
//! mappings; the veth went with the namespace).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most a plugin may print (its result or error), and a configuration file's size.
const OUTPUT_LIMIT: u64 = 1 << 20;
/// How long one plugin may run.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The pod's interface in its namespace.
pub(crate) const IFNAME: &str = "eth0";

/// Where the configuration and the plugins are (daemon.json `cri.cni-conf-dir`,
/// `cri.cni-bin-dir`).
#[derive(Debug, Clone)]
pub struct CniConfig {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/usr/lib/cni")],
        }
    }
}

/// Why CNI failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no network config found in {0}")]
    NoConfig(PathBuf),
    #[error("invalid CNI config {path}: {why}")]
    BadConfig { path: PathBuf, why: String },
    #[error("cannot read CNI config dir {path}: {source}")]
    ConfDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to find plugin {0:?} in path {1}")]
    NoPlugin(String, String),
    #[error("plugin type={plugin:?} failed ({command}): {why}")]
    Plugin {
        plugin: String,
        command: &'static str,
        why: String,
    },
    #[error("cannot keep the CNI state of sandbox {id}: {why}")]
    State { id: String, why: String },
}

/// A network configuration list as the plugins get it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Map<String, Value>>,
}

impl NetList {
    /// A `.conflist`, or a single plugin's `.conf` made a list of one.
    pub(crate) fn parse(bytes: &[u8], list: bool) -> Result<NetList, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(obj) = v else {
            return Err("not a JSON object".into());
        };
        let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let name = s("name");
        if name.is_empty() {
            return Err("no network name".into());
        }
        let cni_version = s("cniVersion");
        let plugins: Vec<Map<String, Value>> = if list {
            obj.get("plugins")
                .and_then(Value::as_array)
                .ok_or("no \"plugins\" list")?
                .iter()
                .map(|p| p.as_object().cloned().ok_or("a plugin is not an object"))
                .collect::<Result<_, _>>()?
        } else {
            vec![obj.clone()]
        };
        if plugins.is_empty() {
            return Err("no plugins".into());
        }
        for p in &plugins {
            let t = p.get("type").and_then(Value::as_str).unwrap_or("");
            if t.is_empty() || t.contains('/') || t == "." || t == ".." {
                return Err(format!("invalid plugin type {t:?}"));
            }
        }
        Ok(NetList {
            name,
            cni_version,
            plugins,
        })
    }

    fn to_value(&self) -> Value {
        json!({"name": self.name, "cniVersion": self.cni_version, "plugins": self.plugins})
    }

    fn from_value(v: &Value) -> Option<NetList> {
        NetList::parse(v.to_string().as_bytes(), true).ok()
    }

    /// Plugin `i`'s stdin: its config with the list's name and version, the previous
    /// result, and the runtime config keys its capabilities ask for.
    fn plugin_config(&self, i: usize, prev: Option<&Value>, runtime: &Map<String, Value>) -> Value {
        let mut c = self.plugins.get(i).cloned().unwrap_or_default();
        c.insert("name".into(), json!(self.name));
        c.insert("cniVersion".into(), json!(self.cni_version));
        if let Some(p) = prev {
            c.insert("prevResult".into(), p.clone());
        }
        let caps = c.get("capabilities").and_then(Value::as_object).cloned();
        let wanted: Map<String, Value> = runtime
            .iter()
            .filter(|(k, _)| {
                caps.as_ref()
                    .and_then(|c| c.get(*k))
                    .and_then(Value::as_bool)
                    == Some(true)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !wanted.is_empty() {
            c.insert("runtimeConfig".into(), Value::Object(wanted));
        }
        Value::Object(c)
    }
}

/// What ADD did for a sandbox, kept for DEL and status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attachment {
    pub netns: String,
    pub list: NetList,
    pub runtime: Map<String, Value>,
    pub result: Value,
}

impl Attachment {
    /// The pod's IPs (without prefix length), in the result's order.
    pub(crate) fn ips(&self) -> Vec<String> {
        ips(&self.result)
    }

    fn to_value(&self) -> Value {
        json!({
            "netns": self.netns, "list": self.list.to_value(),
            "runtimeConfig": self.runtime, "result": self.result,
        })
    }

    fn from_value(v: &Value) -> Option<Attachment> {
        Some(Attachment {
            netns: v.get("netns")?.as_str()?.to_string(),
            list: NetList::from_value(v.get("list")?)?,
            runtime: v.get("runtimeConfig")?.as_object()?.clone(),
            result: v.get("result").cloned().unwrap_or(Value::Null),
        })
    }
}

/// The IPs of a CNI result (`ips[].address`, `10.1.2.3/24`).
pub(crate) fn ips(result: &Value) -> Vec<String> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("address")?.as_str())
                .filter_map(|addr| addr.split('/').next())
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The runtime config containerd passes: `portMappings` from the sandbox's port mappings
/// (those with a host port, TCP/UDP/SCTP lower case).
pub(crate) fn runtime_config(ports: &[crate::proto::PortMapping]) -> Map<String, Value> {
    let mut m = Map::new();
    let maps: Vec<Value> = ports
        .iter()
        .filter(|p| p.host_port > 0 && p.container_port > 0)
        .map(|p| {
            let proto = match crate::proto::Protocol::try_from(p.protocol) {
                Ok(crate::proto::Protocol::Udp) => "udp",
                Ok(crate::proto::Protocol::Sctp) => "sctp",
                _ => "tcp",
            };
            json!({"hostPort": p.host_port, "containerPort": p.container_port,
                   "protocol": proto, "hostIP": p.host_ip})
        })
        .collect();
    if !maps.is_empty() {
        m.insert("portMappings".into(), Value::Array(maps));
    }
    m
}

/// The CNI plugins of one daemon, and where it keeps what ADD did.
#[derive(Debug, Clone)]
pub(crate) struct Cni {
    pub config: CniConfig,
    pub state_dir: PathBuf,
}

impl Cni {
    /// The first valid network configuration of the conf dir, in lexical order.
    pub(crate) async fn load(&self) -> Result<NetList, CniError> {
        let dir = self.config.conf_dir.clone();
        tokio::task::spawn_blocking(move || load_dir(&dir))
            .await
            .map_err(|e| CniError::ConfDir {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })?
    }

    /// The state file of sandbox `id`; `None` for anything but an engine ID (a label a
    /// Docker client set may name a "sandbox": it never walks out of the state dir).
    fn state_path(&self, id: &str) -> Option<PathBuf> {
        let engine_id =
            !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        engine_id.then(|| self.state_dir.join(format!("{id}.json")))
    }

    /// What ADD did for sandbox `id`, if anything.
    pub(crate) async fn attachment(&self, id: &str) -> Option<Attachment> {
        let path = self.state_path(id)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        Attachment::from_value(&serde_json::from_slice(&bytes).ok()?)
    }

    /// ADD: attaches the namespace `netns` of sandbox `id` to the network; the IPs. On a
    /// failure the plugins that ran are undone (DEL) before the error is returned.
    pub(crate) async fn add(
        &self,
        id: &str,
        netns: &str,
        runtime: Map<String, Value>,
    ) -> Result<Attachment, CniError> {
        let started = std::time::Instant::now();
        let list = self.load().await?;
        let mut att = Attachment {
            netns: netns.to_string(),
            list,
            runtime,
            result: Value::Null,
        };
        // Kept before the first plugin runs, so that a DEL after a crash undoes it too.
        self.save(id, &att).await?;
        let mut prev: Option<Value> = None;
        for i in 0..att.list.plugins.len() {
            let config = att.list.plugin_config(i, prev.as_ref(), &att.runtime);
            match self.exec("ADD", id, netns, &config).await {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    // Undo the plugins that ran, the failed one included (it may have
                    // done part of its work).
                    if let Err(d) = self.del_with(id, &att, i + 1).await {
                        tracing::warn!(sandbox = %id, error = %d, "CNI: DEL after a failed ADD failed");
                    }
                    self.forget(id).await;
                    return Err(e);
                }
            }
        }
        att.result = prev.unwrap_or(Value::Null);
        self.save(id, &att).await?;
        tracing::info!(sandbox = %id, network = %att.list.name, ips = ?att.ips(),
            took_ms = started.elapsed().as_millis(), "CNI: pod attached");
        Ok(att)
    }

    /// DEL for sandbox `id` if ADD ran for it; `netns` empty once the namespace is gone.
    /// Idempotent: the state stays until [`Cni::forget`].
    pub(crate) async fn del(&self, id: &str, netns_alive: bool) -> Result<(), CniError> {
        let Some(mut att) = self.attachment(id).await else {
            return Ok(());
        };
        if !netns_alive {
            att.netns.clear();
        }
        let started = std::time::Instant::now();
        self.del_with(id, &att, att.list.plugins.len()).await?;
        tracing::info!(sandbox = %id, network = %att.list.name, netns = %att.netns,
            took_ms = started.elapsed().as_millis(), "CNI: pod detached");
        Ok(())
    }

    /// DEL of the first `count` plugins, last first. Every one runs even when one fails
    /// (so that the bridge still releases the address when a later plugin is broken);
    /// the first failure is the answer.
    async fn del_with(&self, id: &str, att: &Attachment, count: usize) -> Result<(), CniError> {
        let prev = (!att.result.is_null()).then_some(&att.result);
        let mut first_error = None;
        for i in (0..count.min(att.list.plugins.len())).rev() {
            let config = att.list.plugin_config(i, prev, &att.runtime);
            if let Err(e) = self.exec("DEL", id, &att.netns, &config).await {
                tracing::warn!(sandbox = %id, error = %e, "CNI: DEL failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Drops what ADD kept for sandbox `id` (after its DEL).
    pub(crate) async fn forget(&self, id: &str) {
        let Some(path) = self.state_path(id) else {
            return;
        };
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %e, "CNI: cannot remove the sandbox's state")
            }
        }
    }

    async fn save(&self, id: &str, att: &Attachment) -> Result<(), CniError> {
        let dir = self.state_dir.clone();
        let err = |why: String| CniError::State {
            id: id.to_string(),
            why,
        };
        let path = self
            .state_path(id)
            .ok_or_else(|| err("not a sandbox ID".into()))?;
        let bytes = att.to_value().to_string().into_bytes();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            berth_sys::fs::atomic_write(&path, &bytes, 0o600)
        })
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(e.to_string()))
    }

    fn find_plugin(&self, name: &str) -> Result<PathBuf, CniError> {
        self.config
            .bin_dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::NoPlugin(name.to_string(), self.cni_path()))
    }

    fn cni_path(&self) -> String {
        self.config
            .bin_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs one plugin; its result (ADD) or `null`.
    async fn exec(
        &self,
        command: &'static str,
        id: &str,
        netns: &str,
        config: &Value,
    ) -> Result<Value, CniError> {
        let plugin = config
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let fail = |why: String| CniError::Plugin {
            plugin: plugin.clone(),
            command,
            why,
        };
        let bin = self.find_plugin(&plugin)?;
        let mut child = tokio::process::Command::new(&bin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_PATH", self.cni_path())
            .env_remove("CNI_ARGS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", bin.display())))?;
        let input = config.to_string();
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let run = async {
            let write = async {
                if let Some(s) = stdin.as_mut() {
                    let _ = s.write_all(input.as_bytes()).await;
                }
                drop(stdin.take());
            };
            let (_, out, err) = tokio::join!(
                write,
                read_bounded(stdout.take()),
                read_bounded(stderr.take())
            );
            let status = child.wait().await;
            (status, out, err)
        };
        let (status, out, err) = tokio::time::timeout(PLUGIN_TIMEOUT, run)
            .await
            .map_err(|_| fail(format!("no answer in {PLUGIN_TIMEOUT:?}")))?;
        let status = status.map_err(|e| fail(e.to_string()))?;
        if !err.is_empty() {
            tracing::debug!(plugin = %plugin, command, stderr = %String::from_utf8_lossy(&err), "CNI plugin stderr");
        }
        if !status.success() {
            return Err(fail(error_message(&out, &err)));
        }
        if command != "ADD" {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out).map_err(|e| fail(format!("invalid result: {e}")))
    }
}

/// Up to [`OUTPUT_LIMIT`] bytes of a plugin's stream.
async fn read_bounded(s: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(s) = s {
        let _ = s.take(OUTPUT_LIMIT).read_to_end(&mut buf).await;
    }
    buf
}

/// A failed plugin's message: its JSON error (`msg`, `details`), else its output.
fn error_message(out: &[u8], err: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(out) {
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
        let details = v.get("details").and_then(Value::as_str).unwrap_or("");
        if !msg.is_empty() {
            return if details.is_empty() {
                msg.to_string()
            } else {
                format!("{msg}; {details}")
            };
        }
    }
    let text = if out.is_empty() { err } else { out };
    String::from_utf8_lossy(text).trim().to_string()
}

/// The first valid configuration in `dir` (`.conflist`, `.conf`, `.json`), by name.
fn load_dir(dir: &Path) -> Result<NetList, CniError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CniError::ConfDir {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    let mut last_error = None;
    for path in files {
        let list = path.extension().and_then(|e| e.to_str()) == Some("conflist");
        let parsed = std::fs::File::open(&path)
            .and_then(|f| {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(f, OUTPUT_LIMIT), &mut buf)?;
                Ok(buf)
            })
            .map_err(|e| e.to_string())
            .and_then(|b| NetList::parse(&b, list));
        match parsed {
            Ok(l) => return Ok(l),
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "CNI: skipping an invalid config");
                last_error = Some(CniError::BadConfig { path, why });
            }
        }
    }
    Err(last_error.unwrap_or_else(|| CniError::NoConfig(dir.to_path_buf())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[
        {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn a_list_and_a_single_conf_parse() {
        let l = NetList::parse(LIST.as_bytes(), true).unwrap();
        assert_eq!((l.name.as_str(), l.cni_version.as_str()), ("pods", "1.0.0"));
        assert_eq!(l.plugins.len(), 2);
        let one = NetList::parse(
            br#"{"cniVersion":"0.4.0","name":"n","type":"bridge"}"#,
            false,
        )
        .unwrap();
        assert_eq!(one.plugins[0]["type"], "bridge");
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"name":"n","plugins":[]}"#,
            br#"{"name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
            br#"{"name":"n","plugins":[1]}"#,
            b"junk",
        ] {
            assert!(
                NetList::parse(bad, true).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn runtime_config_goes_only_to_plugins_asking_for_it() {
        let l = NetList::parse(LIST.as_bytes(), true).unwrap();
        let ports = [crate::proto::PortMapping {
            protocol: crate::proto::Protocol::Udp as i32,
            container_port: 53,
            host_port: 5353,
            host_ip: String::new(),
        }];
        let rt = runtime_config(&ports);
        let prev = json!({"ips": [{"address": "10.1.0.2/24"}]});
        let bridge = l.plugin_config(0, None, &rt);
        assert_eq!(bridge["name"], "pods");
        assert!(bridge.get("runtimeConfig").is_none() && bridge.get("prevResult").is_none());
        let portmap = l.plugin_config(1, Some(&prev), &rt);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"],
            json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": ""}])
        );
        assert_eq!(portmap["prevResult"], prev);
        // No host port: nothing to map.
        let none = runtime_config(&[crate::proto::PortMapping {
            container_port: 80,
            ..Default::default()
        }]);
        assert!(none.is_empty());
    }

    #[test]
    fn result_ips_and_errors() {
        let r = json!({"ips": [{"address": "10.1.0.2/24", "interface": 0},
                               {"address": "fd00::2/64"}, {"address": "junk"}, {}]});
        assert_eq!(ips(&r), ["10.1.0.2", "fd00::2"]);
        assert!(ips(&json!(null)).is_empty());
        assert_eq!(
            error_message(br#"{"code":7,"msg":"boom","details":"why"}"#, b""),
            "boom; why"
        );
        assert_eq!(error_message(b"", b" plain\n"), "plain");
    }

    #[test]
    fn the_first_valid_config_in_lexical_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load_dir(dir.path()), Err(CniError::NoConfig(_))));
        std::fs::write(dir.path().join("05-bad.conflist"), "{").unwrap();
        assert!(matches!(
            load_dir(dir.path()),
            Err(CniError::BadConfig { .. })
        ));
        std::fs::write(dir.path().join("20-b.conflist"), LIST).unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"1.0.0","name":"first","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("00-ignored.txt"), "x").unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().name, "first");
        assert!(matches!(
            load_dir(&dir.path().join("missing")),
            Err(CniError::ConfDir { .. })
        ));
    }

    #[tokio::test]
    async fn add_and_del_run_the_plugins_and_keep_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let log = dir.path().join("calls");
        // A fake plugin: records its command and netns, answers an IP on ADD.
        let script = format!(
            "#!/bin/sh\ncat > /dev/null\necho \"$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME\" >> {}\n\
             [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.9.0.5/24\"}}]}}'\nexit 0\n",
            log.display()
        );
        let fake = bin.join("fake");
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            conf.join("10.conf"),
            r#"{"cniVersion":"1.0.0","name":"n","type":"fake"}"#,
        )
        .unwrap();
        let cni = Cni {
            config: CniConfig {
                conf_dir: conf.clone(),
                bin_dirs: vec![bin.clone()],
            },
            state_dir: dir.path().join("state"),
        };
        let att = cni.add("sb1", "/proc/1/ns/net", Map::new()).await.unwrap();
        assert_eq!(att.ips(), ["10.9.0.5"]);
        assert_eq!(cni.attachment("sb1").await.unwrap(), att);
        cni.del("sb1", true).await.unwrap();
        cni.del("sb1", false).await.unwrap();
        cni.forget("sb1").await;
        assert!(cni.attachment("sb1").await.is_none());
        // Nothing to undo: no plugin runs.
        cni.del("sb1", false).await.unwrap();
        // Only engine IDs name state files: a path never leaves the state dir.
        std::fs::write(dir.path().join("outside.json"), att.to_value().to_string()).unwrap();
        assert!(cni.attachment("../outside").await.is_none());
        assert!(cni.add("../x", "/x", Map::new()).await.is_err());
        cni.forget("../outside").await;
        assert!(dir.path().join("outside.json").exists());
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls,
            "ADD sb1 /proc/1/ns/net eth0\nDEL sb1 /proc/1/ns/net eth0\nDEL sb1  eth0\n"
        );
        // A missing plugin after one that ran fails ADD, naming it; the one that ran is
        // undone (DEL) although the missing one's DEL fails too, and no state is kept.
        std::fs::write(
            conf.join("05.conflist"),
            r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"fake"},{"type":"missing"}]}"#,
        )
        .unwrap();
        std::fs::remove_file(&log).unwrap();
        let e = cni.add("sb2", "/x", Map::new()).await.unwrap_err();
        assert!(e.to_string().contains("\"missing\""), "{e}");
        assert!(cni.attachment("sb2").await.is_none());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "ADD sb2 /x eth0\nDEL sb2 /x eth0\n"
        );
    }
}
