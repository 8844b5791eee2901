//! `runtime.v1.RuntimeService`: what the runtime is and whether it is ready, and the pod
//! sandbox, container and `ExecSync` calls (written in [`crate::calls`]), stats and
//! container events ([`crate::stats`]), the streaming calls (`Exec`, `Attach`,
//! `PortForward`: a URL of the streaming server, [`crate::stream`]) and log reopening.
//! Checkpoints and the rest answer `Unimplemented` naming the method, so a kubelet or
//! crictl says what is missing.

use std::collections::HashMap;
use std::sync::Arc;

use berth_engine::Engine;
use futures_util::stream::BoxStream;
use tonic::{Request, Response, Status};

use crate::cni::Cni;
use crate::pause::PauseImage;
use crate::proto::runtime_service_server::RuntimeService;
use crate::proto::*;
use crate::stream::Streams;
use crate::{RUNTIME_API_VERSION, RUNTIME_NAME};

/// The version of the kubelet's CRI client protocol answered in `version` (containerd and
/// CRI-O answer the same).
const KUBELET_API_VERSION: &str = "0.1.0";

/// Why `NetworkReady` is false while no CNI network configuration is usable.
pub(crate) const NETWORK_NOT_READY_REASON: &str = "NetworkPluginNotReady";

pub(crate) struct Runtime {
    pub(crate) engine: Arc<Engine>,
    pub(crate) pause: PauseImage,
    pub(crate) cni: Cni,
    pub(crate) streams: Arc<Streams>,
}

impl Runtime {
    pub(crate) fn new(engine: Arc<Engine>, cni: crate::CniConfig, streams: Arc<Streams>) -> Self {
        let state_dir = engine.config().data_root.join("cri").join("cni");
        Runtime {
            engine,
            pause: PauseImage::default(),
            cni: Cni {
                config: cni,
                state_dir,
            },
            streams,
        }
    }
}

/// `Unimplemented`, naming the method.
fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!(
        "{method} is not implemented by berth's CRI server yet"
    ))
}

/// What `Status` answers: the runtime is ready; the network once a CNI configuration is
/// (`network` is the error loading it, if any).
pub(crate) fn runtime_status(network: Option<String>) -> RuntimeStatus {
    RuntimeStatus {
        conditions: vec![
            RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
            RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: network.is_none(),
                reason: if network.is_some() {
                    NETWORK_NOT_READY_REASON.into()
                } else {
                    String::new()
                },
                message: network
                    .map(|e| {
                        format!("Network plugin returns error: cni plugin not initialized: {e}")
                    })
                    .unwrap_or_default(),
            },
        ],
    }
}

/// The `RuntimeService` impl: the methods written out, then those that answer
/// `Unimplemented` until their increment lands. (One macro emits the whole impl so that
/// `async_trait` sees the generated methods too.)
macro_rules! runtime_service {
    (
        implemented { $($implemented:tt)* }
        unary { $($method:ident($req:ty) -> $resp:ty = $name:literal;)* }
        streaming { $($smethod:ident($sreq:ty) -> $stream:ident = $sname:literal;)* }
    ) => {
        #[tonic::async_trait]
        impl RuntimeService for Runtime {
            $($implemented)*
            $(
                async fn $method(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(unimplemented($name))
                }
            )*
            $(
                async fn $smethod(
                    &self,
                    _: Request<$sreq>,
                ) -> Result<Response<Self::$stream>, Status> {
                    Err(unimplemented($sname))
                }
            )*
        }
    };
}

