//! The registry client against a real registry: Debian's `docker-registry` (distribution
//! 2.8) started per test on a free loopback port, plain HTTP or HTTPS with htpasswd and
//! client certificates from a CA made by `berth_tls::generate::init`. A few protocol
//! corners the real registry cannot produce (bearer tokens, an unknown manifest media
//! type, a connection cut mid-blob) use a tiny in-test HTTP server or TCP proxy.
//!
//! Skipped, with a message, only when `/usr/bin/docker-registry` is missing.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::registry::{
    Platform, Progress, ProgressSink, PullPlan, Registry, RegistryAuth, RegistryConfig,
    RegistryError,
};
use berth_image::store::{ImageRecord, ImageStore};
use berth_image::{Digest, Reference};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const NOW: &str = "2024-05-01T00:00:00Z";
const USER: &str = "tester";
const PASSWORD: &str = "berth-secret";
/// bcrypt (cost 4, so the registry checks it fast) of `PASSWORD`.
const HTPASSWD: &str = "tester:$2b$04$6tEFvbOKK1rjCtHJ1X1tje7SvNwMRI76YwSH7vDhmjTsT25DBlZYi\n";

fn have_registry() -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        return true;
    }
    eprintln!("SKIPPED: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
    false
}

// ---------------------------------------------------------------------------------------
// A docker-registry process.

#[derive(Default, Clone)]
struct RegOpts {
    tls: Option<(PathBuf, PathBuf)>,
    client_ca: Option<PathBuf>,
    htpasswd: Option<PathBuf>,
}

struct RegistryProc {
    dir: tempfile::TempDir,
    port: u16,
    opts: RegOpts,
    child: Option<Child>,
}

impl RegistryProc {
    fn start(opts: RegOpts) -> RegistryProc {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut r = RegistryProc {
            dir,
            port,
            opts,
            child: None,
        };
        r.spawn();
        r
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn spawn(&mut self) {
        let mut yml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n",
            self.storage().display(),
            self.port
        );
        if let Some((cert, key)) = &self.opts.tls {
            yml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            if let Some(ca) = &self.opts.client_ca {
                yml += &format!("    clientcas:\n      - {}\n", ca.display());
            }
        }
        if let Some(h) = &self.opts.htpasswd {
            yml += &format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                h.display()
            );
        }
        let config = self.dir.path().join("config.yml");
        std::fs::write(&config, yml).unwrap();
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file the registry keeps a blob's content in.
    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data")
    }
}

impl Drop for RegistryProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// Stores, images, progress.

struct Local {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Arc<ImageStore>,
    registry: Arc<Registry>,
}

fn local(certs_d: Option<&Path>) -> Local {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    let store = Arc::new(ImageStore::open(&root).unwrap());
    let config = RegistryConfig {
        certs_dirs: certs_d.map(|p| vec![p.to_path_buf()]).unwrap_or_default(),
        download_retries: 3,
        ..RegistryConfig::default()
    };
    let registry = Registry::new(config, &root);
    Local {
        _dir: dir,
        root,
        store,
        registry,
    }
}

fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Pseudo-random, incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An image of `layers` (plain or gzip tars) for `arch`, tagged `tag` if given.
fn make_image(
    store: &ImageStore,
    layers: &[Vec<u8>],
    arch: &str,
    tag: Option<&str>,
) -> ImageRecord {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| store.add_layer(&l[..], None).unwrap().diff_id)
        .collect();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": NOW,
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| serde_json::json!({"created": NOW, "created_by": "test"})).collect::<Vec<_>>(),
    });
    let rec = store
        .add_image(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    if let Some(t) = tag {
        store.tag(&rec.id, &t.parse().unwrap(), NOW).unwrap();
    }
    rec
}

type Hook = Box<dyn Fn(&Progress) + Send + Sync>;

/// Collects progress; optionally runs a hook on each event.
#[derive(Default)]
struct Collect {
    events: Mutex<Vec<Progress>>,
    hook: Option<Hook>,
}

