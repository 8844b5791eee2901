//! Which instructions see variables, and how (moby `dispatch` in
//! `daemon/builder/dockerfile/evaluator.go` with buildkit's `SupportsSingleWordExpansion`):
//! ENV and LABEL (keys and values), ARG (names and defaults), COPY/ADD (sources,
//! destination, `--chown`, `--chmod`, ADD's `--checksum`; never `--from`), WORKDIR, USER,
//! VOLUME, STOPSIGNAL each expand word by word; EXPOSE expands and splits into words; FROM
//! expands with the meta args only. RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD
//! and MAINTAINER are left as written (the shell, or the child build, expands them).
//!
//! The environment is the image's `Env` then the build args in scope
//! ([`crate::args::BuildArgs::expansion_env`]), as of the start of the instruction:
//! `ENV A=1 B=$A` gives B the old A, as Docker does.

use crate::args::BuildArgs;
use crate::instructions::{Copy, Instruction, KeyValue, Stage};
use crate::lex::{Env, Lex};
use crate::Error;

/// The instruction with its variables expanded.
pub fn expand(instruction: &Instruction, lex: &Lex, env: &Env) -> Result<Instruction, Error> {
    let w = |s: &str| lex.process_word(s, env);
    let kvs = |v: &[KeyValue]| -> Result<Vec<KeyValue>, Error> {
        v.iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: w(&kv.key)?,
                    value: w(&kv.value)?,
                    no_delim: kv.no_delim,
                })
            })
            .collect()
    };
    let copy = |c: &Copy, add: bool| -> Result<Copy, Error> {
        Ok(Copy {
            chown: w(&c.chown)?,
            chmod: w(&c.chmod)?,
            checksum: if add {
                w(&c.checksum)?
            } else {
                c.checksum.clone()
            },
            sources: c.sources.iter().map(|s| w(s)).collect::<Result<_, _>>()?,
            dest: w(&c.dest)?,
            // A heredoc source with an unquoted delimiter expands, its quotes kept
            // (buildkit `SourcesAndDest.Expand` with `SkipProcessQuotes`).
            contents: c
                .contents
                .iter()
                .map(|sc| {
                    if !sc.expand {
                        return Ok(sc.clone());
                    }
                    let raw = Lex {
                        raw_quotes: true,
                        ..*lex
                    };
                    Ok(crate::instructions::SourceContent {
                        data: raw.process_word(&sc.data, env)?,
                        ..sc.clone()
                    })
                })
                .collect::<Result<_, Error>>()?,
            ..c.clone()
        })
    };
    Ok(match instruction {
        Instruction::Env(v) => Instruction::Env(kvs(v)?),
        Instruction::Label(v) => Instruction::Label(kvs(v)?),
        Instruction::Arg(v) => Instruction::Arg(
            v.iter()
                .map(|a| {
                    Ok(crate::instructions::ArgDef {
                        key: w(&a.key)?,
                        value: a.value.as_deref().map(w).transpose()?,
                    })
                })
                .collect::<Result<_, Error>>()?,
        ),
        Instruction::Copy(c) => Instruction::Copy(copy(c, false)?),
        Instruction::Add(c) => Instruction::Add(copy(c, true)?),
        Instruction::Workdir(p) => Instruction::Workdir(w(p)?),
        Instruction::User(u) => Instruction::User(w(u)?),
        Instruction::StopSignal(s) => Instruction::StopSignal(w(s)?),
        Instruction::Volume(v) => {
            Instruction::Volume(v.iter().map(|s| w(s)).collect::<Result<_, _>>()?)
        }
        Instruction::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(lex.process_words(p, env)?);
            }
            Instruction::Expose(out)
        }
        other => other.clone(),
    })
}

/// A stage's base image name with the meta args expanded (moby `getExpandedString`);
/// `base name (x) should not be blank` when nothing is left.
pub fn stage_base_name(stage: &Stage, escape: char, args: &BuildArgs) -> Result<String, Error> {
    let name = Lex::new(escape).process_word(&stage.base_name, &args.meta_env())?;
    if name.is_empty() {
        return Err(Error::Invalid(format!(
            "base name ({}) should not be blank",
            stage.base_name
        )));
    }
    Ok(name)
}

/// A stage's `--platform` with the meta args expanded.
pub fn stage_platform(stage: &Stage, escape: char, args: &BuildArgs) -> Result<String, Error> {
    Lex::new(escape).process_word(&stage.platform, &args.meta_env())
}

/// The working directory after `WORKDIR requested` (moby `normalizeWorkdir`): a relative
/// path is joined to the current one (or `/`), the result cleaned.
pub fn normalize_workdir(current: &str, requested: &str) -> Result<String, Error> {
    if requested.is_empty() {
        return Err(Error::Invalid("cannot normalize nothing".into()));
    }
    if requested.starts_with('/') {
        return Ok(crate::dockerignore::clean(requested));
    }
    Ok(crate::dockerignore::clean(&format!(
        "/{current}/{requested}"
    )))
}

