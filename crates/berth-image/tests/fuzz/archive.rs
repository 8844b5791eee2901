//! `docker load`'s archive reading: archives shaped like `docker save` output with hostile
//! `manifest.json`, `index.json`, `repositories` and image configs (wrong types, missing
//! and extra fields, bad tags, paths out of the archive, link loops), and arbitrary bytes,
//! never panic, never write outside the store, and leave a store that opens again.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use berth_image::archive::load;
use berth_image::store::ImageStore;
use berth_image::Digest;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const NOW: &str = "2024-05-01T00:00:00Z";

/// A JSON value whose objects use the keys `docker load` reads, so that the parser's
/// paths are reached, with everything else arbitrary.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        "\\PC{0,20}".prop_map(Value::String),
        prop::sample::select(vec![
            "layers",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:zz",
            "busybox:latest",
            "Busybox",
            "a:b:c",
            "../../etc/passwd",
            "/etc/passwd",
            "layer.tar",
            "blobs/sha256/",
            "loop",
            "",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(vec![
                "Config", "RepoTags", "Layers", "rootfs", "type", "diff_ids", "config",
                "architecture", "os", "history", "manifests", "schemaVersion", "mediaType",
                "digest", "size", "annotations", "Parent", "LayerSources",
            ])
            .prop_map(String::from),
            1 => "\\PC{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One member of the archive.
#[derive(Debug, Clone)]
enum Member {
    File(String, Vec<u8>),
    Symlink(String, String),
    Hardlink(String, String),
    Dir(String),
}

fn tar_of(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        let (name, kind, data, link): (&str, _, &[u8], Option<&str>) = match m {
            Member::File(n, d) => (n, tar::EntryType::Regular, d, None),
            Member::Symlink(n, t) => (n, tar::EntryType::Symlink, &[], Some(t)),
            Member::Hardlink(n, t) => (n, tar::EntryType::Link, &[], Some(t)),
            Member::Dir(n) => (n, tar::EntryType::Directory, &[], None),
        };
        // Raw names: `Builder`'s setters refuse `..`, which is what is under test.
        let field = &mut h.as_old_mut().name;
        let n = name.len().min(field.len());
        field[..n].copy_from_slice(&name.as_bytes()[..n]);
        if let Some(t) = link {
            let field = &mut h.as_old_mut().linkname;
            let n = t.len().min(field.len());
            field[..n].copy_from_slice(&t.as_bytes()[..n]);
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-file layer and its diffID.
fn layer(content: &[u8]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, content).unwrap();
    let t = b.into_inner().unwrap();
    let d = Digest::of(&t);
    (t, d)
}

/// A well-formed archive: one layer, its config, a manifest naming them.
#[derive(Debug, Clone)]
struct Save {
    members: Vec<Member>,
    config_path: String,
    layer_path: String,
    config: Value,
    manifest: Value,
}

fn good_save(content: Vec<u8>, tags: Vec<String>) -> Save {
    let (tar, diff_id) = layer(&content);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "config": {"Cmd": ["sh"]},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_path = format!("blobs/sha256/{}", Digest::of(&config_bytes).hex());
    let layer_path = format!("blobs/sha256/{}", diff_id.hex());
    let manifest = json!([{"Config": config_path, "RepoTags": tags, "Layers": [layer_path]}]);
    Save {
        members: vec![
            Member::File(layer_path.clone(), tar),
            Member::File(config_path.clone(), config_bytes),
        ],
        config_path,
        layer_path,
        config,
        manifest,
    }
}

/// Ways to break a well-formed archive.
#[derive(Debug, Clone)]
enum Damage {
    ManifestValue(Value),
    ManifestField(String, Value),
    ConfigValue(Value),
    ConfigField(String, Value),
    Member(Member),
    LinkLoop,
    DropLayer,
    ManifestBytes(Vec<u8>),
    Index(Value),
    /// The layer replaced by a hostile tar, with the config naming its diffID so that
    /// the load goes on past the layer.
    Layer(Vec<super::unpack::Member>, bool),
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    let field = prop::sample::select(vec!["Config", "RepoTags", "Layers", "rootfs", "config"])
        .prop_map(String::from);
    let path = prop::sample::select(vec![
        "manifest.json",
        "index.json",
        "repositories",
        "oci-layout",
        "../manifest.json",
        "/manifest.json",
        "a/../manifest.json",
        "blobs/sha256/zz",
        "blobs/sha256/../../x",
        "blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "loop",
        "x.json",
    ])
    .prop_map(String::from);
    prop_oneof![
        arb_json().prop_map(Damage::ManifestValue),
        (field.clone(), arb_json()).prop_map(|(f, v)| Damage::ManifestField(f, v)),
        arb_json().prop_map(Damage::ConfigValue),
        (field, arb_json()).prop_map(|(f, v)| Damage::ConfigField(f, v)),
        (path.clone(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(p, d)| Damage::Member(Member::File(p, d))),
        (path.clone(), path.clone()).prop_map(|(p, t)| Damage::Member(Member::Symlink(p, t))),
        (path.clone(), path.clone()).prop_map(|(p, t)| Damage::Member(Member::Hardlink(p, t))),
        path.prop_map(|p| Damage::Member(Member::Dir(p))),
        Just(Damage::LinkLoop),
        Just(Damage::DropLayer),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Damage::ManifestBytes),
        arb_json().prop_map(Damage::Index),
        (
            prop::collection::vec(super::unpack::member_strategy(), 1..6),
            any::<bool>()
        )
            .prop_map(|(m, end)| Damage::Layer(m, end)),
    ]
}

fn build(save: &Save, damage: &[Damage]) -> Vec<u8> {
    let mut members = save.members.clone();
    let mut manifest = save.manifest.clone();
    let mut config = save.config.clone();
    let mut manifest_bytes = None;
    for d in damage {
        match d {
            Damage::ManifestValue(v) => manifest = v.clone(),
            Damage::ManifestField(f, v) => {
                if let Some(m) = manifest.get_mut(0).and_then(Value::as_object_mut) {
                    m.insert(f.clone(), v.clone());
                }
            }
            Damage::ConfigValue(v) => config = v.clone(),
            Damage::ConfigField(f, v) => {
                if let Some(m) = config.as_object_mut() {
                    m.insert(f.clone(), v.clone());
                }
            }
            Damage::Member(m) => members.push(m.clone()),
            Damage::LinkLoop => {
                members.push(Member::Symlink("loop".into(), "loop2".into()));
                members.push(Member::Symlink("loop2".into(), "loop".into()));
                if let Some(m) = manifest.get_mut(0).and_then(Value::as_object_mut) {
                    m.insert("Config".into(), json!("loop"));
                }
            }
            Damage::DropLayer => {
                members.retain(|m| !matches!(m, Member::File(p, _) if *p == save.layer_path))
            }
            Damage::ManifestBytes(b) => manifest_bytes = Some(b.clone()),
            Damage::Layer(m, end) => {
                let tar = super::unpack::build(m, Path::new("/nonexistent-outer"), *end);
                let path = format!("blobs/sha256/{}", Digest::of(&tar).hex());
                if let Some(c) = config.as_object_mut() {
                    let diff_ids = json!([Digest::of(&tar).to_string()]);
                    c.insert(
                        "rootfs".into(),
                        json!({"type": "layers", "diff_ids": diff_ids}),
                    );
                }
                if let Some(m) = manifest.get_mut(0).and_then(Value::as_object_mut) {
                    m.insert("Layers".into(), json!([path]));
                }
                members.push(Member::File(path, tar));
            }
            Damage::Index(v) => members.push(Member::File(
                "index.json".into(),
                serde_json::to_vec(v).unwrap(),
            )),
        }
    }
    // The config moves to its new digest's path (and the manifest follows, unless it was
    // damaged), so that a changed config is read rather than refused for its digest.
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_path = format!("blobs/sha256/{}", Digest::of(&config_bytes).hex());
    for m in members.iter_mut() {
        if let Member::File(p, data) = m {
            if *p == save.config_path {
                *p = config_path.clone();
                *data = config_bytes.clone();
            }
        }
    }
    if let Some(m) = manifest.get_mut(0).and_then(Value::as_object_mut) {
        if m.get("Config") == Some(&json!(save.config_path)) {
            m.insert("Config".into(), json!(config_path));
        }
    }
    members.push(Member::File(
        "manifest.json".into(),
        manifest_bytes.unwrap_or_else(|| serde_json::to_vec(&manifest).unwrap()),
    ));
    tar_of(&members)
}

/// Loads `data` into a fresh store and checks what must hold whatever the input.
fn check_load(data: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let result = load(&store, data, NOW);
    let names: BTreeSet<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "something was written beside the store");
    if let Ok(images) = &result {
        for img in images {
            // Every layer replays as the bytes its diffID names (what save and push send).
            for d in &img.image.diff_ids {
                let (mut r, size) = store.open_layer_tar(d).unwrap();
                let mut tar = Vec::new();
                std::io::Read::read_to_end(&mut r, &mut tar)
                    .unwrap_or_else(|e| panic!("layer {d} does not replay: {e}"));
                assert_eq!(tar.len() as u64, size);
                assert_eq!(Digest::of(&tar).to_string(), *d);
            }
            for t in &img.tags {
                let r = store.resolve(t).unwrap_or_else(|e| panic!("tag {t}: {e}"));
                assert_eq!(r.id, img.image.id);
            }
        }
    }
    drop(store);
    let again = ImageStore::open(&root).expect("the store opens again");
    assert!(again.list().len() <= 1);
}

proptest! {
    #![proptest_config(super::config(32))]

    #[test]
    fn hostile_archives_never_panic(
        content in prop::collection::vec(any::<u8>(), 0..64),
        tags in prop::collection::vec(
            prop_oneof![
                "[a-z]{1,6}(:[a-z0-9]{1,4})?",
                "\\PC{0,12}",
                Just("a:b:c".to_string()),
                Just("e".repeat(64)),
            ],
            0..3,
        ),
        damage in prop::collection::vec(damage_strategy(), 0..3),
    ) {
        let save = good_save(content, tags);
        check_load(&build(&save, &damage));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_load(&data);
    }
}

/// The seed corpus: every file in `tests/corpus/load/` is an archive to load.
#[test]
fn load_corpus() {
    let mut n = 0;
    for e in fs::read_dir(super::corpus("load")).unwrap() {
        check_load(&fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 3, "corpus has only {n} archives");
}

/// A well-formed archive loads (so that the damaged ones test more than the first check).
#[test]
fn undamaged_archive_loads() {
    let save = good_save(b"hello".to_vec(), vec!["fuzz:1".into()]);
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let images = load(&store, &build(&save, &[])[..], NOW).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].tags, ["fuzz:1"]);
}