impl ProgressSink for Collect {
    fn send(&self, event: Progress) {
        if let Some(h) = &self.hook {
            h(&event);
        }
        self.events.lock().unwrap().push(event);
    }
}

impl Collect {
    fn statuses(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                Progress::Status(s) => s.clone(),
                Progress::Named { id, status } => format!("{id}: {status}"),
                Progress::Layer { id, status, .. } => format!("{id}: {status}"),
                Progress::PushResult { tag, digest, size } => format!("aux {tag} {digest} {size}"),
            })
            .collect()
    }

    fn has(&self, needle: &str) -> bool {
        self.statuses().iter().any(|s| s.contains(needle))
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse_docker_ref(s).unwrap()
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64", "amd64").unwrap()
}

async fn push(
    l: &Local,
    name: &str,
    auth: &RegistryAuth,
) -> (Result<Digest, RegistryError>, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let r = l
        .registry
        .push(
            l.store.clone(),
            &reference(name),
            auth,
            sink.clone(),
            NOW.into(),
        )
        .await
        .map(|o| o.tags[0].digest);
    (r, sink)
}

async fn pull_with(
    l: &Local,
    name: &str,
    platform: &Platform,
    auth: &RegistryAuth,
    sink: Arc<Collect>,
) -> Result<berth_image::registry::PullOutcome, RegistryError> {
    let plan: PullPlan = l
        .registry
        .prepare_pull(&reference(name), platform, auth)
        .await?;
    plan.run(l.store.clone(), sink, NOW.into()).await
}

async fn pull(
    l: &Local,
    name: &str,
    auth: &RegistryAuth,
) -> (
    Result<berth_image::registry::PullOutcome, RegistryError>,
    Arc<Collect>,
) {
    let sink = Arc::new(Collect::default());
    let r = pull_with(l, name, &amd64(), auth, sink.clone()).await;
    (r, sink)
}

fn remove_image(l: &Local, name: &str) {
    l.store.delete(name, true, false, &|_| None).unwrap();
}

