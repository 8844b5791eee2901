//! Bounded fuzzing (proptest) of `POST /containers/create`'s body: the steps of
//! [`Engine::container_create`](crate::Engine::container_create) that read the body (the
//! host config's checks and dockerd defaults, the restart policy, the config merged over
//! the image's, the mounts, the name, the network settings), run in the same order on
//! arbitrary JSON and on a good body with hostile values; nothing panics, and an accepted
//! body gives a command and a record that stores and reads back. The image store and the
//! runtime lookup are left out (no image, no runtime here). Seeds:
//! `tests/corpus/container_create.jsonl`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_runtime::ShimRuntime;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{host_opts, mounts, names, spec, Containers};
use crate::fuzz_support::{arb_json, config, corpus, mutated};
use crate::{EngineConfig, EngineError};

const KEYS: &[&str] = &[
    "Image",
    "Cmd",
    "Entrypoint",
    "Env",
    "Hostname",
    "User",
    "WorkingDir",
    "Volumes",
    "ExposedPorts",
    "Labels",
    "HostConfig",
    "NetworkingConfig",
    "NetworkMode",
    "RestartPolicy",
    "Name",
    "MaximumRetryCount",
    "PortBindings",
    "HostPort",
    "HostIp",
    "Binds",
    "Mounts",
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "TmpfsOptions",
    "SizeBytes",
    "Mode",
    "BindOptions",
    "Propagation",
    "VolumeOptions",
    "NanoCpus",
    "Memory",
    "MemorySwap",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "OomScoreAdj",
    "Ulimits",
    "Soft",
    "Hard",
    "Sysctls",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "PidMode",
    "IpcMode",
    "UTSMode",
    "CgroupnsMode",
    "Tmpfs",
    "ShmSize",
    "LogConfig",
    "Config",
    "Init",
    "Privileged",
    "AutoRemove",
    "VolumesFrom",
    "Dns",
    "ExtraHosts",
    "EndpointsConfig",
    "Aliases",
    "IPAMConfig",
    "IPv4Address",
    "MacAddress",
    "PidsLimit",
    "Runtime",
    "StopSignal",
];

const PATHS: &[&str] = &[
    "Image",
    "Cmd",
    "Cmd|0",
    "Entrypoint",
    "Env",
    "Env|0",
    "Hostname",
    "User",
    "WorkingDir",
    "Volumes",
    "Volumes|/data",
    "ExposedPorts",
    "ExposedPorts|80/tcp",
    "Labels",
    "StopSignal",
    "HostConfig",
    "HostConfig|NetworkMode",
    "HostConfig|RestartPolicy",
    "HostConfig|RestartPolicy|Name",
    "HostConfig|RestartPolicy|MaximumRetryCount",
    "HostConfig|AutoRemove",
    "HostConfig|PortBindings",
    "HostConfig|PortBindings|80/tcp|0|HostPort",
    "HostConfig|PortBindings|80/tcp|0|HostIp",
    "HostConfig|Binds",
    "HostConfig|Binds|0",
    "HostConfig|Mounts",
    "HostConfig|Mounts|0",
    "HostConfig|Mounts|0|Type",
    "HostConfig|Mounts|0|Source",
    "HostConfig|Mounts|0|Target",
    "HostConfig|Mounts|0|ReadOnly",
    "HostConfig|Mounts|0|TmpfsOptions",
    "HostConfig|Mounts|0|TmpfsOptions|SizeBytes",
    "HostConfig|Mounts|0|TmpfsOptions|Mode",
    "HostConfig|Mounts|0|BindOptions|Propagation",
    "HostConfig|Mounts|0|VolumeOptions",
    "HostConfig|NanoCpus",
    "HostConfig|Memory",
    "HostConfig|MemorySwap",
    "HostConfig|CpuShares",
    "HostConfig|CpuQuota",
    "HostConfig|CpuPeriod",
    "HostConfig|PidsLimit",
    "HostConfig|OomScoreAdj",
    "HostConfig|Ulimits",
    "HostConfig|Ulimits|0|Name",
    "HostConfig|Ulimits|0|Soft",
    "HostConfig|Ulimits|0|Hard",
    "HostConfig|Sysctls",
    "HostConfig|Sysctls|net.ipv4.ip_forward",
    "HostConfig|CapAdd",
    "HostConfig|CapDrop",
    "HostConfig|SecurityOpt",
    "HostConfig|SecurityOpt|0",
    "HostConfig|PidMode",
    "HostConfig|IpcMode",
    "HostConfig|UTSMode",
    "HostConfig|CgroupnsMode",
    "HostConfig|Tmpfs",
    "HostConfig|ShmSize",
    "HostConfig|LogConfig",
    "HostConfig|LogConfig|Type",
    "HostConfig|LogConfig|Config",
    "HostConfig|LogConfig|Config|max-size",
    "HostConfig|LogConfig|Config|max-file",
    "HostConfig|Privileged",
    "HostConfig|VolumesFrom",
    "HostConfig|Dns",
    "HostConfig|ExtraHosts",
    "NetworkingConfig",
    "NetworkingConfig|EndpointsConfig|user|Aliases",
    "NetworkingConfig|EndpointsConfig|user|IPAMConfig|IPv4Address",
];

