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

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name),
    )
    .unwrap()
}

/// Replays the first stage's metadata instructions as dockerd's dispatchers do: the
/// resulting config (as `docker inspect --format '{{json .Config}}'` shows it) and the
/// history, newest first.
fn replay(data: &[u8], opts: &[(&str, &str)]) -> (Value, String) {
    let df = parse_dockerfile(data).unwrap();
    let opts = opts
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect::<BTreeMap<_, _>>();
    let mut args = BuildArgs::new(opts);
    for c in &df.meta_args {
        if let Instruction::Arg(defs) = &c.instruction {
            let _ = args.process_meta_arg(defs, df.escape);
        }
    }
    let stage = &df.stages[0];
    assert_eq!(stage_base_name(stage, df.escape, &args).unwrap(), "scratch");
    args.reset_allowed();

    let lex = Lex::new(df.escape);
    let sh = default_shell();
    let mut config = serde_json::Map::new();
    // FROM scratch: dockerd sets the default PATH.
    let mut env: Vec<String> =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    let mut labels = serde_json::Map::new();
    let mut ports = serde_json::Map::new();
    let mut volumes = serde_json::Map::new();
    let mut onbuild: Vec<String> = Vec::new();
    let mut workdir = String::new();
    let mut history = Vec::new();
    for c in &stage.commands {
        let x = expand(&c.instruction, &lex, &args.expansion_env(&env)).unwrap();
        let nop = |s: String| created_by(&nop_cmd(&sh, &s));
        let with_shell = |cl: &berth_build::instructions::CmdLine| -> Vec<String> {
            if cl.prepend_shell {
                sh.iter().cloned().chain(cl.args.iter().cloned()).collect()
            } else {
                cl.args.clone()
            }
        };
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
                config.insert("WorkingDir".into(), json!(workdir));
                created_by(&nop_cmd_string(&sh, &cache::workdir_comment(&workdir)))
            }
            Instruction::User(u) => {
                config.insert("User".into(), json!(u));
                nop(cache::user_comment(u))
            }
            Instruction::StopSignal(s) => {
                config.insert("StopSignal".into(), json!(s));
                nop(cache::stopsignal_comment(s))
            }
            Instruction::Volume(v) => {
                for vol in v {
                    volumes.insert(vol.clone(), json!({}));
                }
                nop(cache::volume_comment(v))
            }
            Instruction::Cmd(cl) => {
                let cmd = with_shell(cl);
                config.insert("Cmd".into(), json!(cmd));
                nop(cache::cmd_comment(&cmd))
            }
            Instruction::Entrypoint(cl) => {
                let ep = with_shell(cl);
                config.insert("Entrypoint".into(), json!(ep));
                nop(cache::entrypoint_comment(&ep))
            }
            Instruction::Onbuild(o) => {
                onbuild.push(o.clone());
                nop(cache::onbuild_comment(o))
            }
            Instruction::Healthcheck(h) => {
                let mut hc = serde_json::Map::new();
                hc.insert("Test".into(), json!(h.test));
                for (k, v) in [
                    ("Interval", h.interval),
                    ("Timeout", h.timeout),
                    ("StartPeriod", h.start_period),
                    ("StartInterval", h.start_interval),
                    ("Retries", h.retries),
                ] {
                    if v != 0 {
                        hc.insert(k.into(), json!(v));
                    }
                }
                config.insert("Healthcheck".into(), Value::Object(hc));
                nop(cache::healthcheck_comment(h))
            }
            other => panic!("not replayed here: {other:?}"),
        });
    }
    config.insert("Env".into(), json!(env));
    for (k, m) in [
        ("Labels", labels),
        ("ExposedPorts", ports),
        ("Volumes", volumes),
    ] {
        if !m.is_empty() {
            config.insert(k.into(), Value::Object(m));
        }
    }
    if !onbuild.is_empty() {
        config.insert("OnBuild".into(), json!(onbuild));
    }
    assert_eq!(args.unused_warning(), None);
    history.reverse();
    (Value::Object(config), history.join("\n"))
}

#[test]
fn expansion_dockerfile_matches_dockerd_20_10() {
    let (config, history) = replay(
        &corpus("ok-expansion.Dockerfile"),
        &[("B", "bopt"), ("HTTP_PROXY", "hp")],
    );
    assert_eq!(config, serde_json::from_str::<Value>(CONFIG).unwrap());
    assert_eq!(history, HISTORY);
}

/// `tests/corpus/ok-quirks.Dockerfile`: comments and empty lines inside continuations,
/// lower-case instructions, invalid JSON falling back to the shell form, legacy ENV with
/// runs of spaces, escapes in LABEL values, ONBUILD's stored text, HEALTHCHECK exec form.
const QUIRKS_CONFIG: &str = r#"{"User":"1000:1000","ExposedPorts":{"53/udp":{},"8080/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","lower=case","SPACED=a   b"],"Entrypoint":["x"],"Cmd":["/bin/sh","-c","[a, b]"],"Volumes":{"/j":{},"/w1":{},"/w2":{}},"Labels":{"a":"1","b":"2","c":"3 \" 4","e":"x\\","f":"$HOME","g":"$HOME","h":"\\","j1":"[not,json]","j2":"single $x"},"StopSignal":"9","Healthcheck":{"Test":["CMD","true"]},"OnBuild":["LABEL   trig=1"]}"#;

