//! The container lifecycle through the engine's public methods, over a fake runtime, a
//! rootfs mounter that mounts nothing (`fake`) and the fake network driver
//! (`networks::fake`): no root, no shim, no mounts, no interfaces. The containers use
//! `NetworkMode: host` unless a test says otherwise, and `apparmor=unconfined`, so that no
//! profile is loaded on a host with AppArmor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::fake::{FakeRuntime, NoMount};
use crate::networks::fake::FakeDriver;
use crate::{Drivers, Engine, EngineConfig, EngineError};

pub(super) struct World {
    _tmp: tempfile::TempDir,
    pub(super) engine: Arc<Engine>,
    pub(super) fake: Arc<FakeRuntime>,
    net: Arc<FakeDriver>,
    pub(super) image: String,
}

/// An engine over the fakes, with one image (no layers) in its store.
pub(super) async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(tmp.path().join("data"), tmp.path().join("exec"));
    let fake = Arc::new(FakeRuntime::default());
    let net = Arc::new(FakeDriver::with(berth_network::fixtures::two_bridges()));
    let drivers = Drivers {
        runtime: fake.clone(),
        rootfs: Arc::new(NoMount),
        network: Box::new({
            let net = net.clone();
            move |_| Ok(net)
        }),
    };
    let engine = Engine::new(config, drivers).await.unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let image_config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["true"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let image = engine
        .images
        .add_image(&serde_json::to_vec(&image_config).unwrap())
        .unwrap()
        .id;
    World {
        _tmp: tmp,
        engine,
        fake,
        net,
        image,
    }
}

impl World {
    /// Creates a container with `host_config` merged over the test defaults.
    pub(super) async fn create(&self, host_config: Value) -> String {
        let mut hc = json!({
            "NetworkMode": "host",
            "SecurityOpt": ["apparmor=unconfined"],
        });
        for (k, v) in host_config.as_object().unwrap() {
            hc[k] = v.clone();
        }
        let body = json!({"Image": self.image, "Cmd": ["sh"], "HostConfig": hc});
        let body: Map<String, Value> = serde_json::from_value(body).unwrap();
        self.engine.container_create(None, body).await.unwrap().id
    }

    pub(super) async fn inspect(&self, id: &str) -> Result<Value, EngineError> {
        self.engine.container_inspect(id).await
    }

    async fn status(&self, id: &str) -> String {
        let v = self.inspect(id).await.unwrap();
        v["State"]["Status"].as_str().unwrap().to_string()
    }

    /// Polls (at most 10 s) until `done` holds for the container's inspect result.
    async fn until(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Result<Value, EngineError>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.inspect(id).await;
            if done(&v) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: still {v:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the container runs its `n`th process (the runtime saw `n` creates).
    async fn until_run(&self, id: &str, n: usize) {
        let fake = self.fake.clone();
        self.until(id, &format!("run #{n}"), |v| {
            fake.count("create", id) == n
                && v.as_ref()
                    .is_ok_and(|v| v["State"]["Status"] == "running" && fake.holds(id))
        })
        .await;
    }

    /// Waits until the container is `exited` (not running, not restarting).
    async fn until_exited(&self, id: &str) -> Value {
        self.until(id, "exited", |v| {
            v.as_ref().is_ok_and(|v| v["State"]["Status"] == "exited")
        })
        .await;
        self.inspect(id).await.unwrap()
    }
}

#[tokio::test]
async fn start_runs_and_an_exit_is_recorded_with_its_code() {
    let w = world().await;
    let id = w.create(json!({})).await;
    assert_eq!(w.status(&id).await, "created");
    assert!(w.engine.container_start(&id).await.unwrap());
    let v = w.inspect(&id).await.unwrap();
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["State"]["Pid"], std::process::id());
    // Created deferred, then started once the network was up.
    let rid = &id[..24];
    let calls = w.fake.calls();
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    assert!(pos(&format!("create {rid}")) < pos(&format!("start {rid}")));
    assert!(
        !w.engine.container_start(&id).await.unwrap(),
        "already running: 304"
    );

    assert!(w.fake.exit(&id, 3));
    let v = w.until_exited(&id).await;
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["State"]["Pid"], 0);
    assert_eq!(v["RestartCount"], 0);
    assert!(
        !w.fake.holds(&id),
        "the runtime's container is deleted after the exit"
    );
}

