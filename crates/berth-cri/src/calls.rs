//! The `RuntimeService` calls on pod sandboxes and their containers, each a few engine
//! calls over the translations of [`crate::pods`], [`crate::ctrs`] and
//! [`crate::exec_sync`]. A container of the Docker API is never a CRI object: every call
//! naming one answers `NotFound`.

use std::collections::HashMap;
use std::path::Path;

use berth_api_types::filters::Filters;
use berth_engine::EngineError;
use serde_json::Value;
use tonic::Status;

use crate::ctrs::{self, Sandbox};
use crate::labels::{self, Labels};
use crate::propagation;
use crate::proto::*;
use crate::runtime::Runtime;
use crate::{apparmor, seccomp};
use crate::{cni, engine_status, exec_sync, pods};

/// How long the sandbox's infra process gets to exit on SIGTERM (it exits at once).
const SANDBOX_STOP_TIMEOUT: i64 = 10;

fn not_found(kind: &str, id: &str) -> Status {
    Status::not_found(format!("{kind} {id:?} not found"))
}

/// The verbose `info` of a status: the engine's inspect, as `crictl inspect` shows it,
/// with the keys scripts read from containerd's (`pid`, `sandboxID`: `crictl inspect
/// --template '{{.info.pid}}'`).
fn verbose_info(verbose: bool, inspect: &Value) -> HashMap<String, String> {
    if !verbose {
        return HashMap::new();
    }
    let mut info = inspect.clone();
    if let Some(map) = info.as_object_mut() {
        let pid = inspect
            .pointer("/State/Pid")
            .cloned()
            .unwrap_or(Value::from(0));
        map.insert("pid".into(), pid);
        let sandbox = inspect
            .pointer("/Config/Labels")
            .and_then(|l| l.get(labels::SANDBOX_ID))
            .and_then(Value::as_str)
            // A sandbox's own id.
            .or_else(|| inspect.get("Id").and_then(Value::as_str))
            .unwrap_or_default();
        map.insert("sandboxID".into(), Value::from(sandbox));
    }
    [("info".to_string(), info.to_string())].into()
}

/// Makes `dir` (absolute) and its parents, for the kubelet's log files.
async fn make_log_dir(dir: &Path) -> Result<(), Status> {
    if !dir.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "log directory {} must be absolute",
            dir.display()
        )));
    }
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        Status::internal(format!(
            "cannot create log directory {}: {e}",
            dir.display()
        ))
    })
}

impl Runtime {
    /// The engine's inspect of CRI object `id` of `kind`; `NotFound` for anything else.
    pub(crate) async fn inspect(&self, id: &str, kind: &str) -> Result<Value, Status> {
        labels::required(id, &format!("{kind} ID"))?;
        let v = self
            .engine
            .container_inspect(id)
            .await
            .map_err(engine_status)?;
        if !Labels::of(v.pointer("/Config/Labels")).is(kind) {
            return Err(not_found(kind, id));
        }
        Ok(v)
    }

    /// The engine's summaries of every container carrying label `key=value`.
    pub(crate) async fn list_labelled(&self, key: &str, value: &str) -> Result<Vec<Value>, Status> {
        let query = serde_json::json!({ "label": [format!("{key}={value}")] }).to_string();
        let filters = Filters::parse(Some(&query)).map_err(|e| Status::internal(e.to_string()))?;
        self.engine
            .container_list(true, &filters)
            .await
            .map_err(engine_status)
    }

    /// The IDs of the containers of sandbox `id`.
    async fn members(&self, sandbox_id: &str) -> Result<Vec<(String, bool)>, Status> {
        let all = self.list_labelled(labels::SANDBOX_ID, sandbox_id).await?;
        Ok(all
            .iter()
            .filter(|s| Labels::of(s.get("Labels")).is(labels::TYPE_CONTAINER))
            .filter_map(|s| {
                let id = s.get("Id")?.as_str()?.to_string();
                let running = s.get("State").and_then(Value::as_str) == Some("running");
                Some((id, running))
            })
            .collect())
    }