/// Nothing at all in the store: no image, layer, blob or temp file.
fn assert_store_empty(l: &Local) {
    assert_eq!(l.store.count(), 0, "images left");
    assert_eq!(l.store.blobs().list().unwrap(), vec![], "blobs left");
    let layers: Vec<_> = std::fs::read_dir(l.root.join("layers")).unwrap().collect();
    assert!(layers.is_empty(), "layer dirs left: {layers:?}");
    let tmp: Vec<_> = std::fs::read_dir(l.root.join("blobs/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

fn anonymous() -> RegistryAuth {
    RegistryAuth::default()
}

fn basic(user: &str, password: &str) -> RegistryAuth {
    RegistryAuth {
        username: user.into(),
        password: password.into(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Tests against docker-registry.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delete_pull_round_trip_with_mounts_and_shared_layers() {
    if !have_registry() {
        return;
    }
    let reg = RegistryProc::start(RegOpts::default());
    let l = local(None);
    let base = tar_of(&[
        ("etc/os-release", b"NAME=test\n".to_vec()),
        ("bin/blob", noise(300_000, 1)),
    ]);
    let top = gzip(&tar_of(&[("app/data", noise(200_000, 2))]));
    let name = format!("{}/test/app:v1", reg.host());
    let rec = make_image(&l.store, &[base.clone(), top], "amd64", Some(&name));

    let (digest, sink) = push(&l, &name, &anonymous()).await;
    let digest = digest.unwrap();
    let s = sink.statuses();
    assert_eq!(
        s[0],
        format!("The push refers to repository [{}/test/app]", reg.host())
    );
    assert_eq!(
        s.iter().filter(|x| x.ends_with(": Pushed")).count(),
        2,
        "{s:?}"
    );
    assert!(sink.has(&format!("v1: digest: {digest} size: ")), "{s:?}");
    assert!(sink.has("Preparing"));
    // The plain layer was gzipped on the way and the digest remembered.
    let base_meta = l.store.layer(&rec.diff_ids[0]).unwrap();
    assert!(base_meta.pushed_gzip.is_some());
    let (_, digests) = l.store.references_of(&rec.id);
    assert!(
        digests.contains(&format!("{}/test/app@{digest}", reg.host())),
        "{digests:?}"
    );

    // Pushing again sends nothing.
    let (again, sink) = push(&l, &name, &anonymous()).await;
    assert_eq!(again.unwrap(), digest);
    assert_eq!(
        sink.statuses()
            .iter()
            .filter(|x| x.ends_with("Layer already exists"))
            .count(),
        2
    );

    // Another repository on the same registry mounts instead of uploading.
    let other = format!("{}/test/other:v1", reg.host());
    l.store.tag(&rec.id, &other.parse().unwrap(), NOW).unwrap();
    let (d2, sink) = push(&l, &other, &anonymous()).await;
    assert_eq!(d2.unwrap(), digest, "same image, same manifest");
    let s = sink.statuses();
    assert_eq!(
        s.iter()
            .filter(|x| x.ends_with("Mounted from test/app"))
            .count(),
        2,
        "{s:?}"
    );

    // Remove everything locally and pull it back.
    remove_image(&l, &rec.id);
    assert_store_empty(&l);
    let (outcome, sink) = pull(&l, &name, &anonymous()).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.image_id, rec.id, "config digest differs");
    assert_eq!(outcome.digest, digest);
    assert!(!outcome.up_to_date);
    let back = l.store.resolve(&name).unwrap();
    assert_eq!(back.diff_ids, rec.diff_ids);
    let s = sink.statuses();
    assert_eq!(s[0], "v1: Pulling from test/app");
    for want in ["Pulling fs layer", "Download complete", "Pull complete"] {
        assert_eq!(
            s.iter().filter(|x| x.ends_with(want)).count(),
            2,
            "{want}: {s:?}"
        );
    }
    assert!(sink.has(&format!("Digest: {digest}")));
    assert!(sink.has(&format!(
        "Status: Downloaded newer image for {}/test/app:v1",
        reg.host()
    )));
    assert!(l
        .store
        .resolve(&format!("{}/test/app@{digest}", reg.host()))
        .is_ok());
    // Unpacked content is there.
    let dirs = l.store.layer_diff_dirs(&back.id).unwrap();
    assert_eq!(
        std::fs::read(dirs[0].join("etc/os-release")).unwrap(),
        b"NAME=test\n"
    );

    // Again: up to date, nothing fetched.
    let (outcome, sink) = pull(&l, &name, &anonymous()).await;
    assert!(outcome.unwrap().up_to_date);
    assert!(
        sink.has("Status: Image is up to date for"),
        "{:?}",
        sink.statuses()
    );
    assert!(!sink.has("Pulling fs layer"));
    // An image the store has says nothing of its layers (dockerd's `pullSchema2`: the
    // image exists, "no need to pull anything"), here nor under a new name.
    assert!(!sink.has("Already exists"), "{:?}", sink.statuses());
    let renamed = format!("{}/test/app:renamed", reg.host());
    l.store
        .tag(&rec.id, &renamed.parse().unwrap(), NOW)
        .unwrap();
    l.store.delete(&name, false, false, &|_| None).unwrap();
    let (outcome, sink) = pull(&l, &name, &anonymous()).await;
    assert!(!outcome.unwrap().up_to_date);
    assert_eq!(
        sink.statuses().len(),
        3,
        "Pulling from, Digest, Status: {:?}",
        sink.statuses()
    );
    assert!(sink.has("Status: Downloaded newer image for"));
    l.store.delete(&renamed, false, false, &|_| None).unwrap();

    // Pull by digest.
    let (outcome, sink) = pull(
        &l,
        &format!("{}/test/app@{digest}", reg.host()),
        &anonymous(),
    )
    .await;
    assert_eq!(outcome.unwrap().image_id, rec.id);
    assert!(sink.statuses()[0].starts_with(&format!("{}/test/app@sha256:", reg.host())));

    // A second image sharing the base layer: that layer "Already exists" on pull.
    let shared = format!("{}/test/shared:v1", reg.host());
    let rec2 = make_image(
        &l.store,
        &[base, tar_of(&[("x", b"y".to_vec())])],
        "amd64",
        Some(&shared),
    );
    push(&l, &shared, &anonymous()).await.0.unwrap();
    l.store.delete(&shared, true, false, &|_| None).unwrap();
    assert!(
        l.store.layer(&rec2.diff_ids[0]).is_some(),
        "shared layer kept"
    );
    let (outcome, sink) = pull(&l, &shared, &anonymous()).await;
    assert_eq!(outcome.unwrap().image_id, rec2.id);
    assert_eq!(
        sink.statuses()
            .iter()
            .filter(|x| x.ends_with("Already exists"))
            .count(),
        1
    );

    // Missing tags and repositories: dockerd's wording.
    let (err, _) = pull(&l, &format!("{}/test/app:nope", reg.host()), &anonymous()).await;
    let err = err.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "manifest for {}/test/app:nope not found: manifest unknown: manifest unknown",
            reg.host()
        )
    );
    let (err, _) = push(
        &l,
        &format!("{}/test/app:missing", reg.host()),
        &anonymous(),
    )
    .await;
    assert_eq!(
        err.unwrap_err().to_string(),
        format!("tag does not exist: {}/test/app:missing", reg.host())
    );
    let (err, _) = push(&l, &format!("{}/test/absent:v1", reg.host()), &anonymous()).await;
    assert_eq!(
        err.unwrap_err().to_string(),
        format!(
            "An image does not exist locally with the tag: {}/test/absent",
            reg.host()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_basic_auth_client_certs_and_wrong_password() {
    if !have_registry() {
        return;
    }
    let tls_dir = tempfile::tempdir().unwrap();
    berth_tls::generate::init(&berth_tls::generate::InitOptions {
        dir: tls_dir.path().join("ca"),
        sans: vec!["127.0.0.1".into()],
        client_name: "berth-test".into(),
        days: 2,
        force: false,
    })
    .unwrap();
    let ca = tls_dir.path().join("ca");
    let htpasswd = tls_dir.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let reg = RegistryProc::start(RegOpts {
        tls: Some((ca.join("server-cert.pem"), ca.join("server-key.pem"))),
        client_ca: Some(ca.join("ca.pem")),
        htpasswd: Some(htpasswd),
    });

    // Without the CA the registry is not trusted; plain HTTP to it fails too.
    let untrusting = local(None);
    let err = untrusting
        .registry
        .login(&reg.host(), &basic(USER, PASSWORD))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Transport(_) | RegistryError::Http(_)),
        "{err:?}"
    );

    let certs_d = tls_dir.path().join("certs.d");
    let host_dir = certs_d.join(reg.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(ca.join("ca.pem"), host_dir.join("ca.crt")).unwrap();
    std::fs::copy(ca.join("cert.pem"), host_dir.join("client.cert")).unwrap();
    std::fs::copy(ca.join("key.pem"), host_dir.join("client.key")).unwrap();
    let l = local(Some(&certs_d));

    l.registry
        .login(&reg.host(), &basic(USER, PASSWORD))
        .await
        .unwrap();
    l.registry
        .login(&format!("https://{}", reg.host()), &basic(USER, PASSWORD))
        .await
        .unwrap();
    let err = l
        .registry
        .login(&reg.host(), &basic(USER, "wrong"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "login attempt to https://{}/v2/ failed with status: 401 Unauthorized",
            reg.host()
        )
    );
    assert!(!err.to_string().contains("wrong"));

    let name = format!("{}/secure/app:1.0", reg.host());
    let rec = make_image(
        &l.store,
        &[tar_of(&[("f", noise(50_000, 3))])],
        "amd64",
        Some(&name),
    );
    let (err, _) = push(&l, &name, &anonymous()).await;
    assert_eq!(err.unwrap_err().to_string(), "no basic auth credentials");
    let (err, _) = push(&l, &name, &basic(USER, "wrong")).await;
    assert!(matches!(err.unwrap_err(), RegistryError::Unauthorized(_)));
    let (digest, _) = push(&l, &name, &basic(USER, PASSWORD)).await;
    let digest = digest.unwrap();

    remove_image(&l, &rec.id);
    assert_store_empty(&l);
    let (err, _) = pull(&l, &name, &basic(USER, "wrong")).await;
    let err = err.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized(_)), "{err:?}");
    assert_eq!(err.to_string(), "unauthorized: authentication required");
    assert_store_empty(&l);

    let (outcome, _) = pull(&l, &name, &basic(USER, PASSWORD)).await;
    let outcome = outcome.unwrap();
    assert_eq!(
        (outcome.image_id.as_str(), outcome.digest),
        (rec.id.as_str(), digest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blob_is_refused_and_leaves_nothing() {
    if !have_registry() {
        return;
    }
    let reg = RegistryProc::start(RegOpts::default());
    let l = local(None);
    let name = format!("{}/test/corrupt:v1", reg.host());
    let layer = gzip(&tar_of(&[("data", noise(400_000, 4))]));
    let layer_digest = Digest::of(&layer);
    let rec = make_image(
        &l.store,
        &[tar_of(&[("ok", b"fine".to_vec())]), layer.clone()],
        "amd64",
        Some(&name),
    );
    push(&l, &name, &anonymous()).await.0.unwrap();
    remove_image(&l, &rec.id);

    // Flip bytes in the middle of the registry's copy; the size stays the same.
    let path = reg.blob_path(&layer_digest);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &data).unwrap();

    let (err, sink) = pull(&l, &name, &anonymous()).await;
    match err.unwrap_err() {
        RegistryError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, layer_digest);
            assert_eq!(actual, Digest::of(&data));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!sink.has("Status:"));
    assert_store_empty(&l);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_index_pulls_the_requested_platform_and_odd_layers_are_refused() {
    if !have_registry() {
        return;
    }
    let reg = RegistryProc::start(RegOpts::default());
    let l = local(None);
    let amd_name = format!("{}/multi/app:amd", reg.host());
    let arm_name = format!("{}/multi/app:arm", reg.host());
    let amd = make_image(
        &l.store,
        &[gzip(&tar_of(&[("arch", b"amd64".to_vec())]))],
        "amd64",
        Some(&amd_name),
    );
    let arm = make_image(
        &l.store,
        &[gzip(&tar_of(&[("arch", b"arm64".to_vec())]))],
        "arm64",
        Some(&arm_name),
    );
    let amd_digest = push(&l, &amd_name, &anonymous()).await.0.unwrap();
    push(&l, &arm_name, &anonymous()).await.0.unwrap();

    // Re-publish the arm64 image as an OCI manifest over the same blobs.
    let arm_layer = l.store.layer(&arm.diff_ids[0]).unwrap();
    let arm_config = l.store.config_bytes(&arm.id).unwrap();
    let oci_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": arm.id, "size": arm_config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": arm_layer.blob, "size": arm_layer.blob_size}],
    }))
    .unwrap();
    let http = reqwest::Client::new();
    let put = |tag: &str, media_type: &str, body: Vec<u8>| {
        let url = format!("http://{}/v2/multi/app/manifests/{tag}", reg.host());
        let req = http.put(url).header("Content-Type", media_type).body(body);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        }
    };
    put(
        "arm-oci",
        "application/vnd.oci.image.manifest.v1+json",
        oci_manifest.clone(),
    )
    .await;
    let amd_manifest_size = reqwest::Client::new()
        .get(format!("http://{}/v2/multi/app/manifests/amd", reg.host()))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&oci_manifest).to_string(), "size": oci_manifest.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": amd_digest.to_string(), "size": amd_manifest_size,
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }))
    .unwrap();
    let index_digest = Digest::of(&index);
    put(
        "multi",
        "application/vnd.oci.image.index.v1+json",
        index.clone(),
    )
    .await;

    remove_image(&l, &amd.id);
    remove_image(&l, &arm.id);
    assert_store_empty(&l);
    let multi = format!("{}/multi/app:multi", reg.host());
    let (outcome, _) = pull(&l, &multi, &anonymous()).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.image_id, amd.id, "amd64 entry chosen");
    assert_eq!(
        outcome.digest, index_digest,
        "the index digest is the repo digest"
    );
    let (_, digests) = l.store.references_of(&amd.id);
    assert!(digests.contains(&format!("{}/multi/app@{index_digest}", reg.host())));

    let sink = Arc::new(Collect::default());
    let arm64 = Platform::parse("linux/arm64", "amd64").unwrap();
    let outcome = pull_with(&l, &multi, &arm64, &anonymous(), sink)
        .await
        .unwrap();
    assert_eq!(
        outcome.image_id, arm.id,
        "arm64 entry chosen (OCI manifest)"
    );

    let s390x = Platform::parse("linux/s390x", "amd64").unwrap();
    let err = l
        .registry
        .prepare_pull(&reference(&multi), &s390x, &anonymous())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );

    let info = l
        .registry
        .inspect(&reference(&multi), &anonymous())
        .await
        .unwrap();
    assert_eq!(info.digest, index_digest);
    assert_eq!(info.media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(info.size, index.len() as u64);
    assert_eq!(info.platforms.len(), 2);
    let info = l
        .registry
        .inspect(&reference(&amd_name), &anonymous())
        .await
        .unwrap();
    assert_eq!(info.platforms[0].architecture, "amd64");

    // An artifact the registry accepts but that is no image: a Helm chart.
    let chart = b"chart".to_vec();
    let chart_config = b"{}".to_vec();
    for blob in [&chart, &chart_config] {
        let loc = http
            .post(format!("http://{}/v2/multi/app/blobs/uploads/", reg.host()))
            .send()
            .await
            .unwrap()
            .headers()["location"]
            .to_str()
            .unwrap()
            .to_string();
        let url = reqwest::Url::parse(&format!("http://{}", reg.host()))
            .unwrap()
            .join(&loc)
            .unwrap();
        let sep = if url.query().is_some() { '&' } else { '?' };
        let resp = http
            .put(format!("{url}{sep}digest={}", Digest::of(blob)))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let helm = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": Digest::of(&chart_config).to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": Digest::of(&chart).to_string(), "size": 5}],
    }))
    .unwrap();
    put("chart", "application/vnd.oci.image.manifest.v1+json", helm).await;
    let err = l
        .registry
        .prepare_pull(
            &reference(&format!("{}/multi/app:chart", reg.host())),
            &amd64(),
            &anonymous(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::UnsupportedMediaType { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_killed_mid_pull_then_pull_again() {
    if !have_registry() {
        return;
    }
    let reg = Arc::new(Mutex::new(RegistryProc::start(RegOpts::default())));
    let host = reg.lock().unwrap().host();
    let l = local(None);
    let name = format!("{host}/test/big:v1");
    let rec = make_image(
        &l.store,
        &[
            tar_of(&[("small", b"s".to_vec())]),
            gzip(&tar_of(&[("big", noise(32 << 20, 5))])),
        ],
        "amd64",
        Some(&name),
    );
    push(&l, &name, &anonymous()).await.0.unwrap();
    remove_image(&l, &rec.id);
    assert_store_empty(&l);

    let killed = Arc::new(AtomicBool::new(false));
    let sink = Arc::new(Collect {
        hook: Some(Box::new({
            let reg = reg.clone();
            let killed = killed.clone();
            move |e| {
                if matches!(e, Progress::Layer { status, .. } if status == "Downloading")
                    && !killed.swap(true, Ordering::SeqCst)
                {
                    reg.lock().unwrap().kill();
                }
            }
        })),
        ..Default::default()
    });
    let err = pull_with(&l, &name, &amd64(), &anonymous(), sink.clone())
        .await
        .unwrap_err();
    assert!(killed.load(Ordering::SeqCst), "registry was never killed");
    assert!(matches!(err, RegistryError::Transport(_)), "{err:?}");
    assert!(!sink.has("Status:"));
    assert_store_empty(&l);

    reg.lock().unwrap().restart();
    let (outcome, _) = pull(&l, &name, &anonymous()).await;
    assert_eq!(outcome.unwrap().image_id, rec.id);
    // The store survives a reopen intact.
    drop(l.store);
    let reopened = ImageStore::open(&l.root).unwrap();
    assert_eq!(reopened.resolve(&name).unwrap().diff_ids, rec.diff_ids);
}

// ---------------------------------------------------------------------------------------
// Protocol corners with hand-made servers.

/// Forwards to `upstream`; the first connection that has carried `cut_after` bytes back
/// to the client is cut. Records whether a later request asked for a `Range`.
struct CuttingProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    saw_range: Arc<AtomicBool>,
}

fn cutting_proxy(upstream: u16, cut_after: usize) -> CuttingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicBool::new(false));
    let saw_range = Arc::new(AtomicBool::new(false));
    let (c, r) = (cut.clone(), saw_range.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            let (c, r) = (c.clone(), r.clone());
            let (mut client_r, mut up_w) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = client_r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if String::from_utf8_lossy(&buf[..n])
                        .to_ascii_lowercase()
                        .contains("range: bytes=")
                    {
                        r.store(true, Ordering::SeqCst);
                    }
                    if up_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = up_w.shutdown(Shutdown::Write);
            });
            let (mut up_r, mut client_w) = (up, client);
            std::thread::spawn(move || {
                let mut sent = 0usize;
                let mut buf = [0u8; 16384];
                while let Ok(n) = up_r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if client_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                    if sent > cut_after && !c.swap(true, Ordering::SeqCst) {
                        let _ = client_w.shutdown(Shutdown::Both);
                        let _ = up_r.shutdown(Shutdown::Both);
                        break;
                    }
                }
                let _ = client_w.shutdown(Shutdown::Write);
            });
        }
    });
    CuttingProxy {
        port,
        cut,
        saw_range,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_download_resumes_with_range() {
    if !have_registry() {
        return;
    }
    let reg = RegistryProc::start(RegOpts::default());
    let l = local(None);
    let name = format!("{}/test/resume:v1", reg.host());
    let rec = make_image(
        &l.store,
        &[gzip(&tar_of(&[("big", noise(4 << 20, 6))]))],
        "amd64",
        Some(&name),
    );
    push(&l, &name, &anonymous()).await.0.unwrap();
    remove_image(&l, &rec.id);

    let proxy = cutting_proxy(reg.port, 1 << 20);
    let via_proxy = format!("127.0.0.1:{}/test/resume:v1", proxy.port);
    let (outcome, _) = pull(&l, &via_proxy, &anonymous()).await;
    assert_eq!(outcome.unwrap().image_id, rec.id);
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the proxy never cut a connection"
    );
    assert!(
        proxy.saw_range.load(Ordering::SeqCst),
        "no Range request after the cut"
    );
}