#[tokio::test]
async fn a_bridged_container_is_prepared_plugged_unplugged_and_forgotten() {
    let w = world().await;
    let id = w.create(json!({"NetworkMode": "bridge"})).await;
    assert!(w.net.calls().is_empty());
    w.engine.container_start(&id).await.unwrap();
    // (A start first clears what an earlier run may have left: an unplug.)
    let calls = w.net.calls();
    let started = [format!("prepare {id}"), format!("plug {id}")];
    assert!(calls.ends_with(&started), "{calls:?}");
    let v = w.inspect(&id).await.unwrap();
    assert_eq!(
        v["NetworkSettings"]["Networks"]["bridge"]["NetworkID"],
        "aaa111"
    );
    w.engine.container_delete(&id, true).await.unwrap();
    let calls = w.net.calls();
    let pos = |c: &str| calls.iter().position(|x| x == c);
    let (unplug, forget) = (pos(&format!("unplug {id}")), pos(&format!("forget {id}")));
    assert!(unplug.is_some() && unplug < forget, "{calls:?}");
}

#[tokio::test]
async fn on_failure_2_restarts_twice_then_stays_exited() {
    let w = world().await;
    let policy = json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}});
    let id = w.create(policy).await;
    w.engine.container_start(&id).await.unwrap();
    for run in 1..=2 {
        w.until_run(&id, run).await;
        assert!(w.fake.exit(&id, 1));
    }
    w.until_run(&id, 3).await;
    assert!(w.fake.exit(&id, 1));
    let v = w.until_exited(&id).await;
    assert_eq!(v["RestartCount"], 2);
    assert_eq!(v["State"]["ExitCode"], 1);
    assert_eq!(w.fake.count("create", &id), 3, "{:?}", w.fake.calls());
}

#[tokio::test]
async fn on_failure_does_not_restart_after_a_clean_exit() {
    let w = world().await;
    let policy = json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}});
    let id = w.create(policy).await;
    w.engine.container_start(&id).await.unwrap();
    assert!(w.fake.exit(&id, 0));
    let v = w.until_exited(&id).await;
    assert_eq!(
        (v["RestartCount"].as_i64(), w.fake.count("create", &id)),
        (Some(0), 1)
    );
}

#[tokio::test]
async fn always_restarts_after_an_exit_but_not_after_a_user_stop() {
    let w = world().await;
    let id = w.create(json!({"RestartPolicy": {"Name": "always"}})).await;
    w.engine.container_start(&id).await.unwrap();
    w.until_run(&id, 1).await;
    assert!(w.fake.exit(&id, 0));
    w.until_run(&id, 2).await;
    assert_eq!(w.inspect(&id).await.unwrap()["RestartCount"], 1);

    // The fake ends a container on SIGTERM with 143, as a shell would.
    assert!(w.engine.container_stop(&id, Some(5), None).await.unwrap());
    let v = w.inspect(&id).await.unwrap();
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 143);
    assert!(w.fake.calls().contains(&format!("kill {} 15", &id[..24])));
    assert_eq!(w.fake.count("create", &id), 2, "{:?}", w.fake.calls());
    assert!(
        !w.engine.container_stop(&id, None, None).await.unwrap(),
        "not running: 304"
    );
}

#[tokio::test]
async fn rm_force_kills_a_running_container_and_removes_it() {
    let w = world().await;
    let id = w.create(json!({})).await;
    w.engine.container_start(&id).await.unwrap();
    let data_dir = w.engine.containers.data_dir(&id);
    assert!(data_dir.is_dir());
    let refused = w.engine.container_delete(&id, false).await.unwrap_err();
    assert!(
        refused.to_string().contains("container is running"),
        "{refused}"
    );
    assert_eq!(w.status(&id).await, "running");

    w.engine.container_delete(&id, true).await.unwrap();
    assert!(w
        .fake
        .calls()
        .contains(&format!("kill {} 9 all", &id[..24])));
    assert!(matches!(
        w.inspect(&id).await,
        Err(EngineError::NotFound(_))
    ));
    assert!(!w.fake.holds(&id));
    assert!(!data_dir.exists());
    let all = w
        .engine
        .container_list(true, &Default::default())
        .await
        .unwrap();
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test]
async fn auto_remove_removes_the_container_after_its_exit() {
    let w = world().await;
    let id = w.create(json!({"AutoRemove": true})).await;
    w.engine.container_start(&id).await.unwrap();
    let data_dir = w.engine.containers.data_dir(&id);
    assert!(w.fake.exit(&id, 0));
    w.until(&id, "removed", |v| {
        matches!(v, Err(EngineError::NotFound(_)))
    })
    .await;
    assert!(!w.fake.holds(&id));
    assert!(!data_dir.exists());
}

