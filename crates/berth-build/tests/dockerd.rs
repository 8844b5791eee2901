//! Differential checks against dockerd 20.10.24's classic builder (DOCKER_BUILDKIT=0, the
//! reference daemon on these machines): `tests/corpus/ok-expansion.Dockerfile` built with
//! `--build-arg B=bopt --build-arg HTTP_PROXY=hp` gave the image config and history below
//! (`docker inspect --format '{{json .Config}}'`, `docker history --no-trunc`). The test
//! replays the metadata instructions through the crate (parse, scope, expand, history
//! strings) and must reach the same config and history.

use std::collections::BTreeMap;

use berth_build::args::BuildArgs;
use berth_build::cache::{self, created_by, default_shell, nop_cmd, nop_cmd_string};
use berth_build::expand::{expand, normalize_workdir, stage_base_name};
use berth_build::lex::Lex;
use berth_build::{parse_dockerfile, Instruction};
use serde_json::{json, Value};

const CONFIG: &str = r#"{"User":"fromenv:bopt","ExposedPorts":{"22/udp":{},"443/tcp":{},"80/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","E1=aval","E2=aval-x","E3=$A","E4=$A","E5=bopt","E6=alt","E9=two  spaces aval","A=fromenv","E10=aval","E11=fromenv","E12=a \"q\" b","E13=a b","E14=hp","P=80 443"],"Volumes":{"/v/fromenv":{},"/v2":{}},"WorkingDir":"/w/fromenv/sub","Labels":{"l 2":"x y","l1":"fromenv","l3":"a\\b","l4":"aval-x"},"StopSignal":"SIGTERM"}"#;

const HISTORY: &str = r#"/bin/sh -c #(nop)  VOLUME [/v/fromenv /v2]
/bin/sh -c #(nop)  STOPSIGNAL SIGTERM
/bin/sh -c #(nop)  USER fromenv:bopt
/bin/sh -c #(nop) WORKDIR /w/fromenv/sub
/bin/sh -c #(nop) WORKDIR /w/fromenv
/bin/sh -c #(nop)  EXPOSE 80 443 22/udp
/bin/sh -c #(nop)  ENV P=80 443
/bin/sh -c #(nop)  LABEL l1=fromenv l 2=x y l3=a\b l4=aval-x
/bin/sh -c #(nop)  ENV E11=fromenv E12=a "q" b E13=a b E14=hp
/bin/sh -c #(nop)  ENV A=fromenv E10=aval
/bin/sh -c #(nop)  ENV E9=two  spaces aval
/bin/sh -c #(nop)  ENV E1=aval E2=aval-x E3=$A E4=$A E5=bopt E6=alt
/bin/sh -c #(nop)  ARG HTTP_PROXY
/bin/sh -c #(nop)  ARG B
/bin/sh -c #(nop)  ARG A=aval"#;

/// Port with the default protocol, as dockerd keys `ExposedPorts`.
fn port_key(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else {
        format!("{p}/tcp")
    }
}