/// The content of an unquoted-delimiter heredoc with variables expanded, quotes and
/// escapes kept as written (buildkit's raw expansion of heredoc content).
pub fn expand_heredoc(content: &str, env: &Env) -> Result<String, Error> {
    let lex = Lex {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: false,
    };
    lex.process_word(content, env)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::parse_dockerfile;

    fn first(src: &str, env: &[&str]) -> Result<Instruction, Error> {
        let df = parse_dockerfile(format!("FROM a\n{src}").as_bytes()).unwrap();
        expand(
            &df.stages[0].commands[0].instruction,
            &Lex::new(df.escape),
            &Env::from_slice(env),
        )
    }

    #[test]
    fn expanding_instructions() {
        let env = ["A=x", "B=two words", "P=80 443"];
        assert_eq!(
            first("ENV K_$A=\"$B\" L=${U:-d}", &env).unwrap(),
            Instruction::Env(vec![
                KeyValue {
                    key: "K_x".into(),
                    value: "two words".into(),
                    no_delim: false
                },
                KeyValue {
                    key: "L".into(),
                    value: "d".into(),
                    no_delim: false
                },
            ])
        );
        assert_eq!(
            first("ENV K $B  and\\ more", &env).unwrap(),
            Instruction::Env(vec![KeyValue {
                key: "K".into(),
                value: "two words  and more".into(),
                no_delim: true
            }])
        );
        assert_eq!(
            first("WORKDIR /$A/'$A'", &env).unwrap(),
            Instruction::Workdir("/x/$A".into())
        );
        assert_eq!(
            first("USER ${A}:1", &env).unwrap(),
            Instruction::User("x:1".into())
        );
        assert_eq!(
            first("STOPSIGNAL $U", &env).unwrap(),
            Instruction::StopSignal("".into())
        );
        assert_eq!(
            first("VOLUME /$A \\$A", &env).unwrap(),
            Instruction::Volume(vec!["/x".into(), "$A".into()])
        );
        assert_eq!(
            first("EXPOSE $P 22", &env).unwrap(),
            // Sorted before expansion, as dockerd does (history reads "EXPOSE 80 443 22").
            Instruction::Expose(vec!["80".into(), "443".into(), "22".into()])
        );
        let Instruction::Copy(c) =
            first("COPY --from=$A --chown=$A:$A $A* /dst/$A/", &env).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.from, "$A");
        assert_eq!(c.chown, "x:x");
        assert_eq!(c.sources, ["x*"]);
        assert_eq!(c.dest, "/dst/x/");
        assert_eq!(
            first("ARG V=$A", &env).unwrap(),
            Instruction::Arg(vec![crate::instructions::ArgDef {
                key: "V".into(),
                value: Some("x".into())
            }])
        );
        // Not expanded: the shell or the child build does it.
        let Instruction::Run(r) = first("RUN echo $A", &env).unwrap() else {
            panic!()
        };
        assert_eq!(r.cmd.args, ["echo $A"]);
        assert_eq!(
            first("ONBUILD RUN echo $A", &env).unwrap(),
            Instruction::Onbuild("RUN echo $A".into())
        );
        assert_eq!(
            first("LABEL k=${A:-x", &env).unwrap_err().to_string(),
            "failed to process \"${A:-x\": syntax error: missing '}'"
        );
    }

    #[test]
    fn from_sees_only_meta_args() {
        let df =
            parse_dockerfile(b"ARG TAG=1.36\nARG EMPTY\nFROM busybox:$TAG\nARG TAG\nFROM $EMPTY\n")
                .unwrap();
        let mut args = BuildArgs::new(BTreeMap::new());
        for a in df.meta_arg_defs() {
            args.add_meta_arg(&a.key, a.value.clone());
        }
        assert_eq!(
            stage_base_name(&df.stages[0], '\\', &args).unwrap(),
            "busybox:1.36"
        );
        assert_eq!(
            stage_base_name(&df.stages[1], '\\', &args)
                .unwrap_err()
                .to_string(),
            "base name ($EMPTY) should not be blank"
        );
        let mut opts = BTreeMap::new();
        opts.insert("TAG".to_string(), Some("latest".to_string()));
        let mut args = BuildArgs::new(opts);
        for a in df.meta_arg_defs() {
            args.add_meta_arg(&a.key, a.value.clone());
        }
        assert_eq!(
            stage_base_name(&df.stages[0], '\\', &args).unwrap(),
            "busybox:latest"
        );
    }

    #[test]
    fn workdir() {
        assert_eq!(normalize_workdir("", "app").unwrap(), "/app");
        assert_eq!(normalize_workdir("/w", "sub/../x/").unwrap(), "/w/x");
        assert_eq!(normalize_workdir("/w", "/abs//y").unwrap(), "/abs/y");
        assert!(normalize_workdir("/w", "").is_err());
    }

    #[test]
    fn heredoc_content() {
        let env = Env::from_slice(&["A=x"]);
        assert_eq!(
            expand_heredoc("echo \"$A\" '$A' \\$A\n", &env).unwrap(),
            "echo \"x\" '$A' \\$A\n"
        );
    }
}
