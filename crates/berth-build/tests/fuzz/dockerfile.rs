//! The parser, the instruction checks and the expansion over corpus files, their mutations
//! and arbitrary bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use berth_build::args::BuildArgs;
use berth_build::expand::{expand, expand_heredoc, stage_base_name};
use berth_build::lex::{Env, Lex};
use berth_build::parser::{MAX_DOCKERFILE_SIZE, MAX_LINE_SIZE};
use berth_build::stages::{needed_stages, select_target};
use berth_build::{parse_dockerfile, Error, Instruction};
use proptest::prelude::*;

fn corpus() -> &'static [(String, Vec<u8>)] {
    static C: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    C.get_or_init(crate::corpus)
}

/// Everything a build would do with a Dockerfile short of running it: parse, select
/// every target, expand every base name and instruction. Must never panic.
fn exercise(data: &[u8], env: &[String]) {
    let Ok(df) = parse_dockerfile(data) else {
        return;
    };
    let mut opts = BTreeMap::new();
    for e in env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        opts.insert(k.to_string(), Some(v.to_string()));
    }
    let mut args = BuildArgs::new(opts);
    for c in &df.meta_args {
        if let Instruction::Arg(defs) = &c.instruction {
            let _ = args.process_meta_arg(defs, df.escape);
        }
    }
    let lex = Lex::new(df.escape);
    let bases: Vec<String> = df
        .stages
        .iter()
        .map(|s| stage_base_name(s, df.escape, &args).unwrap_or_default())
        .collect();
    for (i, s) in df.stages.iter().enumerate() {
        let _ = select_target(&df, Some(&s.name));
        let _ = needed_stages(&df.stages, &bases, i);
        args.reset_allowed();
        let mut config_env: Vec<String> = Vec::new();
        for c in &s.commands {
            let e = args.expansion_env(&config_env);
            let Ok(x) = expand(&c.instruction, &lex, &e) else {
                continue;
            };
            match &x {
                Instruction::Arg(defs) => {
                    for d in defs {
                        args.add_arg(&d.key, d.value.clone());
                    }
                }
                Instruction::Env(kvs) => config_env.extend(kvs.iter().map(|k| k.as_env())),
                Instruction::Copy(c) | Instruction::Add(c) => {
                    for content in &c.contents {
                        let _ = expand_heredoc(&content.data, &e);
                    }
                }
                _ => {}
            }
        }
    }
    let _ = args.unused_warning();
}

#[test]
fn corpus_replays_with_expected_outcome() {
    for (name, data) in corpus() {
        let r = parse_dockerfile(data);
        if name.starts_with("ok-") {
            let df = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!df.stages.is_empty(), "{name}");
        } else {
            let e = r.err().unwrap_or_else(|| panic!("{name} parsed"));
            assert!(!e.to_string().is_empty(), "{name}");
            if name != "err-no-stage.Dockerfile" && name != "err-empty.Dockerfile" {
                assert!(
                    e.line()
                        .is_some_and(|l| l > 0 || name == "err-directive.Dockerfile"),
                    "{name}: {e:?}"
                );
            }
        }
        exercise(data, &["TAG=1".into(), "X=y".into()]);
    }
}

#[test]
fn corpus_details() {
    let get = |n: &str| {
        let (_, d) = corpus().iter().find(|(name, _)| name == n).unwrap();
        parse_dockerfile(d)
    };
    assert_eq!(
        get("err-unknown.Dockerfile").unwrap_err().to_string(),
        "dockerfile parse error on line 3: unknown instruction: FORM (did you mean FROM?)"
    );
    let df = get("ok-heredocs.Dockerfile").unwrap();
    assert_eq!(df.stages[0].commands.len(), 6);
    let df = get("ok-crlf.Dockerfile").unwrap();
    let Instruction::Run(r) = &df.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(r.cmd.args, ["echo crlf   more"]);
    let df = get("ok-directives.Dockerfile").unwrap();
    assert_eq!(df.escape, '`');
}

/// Tokens Dockerfiles are made of, so mutations reach deep paths.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "FROM ",
            "RUN ",
            "COPY ",
            "ADD ",
            "ENV ",
            "ARG ",
            "LABEL ",
            "ONBUILD ",
            "HEALTHCHECK ",
            "CMD ",
            "ENTRYPOINT ",
            "SHELL ",
            "EXPOSE ",
            "VOLUME ",
            "USER ",
            "WORKDIR ",
            "STOPSIGNAL ",
            "MAINTAINER ",
            "--from=",
            "--chown=",
            "--interval=",
            "--",
            " AS ",
            "\\\n",
            "`\n",
            "\n",
            "\r\n",
            "# escape=`\n",
            "# syntax=x\n",
            "#",
            "<<EOF",
            "<<-'E'",
            "\nEOF\n",
            "\n\tE\n",
            "$",
            "${",
            "}",
            ":-",
            ":+",
            ":?",
            "\"",
            "'",
            "[",
            "]",
            "\",\"",
            "=",
            " ",
            "\t",
            "\\",
            "NONE",
            "CMD",
            "*",
            "**",
            "!",
            "\u{feff}",
            "\u{0}",
            "é",
        ])
        .prop_map(String::from),
        "\\PC{0,6}",
    ]
}

proptest! {
    #![proptest_config(crate::config(300))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&data, &[]);
    }

    #[test]
    fn token_soup_never_panics(
        toks in prop::collection::vec(token(), 0..80),
        env in prop::collection::vec("[A-Z]{1,3}=[a-z $]{0,5}", 0..4),
    ) {
        exercise(toks.concat().as_bytes(), &env);
    }

    #[test]
    fn mutated_corpus_never_panics(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), token(), 0usize..8), 1..8),
    ) {
        let c = corpus();
        let (_, base) = &c[which.index(c.len())];
        let mut data = base.clone();
        for (at, tok, cut) in edits {
            let i = at.index(data.len() + 1);
            let end = (i + cut).min(data.len());
            data.splice(i..end, tok.bytes());
        }
        exercise(&data, &["TAG=x".into()]);
    }

    #[test]
    fn lexer_never_panics(word in "\\PC{0,64}", escape in prop::sample::select(vec!['\\', '`'])) {
        let env = Env::from_slice(&["A=1", "B=two words", "E="]);
        for raw in [false, true] {
            let lex = Lex { escape, raw_quotes: raw, raw_escapes: raw, skip_unset_env: raw };
            let _ = lex.process(&word, &env);
        }
    }
}

#[test]
fn size_bounds_are_errors_not_memory() {
    let huge = vec![b'#'; MAX_DOCKERFILE_SIZE + 1];
    assert!(matches!(parse_dockerfile(&huge), Err(Error::Syntax { .. })));
    let mut heredoc = b"FROM a\nRUN <<EOF\n".to_vec();
    heredoc.extend(std::iter::repeat_n(b"x\n".as_slice(), MAX_DOCKERFILE_SIZE / 2).flatten());
    assert!(parse_dockerfile(&heredoc).is_err());
    let long = format!("FROM a\nRUN {}\n", "y".repeat(MAX_LINE_SIZE + 1));
    assert_eq!(
        parse_dockerfile(long.as_bytes()).unwrap_err().to_string(),
        "dockerfile line greater than max allowed size of 65535"
    );
    let many =
        "FROM a\n".to_string() + &"RUN x\n".repeat(berth_build::parser::MAX_INSTRUCTIONS + 1);
    assert!(parse_dockerfile(many.as_bytes()).is_err());
}
