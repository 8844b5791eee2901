//! What the Kubernetes CRI server (`berth-cri`) needs of a container beyond the Docker
//! API: a root without Docker's `/.dockerenv`, and its log written in the CRI format at
//! the path the kubelet names (log driver `cri`, which a create request cannot choose).

use std::path::{Component, Path};

use berth_api_types::container::LogConfig;
use berth_api_types::field::Field;

use super::logs;
use crate::{Engine, EngineError};

/// A log path the CRI may name: absolute, without `..` or `.` components.
fn check_log_path(path: &Path) -> Result<(), EngineError> {
    let plain = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && path.file_name().is_some();
    if !plain {
        return Err(EngineError::InvalidArgument(format!(
            "log path {} must be absolute, without '.' or '..'",
            path.display()
        )));
    }
    path.to_str().map(drop).ok_or_else(|| {
        EngineError::InvalidArgument(format!("log path {} is not UTF-8", path.display()))
    })
}

impl Engine {
    /// `POST /containers/create` for a CRI pod sandbox or container: the same, but its
    /// root has no `/.dockerenv` (containerd's have none; the Docker API cannot ask this).
    pub async fn container_create_cri(
        &self,
        name: Option<String>,
        body: serde_json::Map<String, serde_json::Value>,
    ) -> Result<super::Created, EngineError> {
        self.create(name, body, None, false).await
    }

    /// Makes container `name`, created and not started, write its output in the CRI log
    /// format to `path` from its next start on (the shim appends; the caller makes the
    /// directory). `docker logs` answers that the driver cannot be read, as for `none`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_set_cri_log(&self, name: &str, path: &Path) -> Result<(), EngineError> {
        check_log_path(path)?;
        let c = &self.containers;
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        {
            let mut r = entry.rec();
            if r.running() {
                return Err(EngineError::Conflict(format!(
                    "container {} is running: its log cannot move",
                    r.id
                )));
            }
            let config = [(
                logs::CRI_PATH_OPT.to_string(),
                path.to_string_lossy().into_owned(),
            )]
            .into_iter()
            .collect();
            r.host_config.log_config = Field::Set(LogConfig {
                kind: Field::Set(logs::CRI_LOG_DRIVER.into()),
                config: Field::Set(config),
                ..LogConfig::default()
            });
        }
        c.save(&entry).await
    }

    /// Makes running CRI container `name`'s shim close its log file and open the path
    /// again, after the kubelet renamed it (`ReopenContainerLog`). Conflict when it does
    /// not run (containerd: "container is not running") or writes no CRI log.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_reopen_cri_log(&self, name: &str) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let (id, running, cri) = {
            let r = entry.rec();
            let cri = matches!(&r.host_config.log_config, Field::Set(l)
                if matches!(&l.kind, Field::Set(k) if k == logs::CRI_LOG_DRIVER));
            (r.id.clone(), r.running(), cri)
        };
        if !running {
            return Err(EngineError::Conflict("container is not running".into()));
        }
        if !cri {
            return Err(EngineError::Conflict(format!(
                "container {id} writes no CRI log to reopen"
            )));
        }
        c.runtime
            .reopen_log(super::rid(&id))
            .await
            .map_err(super::rt_err)
    }
}

#[cfg(test)]
mod tests {
    use berth_runtime::LogFormat;
    use serde_json::{json, Map, Value};

    use super::super::tests::world;
    use super::*;

    #[test]
    fn log_paths_are_plain_absolute() {
        assert!(check_log_path(Path::new("/var/log/pods/p/c/0.log")).is_ok());
        for bad in ["rel/0.log", "/a/../etc/passwd", "./x", "/", ""] {
            assert!(check_log_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_cri_log_driver_is_set_here_only() {
        let w = world().await;
        // A create request cannot name it (so no Docker client picks a host path).
        let body = json!({"Image": w.image, "HostConfig": {"NetworkMode": "host",
            "LogConfig": {"Type": "cri", "Config": {"path": "/etc/passwd"}}}});
        let body: Map<String, Value> = serde_json::from_value(body).unwrap();
        let e = w.engine.container_create(None, body).await.unwrap_err();
        assert!(e.to_string().contains("no log driver named 'cri'"), "{e}");

        let id = w.create(json!({})).await;
        let path = Path::new("/var/log/pods/p/c/0.log");
        w.engine.container_set_cri_log(&id, path).await.unwrap();
        let v = w.inspect(&id).await.unwrap();
        assert_eq!(v["HostConfig"]["LogConfig"]["Type"], "cri");
        let rec = w.engine.containers.get(&id).unwrap().rec().clone();
        let opts = logs::log_options(&rec, Path::new("/unused"))
            .unwrap()
            .unwrap();
        assert_eq!((opts.path.as_path(), opts.format), (path, LogFormat::Cri));
        let e = w
            .engine
            .container_logs(&id, Default::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not support reading"), "{e}");
        assert!(w
            .engine
            .container_set_cri_log(&id, Path::new("rel.log"))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn uts_mode_may_name_a_peer() {
        let w = world().await;
        let peer = w.create(json!({})).await;
        let joiner = w
            .create(json!({"UTSMode": format!("container:{peer}")}))
            .await;
        let v = w.inspect(&joiner).await.unwrap();
        assert_eq!(v["HostConfig"]["UTSMode"], format!("container:{peer}"));
        for (mode, want) in [
            ("container:nope", "No such container"),
            ("bogus", "invalid UTS mode"),
        ] {
            let body =
                json!({"Image": w.image, "HostConfig": {"NetworkMode": "host", "UTSMode": mode}});
            let body: Map<String, Value> = serde_json::from_value(body).unwrap();
            let e = w.engine.container_create(None, body).await.unwrap_err();
            assert!(e.to_string().contains(want), "{mode}: {e}");
        }
    }

    #[tokio::test]
    async fn the_cri_log_reopens_only_while_running() {
        let w = world().await;
        let id = w.create(json!({})).await;
        w.engine
            .container_set_cri_log(&id, Path::new("/var/log/pods/p/c/0.log"))
            .await
            .unwrap();
        let e = w.engine.container_reopen_cri_log(&id).await.unwrap_err();
        assert_eq!(e.to_string(), "container is not running");
        w.engine.container_start(&id).await.unwrap();
        w.engine.container_reopen_cri_log(&id).await.unwrap();
        assert_eq!(w.fake.count("reopen_log", &id), 1);
        // A container logging another way has nothing to reopen.
        let plain = w.create(json!({})).await;
        w.engine.container_start(&plain).await.unwrap();
        let e = w.engine.container_reopen_cri_log(&plain).await.unwrap_err();
        assert!(e.to_string().contains("writes no CRI log"), "{e}");
        assert_eq!(w.fake.count("reopen_log", &plain), 0);
    }
}