runtime_service! {
implemented {
    type StreamPodSandboxesStream = BoxStream<'static, Result<StreamPodSandboxesResponse, Status>>;
    type StreamContainersStream = BoxStream<'static, Result<StreamContainersResponse, Status>>;
    type StreamContainerStatsStream =
        BoxStream<'static, Result<StreamContainerStatsResponse, Status>>;
    type StreamPodSandboxStatsStream =
        BoxStream<'static, Result<StreamPodSandboxStatsResponse, Status>>;
    type GetContainerEventsStream = BoxStream<'static, Result<ContainerEventResponse, Status>>;
    type StreamPodSandboxMetricsStream =
        BoxStream<'static, Result<StreamPodSandboxMetricsResponse, Status>>;

    async fn version(
        &self,
        _: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: KUBELET_API_VERSION.into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let mut info = HashMap::new();
        if request.get_ref().verbose {
            let config = &self.engine.config().data_root;
            info.insert(
                "config".to_string(),
                serde_json::json!({
                    "runtimeName": RUNTIME_NAME,
                    "runtimeVersion": env!("CARGO_PKG_VERSION"),
                    "dataRoot": config,
                    "cgroupDriver": "cgroupfs",
                })
                .to_string(),
            );
        }
        Ok(Response::new(StatusResponse {
            status: Some(runtime_status(self.cni.load().await.err().map(|e| e.to_string()))),
            info,
            ..Default::default()
        }))
    }

    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration {
                cgroup_driver: CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }

    async fn update_runtime_config(
        &self,
        request: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        let pod_cidr = request
            .get_ref()
            .runtime_config
            .as_ref()
            .and_then(|c| c.network_config.as_ref())
            .map(|n| n.pod_cidr.as_str())
            .unwrap_or("");
        tracing::info!(
            pod_cidr,
            "CRI UpdateRuntimeConfig accepted; nothing to apply until CNI pod networking lands"
        );
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        self.run_sandbox(request.into_inner()).await.map(Response::new)
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        self.stop_sandbox(&request.get_ref().pod_sandbox_id).await?;
        Ok(Response::new(StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        self.remove_sandbox(&request.get_ref().pod_sandbox_id).await?;
        Ok(Response::new(RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        self.sandbox_status(request.into_inner()).await.map(Response::new)
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let items = self.list_sandboxes(request.into_inner().filter).await?;
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let container_id = Runtime::create_container(self, request.into_inner()).await?;
        Ok(Response::new(CreateContainerResponse { container_id }))
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        Runtime::start_container(self, &request.get_ref().container_id).await?;
        Ok(Response::new(StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let r = request.get_ref();
        Runtime::stop_container(self, &r.container_id, r.timeout).await?;
        Ok(Response::new(StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        Runtime::remove_container(self, &request.get_ref().container_id).await?;
        Ok(Response::new(RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let containers = Runtime::list_containers(self, request.into_inner().filter).await?;
        Ok(Response::new(ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        Runtime::container_status(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        self.update_resources(request.into_inner()).await?;
        Ok(Response::new(UpdateContainerResourcesResponse {}))
    }

    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        let stats = self.container_stats_of(&request.get_ref().container_id).await?;
        Ok(Response::new(ContainerStatsResponse { stats: Some(stats) }))
    }

    async fn list_container_stats(
        &self,
        request: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        let stats = Runtime::list_container_stats(self, request.into_inner().filter).await?;
        Ok(Response::new(ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        let stats = self.pod_sandbox_stats_of(&request.get_ref().pod_sandbox_id).await?;
        Ok(Response::new(PodSandboxStatsResponse { stats: Some(stats) }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        let stats = Runtime::list_pod_sandbox_stats(self, request.into_inner().filter).await?;
        Ok(Response::new(ListPodSandboxStatsResponse { stats }))
    }

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        Ok(Response::new(self.container_events()))
    }

    async fn exec_sync(
        &self,
        request: Request<ExecSyncRequest>,
    ) -> Result<Response<ExecSyncResponse>, Status> {
        Runtime::exec_sync(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let url = self.stream_exec(request.into_inner()).await?;
        Ok(Response::new(ExecResponse { url }))
    }

    async fn attach(
        &self,
        request: Request<AttachRequest>,
    ) -> Result<Response<AttachResponse>, Status> {
        let url = self.stream_attach(request.into_inner()).await?;
        Ok(Response::new(AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        request: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        let url = self.stream_port_forward(request.into_inner()).await?;
        Ok(Response::new(PortForwardResponse { url }))
    }

    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        self.reopen_log(&request.get_ref().container_id).await?;
        Ok(Response::new(ReopenContainerLogResponse {}))
    }
}
    unary {
        checkpoint_container(CheckpointContainerRequest) -> CheckpointContainerResponse = "CheckpointContainer";
        checkpoint_pod(CheckpointPodRequest) -> CheckpointPodResponse = "CheckpointPod";
        restore_pod(RestorePodRequest) -> RestorePodResponse = "RestorePod";
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse = "ListMetricDescriptors";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse = "ListPodSandboxMetrics";
        update_pod_sandbox_resources(UpdatePodSandboxResourcesRequest) -> UpdatePodSandboxResourcesResponse = "UpdatePodSandboxResources";
    }

    streaming {
        stream_pod_sandboxes(StreamPodSandboxesRequest) -> StreamPodSandboxesStream = "StreamPodSandboxes";
        stream_containers(StreamContainersRequest) -> StreamContainersStream = "StreamContainers";
        stream_container_stats(StreamContainerStatsRequest) -> StreamContainerStatsStream = "StreamContainerStats";
        stream_pod_sandbox_stats(StreamPodSandboxStatsRequest) -> StreamPodSandboxStatsStream = "StreamPodSandboxStats";
        stream_pod_sandbox_metrics(StreamPodSandboxMetricsRequest) -> StreamPodSandboxMetricsStream = "StreamPodSandboxMetrics";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_is_ready_and_network_says_why_not() {
        let s = runtime_status(Some("no network config found in /x".into()));
        let cond = |s: &RuntimeStatus, t: &str| {
            s.conditions.iter().find(|c| c.r#type == t).unwrap().clone()
        };
        assert!(cond(&s, "RuntimeReady").status);
        let net = cond(&s, "NetworkReady");
        assert!(!net.status);
        assert_eq!(net.reason, "NetworkPluginNotReady");
        assert!(
            net.message.contains("no network config found in /x"),
            "{}",
            net.message
        );
        let ready = cond(&runtime_status(None), "NetworkReady");
        assert!(ready.status && ready.reason.is_empty());
    }

    #[test]
    fn unimplemented_names_the_method() {
        let s = unimplemented("RunPodSandbox");
        assert_eq!(s.code(), tonic::Code::Unimplemented);
        assert!(s.message().contains("RunPodSandbox"), "{}", s.message());
    }
}
