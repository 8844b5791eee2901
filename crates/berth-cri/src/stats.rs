//! CRI stats and container events from the engine's: `ContainerStats` from one sample of
//! the engine's cgroup stats (the Docker stats JSON: CPU time, memory with the kubelet's
//! working set, `usage - inactive_file`), a pod's stats as the sum of its containers' and
//! its infra container's with the infra's network interfaces, and `GetContainerEvents`
//! from the engine's event bus (`create`, `start`, `die`, `destroy` of CRI containers).

use futures_util::stream::{BoxStream, StreamExt};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use crate::cni::Cni;
use crate::labels::{self, Labels};
use crate::proto::*;
use crate::runtime::Runtime;
use crate::{ctrs, pods};

fn u64_at(v: &Value, ptr: &str) -> Option<u64> {
    v.pointer(ptr).and_then(Value::as_u64)
}

fn val(n: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: n })
}

/// CPU of one Docker stats sample (cumulative CPU time, nanoseconds).
pub(crate) fn cpu(stats: &Value, now: i64) -> CpuUsage {
    CpuUsage {
        timestamp: now,
        usage_core_nano_seconds: val(u64_at(stats, "/cpu_stats/cpu_usage/total_usage").unwrap_or(0)),
        ..Default::default()
    }
}

/// Memory of one Docker stats sample; the working set is usage less inactive file pages
/// (cgroup v2 `inactive_file`, v1 `total_inactive_file`), as the kubelet counts it.
pub(crate) fn memory(stats: &Value, now: i64) -> MemoryUsage {
    let usage = u64_at(stats, "/memory_stats/usage").unwrap_or(0);
    let inactive = u64_at(stats, "/memory_stats/stats/inactive_file")
        .or_else(|| u64_at(stats, "/memory_stats/stats/total_inactive_file"))
        .unwrap_or(0);
    let working_set = usage.saturating_sub(inactive);
    let limit = u64_at(stats, "/memory_stats/limit").unwrap_or(0);
    let stat = |a: &str, b: &str| {
        u64_at(stats, &format!("/memory_stats/stats/{a}"))
            .or_else(|| u64_at(stats, &format!("/memory_stats/stats/{b}")))
            .unwrap_or(0)
    };
    MemoryUsage {
        timestamp: now,
        working_set_bytes: val(working_set),
        available_bytes: (limit > 0).then(|| UInt64Value {
            value: limit.saturating_sub(working_set),
        }),
        usage_bytes: val(usage),
        rss_bytes: val(stat("anon", "total_rss")),
        page_faults: val(stat("pgfault", "total_pgfault")),
        major_page_faults: val(stat("pgmajfault", "total_pgmajfault")),
        ..Default::default()
    }
}

/// The network interfaces of a Docker stats sample (`networks`), `eth0` the default.
pub(crate) fn network(stats: &Value, now: i64) -> Option<NetworkUsage> {
    let nets = stats.get("networks")?.as_object()?;
    let mut interfaces: Vec<NetworkInterfaceUsage> = nets
        .iter()
        .map(|(name, n)| NetworkInterfaceUsage {
            name: name.clone(),
            rx_bytes: val(u64_at(n, "/rx_bytes").unwrap_or(0)),
            rx_errors: val(u64_at(n, "/rx_errors").unwrap_or(0)),
            tx_bytes: val(u64_at(n, "/tx_bytes").unwrap_or(0)),
            tx_errors: val(u64_at(n, "/tx_errors").unwrap_or(0)),
        })
        .collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    let default_interface = interfaces
        .iter()
        .find(|i| i.name == crate::cni::IFNAME)
        .cloned();
    Some(NetworkUsage {
        timestamp: now,
        default_interface,
        interfaces,
    })
}

/// A container's stats: what it is (from its listing) and one sample.
pub(crate) fn container(c: &Container, stats: &Value, now: i64) -> ContainerStats {
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: c.id.clone(),
            metadata: c.metadata.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
        }),
        cpu: Some(cpu(stats, now)),
        memory: Some(memory(stats, now)),
        ..Default::default()
    }
}