/// A minimal HTTP/1.1 server: one request per connection, answered by `handler`
/// (method, path, headers) → (status, headers, body).
type Handler =
    dyn Fn(&str, &str, &[(String, String)]) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync;

fn fake_server(handler: Arc<Handler>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&raw).to_string();
                let mut lines = text.split("\r\n");
                let mut first = lines.next().unwrap_or_default().split(' ');
                let (method, path) = (
                    first.next().unwrap_or_default(),
                    first.next().unwrap_or_default(),
                );
                let headers: Vec<(String, String)> = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let (status, extra, body) = handler(method, path, &headers);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    head += &format!("{k}: {v}\r\n");
                }
                head += "\r\n";
                let _ = conn.write_all(head.as_bytes());
                if method != "HEAD" {
                    let _ = conn.write_all(&body);
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_cached_and_unknown_media_types_refused() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let seen_scopes = Arc::new(Mutex::new(BTreeSet::new()));
    let port = Arc::new(Mutex::new(0u16));
    let handler: Arc<Handler> = {
        let (token_requests, seen_scopes, port) =
            (token_requests.clone(), seen_scopes.clone(), port.clone());
        Arc::new(
            move |method: &str, path: &str, headers: &[(String, String)]| {
                let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let challenge = || {
                    let p = *port.lock().unwrap();
                    vec![(
                    "WWW-Authenticate".to_string(),
                    format!("Bearer realm=\"http://127.0.0.1:{p}/token\",service=\"fake\",scope=\"repository:x/y:pull\""),
                )]
                };
                if path.starts_with("/token") {
                    token_requests.fetch_add(1, Ordering::SeqCst);
                    for pair in path.split(['?', '&']).filter(|p| p.starts_with("scope=")) {
                        seen_scopes.lock().unwrap().insert(pair.to_string());
                    }
                    // user:pass base64 = dXNlcjpwYXNz
                    if header("authorization").as_deref() != Some("Basic dXNlcjpwYXNz") {
                        return (
                            401,
                            vec![],
                            br#"{"details":"incorrect username or password"}"#.to_vec(),
                        );
                    }
                    return (
                        200,
                        vec![],
                        br#"{"token":"T-123","expires_in":300}"#.to_vec(),
                    );
                }
                if header("authorization").as_deref() != Some("Bearer T-123") {
                    return (401, challenge(), br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec());
                }
                match (method, path) {
                ("GET", "/v2/") => (200, vec![], b"{}".to_vec()),
                ("GET", "/v2/x/y/manifests/latest") => (
                    200,
                    vec![("Content-Type".into(), "application/vnd.example.unknown+json".into())],
                    br#"{"schemaVersion":2}"#.to_vec(),
                ),
                _ => (404, vec![], br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#.to_vec()),
            }
            },
        )
    };
    let p = fake_server(handler);
    *port.lock().unwrap() = p;
    let l = local(None);
    let name = format!("127.0.0.1:{p}/x/y");
    let good = basic("user", "pass");

    for _ in 0..2 {
        let err = l
            .registry
            .prepare_pull(&reference(&name), &amd64(), &good)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::UnsupportedMediaType { .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(&format!(
            "unsupported manifest media type \"application/vnd.example.unknown+json\" for 127.0.0.1:{p}/x/y:latest"
        )), "{err}");
    }
    assert_eq!(token_requests.load(Ordering::SeqCst), 1, "token not cached");
    assert!(
        seen_scopes
            .lock()
            .unwrap()
            .contains("scope=repository%3Ax%2Fy%3Apull"),
        "{seen_scopes:?}"
    );

    // Other credentials do not reuse that token.
    let err = l
        .registry
        .prepare_pull(&reference(&name), &amd64(), &basic("user", "bad"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unauthorized: incorrect username or password"
    );
    assert_eq!(token_requests.load(Ordering::SeqCst), 2);

    l.registry
        .login(&format!("http://127.0.0.1:{p}"), &good)
        .await
        .unwrap();
    let err = l
        .registry
        .login(&format!("127.0.0.1:{p}"), &basic("user", "bad"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized(_)));

    // A registry token is used as is, without asking the realm.
    let before = token_requests.load(Ordering::SeqCst);
    let with_token = RegistryAuth {
        registry_token: "T-123".into(),
        ..Default::default()
    };
    let err = l
        .registry
        .prepare_pull(&reference(&format!("{name}:other")), &amd64(), &with_token)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)), "{err:?}");
    assert_eq!(token_requests.load(Ordering::SeqCst), before);
}
