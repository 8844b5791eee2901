//! Typed instructions and stages (moby/buildkit `frontend/dockerfile/instructions`): each
//! [`crate::parser::Node`] becomes an [`Instruction`] with its flags checked, and the list
//! is cut into [`Stage`]s at each `FROM`, with the `ARG`s before the first `FROM` kept as
//! meta args. Errors are dockerd's, with the instruction's first line.

use crate::parser::{self, Heredoc, Node};
use crate::Error;

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub key: String,
    pub value: Option<String>,
}

/// `ENV`/`LABEL` pair; `no_delim` for the legacy `ENV k v` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    pub no_delim: bool,
}

impl KeyValue {
    /// `key=value` as dockerd writes it in history (moby `KeyValuePair.String`).
    pub fn as_env(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// The command line of RUN, CMD, ENTRYPOINT: exec form, or shell form to be prefixed
/// with the SHELL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdLine {
    pub args: Vec<String>,
    pub prepend_shell: bool,
    pub files: Vec<Heredoc>,
}

impl CmdLine {
    /// The command with its heredocs folded in (buildkit `dispatchRun`): `RUN <<EOF`
    /// alone runs the heredoc's text as the shell command; a command that uses heredocs
    /// (`RUN cat <<EOF > f`) goes to the shell whole, heredocs included, since the shell
    /// reads them itself. Without heredocs the command is unchanged.
    pub fn with_heredocs(&self) -> Result<CmdLine, String> {
        if self.files.is_empty() {
            return Ok(self.clone());
        }
        let [line] = self.args.as_slice() else {
            return Err(format!(
                "parsing produced an invalid run command: {:?}",
                self.args
            ));
        };
        if !self.prepend_shell {
            return Err(format!("parsing produced an invalid run command: {line:?}"));
        }
        let body = |h: &Heredoc| {
            if h.chomp {
                parser::chomp_heredoc_content(&h.content)
            } else {
                h.content.clone()
            }
        };
        let args = match (
            parser::parse_heredoc(line).ok().flatten(),
            self.files.first(),
        ) {
            (Some(_), Some(first)) => vec![body(first)],
            _ => {
                let mut full = line.clone();
                for h in &self.files {
                    full.push('\n');
                    full.push_str(&h.content);
                    full.push_str(&h.name);
                }
                vec![full]
            }
        };
        Ok(CmdLine {
            args,
            prepend_shell: true,
            files: Vec::new(),
        })
    }
}

impl CmdLine {
    /// The script of a lone `RUN <<NAME` whose heredoc starts with `#!` (buildkit
    /// `dispatchRun`): BuildKit writes it to `/dev/pipes/NAME`, mode 0755, and runs that
    /// file, so that the shebang's interpreter runs it. The name and the text (chomped for
    /// `<<-`, never expanded); `None` for any other command.
    pub fn shebang_script(&self) -> Option<(String, String)> {
        let [line] = self.args.as_slice() else {
            return None;
        };
        if !self.prepend_shell {
            return None;
        }
        parser::parse_heredoc(line).ok().flatten()?;
        let first = self.files.first()?;
        if !first.content.starts_with("#!") {
            return None;
        }
        let data = if first.chomp {
            parser::chomp_heredoc_content(&first.content)
        } else {
            first.content.clone()
        };
        Some((first.name.clone(), data))
    }
}

/// `RUN` with the BuildKit-only flags it was given (the classic builder refuses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub cmd: CmdLine,
    pub flags_used: Vec<String>,
}

impl Run {
    /// dockerd's refusal of a BuildKit-only `RUN` flag (moby `dispatchRun`).
    pub fn classic_refusal(&self) -> Option<String> {
        self.flags_used.first().map(|f| format!("the --{f} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"))
    }
}

/// An inline source of `COPY <<EOF /dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    pub path: String,
    pub data: String,
    pub expand: bool,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    pub sources: Vec<String>,
    pub contents: Vec<SourceContent>,
    pub dest: String,
    pub from: String,
    pub chown: String,
    pub chmod: String,
    pub link: bool,
    pub excludes: Vec<String>,
    pub parents: bool,
    pub checksum: String,
    pub keep_git_dir: Option<bool>,
    pub unpack: Option<bool>,
}

