//! Build-arg scoping as dockerd's classic builder does it (moby
//! `daemon/builder/dockerfile/buildargs.go`): `--build-arg` values, `ARG`s before the first
//! `FROM` (meta args: usable in `FROM` lines, and as defaults of an `ARG` redeclared in a
//! stage), stage `ARG`s (visible from their declaration to the end of the stage), the
//! predefined proxy args (usable without a declaration, kept out of history unless
//! declared), `ENV` winning over an `ARG` of the same name, and the unused-arg warning.

use std::collections::{BTreeMap, BTreeSet};

/// Args every build accepts without an `ARG` (moby `builtinAllowedBuildArgs`).
pub const PREDEFINED: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn is_predefined(k: &str) -> bool {
    PREDEFINED.contains(&k)
}

/// The build args of one build, scoped per stage with [`BuildArgs::reset_allowed`].
#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    allowed: BTreeMap<String, Option<String>>,
    meta: BTreeMap<String, Option<String>>,
    referenced: BTreeSet<String>,
    /// `--build-arg` values; `None` is a build arg given without a value (null in the API).
    options: BTreeMap<String, Option<String>>,
}

impl BuildArgs {
    pub fn new(options: BTreeMap<String, Option<String>>) -> BuildArgs {
        BuildArgs {
            options,
            ..BuildArgs::default()
        }
    }

    /// At each `FROM`: a stage sees only what it declares.
    pub fn reset_allowed(&mut self) {
        self.allowed.clear();
    }

    /// An `ARG` before the first `FROM`.
    pub fn add_meta_arg(&mut self, key: &str, value: Option<String>) {
        self.meta.insert(key.to_string(), value);
    }

    /// An `ARG` in a stage, its default already expanded.
    pub fn add_arg(&mut self, key: &str, value: Option<String>) {
        self.allowed.insert(key.to_string(), value);
        self.referenced.insert(key.to_string());
    }

    /// One `ARG` line before the first `FROM` (moby `processMetaArg`): its names and
    /// defaults expanded with the meta args declared so far and the `--build-arg`s, then
    /// declared both as meta args and in the (build-wide) scope, which marks them consumed.
    pub fn process_meta_arg(
        &mut self,
        defs: &[crate::instructions::ArgDef],
        escape: char,
    ) -> Result<(), crate::Error> {
        let env: Vec<String> = self
            .all_allowed()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let env = crate::lex::Env::from_slice(&env);
        let lex = crate::lex::Lex::new(escape);
        for d in defs {
            let key = lex.process_word(&d.key, &env)?;
            let value = d
                .value
                .as_deref()
                .map(|v| lex.process_word(v, &env))
                .transpose()?;
            self.add_arg(&key, value.clone());
            self.add_meta_arg(&key, value);
        }
        Ok(())
    }

    /// The scope a stage starts with (moby `newDispatchState`): meta args and options,
    /// nothing declared.
    pub fn for_stage(&self) -> BuildArgs {
        let mut s = self.clone();
        s.reset_allowed();
        s
    }

    /// At a stage's end: what it consumed counts for the whole build.
    pub fn merge_referenced(&mut self, stage: &BuildArgs) {
        self.referenced.extend(stage.referenced.iter().cloned());
    }

    fn get(&self, key: &str, mapping: &BTreeMap<String, Option<String>>) -> Option<String> {
        if let Some(Some(v)) = self.options.get(key) {
            return Some(v.clone());
        }
        match mapping.get(key) {
            Some(Some(default)) => Some(default.clone()),
            _ => match self.meta.get(key) {
                Some(Some(v)) => Some(v.clone()),
                _ => None,
            },
        }
    }