#[test]
fn expansion_dockerfile_matches_dockerd_20_10() {
    let data = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/ok-expansion.Dockerfile"),
    )
    .unwrap();
    let df = parse_dockerfile(&data).unwrap();
    let opts = BTreeMap::from([
        ("B".to_string(), Some("bopt".to_string())),
        ("HTTP_PROXY".to_string(), Some("hp".to_string())),
    ]);
    let mut args = BuildArgs::new(opts);
    for a in &df.meta_args {
        args.add_meta_arg(&a.key, a.value.clone());
    }
    let stage = &df.stages[0];
    assert_eq!(stage_base_name(stage, df.escape, &args).unwrap(), "scratch");
    args.reset_allowed();

    let lex = Lex::new(df.escape);
    let sh = default_shell();
    // FROM scratch: dockerd sets the default PATH.
    let mut env: Vec<String> =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    let (mut user, mut workdir, mut stop) = (String::new(), String::new(), String::new());
    let mut labels = serde_json::Map::new();
    let mut ports = serde_json::Map::new();
    let mut volumes = serde_json::Map::new();
    let mut history = Vec::new();
    for c in &stage.commands {
        let x = expand(&c.instruction, &lex, &args.expansion_env(&env)).unwrap();
        let nop = |s: String| created_by(&nop_cmd(&sh, &s));
        history.push(match &x {
            Instruction::Arg(defs) => {
                for d in defs {
                    args.add_arg(&d.key, d.value.clone());
                }
                let pairs: Vec<_> = defs
                    .iter()
                    .map(|d| (d.key.clone(), d.value.clone()))
                    .collect();
                nop(cache::arg_comment(&pairs))
            }
            Instruction::Env(kvs) => {
                for kv in kvs {
                    let new = kv.as_env();
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map(|(k, _)| k) == Some(&kv.key))
                    {
                        Some(e) => *e = new,
                        None => env.push(new),
                    }
                }
                nop(cache::env_comment(kvs))
            }
            Instruction::Label(kvs) => {
                for kv in kvs {
                    labels.insert(kv.key.clone(), json!(kv.value));
                }
                nop(cache::label_comment(kvs))
            }
            Instruction::Expose(p) => {
                for port in p {
                    ports.insert(port_key(port), json!({}));
                }
                nop(cache::expose_comment(p))
            }
            Instruction::Workdir(w) => {
                workdir = normalize_workdir(&workdir, w).unwrap();
                created_by(&nop_cmd_string(&sh, &cache::workdir_comment(&workdir)))
            }
            Instruction::User(u) => {
                user = u.clone();
                nop(cache::user_comment(u))
            }
            Instruction::StopSignal(s) => {
                stop = s.clone();
                nop(cache::stopsignal_comment(s))
            }
            Instruction::Volume(v) => {
                for vol in v {
                    volumes.insert(vol.clone(), json!({}));
                }
                nop(cache::volume_comment(v))
            }
            other => panic!("not in this Dockerfile: {other:?}"),
        });
    }
    let got = json!({
        "User": user,
        "ExposedPorts": ports,
        "Env": env,
        "Volumes": volumes,
        "WorkingDir": workdir,
        "Labels": labels,
        "StopSignal": stop,
    });
    let want: Value = serde_json::from_str(CONFIG).unwrap();
    assert_eq!(got, want);
    history.reverse();
    assert_eq!(history.join("\n"), HISTORY);
    assert_eq!(args.unused_warning(), None);
}

/// docker CLI 28 sending a context to dockerd 20.10.24 with this `.dockerignore`, then
/// `COPY . /c/` and `docker export`: the files that arrived. The CLI keeps the Dockerfile
/// and `.dockerignore` in the context even though they are excluded; the daemon removes
/// them after reading.
#[test]
fn dockerignore_matches_docker_cli_and_dockerd() {
    use berth_build::dockerignore::{read_patterns, Matcher};
    let ignore = b"# comment\n*.md\n!README*.md\nREADME-secret.md\ndocs\n!docs/sub/*.md\n**/*.tmp\nnode_modules\n/logs/*.log\n!logs/keep.log\n.git\nbuild/**\n./notes.txt\nDockerfile\n.dockerignore\n";
    let files = [
        ".dockerignore",
        ".git/HEAD",
        "Dockerfile",
        "Dockerfile.extra",
        "README-secret.md",
        "README.md",
        "a.tmp",
        "build/out/bin",
        "docs/README.md",
        "docs/a.md",
        "docs/sub/b.md",
        "logs/1.log",
        "logs/keep.log",
        "node_modules/x/i.js",
        "notes.txt",
        "src/a/b/c.rs",
        "src/a/x.tmp",
        "src/main.rs",
        "we ird.txt",
    ];
    let want = [
        "Dockerfile.extra",
        "README.md",
        "docs/sub/b.md",
        "logs/keep.log",
        "src/a/b/c.rs",
        "src/main.rs",
        "we ird.txt",
    ];
    let patterns = read_patterns(ignore);
    let sent =
        Matcher::new(&Matcher::keep_build_files(&patterns, "Dockerfile", false).unwrap()).unwrap();
    let daemon = Matcher::new(&patterns).unwrap();
    let removed = daemon.removed_after_read("Dockerfile");
    let got: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !sent.excluded(f) && !removed.iter().any(|r| r == f))
        .collect();
    assert_eq!(got, want);
    assert_eq!(removed, [".dockerignore", "Dockerfile"]);
    // The walk may skip these directories whole, but not docs/ (an exception reaches in).
    assert!(sent.can_skip_dir("node_modules"));
    assert!(sent.can_skip_dir(".git"));
    assert!(!sent.can_skip_dir("docs"));
    assert!(!sent.can_skip_dir("src"));
}
