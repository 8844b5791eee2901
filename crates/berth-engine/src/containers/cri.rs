//! What the Kubernetes CRI server (`berth-cri`) needs of a container beyond the Docker
//! API: a root without Docker's `/.dockerenv`, and its log written in the CRI format at
//! the path the kubelet names (log driver `cri`, which a create request cannot choose),
//! and hugetlb limits (the Docker API has none).

use std::path::{Component, Path};

use berth_api_types::container::LogConfig;
use berth_api_types::field::Field;

use super::logs;
use super::record::HugepageLimit;
use crate::{Engine, EngineError};

/// The CRI's hugepage limits as the record keeps them, each page size one the hugetlb
/// files can name (`2MB`, `1GB`).
fn hugepage_limits(limits: Vec<(String, u64)>) -> Result<Vec<HugepageLimit>, EngineError> {
    limits
        .into_iter()
        .map(|(page_size, limit)| {
            if !berth_cgroups::valid_page_size(&page_size) {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid hugepage size {page_size:?}: want a number and KB, MB, GB or TB"
                )));
            }
            Ok(HugepageLimit { page_size, limit })
        })
        .collect()
}

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

    /// Sets container `name`'s hugetlb limits (page size, bytes), the CRI's
    /// `hugepage_limits`: kept in its record and written into its spec at each start;
    /// when it runs, written into its cgroup first (v1 `hugetlb.<size>.limit_in_bytes`,
    /// v2 `hugetlb.<size>.max`; a refused write puts the earlier ones back and changes
    /// nothing). The caller checks that the hugetlb controller exists.
    pub async fn container_set_hugepage_limits(
        &self,
        name: &str,
        limits: Vec<(String, u64)>,
    ) -> Result<(), EngineError> {
        let limits = hugepage_limits(limits)?;
        self.update_with_hugepages(name, &serde_json::Map::new(), Some(limits))
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/update` with `body`, for the CRI's
    /// `UpdateContainerResources`: its `hugepages` (`None` leaves them alone) written in
    /// the same cgroup writes as the rest, and put back with them when one fails.
    pub async fn container_update_cri(
        &self,
        name: &str,
        body: &serde_json::Map<String, serde_json::Value>,
        hugepages: Option<Vec<(String, u64)>>,
    ) -> Result<(), EngineError> {
        let hugepages = hugepages.map(hugepage_limits).transpose()?;
        self.update_with_hugepages(name, body, hugepages)
            .await
            .map(drop)
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
    async fn hugepage_limits_are_kept_and_go_to_the_spec() {
        let w = world().await;
        let id = w.create(json!({})).await;
        let e = w
            .engine
            .container_set_hugepage_limits(&id, vec![("../2MB".into(), 1)])
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::InvalidArgument(_)), "{e}");
        let limits = vec![("2MB".to_string(), 4 << 20), ("1GB".to_string(), 0)];
        w.engine
            .container_set_hugepage_limits(&id, limits)
            .await
            .unwrap();
        let kept = |w: &super::super::tests::World| {
            w.engine
                .containers
                .get(&id)
                .unwrap()
                .rec()
                .hugepage_limits
                .clone()
        };
        let want = vec![
            HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            },
            HugepageLimit {
                page_size: "1GB".into(),
                limit: 0,
            },
        ];
        assert_eq!(kept(&w), want);
        w.engine.container_start(&id).await.unwrap();
        let spec = w.fake.spec(&id).unwrap();
        assert_eq!(
            spec["linux"]["resources"]["hugepageLimits"],
            json!([{"pageSize": "2MB", "limit": 4 << 20}, {"pageSize": "1GB", "limit": 0}])
        );
        // Running: the cgroup is written first; this one has no hugetlb files (the fake
        // runtime makes no cgroup), so the write fails and the record keeps what it had.
        let e = w
            .engine
            .container_update_cri(&id, &Map::new(), Some(vec![("2MB".into(), 8 << 20)]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("hugetlb.2MB."), "{e}");
        assert_eq!(kept(&w), want);
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