    fn all_from(&self, mapping: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
        let keys: BTreeSet<&str> = mapping
            .keys()
            .map(String::as_str)
            .chain(PREDEFINED)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.get(k, mapping).map(|v| (k.to_string(), v)))
            .collect()
    }

    /// The values in scope in the current stage (moby `GetAllAllowed`).
    pub fn all_allowed(&self) -> BTreeMap<String, String> {
        self.all_from(&self.allowed)
    }

    /// The values usable in `FROM` lines (moby `GetAllMeta`).
    pub fn all_meta(&self) -> BTreeMap<String, String> {
        self.all_from(&self.meta)
    }

    /// `KEY=value` of the args in scope that the image's `Env` does not already set: ENV
    /// wins over ARG (moby `FilterAllowed`).
    pub fn filter_allowed(&self, config_env: &[String]) -> Vec<String> {
        let env_keys: BTreeSet<&str> = config_env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
            .collect();
        self.all_allowed()
            .into_iter()
            .filter(|(k, _)| !env_keys.contains(k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// What the lexer sees for an instruction: the image's `Env` then the args in scope.
    pub fn expansion_env(&self, config_env: &[String]) -> crate::lex::Env {
        let mut all = config_env.to_vec();
        all.extend(self.filter_allowed(config_env));
        crate::lex::Env::from_slice(&all)
    }

    /// What `FROM` lines see (moby `getExpandedString`).
    pub fn meta_env(&self) -> crate::lex::Env {
        let v: Vec<String> = self
            .all_meta()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        crate::lex::Env::from_slice(&v)
    }

    /// The `RUN` command as recorded in history and in the cache probe: `|N K=V ... cmd`
    /// with the args in scope, sorted, a predefined arg only when declared (moby
    /// `prependEnvOnCmd`); the command unchanged when no arg is in scope.
    pub fn prepend_env_on_cmd(&self, args_in_scope: &[String], cmd: &[String]) -> Vec<String> {
        if args_in_scope.is_empty() {
            return cmd.to_vec();
        }
        let mut env: Vec<String> = args_in_scope
            .iter()
            .filter(|e| {
                let k = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                self.allowed.contains_key(k) || !is_predefined(k)
            })
            .cloned()
            .collect();
        env.sort();
        let mut out = vec![format!("|{}", env.len())];
        out.extend(env);
        out.extend(cmd.iter().cloned());
        out
    }

    /// moby `WarnOnUnusedBuildArgs`: the warning line, if any `--build-arg` was never
    /// declared (predefined args excepted).
    pub fn unused_warning(&self) -> Option<String> {
        let left: Vec<&str> = self
            .options
            .keys()
            .map(String::as_str)
            .filter(|k| !is_predefined(k) && !self.referenced.contains(*k))
            .collect();
        if left.is_empty() {
            return None;
        }
        Some(format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            left.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect()
    }

    #[test]
    fn option_beats_default_and_meta_is_a_default() {
        let mut a = BuildArgs::new(opts(&[("A", Some("opt"))]));
        a.add_meta_arg("B", Some("meta".into()));
        a.add_meta_arg("A", Some("metaA".into()));
        assert_eq!(a.all_meta().get("A").map(String::as_str), Some("opt"));
        assert_eq!(a.all_meta().get("B").map(String::as_str), Some("meta"));
        // Not declared in the stage: not visible.
        assert!(!a.all_allowed().contains_key("B"));
        // Redeclared without a value: the meta value.
        a.add_arg("B", None);
        assert_eq!(a.all_allowed().get("B").map(String::as_str), Some("meta"));
        a.add_arg("A", Some("def".into()));
        assert_eq!(a.all_allowed().get("A").map(String::as_str), Some("opt"));
        a.reset_allowed();
        assert!(a.all_allowed().is_empty());
    }

    #[test]
    fn env_wins_over_arg() {
        let mut a = BuildArgs::new(BTreeMap::new());
        a.add_arg("X", Some("arg".into()));
        a.add_arg("Y", Some("y".into()));
        let env = vec!["X=env".to_string()];
        assert_eq!(a.filter_allowed(&env), ["Y=y"]);
        let e = a.expansion_env(&env);
        assert_eq!(e.get("X"), Some("env"));
        assert_eq!(e.get("Y"), Some("y"));
    }

    #[test]
    fn predefined_args_are_usable_but_not_in_history() {
        let mut a = BuildArgs::new(opts(&[("HTTP_PROXY", Some("http://p")), ("V", Some("1"))]));
        a.add_arg("V", None);
        let in_scope = a.filter_allowed(&[]);
        assert_eq!(in_scope, ["HTTP_PROXY=http://p", "V=1"]);
        let cmd = vec!["/bin/sh".to_string(), "-c".into(), "true".into()];
        assert_eq!(
            a.prepend_env_on_cmd(&in_scope, &cmd),
            ["|1", "V=1", "/bin/sh", "-c", "true"]
        );
        a.add_arg("HTTP_PROXY", None);
        assert_eq!(
            a.prepend_env_on_cmd(&in_scope, &cmd),
            ["|2", "HTTP_PROXY=http://p", "V=1", "/bin/sh", "-c", "true"]
        );
        assert_eq!(a.prepend_env_on_cmd(&[], &cmd), cmd);
    }

    /// dockerd 20.10.24, `--build-arg V=2 --build-arg HTTP_PROXY=http://p`, `ARG V=1`,
    /// `RUN echo $V`, `ENV V=fromenv`, `RUN echo $V`: history reads `|1 V=2 /bin/sh -c
    /// echo $V` then `|0 /bin/sh -c echo $V` (the undeclared proxy arg is in scope, so the
    /// prefix is there, but it is not recorded; V is hidden by the ENV).
    #[test]
    fn run_prefix_as_dockerd_records_it() {
        let mut a = BuildArgs::new(opts(&[("V", Some("2")), ("HTTP_PROXY", Some("http://p"))]));
        a.add_arg("V", Some("1".into()));
        let cmd = vec!["/bin/sh".to_string(), "-c".into(), "echo $V".into()];
        let scope = a.filter_allowed(&[]);
        assert_eq!(
            crate::cache::created_by(&a.prepend_env_on_cmd(&scope, &cmd)),
            "|1 V=2 /bin/sh -c echo $V"
        );
        let env = vec!["V=fromenv".to_string()];
        let scope = a.filter_allowed(&env);
        assert_eq!(
            crate::cache::created_by(&a.prepend_env_on_cmd(&scope, &cmd)),
            "|0 /bin/sh -c echo $V"
        );
    }

    #[test]
    fn unused_warning() {
        let mut a = BuildArgs::new(opts(&[
            ("B", Some("1")),
            ("A", None),
            ("no_proxy", Some("x")),
            ("C", Some("2")),
        ]));
        a.add_arg("C", None);
        assert_eq!(
            a.unused_warning().as_deref(),
            Some("[Warning] One or more build-args [A B] were not consumed\n")
        );
        a.add_arg("A", None);
        a.add_arg("B", None);
        assert_eq!(a.unused_warning(), None);
    }

    /// As moby's dispatchDockerfileWithCancellation: meta args are processed in order, each
    /// seeing the earlier ones; a stage sees them only when it redeclares them; declaring a
    /// meta arg consumes the --build-arg; a stage's consumption merges back.
    #[test]
    fn meta_args_and_stage_scopes() {
        use crate::instructions::ArgDef;
        let def = |k: &str, v: Option<&str>| ArgDef {
            key: k.into(),
            value: v.map(String::from),
        };
        let mut build = BuildArgs::new(opts(&[("BASE", Some("alpine")), ("LATER", Some("l"))]));
        build
            .process_meta_arg(&[def("BASE", Some("busybox"))], '\\')
            .unwrap();
        build
            .process_meta_arg(&[def("IMG", Some("${BASE}:1"))], '\\')
            .unwrap();
        assert_eq!(
            build.all_meta().get("IMG").map(String::as_str),
            Some("alpine:1")
        );
        let mut stage = build.for_stage();
        assert!(stage.all_allowed().is_empty());
        stage.add_arg("IMG", None);
        assert_eq!(
            stage.all_allowed().get("IMG").map(String::as_str),
            Some("alpine:1")
        );
        stage.add_arg("LATER", None);
        assert_eq!(
            build.unused_warning().as_deref(),
            Some("[Warning] One or more build-args [LATER] were not consumed\n")
        );
        build.merge_referenced(&stage);
        assert_eq!(build.unused_warning(), None);
        assert!(build
            .process_meta_arg(&[def("X", Some("${"))], '\\')
            .is_err());
    }

    #[test]
    fn null_option_falls_back_to_default() {
        let mut a = BuildArgs::new(opts(&[("A", None)]));
        a.add_arg("A", Some("d".into()));
        assert_eq!(a.all_allowed().get("A").map(String::as_str), Some("d"));
    }
}