/// `HEALTHCHECK`, durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Arg(Vec<ArgDef>),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Maintainer(String),
    Run(Run),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Shell(Vec<String>),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    Expose(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger's text as it will be stored in the image's `OnBuild`.
    Onbuild(String),
    Copy(Copy),
    Add(Copy),
}

/// An instruction of a stage with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    pub line: usize,
    /// The logical line, trimmed: what dockerd prints after `Step N/M : `.
    pub original: String,
}

/// A `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The lower-cased `AS` name, empty when none.
    pub name: String,
    pub base_name: String,
    pub platform: String,
    /// The `FROM` line, trimmed (dockerd's `Step N/M : FROM ...`).
    pub source_code: String,
    pub line: usize,
    pub commands: Vec<Command>,
}

/// A parsed and checked Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
    /// `ARG` lines before the first `FROM`; each is a build step of its own
    /// (`Step 1/N : ARG ...`).
    pub meta_args: Vec<Command>,
    pub escape: char,
    pub warnings: Vec<String>,
}

impl Dockerfile {
    /// The `M` of dockerd's `Step N/M`: meta ARG lines, FROM lines and instructions.
    pub fn step_count(&self) -> usize {
        self.meta_args.len()
            + self
                .stages
                .iter()
                .map(|s| 1 + s.commands.len())
                .sum::<usize>()
    }

    /// The definitions of every meta ARG line, in order.
    pub fn meta_arg_defs(&self) -> impl Iterator<Item = &ArgDef> {
        self.meta_args.iter().flat_map(|c| match &c.instruction {
            Instruction::Arg(defs) => defs.as_slice(),
            _ => &[],
        })
    }
}

/// Parses a Dockerfile into stages (moby `parser.Parse` then `instructions.Parse`).
pub fn parse_dockerfile(data: &[u8]) -> Result<Dockerfile, Error> {
    let ast = parser::parse(data)?;
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta_args = Vec::new();
    for node in &ast.nodes {
        let err = |message: String| Error::Instruction {
            line: node.start_line,
            message,
        };
        match parse_node(node).map_err(err)? {
            Parsed::Stage(s) => stages.push(s),
            Parsed::Command(Instruction::Arg(a)) if stages.is_empty() => meta_args.push(Command {
                instruction: Instruction::Arg(a),
                line: node.start_line,
                original: node.original.trim().to_string(),
            }),
            Parsed::Command(instruction) => {
                let Some(stage) = stages.last_mut() else {
                    // moby returns it bare (not a parse error, not the parser's).
                    return Err(Error::Invalid("no build stage in current context".into()));
                };
                stage.commands.push(Command {
                    instruction,
                    line: node.start_line,
                    original: node.original.trim().to_string(),
                });
            }
        }
    }
    Ok(Dockerfile {
        stages,
        meta_args,
        escape: ast.escape,
        warnings: ast.warnings,
    })
}

/// Parses one instruction outside a Dockerfile, as an `ONBUILD` trigger is when it runs
/// (moby `dispatchTriggeredOnBuild`).
pub fn parse_trigger(text: &str) -> Result<Command, Error> {
    let ast = parser::parse(text.as_bytes())?;
    let [node] = ast.nodes.as_slice() else {
        return Err(Error::Invalid(
            "onbuild trigger should be a single expression".into(),
        ));
    };
    let line = node.start_line;
    match parse_node(node).map_err(|message| Error::Instruction { line, message })? {
        Parsed::Command(instruction) => Ok(Command {
            instruction,
            line,
            original: node.original.trim().to_string(),
        }),
        Parsed::Stage(_) => Err(Error::Invalid(
            "FROM isn't allowed as an ONBUILD trigger".into(),
        )),
    }
}

enum Parsed {
    Stage(Stage),
    Command(Instruction),
}

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    String,
    Strings,
}

