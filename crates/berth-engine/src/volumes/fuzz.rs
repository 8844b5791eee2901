//! Bounded fuzzing (proptest) of `POST /volumes/create`: any JSON body is decoded as the
//! server decodes it, checked as `volume_create` checks it and created in a scratch data
//! root; nothing panics, nothing lands outside `<data-root>/volumes/<name>`, and an
//! accepted volume reads back the same. Seeds: `tests/corpus/volume_create.jsonl`.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{create, create_name, get, to_json, CreateVolume};
use crate::fuzz_support::{arb_json, config, corpus, mutated};

const KEYS: &[&str] = &[
    "Name",
    "Driver",
    "DriverOpts",
    "Labels",
    "type",
    "device",
    "o",
    "size",
];

const PATHS: &[&str] = &[
    "Name",
    "Driver",
    "DriverOpts",
    "DriverOpts|type",
    "DriverOpts|device",
    "DriverOpts|o",
    "DriverOpts|size",
    "DriverOpts|x",
    "Labels",
    "Labels|a",
];

fn check(body: &Value) {
    // The server's decoding (`routes/volumes.rs`): the body's bytes into `CreateVolume`.
    let bytes = serde_json::to_vec(body).unwrap();
    let Ok(req) = serde_json::from_slice::<CreateVolume>(&bytes) else {
        return;
    };
    let Ok(name) = create_name(&req) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let labels = Some(req.labels.clone().unwrap_or_default());
    let result = create(&root, &name, labels.clone(), req.driver_opts.clone(), None);
    let listing = |p: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(p)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(listing(tmp.path()), BTreeSet::from(["root".to_string()]));
    match result {
        Ok((meta, made)) => {
            assert!(made);
            assert_eq!(meta.name, name);
            assert_eq!(listing(&root), BTreeSet::from(["volumes".to_string()]));
            assert_eq!(
                listing(&root.join("volumes")),
                BTreeSet::from([name.clone()])
            );
            assert!(root.join("volumes").join(&name).join("_data").is_dir());
            let back = get(&root, &name).unwrap();
            assert_eq!(back.labels, meta.labels);
            assert_eq!(back.options, meta.options);
            let _ = back.driver_source();
            let _ = to_json(&root, &back, Some((0, 0)));
            // Docker's create is idempotent.
            let (again, made) = create(&root, &name, labels, req.driver_opts, None).unwrap();
            assert!(!made);
            assert_eq!(again.name, name);
        }
        // Nothing half-made stays behind.
        Err(_) => assert!(listing(&root.join("volumes")).is_empty()),
    }
}

fn good() -> Value {
    json!({"Name": "fuzzvol", "Driver": "local", "DriverOpts": {"type": "tmpfs", "o": "size=1m"}, "Labels": {"a": "b"}})
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn volume_create_arbitrary_json(body in arb_json(KEYS)) {
        check(&body);
    }

    #[test]
    fn volume_create_hostile_fields(body in mutated(good(), PATHS, KEYS)) {
        check(&body);
    }

    #[test]
    fn volume_create_names(name in "[a-zA-Z0-9_./ -]{0,12}|\\PC{0,8}") {
        check(&json!({"Name": name}));
    }
}

#[test]
fn volume_create_corpus() {
    for body in corpus("volume_create.jsonl") {
        check(&body);
    }
}