    pub(crate) async fn run_sandbox(
        &self,
        req: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("RunPodSandbox needs a sandbox config"))?;
        let image = self.pause.ensure(&self.engine).await?;
        let (name, body) = pods::create_body(&config, &req.runtime_handler, &image)?;
        if !config.log_directory.is_empty() {
            make_log_dir(Path::new(&config.log_directory)).await?;
        }
        let created = self
            .engine
            .container_create_cri(Some(name), body)
            .await
            .map_err(engine_status)?;
        if let Err(e) = self.engine.container_start(&created.id).await {
            if let Err(rm) = self.engine.container_delete(&created.id, true).await {
                tracing::warn!(sandbox = %created.id, error = %rm, "CRI: cannot remove a sandbox that did not start");
            }
            return Err(engine_status(e));
        }
        if let Err(e) = self.attach_network(&created.id, &config).await {
            if let Err(rm) = self.engine.container_delete(&created.id, true).await {
                tracing::warn!(sandbox = %created.id, error = %rm, "CRI: cannot remove a sandbox whose network failed");
            }
            return Err(e);
        }
        tracing::info!(sandbox = %created.id, "CRI: pod sandbox running");
        Ok(RunPodSandboxResponse {
            pod_sandbox_id: created.id,
        })
    }

    /// CNI ADD for a pod with its own network namespace (the running infra container's).
    /// Without a usable configuration the pod keeps its loopback-only namespace (the
    /// runtime's status says `NetworkReady` false, and why).
    async fn attach_network(&self, id: &str, config: &PodSandboxConfig) -> Result<(), Status> {
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.network == NamespaceMode::Node as i32);
        if host_network {
            return Ok(());
        }
        if let Err(e) = self.cni.load().await {
            tracing::warn!(sandbox = %id, error = %e, "CRI: no CNI network; the pod has loopback only");
            return Ok(());
        }
        let v = self
            .engine
            .container_inspect(id)
            .await
            .map_err(engine_status)?;
        let pid = v
            .pointer("/State/Pid")
            .and_then(Value::as_i64)
            .filter(|p| *p > 0)
            .ok_or_else(|| Status::internal(format!("sandbox {id} has no infra process")))?;
        let netns = format!("/proc/{pid}/ns/net");
        let runtime = cni::runtime_config(&config.port_mappings);
        self.cni.add(id, &netns, runtime).await.map_err(|e| {
            Status::unknown(format!("failed to setup network for sandbox {id:?}: {e}"))
        })?;
        Ok(())
    }

    /// CNI DEL for sandbox `id` (nothing when ADD never ran): in its namespace while the
    /// infra process holds it.
    async fn detach_network(&self, id: &str, infra_running: bool) -> Result<(), Status> {
        self.cni.del(id, infra_running).await.map_err(|e| {
            Status::unknown(format!("failed to destroy network for sandbox {id:?}: {e}"))
        })
    }

    /// Sandbox `id`'s full ID and whether its infra process runs; `None` when it is gone
    /// (stopping or removing what is gone succeeds: the calls are idempotent, and
    /// critest checks it).
    async fn sandbox_if_present(&self, id: &str) -> Result<Option<(String, bool)>, Status> {
        let v = match self.inspect(id, labels::TYPE_SANDBOX).await {
            Ok(v) => v,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            Err(s) => return Err(s),
        };
        let full_id = v.get("Id").and_then(Value::as_str).unwrap_or(id);
        let infra_running = v
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Some((full_id.to_string(), infra_running)))
    }

    pub(crate) async fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        let Some((id, infra_running)) = self.sandbox_if_present(id).await? else {
            return Ok(());
        };
        // The kubelet stopped them with their grace period; what still runs is killed.
        for (cid, running) in self.members(&id).await? {
            if running {
                ignore_gone(self.engine.container_stop(&cid, Some(0), None).await)?;
            }
        }
        self.detach_network(&id, infra_running).await?;
        ignore_gone(
            self.engine
                .container_stop(&id, Some(SANDBOX_STOP_TIMEOUT), None)
                .await,
        )?;
        Ok(())
    }

    pub(crate) async fn remove_sandbox(&self, id: &str) -> Result<(), Status> {
        let Some((id, infra_running)) = self.sandbox_if_present(id).await? else {
            return Ok(());
        };
        for (cid, _) in self.members(&id).await? {
            ignore_gone(self.engine.container_delete(&cid, true).await)?;
        }
        self.detach_network(&id, infra_running).await?;
        ignore_gone(self.engine.container_delete(&id, true).await)?;
        self.cni.forget(&id).await;
        tracing::info!(sandbox = %id, "CRI: pod sandbox removed");
        Ok(())
    }

    pub(crate) async fn sandbox_status(
        &self,
        req: PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse, Status> {
        let v = self
            .inspect(&req.pod_sandbox_id, labels::TYPE_SANDBOX)
            .await?;
        let ips = match v.get("Id").and_then(Value::as_str) {
            Some(id) => self
                .cni
                .attachment(id)
                .await
                .map(|a| a.ips())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let status =
            pods::status(&v, &ips).ok_or_else(|| not_found("sandbox", &req.pod_sandbox_id))?;
        Ok(PodSandboxStatusResponse {
            status: Some(status),
            info: verbose_info(req.verbose, &v),
            ..Default::default()
        })
    }

    pub(crate) async fn list_sandboxes(
        &self,
        filter: Option<PodSandboxFilter>,
    ) -> Result<Vec<PodSandbox>, Status> {
        let filter = filter.unwrap_or_default();
        let all = self
            .list_labelled(labels::TYPE, labels::TYPE_SANDBOX)
            .await?;
        Ok(all
            .iter()
            .filter_map(|s| {
                let sandbox = pods::from_summary(s)?;
                let l = Labels::of(s.get("Labels"));
                pods::selected(&sandbox, &l, &filter).then_some(sandbox)
            })
            .collect())
    }

    pub(crate) async fn create_container(
        &self,
        req: CreateContainerRequest,
    ) -> Result<String, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainer needs a container config"))?;
        let v = self
            .inspect(&req.pod_sandbox_id, labels::TYPE_SANDBOX)
            .await?;
        let sandbox = Sandbox::of(&v).ok_or_else(|| not_found("sandbox", &req.pod_sandbox_id))?;
        let security = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref());
        let pod_security = req
            .sandbox_config
            .as_ref()
            .and_then(|p| p.linux.as_ref())
            .and_then(|l| l.security_context.as_ref());
        let choice = seccomp::choose(
            seccomp::of_pod(pod_security)?.as_ref(),
            seccomp::of_container(security)?.as_ref(),
            security.is_some_and(|s| s.privileged),
        )?;
        let seccomp_opt = seccomp::security_opt(&choice).await?;
        let apparmor_choice = apparmor::choose(pod_security, security, apparmor::enabled().await)?;
        let apparmor_opt = apparmor::security_opt(apparmor_choice).await?;
        propagation::check_mounts(&config.mounts).await?;
        let huge = match config.linux.as_ref().and_then(|l| l.resources.as_ref()) {
            Some(r) => hugepages(r).await?,
            None => None,
        };
        let (name, body, log) = ctrs::create_body(
            &sandbox,
            &config,
            seccomp_opt.into_iter().chain(apparmor_opt),
        )?;
        if let Some(dir) = log.as_deref().and_then(Path::parent) {
            make_log_dir(dir).await?;
        }
        let created = self
            .engine
            .container_create_cri(Some(name), body)
            .await
            .map_err(engine_status)?;
        let set = async {
            if let Some(path) = &log {
                self.engine.container_set_cri_log(&created.id, path).await?;
            }
            if let Some(limits) = huge {
                self.engine
                    .container_set_hugepage_limits(&created.id, limits)
                    .await?;
            }
            Ok::<(), EngineError>(())
        };
        if let Err(e) = set.await {
            if let Err(rm) = self.engine.container_delete(&created.id, true).await {
                tracing::warn!(container = %created.id, error = %rm, "CRI: cannot remove a half-made container");
            }
            return Err(engine_status(e));
        }
        tracing::info!(container = %created.id, sandbox = %sandbox.id, "CRI: container created");
        Ok(created.id)
    }

    pub(crate) async fn start_container(&self, id: &str) -> Result<(), Status> {
        self.inspect(id, labels::TYPE_CONTAINER).await?;
        self.engine
            .container_start(id)
            .await
            .map(drop)
            .map_err(engine_status)
    }

    pub(crate) async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        match self.inspect(id, labels::TYPE_CONTAINER).await {
            Ok(_) => {}
            // Idempotent, as RemoveContainer: what is gone is stopped.
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(()),
            Err(s) => return Err(s),
        }
        self.engine
            .container_stop(id, Some(timeout.max(0)), None)
            .await
            .map(drop)
            .map_err(engine_status)
    }

    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), Status> {
        match self.inspect(id, labels::TYPE_CONTAINER).await {
            Ok(_) => ignore_gone(self.engine.container_delete(id, true).await),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }

    pub(crate) async fn list_containers(
        &self,
        filter: Option<ContainerFilter>,
    ) -> Result<Vec<Container>, Status> {
        let filter = filter.unwrap_or_default();
        let all = self
            .list_labelled(labels::TYPE, labels::TYPE_CONTAINER)
            .await?;
        Ok(all
            .iter()
            .filter_map(|s| {
                let (c, l) = ctrs::from_summary(s)?;
                ctrs::selected(&c, &l, &filter).then_some(c)
            })
            .collect())
    }

    pub(crate) async fn container_status(
        &self,
        req: ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse, Status> {
        let v = self
            .inspect(&req.container_id, labels::TYPE_CONTAINER)
            .await?;
        let status = ctrs::status(&v).ok_or_else(|| not_found("container", &req.container_id))?;
        Ok(ContainerStatusResponse {
            status: Some(status),
            info: verbose_info(req.verbose, &v),
        })
    }

    pub(crate) async fn update_resources(
        &self,
        req: UpdateContainerResourcesRequest,
    ) -> Result<(), Status> {
        self.inspect(&req.container_id, labels::TYPE_CONTAINER)
            .await?;
        let huge = match &req.linux {
            Some(r) => hugepages(r).await?,
            None => None,
        };
        let body = req
            .linux
            .as_ref()
            .map(ctrs::update_body)
            .unwrap_or_default();
        if body.is_empty() && huge.is_none() {
            return Ok(());
        }
        self.engine
            .container_update_cri(&req.container_id, &body, huge)
            .await
            .map_err(engine_status)
    }

    pub(crate) async fn exec_sync(&self, req: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
        self.inspect(&req.container_id, labels::TYPE_CONTAINER)
            .await?;
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument("ExecSync needs a command"));
        }
        let (out, exit_code) =
            exec_sync::run(&self.engine, &req.container_id, req.cmd, req.timeout).await?;
        Ok(ExecSyncResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code,
        })
    }
}