fn add(a: &Option<UInt64Value>, b: &Option<UInt64Value>) -> Option<UInt64Value> {
    match (a, b) {
        (None, None) => None,
        _ => val(a
            .as_ref()
            .map_or(0, |x| x.value)
            .saturating_add(b.as_ref().map_or(0, |x| x.value))),
    }
}

/// A pod's stats: its containers', their sum with the infra container's sample, and the
/// infra's network (the pod's namespace); `container_processes` is the containers'
/// process count.
pub(crate) fn pod(
    sandbox: &PodSandbox,
    infra: &Value,
    containers: Vec<ContainerStats>,
    container_processes: u64,
    now: i64,
) -> PodSandboxStats {
    let mut cpu_sum = cpu(infra, now);
    let mut mem_sum = memory(infra, now);
    let mut processes = u64_at(infra, "/pids_stats/current").unwrap_or(0);
    for c in &containers {
        if let Some(c) = &c.cpu {
            cpu_sum.usage_core_nano_seconds =
                add(&cpu_sum.usage_core_nano_seconds, &c.usage_core_nano_seconds);
        }
        if let Some(m) = &c.memory {
            mem_sum.working_set_bytes = add(&mem_sum.working_set_bytes, &m.working_set_bytes);
            mem_sum.usage_bytes = add(&mem_sum.usage_bytes, &m.usage_bytes);
            mem_sum.rss_bytes = add(&mem_sum.rss_bytes, &m.rss_bytes);
            mem_sum.page_faults = add(&mem_sum.page_faults, &m.page_faults);
            mem_sum.major_page_faults = add(&mem_sum.major_page_faults, &m.major_page_faults);
        }
    }
    // The pod has no limit of its own here: available is per container.
    mem_sum.available_bytes = None;
    processes = processes.saturating_add(container_processes);
    PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: sandbox.id.clone(),
            metadata: sandbox.metadata.clone(),
            labels: sandbox.labels.clone(),
            annotations: sandbox.annotations.clone(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: Some(cpu_sum),
            memory: Some(mem_sum),
            network: network(infra, now),
            process: Some(ProcessUsage {
                timestamp: now,
                process_count: val(processes),
            }),
            containers,
            io: None,
        }),
        windows: None,
    }
}

/// Pids of one Docker stats sample.
pub(crate) fn processes(stats: &Value) -> u64 {
    u64_at(stats, "/pids_stats/current").unwrap_or(0)
}