/// moby `BFlags`: the flags an instruction accepts, parsed from the node's flag words.
struct Flags<'a> {
    args: &'a [String],
    defs: Vec<(&'static str, FlagType)>,
    values: Vec<(&'static str, String)>,
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String], defs: &[(&'static str, FlagType)]) -> Flags<'a> {
        Flags {
            args,
            defs: defs.to_vec(),
            values: Vec::new(),
        }
    }

    fn parse(&mut self) -> Result<(), String> {
        for a in self.args {
            if a == "--" {
                return Ok(());
            }
            let Some(stripped) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match stripped.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (stripped, None),
            };
            let Some(&(def, typ)) = self.defs.iter().find(|(d, _)| *d == name) else {
                let names: Vec<&str> = self.defs.iter().map(|(d, _)| *d).collect();
                return Err(format!(
                    "unknown flag: --{name}{}",
                    suggestion(name, &names, true)
                ));
            };
            if typ != FlagType::Strings && self.values.iter().any(|(n, _)| *n == def) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            let v = match (typ, value) {
                (FlagType::Bool, Some("")) => {
                    return Err(format!("missing a value on flag: --{name}"))
                }
                (FlagType::Bool, v) => match v.unwrap_or("").to_ascii_lowercase().as_str() {
                    "true" | "" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(format!(
                            "expecting boolean value for flag --{name}, not: {}",
                            v.unwrap_or("")
                        ))
                    }
                },
                (_, None) => return Err(format!("missing a value on flag: --{name}")),
                (_, Some(v)) => v.to_string(),
            };
            self.values.push((def, v));
        }
        Ok(())
    }

    fn string(&self, name: &str) -> String {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn bool_opt(&self, name: &str) -> Option<bool> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v == "true")
    }

    fn used(&self) -> Vec<String> {
        self.values.iter().map(|(n, _)| n.to_string()).collect()
    }
}

/// Every instruction name, as buildkit lists them for suggestions.
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// ` (did you mean X?)` when one option is within edit distance 2 of `val` (buildkit
/// `util/suggest`: the first closest, in the case `val` was written in), else nothing.
fn suggestion(val: &str, options: &[&str], case_sensitive: bool) -> String {
    let v = if case_sensitive {
        val.to_string()
    } else {
        val.to_lowercase()
    };
    let mut best: Option<&str> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if v == o {
            return String::new();
        }
        let d = levenshtein(&v, &o, min);
        if d < min {
            min = d;
            best = Some(opt);
        }
    }
    let Some(m) = best else { return String::new() };
    let m = if case_sensitive {
        m.to_string()
    } else if val == val.to_lowercase() {
        m.to_lowercase()
    } else if val == val.to_uppercase() {
        m.to_uppercase()
    } else {
        m.to_string()
    };
    format!(" (did you mean {m}?)")
}

/// Edit distance (insert, delete, substitute: 1 each), `cap` or more as soon as every
/// alignment is that far: a long hostile word costs one row per char and stops early.
fn levenshtein(a: &str, b: &str, cap: usize) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
        if prev.iter().all(|d| *d >= cap) {
            return cap;
        }
    }
    prev[b.len()]
}

fn no_flags(node: &Node) -> Result<(), String> {
    Flags::new(&node.flags, &[]).parse()
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn cmd_line(node: &Node, empty_as_nil: bool) -> CmdLine {
    let args = if node.json || node.args.is_empty() {
        node.args.clone()
    } else {
        vec![node.args.join(" ")]
    };
    let args = if empty_as_nil && args.is_empty() {
        Vec::new()
    } else {
        args
    };
    CmdLine {
        args,
        prepend_shell: !node.json,
        files: node.heredocs.clone(),
    }
}

fn kvps(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::new();
    for c in args.chunks_exact(3) {
        let [k, v, d] = c else { continue };
        if k.is_empty() {
            return Err(format!("{cmd} names can not be blank"));
        }
        out.push(KeyValue {
            key: k.clone(),
            value: v.clone(),
            no_delim: d.is_empty(),
        });
    }
    Ok(out)
}

fn valid_stage_name(name: &str) -> bool {
    // ^[a-z][a-z0-9-_.]*$
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
}

fn sources_and_dest(node: &Node, cmd: &str, c: &mut Copy) -> Result<(), String> {
    let Some((dest, srcs)) = node.args.split_last() else {
        return Err(format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"));
    };
    if parser::parse_heredoc(dest).ok().flatten().is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    for src in srcs {
        match parser::parse_heredoc(src).ok().flatten() {
            Some(h) => {
                let data = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                let data = if h.chomp {
                    parser::chomp_heredoc_content(&data)
                } else {
                    data
                };
                c.contents.push(SourceContent {
                    path: h.name,
                    data,
                    expand: h.expand,
                });
            }
            None => c.sources.push(src.clone()),
        }
    }
    c.dest = dest.clone();
    Ok(())
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {}", crate::error::go_quote(s));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::error::go_quote(s)
                ))
            }
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::error::go_quote(unit),
                    crate::error::go_quote(s)
                ))
            }
        };
        total += value * scale;
        if total > i64::MAX as f64 {
            return Err(bad());
        }
        rest = after;
    }
    let t = total as i64;
    Ok(if neg { -t } else { t })
}