/// An engine result where a container already gone is no error (removed meanwhile).
fn ignore_gone<T>(r: Result<T, EngineError>) -> Result<(), Status> {
    match r {
        Ok(_) | Err(EngineError::NotFound(_)) => Ok(()),
        Err(e) => Err(engine_status(e)),
    }
}

/// [`ctrs::hugepage_limits`] with the host's hugetlb controller, looked up (blocking file
/// reads) only when a non-zero limit is asked.
async fn hugepages(r: &LinuxContainerResources) -> Result<Option<Vec<(String, u64)>>, Status> {
    if !ctrs::asks_hugepages(r) {
        return Ok(None);
    }
    let present = tokio::task::spawn_blocking(berth_cgroups::Layout::hugetlb_present)
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(ctrs::hugepage_limits(r, present))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_info_has_containerds_pid_and_sandbox_id() {
        let inspect = serde_json::json!({
            "Id": "c1", "State": {"Pid": 42},
            "Config": {"Labels": {labels::SANDBOX_ID: "pod1"}}
        });
        assert!(verbose_info(false, &inspect).is_empty());
        let info: Value = serde_json::from_str(&verbose_info(true, &inspect)["info"]).unwrap();
        assert_eq!(info["pid"], 42);
        assert_eq!(info["sandboxID"], "pod1");
        assert_eq!(info["State"]["Pid"], 42, "the engine's inspect stays");
        let sandbox = serde_json::json!({"Id": "pod1", "State": {"Pid": 7}, "Config": {}});
        let info: Value = serde_json::from_str(&verbose_info(true, &sandbox)["info"]).unwrap();
        assert_eq!(info["sandboxID"], "pod1");
    }
}