/// What a `fmt` subscriber (no colours) wrote, for assertions on spans.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Polls (at most 10 s) for the line that contains `needle`.
    async fn line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
            if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn operation_log_lines_carry_the_container_id_and_the_exit_watcher_has_its_own_span() {
    use tracing::Instrument;
    // A callsite that a test on another thread reaches first, while no subscriber wants
    // it, is cached as disabled for every thread: a global subscriber that wants all
    // (and writes nowhere) keeps each one live for this test's own.
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .finish(),
    );
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let w = world().await;
    let request = tracing::info_span!("request", id = 7);
    let id = w.create(json!({})).instrument(request.clone()).await;
    let has_id = format!("container_id={id}");

    let created = logs.line("container created").await;
    assert!(created.contains("request{id=7}"), "{created}");
    assert!(created.contains(&has_id), "{created}");
    // Started by a prefix of the ID: the span names the container it resolved to.
    w.engine
        .container_start(&id[..12])
        .instrument(request.clone())
        .await
        .unwrap();
    let started = logs.line("container started").await;
    assert!(started.contains("request{id=7}"), "{started}");
    assert!(started.contains(&has_id), "{started}");

    assert!(w.fake.exit(&id, 0));
    let exited = logs.line("container exited").await;
    assert!(
        exited.contains(&format!("exit_watch{{{has_id}}}")),
        "{exited}"
    );
    assert!(
        !exited.contains("request"),
        "not a child of the request: {exited}"
    );
}

#[tokio::test]
async fn list_mounts_are_read_once_the_file_exists() {
    let w = world().await;
    let id = w.create(json!({"Binds": ["/tmp:/host-tmp:ro"]})).await;
    let list = |w: &World| {
        let engine = w.engine.clone();
        async move {
            let mut items = engine
                .container_list(true, &Default::default())
                .await
                .unwrap();
            engine.container_add_mounts(&mut items).await;
            items
        }
    };
    let items = list(&w).await;
    assert_eq!(items[0]["Mounts"][0]["Destination"], "/host-tmp");
    // The file is written at create and never changes: later lists use the copy.
    let file = w
        .engine
        .containers
        .data_dir(&id)
        .join(super::mount_file::FILE);
    std::fs::remove_file(&file).unwrap();
    let items = list(&w).await;
    assert_eq!(items[0]["Mounts"][0]["Destination"], "/host-tmp");

    // No file yet (a container being created): no mounts, and nothing kept.
    let other = w.create(json!({"Binds": ["/srv:/srv"]})).await;
    let file = w
        .engine
        .containers
        .data_dir(&other)
        .join(super::mount_file::FILE);
    let stored = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let items = list(&w).await;
    let of =
        |items: &[Value], id: &str| items.iter().find(|i| i["Id"] == id).unwrap()["Mounts"].clone();
    assert_eq!(of(&items, &other), json!([]));
    std::fs::write(&file, stored).unwrap();
    let items = list(&w).await;
    assert_eq!(of(&items, &other)[0]["Destination"], "/srv");
}

#[tokio::test]
async fn list_filters_and_orders_without_copying_records() {
    let w = world().await;
    let a = w.create(json!({})).await;
    let b = w.create(json!({})).await;
    assert!(w.engine.container_start(&b).await.unwrap());
    let running = w
        .engine
        .container_list(false, &Default::default())
        .await
        .unwrap();
    let ids: Vec<_> = running.iter().map(|v| v["Id"].clone()).collect();
    assert_eq!(ids, vec![json!(b)]);
    let all = w
        .engine
        .container_list(true, &Default::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let filters =
        berth_api_types::filters::Filters::parse(Some(&format!(r#"{{"before":["{b}"]}}"#)))
            .unwrap();
    let before = w.engine.container_list(true, &filters).await.unwrap();
    assert_eq!(
        before.iter().map(|v| v["Id"].clone()).collect::<Vec<_>>(),
        vec![json!(a)]
    );
}