/// The CRI event type of an engine container event, if it is one CRI reports.
pub(crate) fn event_type(action: &str) -> Option<ContainerEventType> {
    Some(match action {
        "create" => ContainerEventType::ContainerCreatedEvent,
        "start" => ContainerEventType::ContainerStartedEvent,
        "die" => ContainerEventType::ContainerStoppedEvent,
        "destroy" => ContainerEventType::ContainerDeletedEvent,
        _ => return None,
    })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

impl Runtime {
    /// One sample of the engine's stats of container `id` (zeros once it stopped).
    async fn sample(&self, id: &str) -> Value {
        match self.engine.container_stats(id, false, true).await {
            Ok(mut rx) => rx.recv().await.unwrap_or(Value::Null),
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "CRI: no stats");
                Value::Null
            }
        }
    }

    pub(crate) async fn container_stats_of(&self, id: &str) -> Result<ContainerStats, Status> {
        let filter = ContainerFilter {
            id: labels::required(id, "container ID")?.to_string(),
            ..Default::default()
        };
        let listed = self.list_containers(Some(filter)).await?;
        let c = match listed.as_slice() {
            [one] => one,
            _ => return Err(Status::not_found(format!("container {id:?} not found"))),
        };
        let sample = self.sample(&c.id).await;
        Ok(container(c, &sample, now_nanos()))
    }

    pub(crate) async fn list_container_stats(
        &self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>, Status> {
        let f = filter.unwrap_or_default();
        let listed = self
            .list_containers(Some(ContainerFilter {
                id: f.id,
                pod_sandbox_id: f.pod_sandbox_id,
                label_selector: f.label_selector,
                ..Default::default()
            }))
            .await?;
        let mut out = Vec::with_capacity(listed.len());
        for c in &listed {
            let sample = self.sample(&c.id).await;
            out.push(container(c, &sample, now_nanos()));
        }
        Ok(out)
    }

    async fn pod_stats(&self, sandbox: &PodSandbox) -> Result<PodSandboxStats, Status> {
        let members = self
            .list_containers(Some(ContainerFilter {
                pod_sandbox_id: sandbox.id.clone(),
                ..Default::default()
            }))
            .await?;
        let mut containers = Vec::with_capacity(members.len());
        let mut procs = 0u64;
        for c in &members {
            let sample = self.sample(&c.id).await;
            procs = procs.saturating_add(processes(&sample));
            containers.push(container(c, &sample, now_nanos()));
        }
        let infra = self.sample(&sandbox.id).await;
        Ok(pod(sandbox, &infra, containers, procs, now_nanos()))
    }

    pub(crate) async fn pod_sandbox_stats_of(&self, id: &str) -> Result<PodSandboxStats, Status> {
        let filter = PodSandboxFilter {
            id: labels::required(id, "sandbox ID")?.to_string(),
            ..Default::default()
        };
        let listed = self.list_sandboxes(Some(filter)).await?;
        match listed.as_slice() {
            [one] => self.pod_stats(one).await,
            _ => Err(Status::not_found(format!("sandbox {id:?} not found"))),
        }
    }

    pub(crate) async fn list_pod_sandbox_stats(
        &self,
        filter: Option<PodSandboxStatsFilter>,
    ) -> Result<Vec<PodSandboxStats>, Status> {
        let f = filter.unwrap_or_default();
        let listed = self
            .list_sandboxes(Some(PodSandboxFilter {
                id: f.id,
                label_selector: f.label_selector,
                ..Default::default()
            }))
            .await?;
        let mut out = Vec::with_capacity(listed.len());
        for s in &listed {
            out.push(self.pod_stats(s).await?);
        }
        Ok(out)
    }

    /// `GetContainerEvents`: the CRI containers' events from now on, each with the
    /// container's status (none once deleted) and its pod's.
    pub(crate) fn container_events(
        &self,
    ) -> BoxStream<'static, Result<ContainerEventResponse, Status>> {
        let live = self.engine.events_subscribe(None).live;
        tracing::info!("CRI GetContainerEvents: a client subscribed");
        let engine = self.engine.clone();
        let cni = self.cni.clone();
        futures_util::stream::unfold((live, engine, cni), |(mut live, engine, cni)| async move {
            loop {
                match live.recv().await {
                    Ok(ev) => {
                        if let Some(r) = event_response(&engine, &cni, &ev).await {
                            return Some((Ok(r), (live, engine, cni)));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "CRI GetContainerEvents: a slow client missed events"
                        );
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}

/// The CRI event of an engine event; `None` for events of anything but CRI containers.
async fn event_response(
    engine: &berth_engine::Engine,
    cni: &Cni,
    ev: &berth_engine::events::Event,
) -> Option<ContainerEventResponse> {
    if ev.typ != "container" {
        return None;
    }
    let kind = event_type(&ev.action)?;
    let l = Labels(ev.attributes.clone().into_iter().collect());
    if !l.is(labels::TYPE_CONTAINER) {
        return None;
    }
    let status = match kind {
        ContainerEventType::ContainerDeletedEvent => None,
        _ => engine
            .container_inspect(&ev.actor_id)
            .await
            .ok()
            .and_then(|v| ctrs::status(&v)),
    };
    let sandbox_id = l.get(labels::SANDBOX_ID);
    let pod_status = match engine.container_inspect(sandbox_id).await {
        Ok(v) => {
            let id = v.get("Id").and_then(Value::as_str).unwrap_or("");
            let ips = match cni.attachment(id).await {
                Some(a) => a.ips(),
                None => Vec::new(),
            };
            pods::status(&v, &ips)
        }
        Err(_) => None,
    };
    Some(ContainerEventResponse {
        container_id: ev.actor_id.clone(),
        container_event_type: kind as i32,
        created_at: ev.time_nano,
        pod_sandbox_status: pod_status,
        containers_statuses: status.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sample_maps_to_cri_usage() {
        let s = json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000}},
            "memory_stats": {"usage": 10_000, "limit": 50_000,
                             "stats": {"inactive_file": 4_000, "anon": 3_000, "pgfault": 9, "pgmajfault": 1}},
            "networks": {"lo": {"rx_bytes": 1}, "eth0": {"rx_bytes": 100, "tx_bytes": 50}},
            "pids_stats": {"current": 1},
        });
        let c = cpu(&s, 7);
        assert_eq!(
            (c.timestamp, c.usage_core_nano_seconds.unwrap().value),
            (7, 5_000_000)
        );
        let m = memory(&s, 7);
        assert_eq!(m.working_set_bytes.unwrap().value, 6_000);
        assert_eq!(m.available_bytes.unwrap().value, 44_000);
        assert_eq!(m.rss_bytes.unwrap().value, 3_000);
        assert_eq!(m.major_page_faults.unwrap().value, 1);
        let n = network(&s, 7).unwrap();
        assert_eq!(n.interfaces.len(), 2);
        let eth0 = n.default_interface.unwrap();
        assert_eq!(
            (eth0.rx_bytes.unwrap().value, eth0.tx_bytes.unwrap().value),
            (100, 50)
        );
        // A stopped container's sample (no memory stats) reads zeros, and no panic on junk.
        let z = memory(
            &json!({"memory_stats": {"usage": 1, "stats": {"inactive_file": 9}}}),
            0,
        );
        assert_eq!(z.working_set_bytes.unwrap().value, 0);
        assert!(network(&json!({"networks": 3}), 0).is_none());
        assert_eq!(
            cpu(&json!(null), 0).usage_core_nano_seconds.unwrap().value,
            0
        );
    }

    #[test]
    fn a_pod_sums_its_containers_and_the_infra() {
        let infra = json!({"cpu_stats": {"cpu_usage": {"total_usage": 1}},
                           "memory_stats": {"usage": 10}, "pids_stats": {"current": 1},
                           "networks": {"eth0": {"rx_bytes": 3}}});
        let one = json!({"cpu_stats": {"cpu_usage": {"total_usage": 100}}, "memory_stats": {"usage": 1000}});
        let l = Container {
            id: "c".into(),
            ..Default::default()
        };
        let sandbox = PodSandbox {
            id: "p".into(),
            ..Default::default()
        };
        let p = pod(
            &sandbox,
            &infra,
            vec![container(&l, &one, 5), container(&l, &one, 5)],
            2,
            5,
        );
        let linux = p.linux.unwrap();
        assert_eq!(
            linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value,
            201
        );
        assert_eq!(linux.memory.unwrap().working_set_bytes.unwrap().value, 2010);
        assert_eq!(linux.containers.len(), 2);
        assert_eq!(linux.process.unwrap().process_count.unwrap().value, 3);
        assert_eq!(
            linux
                .network
                .unwrap()
                .default_interface
                .unwrap()
                .rx_bytes
                .unwrap()
                .value,
            3
        );
        assert_eq!(p.attributes.unwrap().id, "p");
    }

    #[test]
    fn engine_events_map_to_cri_events() {
        assert_eq!(
            event_type("start"),
            Some(ContainerEventType::ContainerStartedEvent)
        );
        assert_eq!(
            event_type("die"),
            Some(ContainerEventType::ContainerStoppedEvent)
        );
        assert_eq!(
            event_type("destroy"),
            Some(ContainerEventType::ContainerDeletedEvent)
        );
        assert_eq!(
            event_type("create"),
            Some(ContainerEventType::ContainerCreatedEvent)
        );
        assert_eq!(event_type("exec_start"), None);
    }
}