/// Its history, but for HEALTHCHECK (20.10 printed it with %q, current moby with %+v).
const QUIRKS_HISTORY: &str = r#"/bin/sh -c #(nop)  ONBUILD LABEL   trig=1
/bin/sh -c #(nop)  EXPOSE 53/udp 8080/tcp
/bin/sh -c #(nop)  VOLUME [/w1 /w2]
/bin/sh -c #(nop)  VOLUME [/j]
/bin/sh -c #(nop)  USER 1000:1000
/bin/sh -c #(nop)  STOPSIGNAL 9
/bin/sh -c #(nop)  LABEL e=x\ f=$HOME g=$HOME h=\
/bin/sh -c #(nop)  ENV SPACED=a   b
/bin/sh -c #(nop)  LABEL j1=[not,json] j2=single $x
/bin/sh -c #(nop)  ENTRYPOINT ["x"]
/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "[a, b]"]
/bin/sh -c #(nop)  ENV lower=case
/bin/sh -c #(nop)  LABEL a=1 b=2 c=3 " 4"#;

#[test]
fn parser_quirks_match_dockerd_20_10() {
    let data = corpus("ok-quirks.Dockerfile");
    let (config, history) = replay(&data, &[]);
    assert_eq!(
        config,
        serde_json::from_str::<Value>(QUIRKS_CONFIG).unwrap()
    );
    let history: Vec<&str> = history
        .lines()
        .filter(|l| !l.contains("HEALTHCHECK"))
        .collect();
    assert_eq!(history.join("\n"), QUIRKS_HISTORY);
    // dockerd's Step lines, and its warning for the empty continuation line.
    let df = parse_dockerfile(&data).unwrap();
    assert_eq!(
        df.stages[0].commands[0].original,
        r#"LABEL a=1       b=2       c="3 \" 4""#
    );
    assert_eq!(
        df.stages[0].commands[12].original,
        "ONBUILD   LABEL   trig=1"
    );
    assert_eq!(
        df.warnings,
        [r#"Empty continuation line found in: LABEL a=1       b=2       c="3 \" 4""#]
    );
}

/// `# escape=\``: backslashes are plain characters, the backtick escapes and continues.
#[test]
fn backtick_escape_matches_dockerd_20_10() {
    let (config, _) = replay(&corpus("ok-escape-backtick.Dockerfile"), &[]);
    let want = r#"{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","W=c:\\   d"],"Labels":{"b":"2","p":"c:\\\\dir\\\\","q":"$X","r":"a"}}"#;
    assert_eq!(config, serde_json::from_str::<Value>(want).unwrap());
}

/// Two Dockerfiles dockerd 20.10.24 refused, with its words (after `Error response from
/// daemon: `).
#[test]
fn parse_errors_match_dockerd_20_10() {
    let e = parse_dockerfile(b"FROM scratch\nLABEL j1=[\"not\", \"json\"]\n").unwrap_err();
    assert_eq!(
        e.client_message("Dockerfile"),
        r#"failed to parse Dockerfile: Syntax error - can't find = in "\"json\"]". Must be of the form: name=value"#
    );
    let e = parse_dockerfile(b"# escape=`\nFROM scratch\nLABEL r=a`\n  b\n").unwrap_err();
    assert_eq!(
        e.client_message("Dockerfile"),
        r#"failed to parse Dockerfile: Syntax error - can't find = in "b". Must be of the form: name=value"#
    );
    for (src, want) in [
        (
            "FROM scratch\nENV A\n",
            "failed to parse Dockerfile: ENV must have two arguments",
        ),
        (
            "# c\n\n",
            "failed to parse Dockerfile: file with no instructions",
        ),
        ("RUN x\n", "no build stage in current context"),
    ] {
        assert_eq!(
            parse_dockerfile(src.as_bytes())
                .unwrap_err()
                .client_message("Dockerfile"),
            want
        );
    }
    let df = parse_dockerfile(b"FROM scratch AS x\nFROM scratch AS X\n").unwrap();
    assert_eq!(
        berth_build::stages::select_target(&df, None)
            .unwrap_err()
            .to_string(),
        "x stage name already used"
    );
}

/// `ENTRYPOINT ["x"] y`: dockerd 20.10 decoded the array and ignored the rest (its
/// parser used a streaming JSON decoder); current moby unmarshals the whole text, so it is
/// not JSON and becomes the shell form. We follow current moby.
#[test]
fn trailing_text_after_json_is_shell_form() {
    let df = parse_dockerfile(b"FROM scratch\nENTRYPOINT [\"x\"] y\n").unwrap();
    let Instruction::Entrypoint(ep) = &df.stages[0].commands[0].instruction else {
        panic!()
    };
    assert!(ep.prepend_shell);
    assert_eq!(ep.args, [r#"["x"] y"#]);
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
