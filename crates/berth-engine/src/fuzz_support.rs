//! Test-only strategies for fuzzing request bodies with proptest: arbitrary JSON whose
//! objects use Docker's keys, and well-formed bodies with hostile values put at the paths
//! the engine reads. `PROPTEST_CASES` raises the bounded case counts of the targets.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

/// `PROPTEST_CASES` when set (a long fuzz run), else `default` (bounded for CI).
pub(crate) fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        max_shrink_iters: 1024,
        ..Config::default()
    }
}

/// Scalars a Docker client could send, the edges of every numeric type included.
pub(crate) fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-5i64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(i32::MAX as i64 + 1),
            json!(i32::MIN as i64 - 1),
            json!(1e300),
            json!(-0.5),
        ]),
        "\\PC{0,16}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "-1",
            "0",
            "1",
            "65536",
            "99999999999999999999",
            "80/tcp",
            "53/udp",
            "80",
            "1-65535",
            "65535-1",
            "8080-8081/tcp",
            "/sctp",
            "0.0.0.0",
            "::",
            "10.0.0.0/8",
            "10.0.0.1",
            "10.0.0.0/33",
            "256.1.1.1",
            "10.0.0.0/-1",
            "172.28.0.0/16",
            "172.28.5.0/24",
            "172.28.0.1",
            "host",
            "none",
            "bridge",
            "default",
            "private",
            "shareable",
            "container:",
            "container:x",
            "always",
            "on-failure",
            "unless-stopped",
            "no",
            "bind",
            "volume",
            "tmpfs",
            "npipe",
            "/",
            "/data",
            "/dev/null",
            "relative",
            "a:b",
            "a:b:c",
            "/a:/b:ro,z",
            ":::",
            "rw",
            "rslave",
            "json-file",
            "local",
            "none",
            "max-size=1k",
            "seccomp=unconfined",
            "apparmor=x",
            "no-new-privileges",
            "label=disable",
            "nofile",
            "CAP_SYS_ADMIN",
            "ALL",
            "net.ipv4.ip_forward",
            "kernel.shm_rmid_forced",
            "com.docker.network.driver.mtu",
            "com.docker.network.bridge.name",
            "sh",
            "busybox",
            "/bin/sh",
            "x=y",
            "=",
            "user:group",
            "0:0",
            "br-0123456789ab",
            "eth0",
            "lo",
            "a.b",
        ])
        .prop_map(|s| Value::String(s.into())),
    ]
    .boxed()
}

/// Arbitrary JSON (a few levels deep) whose object keys are mostly from `keys`.
pub(crate) fn arb_json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(3, 32, 5, move |inner| {
            let key = prop_oneof![
                4 => prop::sample::select(keys).prop_map(String::from),
                1 => "\\PC{0,8}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// Sets `path` (keys joined by `|`; a number indexes an array) in `v` to `new`, making
/// the objects on the way.
pub(crate) fn set_path(v: &mut Value, path: &str, new: Value) {
    let (key, rest) = match path.split_once('|') {
        Some((k, r)) => (k, Some(r)),
        None => (path, None),
    };
    let slot = match (key.parse::<usize>(), v.is_array()) {
        (Ok(i), true) => {
            let a = v.as_array_mut().expect("checked above");
            if a.is_empty() {
                a.push(Value::Null);
            }
            let i = i.min(a.len() - 1);
            &mut a[i]
        }
        _ => {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
            v.as_object_mut()
                .expect("made an object above")
                .entry(key)
                .or_insert(Value::Null)
        }
    };
    match rest {
        Some(rest) => set_path(slot, rest, new),
        None => *slot = new,
    }
}

/// `base` with up to four of `paths` set to hostile values (scalars, or arbitrary JSON
/// with `keys`).
pub(crate) fn mutated(
    base: Value,
    paths: &'static [&'static str],
    keys: &'static [&'static str],
) -> BoxedStrategy<Value> {
    let value = prop_oneof![3 => leaf(), 1 => arb_json(keys)];
    prop::collection::vec((prop::sample::select(paths), value), 0..5)
        .prop_map(move |edits| {
            let mut v = base.clone();
            for (path, new) in edits {
                set_path(&mut v, path, new);
            }
            v
        })
        .boxed()
}

/// The lines of `tests/corpus/<name>` (JSON bodies, `#` comments skipped).
pub(crate) fn corpus(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}