/// `Devices` is fuzzed with these host paths only: a directory is walked for device
/// nodes, as dockerd does, so `/` would walk the whole host.
const DEVICE_PATHS: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/nonexistent",
    "",
    "relative",
    "/etc/hostname",
];

struct Fixture {
    _tmp: tempfile::TempDir,
    containers: Arc<Containers>,
    config: EngineConfig,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let config = EngineConfig::new(root.join("data"), root.join("exec"));
    let containers = Arc::new(Containers {
        runtime: Arc::new(ShimRuntime::new(
            Path::new("/nonexistent/berth-shim"),
            root.join("exec"),
        )),
        mounter: Arc::new(super::rootfs::OverlayMounter),
        cgroup_parent: "/berth-fuzz".into(),
        data: root.join("data/containers"),
        exec: root.join("exec/containers"),
        map: Mutex::new(Default::default()),
        execs: Default::default(),
        events: Default::default(),
        life: Default::default(),
        networks: crate::networks::fuzz::test_networks(&root.join("data")),
        health: Default::default(),
    });
    Fixture {
        _tmp: tmp,
        containers,
        config,
    }
}

/// `container_create`'s reading of `body`, in its order, up to the record.
fn create_steps(
    c: &Containers,
    engine_config: &EngineConfig,
    body: &Map<String, Value>,
    image_cfg: &Map<String, Value>,
) -> Result<Created, EngineError> {
    body.get("Image")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EngineError::InvalidArgument("No image specified".into()))?;
    let super::create::CreatePlan {
        host_config,
        networking,
        net_peer,
        config,
        mounts: planned,
        args,
        ..
    } = super::create::plan_create(c, engine_config, body, image_cfg, &|_| Ok(()))?;
    // What the record stores must survive its JSON round trip (it is read at every start).
    for m in &planned {
        let back: mounts::MountEntry =
            serde_json::from_value(serde_json::to_value(m).unwrap()).unwrap();
        assert_eq!(back.destination, m.destination);
        let _ = m.docker_json();
    }
    if let Some(n) = body.get("Name").and_then(Value::as_str) {
        names::validate(n)?;
    }
    let id = "c0ffee".repeat(10) + "0000";
    // The engine registers on a blocking thread of its runtime; so does this.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(
        c.networks
            .register(&id, "/fuzz", &config, &host_config, &networking, net_peer),
    )?;
    Ok(Created {
        id,
        args,
        config,
        host_config,
        planned,
    })
}

/// What [`create_steps`] accepted: the record's parts.
struct Created {
    id: String,
    args: Vec<String>,
    config: berth_api_types::container::ContainerConfig,
    host_config: berth_api_types::container::HostConfig,
    planned: Vec<mounts::MountEntry>,
}

