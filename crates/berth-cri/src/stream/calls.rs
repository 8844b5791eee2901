//! The gRPC side of streaming: `Exec`, `Attach` and `PortForward` check their request
//! against the container or sandbox as the kubelet's streaming server does, cache it, and
//! answer the URL that serves it; and `ReopenContainerLog`, which rotation pairs with.

use serde_json::Value;
use tonic::Status;

use super::tokens::Pending;
use crate::labels;
use crate::proto::*;
use crate::runtime::Runtime;

/// The kubelet's checks of the streams a request asks for.
pub(crate) fn check_streams(
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), Status> {
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    Ok(())
}

/// `FailedPrecondition` unless the inspected container runs (containerd's words).
pub(crate) fn require_running(v: &Value) -> Result<(), Status> {
    if v.pointer("/State/Running").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let state = crate::ctrs::state(
        v.pointer("/State/Status")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    Err(Status::failed_precondition(format!(
        "container is in {} state",
        state.as_str_name()
    )))
}

impl Runtime {
    pub(crate) async fn stream_exec(&self, req: ExecRequest) -> Result<String, Status> {
        let v = self
            .inspect(&req.container_id, labels::TYPE_CONTAINER)
            .await?;
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument("Exec needs a command"));
        }
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        require_running(&v)?;
        self.streams.url_for(Pending::Exec(req))
    }

    pub(crate) async fn stream_attach(&self, req: AttachRequest) -> Result<String, Status> {
        let v = self
            .inspect(&req.container_id, labels::TYPE_CONTAINER)
            .await?;
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        require_running(&v)?;
        self.streams.url_for(Pending::Attach(req))
    }

    pub(crate) async fn stream_port_forward(
        &self,
        req: PortForwardRequest,
    ) -> Result<String, Status> {
        let v = self
            .inspect(&req.pod_sandbox_id, labels::TYPE_SANDBOX)
            .await?;
        if v.pointer("/State/Running").and_then(Value::as_bool) != Some(true) {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not running",
                req.pod_sandbox_id
            )));
        }
        if let Err(e) = super::portforward::ports(&[], &req.port) {
            // No port in the request is fine: the URL's query names them.
            if !req.port.is_empty() {
                return Err(Status::invalid_argument(e));
            }
        }
        self.streams.url_for(Pending::PortForward(req))
    }

    /// `ReopenContainerLog`: the shim opens the log path again after the kubelet renamed
    /// the file.
    pub(crate) async fn reopen_log(&self, id: &str) -> Result<(), Status> {
        self.inspect(id, labels::TYPE_CONTAINER).await?;
        self.engine
            .container_reopen_cri_log(id)
            .await
            .map_err(crate::engine_status)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn streams_are_checked_as_the_kubelet_does() {
        assert!(check_streams(false, true, true, false).is_ok());
        assert!(check_streams(true, true, false, true).is_ok());
        let none = check_streams(false, false, false, false).unwrap_err();
        assert_eq!(none.code(), tonic::Code::InvalidArgument);
        let tty_stderr = check_streams(false, true, true, true).unwrap_err();
        assert!(
            tty_stderr.message().contains("tty and stderr"),
            "{tty_stderr:?}"
        );
    }

    #[test]
    fn only_a_running_container_streams() {
        assert!(require_running(&json!({"State": {"Running": true, "Status": "running"}})).is_ok());
        let e =
            require_running(&json!({"State": {"Running": false, "Status": "exited"}})).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(e.message(), "container is in CONTAINER_EXITED state");
    }
}