fn opt_interval(flags: &Flags, name: &str) -> Result<i64, String> {
    let v = flags.string(name);
    if v.is_empty() {
        return Ok(0);
    }
    let d = parse_go_duration(&v)?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
    }
    Ok(d)
}

fn parse_node(node: &Node) -> Result<Parsed, String> {
    use FlagType::*;
    let args = &node.args;
    let lower = node.cmd.to_ascii_lowercase();
    let i = match lower.as_str() {
        "env" => {
            no_flags(node)?;
            Instruction::Env(kvps(args, "ENV")?)
        }
        "maintainer" => {
            let [m] = args.as_slice() else {
                return Err(exactly_one("MAINTAINER"));
            };
            no_flags(node)?;
            Instruction::Maintainer(m.clone())
        }
        "label" => {
            no_flags(node)?;
            Instruction::Label(kvps(args, "LABEL")?)
        }
        "add" => {
            if args.len() < 2 {
                return Err("ADD requires at least two arguments, but only one was provided. Destination could not be determined".into());
            }
            let mut f = Flags::new(
                &node.flags,
                &[
                    ("chown", String),
                    ("chmod", String),
                    ("link", Bool),
                    ("keep-git-dir", Bool),
                    ("checksum", String),
                    ("unpack", Bool),
                    ("exclude", Strings),
                ],
            );
            f.parse()?;
            let mut c = Copy {
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool_opt("link") == Some(true),
                keep_git_dir: f.bool_opt("keep-git-dir"),
                checksum: f.string("checksum"),
                unpack: f.bool_opt("unpack"),
                excludes: f.strings("exclude"),
                ..Copy::default()
            };
            sources_and_dest(node, "ADD", &mut c)?;
            Instruction::Add(c)
        }
        "copy" => {
            if args.len() < 2 {
                return Err("COPY requires at least two arguments, but only one was provided. Destination could not be determined".into());
            }
            let mut f = Flags::new(
                &node.flags,
                &[
                    ("chown", String),
                    ("from", String),
                    ("chmod", String),
                    ("link", Bool),
                    ("exclude", Strings),
                    ("parents", Bool),
                ],
            );
            f.parse()?;
            let mut c = Copy {
                chown: f.string("chown"),
                from: f.string("from"),
                chmod: f.string("chmod"),
                link: f.bool_opt("link") == Some(true),
                parents: f.bool_opt("parents") == Some(true),
                excludes: f.strings("exclude"),
                ..Copy::default()
            };
            sources_and_dest(node, "COPY", &mut c)?;
            Instruction::Copy(c)
        }
        "from" => {
            let name = match args.as_slice() {
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => {
                    let lower = n.to_ascii_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(format!("invalid name for build stage: {}, name can't start with a number or contain symbols", crate::error::go_quote(n)));
                    }
                    lower
                }
                [_] => std::string::String::new(),
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            let mut f = Flags::new(&node.flags, &[("platform", String)]);
            f.parse()?;
            return Ok(Parsed::Stage(Stage {
                name,
                base_name: args.first().cloned().unwrap_or_default(),
                platform: f.string("platform"),
                source_code: node.original.trim().to_string(),
                line: node.start_line,
                commands: Vec::new(),
            }));
        }
        "onbuild" => {
            let Some(first) = args.first() else {
                return Err(at_least_one("ONBUILD"));
            };
            no_flags(node)?;
            let trigger = first.trim().to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // (?i)^\s*ONBUILD\s*
            let t = node.original.trim_start();
            let mut original = t
                .get(7..)
                .filter(|_| {
                    t.get(..7)
                        .is_some_and(|p| p.eq_ignore_ascii_case("onbuild"))
                })
                .unwrap_or(t)
                .trim_start()
                .to_string();
            for h in &node.heredocs {
                original.push('\n');
                original.push_str(&h.content);
                original.push_str(&h.name);
            }
            Instruction::Onbuild(original)
        }
        "workdir" => {
            let [p] = args.as_slice() else {
                return Err(exactly_one("WORKDIR"));
            };
            no_flags(node)?;
            Instruction::Workdir(p.clone())
        }
        "run" => {
            let mut f = Flags::new(
                &node.flags,
                &[
                    ("mount", Strings),
                    ("network", String),
                    ("security", String),
                    ("device", Strings),
                ],
            );
            f.parse()?;
            Instruction::Run(Run {
                cmd: cmd_line(node, false),
                flags_used: f.used(),
            })
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(cmd_line(node, false))
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(cmd_line(node, true))
        }
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(node)?),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            let mut ports = args.clone();
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            let [u] = args.as_slice() else {
                return Err(exactly_one("USER"));
            };
            no_flags(node)?;
            Instruction::User(u.clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut v = Vec::new();
            for a in args {
                let a = a.trim();
                if a.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                v.push(a.to_string());
            }
            Instruction::Volume(v)
        }
        "stopsignal" => {
            let [s] = args.as_slice() else {
                return Err(exactly_one("STOPSIGNAL"));
            };
            Instruction::StopSignal(s.clone())
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut defs = Vec::new();
            for a in args {
                defs.push(match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDef {
                        key: k.to_string(),
                        value: Some(v.to_string()),
                    },
                    None => ArgDef {
                        key: a.clone(),
                        value: None,
                    },
                });
            }
            Instruction::Arg(defs)
        }
        "shell" => {
            no_flags(node)?;
            let c = cmd_line(node, false);
            if c.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Instruction::Shell(c.args)
        }
        _ => {
            return Err(format!(
                "unknown instruction: {}{}",
                node.cmd,
                suggestion(&node.cmd, &INSTRUCTIONS, false)
            ))
        }
    };
    Ok(Parsed::Command(i))
}