/// `start_container`'s reading of a stored record, up to the OCI spec (no mount, no
/// process): the host options, the spec input, the spec.
fn start_steps(c: &Containers, created: Created) -> Result<(), EngineError> {
    let rec = super::record::Record {
        version: super::record::RECORD_VERSION,
        id: created.id.clone(),
        name: "/fuzz".into(),
        created: String::new(),
        image: "busybox".into(),
        image_id: String::new(),
        path: created.args[0].clone(),
        args: created.args[1..].to_vec(),
        config: created.config,
        host_config: created.host_config,
        state: Default::default(),
        restart_count: 0,
        manually_stopped: false,
        image_mounts: Vec::new(),
        hugepage_limits: Vec::new(),
    };
    // The record reads back (a float kept as sent may move by an ulp: serde_json's parser
    // is not exact without `float_roundtrip`, as for the map-based record).
    let stored = serde_json::to_vec(&rec).unwrap();
    let back = super::record::Record::from_json(&stored).unwrap();
    assert_eq!(back.restart_policy(), rec.restart_policy());
    assert_eq!(back.config.args(), rec.config.args());
    let data_dir = c.data_dir(&rec.id);
    std::fs::create_dir_all(&data_dir).unwrap();
    let data_root = c.data.parent().unwrap().to_path_buf();
    mounts::materialize(&data_root, &data_dir, created.planned)?;
    let rootfs = c.rootfs(&rec.id);
    std::fs::create_dir_all(&rootfs).unwrap();
    let opts = host_opts::resolve(c, &rec.host_config, &c.shm_dir(&rec.id))?;
    let plan = crate::networks::NetPlan {
        ns: berth_runtime::spec::NamespaceMode::Private,
        hosts: String::new(),
        resolv: String::new(),
        links: Vec::new(),
        env: Vec::new(),
    };
    let users = super::userdb::UserDb::read(&std::fs::File::open(&rootfs).unwrap())?;
    let staging = mounts::Staging {
        dir: c.exec_dir(&rec.id).join("binds"),
        policy: None,
        images: Default::default(),
    };
    let input = spec::spec_input(
        &rec,
        &rootfs,
        &data_dir,
        &plan,
        "/berth-fuzz/x",
        opts,
        &users,
        &staging,
    );
    staging.clear();
    let _ = berth_runtime::build_spec(&input?);
    Ok(())
}

fn check(body: &Value) {
    let Some(body) = body.as_object() else { return };
    let fx = fixture();
    let image_cfg = json!({"Cmd": ["sh"], "Volumes": {"/image-vol": {}}, "Env": ["PATH=/bin"]});
    if let Ok(created) = create_steps(
        &fx.containers,
        &fx.config,
        body,
        image_cfg.as_object().unwrap(),
    ) {
        let _ = start_steps(&fx.containers, created);
    }
}

fn good() -> Value {
    json!({
        "Image": "busybox",
        "Cmd": ["sh", "-c", "true"],
        "Env": ["A=b"],
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
        "HostConfig": {
            "NetworkMode": "user",
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
            "Binds": ["/tmp:/host-tmp:ro"],
            "Mounts": [{"Type": "tmpfs", "Target": "/run", "TmpfsOptions": {"SizeBytes": 65536, "Mode": 1777}}],
            "Memory": 67108864i64,
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "CapAdd": ["NET_ADMIN"],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {"user": {"Aliases": ["a"]}}},
    })
}

fn devices() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(DEVICE_PATHS),
            prop::sample::select(vec!["", "/dev/x", "relative", "/"]),
            prop::sample::select(vec!["", "rwm", "r", "xyz"]),
        ),
        0..3,
    )
    .prop_map(|d| {
        Value::Array(
            d.into_iter()
                .map(|(h, c, p)| json!({"PathOnHost": h, "PathInContainer": c, "CgroupPermissions": p}))
                .collect(),
        )
    })
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn container_create_arbitrary_json(body in arb_json(KEYS)) {
        check(&body);
    }

    #[test]
    fn container_create_arbitrary_host_config(hc in arb_json(KEYS)) {
        let mut body = good();
        body["HostConfig"] = hc;
        check(&body);
    }

    /// The typed model takes what fits and gives it back exactly as sent (absent, `null`
    /// or set; unknown keys kept), which is what inspect echoes.
    #[test]
    fn typed_config_and_host_config_echo_what_they_accept(v in arb_json(KEYS)) {
        use berth_api_types::container::{ContainerConfig, HostConfig};
        if let Ok(hc) = serde_json::from_value::<HostConfig>(v.clone()) {
            prop_assert_eq!(serde_json::to_value(&hc).unwrap(), v.clone());
        }
        if let Ok(c) = serde_json::from_value::<ContainerConfig>(v.clone()) {
            prop_assert_eq!(serde_json::to_value(&c).unwrap(), v);
        }
    }

    #[test]
    fn container_create_hostile_fields(
        body in mutated(good(), PATHS, KEYS),
        devices in prop::option::of(devices()),
    ) {
        let mut body = body;
        if let (Some(d), Some(hc)) = (devices, body.get_mut("HostConfig").and_then(Value::as_object_mut)) {
            hc.insert("Devices".into(), d);
        }
        check(&body);
    }
}

#[test]
fn container_create_corpus() {
    for body in corpus("container_create.jsonl") {
        check(&body);
    }
}

/// The good body passes every step, so the hostile variants start deep.
#[test]
fn good_body_passes_every_step() {
    let fx = fixture();
    let image_cfg = Map::new();
    create_steps(
        &fx.containers,
        &fx.config,
        good().as_object().unwrap(),
        &image_cfg,
    )
    .unwrap();
}