fn parse_healthcheck(node: &Node) -> Result<Health, String> {
    let Some((typ, rest)) = node.args.split_first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Health {
            test: vec![typ],
            ..Health::default()
        });
    }
    use FlagType::String as S;
    let mut f = Flags::new(
        &node.flags,
        &[
            ("interval", S),
            ("timeout", S),
            ("start-period", S),
            ("start-interval", S),
            ("retries", S),
        ],
    );
    f.parse()?;
    if typ != "CMD" {
        return Err(format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"));
    }
    let cmd: Vec<String> = if node.json || rest.is_empty() {
        rest.to_vec()
    } else {
        vec![rest.join(" ")]
    };
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let t = if node.json { "CMD" } else { "CMD-SHELL" };
    let mut h = Health {
        test: std::iter::once(t.to_string()).chain(cmd).collect(),
        interval: opt_interval(&f, "interval")?,
        timeout: opt_interval(&f, "timeout")?,
        start_period: opt_interval(&f, "start-period")?,
        start_interval: opt_interval(&f, "start-interval")?,
        retries: 0,
    };
    let r = f.string("retries");
    if !r.is_empty() {
        let n: i64 = r
            .parse::<i32>()
            .map_err(|_| {
                format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    crate::error::go_quote(&r)
                )
            })?
            .into();
        if n < 0 {
            return Err(format!("--retries cannot be negative ({n})"));
        }
        h.retries = n;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn df(s: &str) -> Dockerfile {
        parse_dockerfile(s.as_bytes()).unwrap()
    }

    fn err(s: &str) -> String {
        parse_dockerfile(s.as_bytes()).unwrap_err().to_string()
    }

    fn first(s: &str) -> Instruction {
        df(&format!("FROM a\n{s}")).stages[0].commands[0]
            .instruction
            .clone()
    }

    #[test]
    fn run_heredocs_fold_into_the_shell_command() {
        let Instruction::Run(r) = first("RUN <<EOF\necho a\necho b\nEOF\n") else {
            panic!()
        };
        let c = r.cmd.with_heredocs().unwrap();
        assert_eq!(c.args, ["echo a\necho b\n"]);
        assert!(c.prepend_shell && c.files.is_empty());
        let Instruction::Run(r) = first("RUN cat <<EOF > /f\nhi\nEOF\n") else {
            panic!()
        };
        assert_eq!(
            r.cmd.with_heredocs().unwrap().args,
            ["cat <<EOF > /f\nhi\nEOF"]
        );
        let Instruction::Run(r) = first("RUN <<-EOF\n\techo t\n\tEOF\n") else {
            panic!()
        };
        assert_eq!(r.cmd.with_heredocs().unwrap().args, ["echo t\n"]);
        let Instruction::Run(r) = first("RUN echo plain") else {
            panic!()
        };
        assert_eq!(r.cmd.with_heredocs().unwrap(), r.cmd);
    }

    #[test]
    fn a_lone_heredoc_with_a_shebang_is_a_script() {
        let Instruction::Run(r) = first("RUN <<EOF\n#!/usr/bin/env awk -f\nBEGIN{}\nEOF\n") else {
            panic!()
        };
        assert_eq!(
            r.cmd.shebang_script(),
            Some(("EOF".into(), "#!/usr/bin/env awk -f\nBEGIN{}\n".into()))
        );
        let Instruction::Run(r) = first("RUN <<-S\n\t#!/bin/sh\n\techo $X\n\tS\n") else {
            panic!()
        };
        // Chomped, as BuildKit checks the raw text first: tabs before `#!` are no shebang.
        assert_eq!(r.cmd.shebang_script(), None);
        for plain in [
            "RUN <<EOF\necho a\nEOF\n",
            "RUN cat <<EOF\n#!/bin/sh\nEOF\n",
            "RUN echo '#!/bin/sh'",
        ] {
            let Instruction::Run(r) = first(plain) else {
                panic!()
            };
            assert_eq!(r.cmd.shebang_script(), None, "{plain}");
        }
    }

    #[test]
    fn copy_heredoc_expands_unless_quoted() {
        let env = crate::lex::Env::from_slice(&["X=1"]);
        let lex = crate::lex::Lex::new('\\');
        for (text, want) in [
            ("COPY <<EOF /f\nx=$X \"q\"\nEOF\n", "x=1 \"q\"\n"),
            ("COPY <<'EOF' /f\nx=$X\nEOF\n", "x=$X\n"),
        ] {
            let ins = crate::expand::expand(&first(text), &lex, &env).unwrap();
            let Instruction::Copy(c) = ins else { panic!() };
            assert_eq!(c.contents[0].data, want, "{text}");
        }
    }

    #[test]
    fn unknown_instruction_has_dockerds_text_and_line() {
        assert_eq!(
            err("FROM a\n\nFORM b\n"),
            "dockerfile parse error on line 3: unknown instruction: FORM (did you mean FROM?)"
        );
        assert_eq!(
            err("FROM a\nrunn x\n"),
            "dockerfile parse error on line 2: unknown instruction: runn (did you mean run?)"
        );
        assert_eq!(
            err("FROM a\nCopi x y\n"),
            "dockerfile parse error on line 2: unknown instruction: Copi (did you mean COPY?)"
        );
        let long = format!("FROM a\n{} x\n", "Z".repeat(60_000));
        assert!(err(&long).ends_with(&format!("unknown instruction: {}", "Z".repeat(60_000))));
        assert_eq!(
            err("FROM a\nRUN x \\\n  y\nNOINSTRUCTION z\n"),
            "dockerfile parse error on line 4: unknown instruction: NOINSTRUCTION"
        );
        assert_eq!(
            err("FROM a\nONBUILD\n"),
            "dockerfile parse error on line 2: ONBUILD requires at least one argument"
        );
    }

    #[test]
    fn stages_and_meta_args() {
        let d =
            df("ARG V=1\nARG B\nFROM a:$V AS Build\nRUN x\nFROM build\nCOPY --from=build /a /b\n");
        assert_eq!(d.meta_args.len(), 2);
        assert_eq!(d.meta_args[0].original, "ARG V=1");
        assert_eq!(d.step_count(), 6);
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[0].name, "build");
        assert_eq!(d.stages[0].base_name, "a:$V");
        assert_eq!(d.stages[0].source_code, "FROM a:$V AS Build");
        let Instruction::Copy(c) = &d.stages[1].commands[0].instruction else {
            panic!()
        };
        assert_eq!(c.from, "build");
        assert_eq!(c.sources, ["/a"]);
        assert_eq!(c.dest, "/b");
        assert_eq!(err("RUN x\n"), "no build stage in current context");
        assert_eq!(
            err("FROM a AS 1x\n"),
            "dockerfile parse error on line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            err("FROM a b\n"),
            "dockerfile parse error on line 1: FROM requires either one or three arguments"
        );
        let d = df("FROM --platform=linux/amd64 a\n");
        assert_eq!(d.stages[0].platform, "linux/amd64");
    }

    #[test]
    fn flag_errors() {
        assert_eq!(
            err("FROM a\nCOPY --frm=x a b\n"),
            "dockerfile parse error on line 2: unknown flag: --frm (did you mean from?)"
        );
        assert_eq!(
            err("FROM a\nCOPY --from a b\n"),
            "dockerfile parse error on line 2: missing a value on flag: --from"
        );
        assert_eq!(
            err("FROM a\nCOPY --from=x --from=y a b\n"),
            "dockerfile parse error on line 2: duplicate flag specified: --from"
        );
        assert_eq!(
            err("FROM a\nCOPY --link=maybe a b\n"),
            "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe"
        );
        assert_eq!(
            err("FROM a\nWORKDIR --x=1 /a\n"),
            "dockerfile parse error on line 2: unknown flag: --x"
        );
        let Instruction::Run(r) = first("RUN --mount=type=cache,target=/x true") else {
            panic!()
        };
        assert!(r
            .classic_refusal()
            .unwrap()
            .starts_with("the --mount option requires BuildKit"));
    }

    #[test]
    fn arity_errors() {
        for (src, want) in [
            ("COPY a", "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
            ("ADD a", "ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
            ("WORKDIR", "WORKDIR requires exactly one argument"),
            ("USER", "USER requires exactly one argument"),
            ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
            ("EXPOSE", "EXPOSE requires at least one argument"),
            ("VOLUME", "VOLUME requires at least one argument"),
            ("VOLUME [\"\"]", "VOLUME specified can not be an empty string"),
            ("ENV", "ENV requires at least one argument"),
            ("LABEL", "LABEL requires at least one argument"),
            ("ARG", "ARG requires at least one argument"),
            ("ARG =x", "ARG names can not be blank"),
            ("ENV =x", "ENV names can not be blank"),
            ("SHELL", "SHELL requires at least one argument"),
            ("SHELL sh -c", "SHELL requires the arguments to be in JSON form"),
            ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
            ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
            ("HEALTHCHECK FOO x", "Unknown type \"FOO\" in HEALTHCHECK (try CMD)"),
            ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
            ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
            ("HEALTHCHECK --interval=1us CMD x", "Interval \"interval\" cannot be less than 1ms"),
            ("HEALTHCHECK --timeout=x CMD x", "time: invalid duration \"x\""),
            ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
            ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
            ("COPY a <<EOF\nx\nEOF", "COPY cannot accept a heredoc as a destination"),
        ] {
            assert_eq!(
                err(&format!("FROM a\n{src}\n")),
                format!("dockerfile parse error on line 2: {want}"),
                "{src}"
            );
        }
    }

    #[test]
    fn instructions() {
        assert_eq!(
            first("ENV A=1 B=\"2 3\""),
            Instruction::Env(vec![
                KeyValue {
                    key: "A".into(),
                    value: "1".into(),
                    no_delim: false
                },
                KeyValue {
                    key: "B".into(),
                    value: "\"2 3\"".into(),
                    no_delim: false
                },
            ])
        );
        assert_eq!(
            first("ENV A 1 2"),
            Instruction::Env(vec![KeyValue {
                key: "A".into(),
                value: "1 2".into(),
                no_delim: true
            }])
        );
        let Instruction::Run(r) = first("RUN echo  a b") else {
            panic!()
        };
        assert_eq!(r.cmd.args, ["echo  a b"]);
        assert!(r.cmd.prepend_shell);
        let Instruction::Cmd(c) = first(r#"CMD ["a","b"]"#) else {
            panic!()
        };
        assert_eq!(c.args, ["a", "b"]);
        assert!(!c.prepend_shell);
        assert_eq!(
            first("EXPOSE 443 80/udp 22"),
            Instruction::Expose(vec!["22".into(), "443".into(), "80/udp".into()])
        );
        let Instruction::Healthcheck(h) = first("HEALTHCHECK --interval=1m30s --timeout=5s --start-period=1.5s --start-interval=2s --retries=3 CMD curl -f x") else { panic!() };
        assert_eq!(h.test, ["CMD-SHELL", "curl -f x"]);
        assert_eq!(h.interval, 90_000_000_000);
        assert_eq!(h.timeout, 5_000_000_000);
        assert_eq!(h.start_period, 1_500_000_000);
        assert_eq!(h.start_interval, 2_000_000_000);
        assert_eq!(h.retries, 3);
        let Instruction::Healthcheck(h) = first("healthcheck none") else {
            panic!()
        };
        assert_eq!(h.test, ["NONE"]);
        assert_eq!(
            first("onbuild  RUN echo hi"),
            Instruction::Onbuild("RUN echo hi".into())
        );
        assert_eq!(
            first("ONBUILD RUN <<EOF\nx\nEOF"),
            Instruction::Onbuild("RUN <<EOF\nx\nEOF".into())
        );
        let Instruction::Copy(c) =
            first("COPY --chown=1:2 --chmod=644 <<A <<-B /dst/\na\nA\n\tb\n\tB")
        else {
            panic!()
        };
        assert_eq!(c.contents.len(), 2);
        assert_eq!(c.contents[1].data, "b\n");
        assert_eq!(c.chown, "1:2");
        assert_eq!(c.chmod, "644");
        assert_eq!(
            first("ARG a b=c"),
            Instruction::Arg(vec![
                ArgDef {
                    key: "a".into(),
                    value: None
                },
                ArgDef {
                    key: "b".into(),
                    value: Some("c".into())
                }
            ])
        );
        assert_eq!(
            first("VOLUME /a /b"),
            Instruction::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            first(r#"SHELL ["bash", "-c"]"#),
            Instruction::Shell(vec!["bash".into(), "-c".into()])
        );
        assert_eq!(
            first("STOPSIGNAL SIGKILL"),
            Instruction::StopSignal("SIGKILL".into())
        );
    }

    #[test]
    fn step_text_is_the_joined_line() {
        let d = df("FROM a\nRUN echo hello \\\n    && echo world   \nCMD x\n");
        assert_eq!(
            d.stages[0].commands[0].original,
            "RUN echo hello     && echo world"
        );
        assert_eq!(d.stages[0].commands[1].line, 4);
    }

    #[test]
    fn trigger() {
        let c = parse_trigger("RUN echo hi").unwrap();
        assert!(matches!(c.instruction, Instruction::Run(_)));
        assert!(parse_trigger("RUN a\nRUN b").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("300ms").unwrap(), 300_000_000);
        assert_eq!(parse_go_duration("2h45m").unwrap(), 9_900_000_000_000);
        assert_eq!(parse_go_duration("0").unwrap(), 0);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("99999999999999h").is_err());
    }
}
