//! The `--format` template language shared by every command (column alignment is in
//! `crate::table`, human sizes in `crate::humanize`).
//!
//! Docker's `--format` takes a Go `text/template` evaluated on Go structs. We evaluate a
//! subset of that language on the response's JSON ([`serde_json::Value`]), which is what
//! scripts written for `docker ... --format` actually use:
//!
//! - literal text; `{{.}}`, `{{.Field.Sub}}`, `{{$}}`, `{{$.Field}}`;
//! - trim markers `{{- ` and ` -}}`, comments `{{/* ... */}}`;
//! - pipelines `{{.Names | upper}}` and parenthesised arguments;
//! - `if`/`else if`/`else`, `with`, `range` (arrays, and objects in key order), `end`;
//! - functions `json`, `index`, `join`, `split`, `upper`, `lower`, `title`, `len`, `eq`,
//!   `ne`, `not`, `and`, `or`.
//!
//! Field names are the JSON keys; when no key matches exactly, the first key that matches
//! ignoring ASCII case is used, so Go field names (`.Server.APIVersion`) and JSON keys
//! (`.Server.ApiVersion`) both work. A missing key evaluates like a missing Go map key
//! (prints `<no value>`, is false in `if`), not as an error, because daemons omit empty
//! fields that Docker's structs would still have. JSON objects are printed as Go prints
//! maps (`map[k:v]`), `null` as `<nil>`. It does not own what data a command passes in,
//! nor the `table` directive of list commands.

use std::fmt;

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Templates

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

/// Why a template could not be parsed or executed. The messages follow Go's
/// (`template: :1:2: executing "" at <.Foo>: ...`) so they read like Docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template is malformed; Docker exits 64 for these.
    Parse(String),
    /// The template is well formed but failed on this data.
    Exec(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Parse(m) => write!(f, "template parsing error: template: :{m}"),
            TemplateError::Exec(m) => write!(f, "template: :{m}"),
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        value: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        over: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    cmds: Vec<Vec<Arg>>,
    /// Byte offset of the action's first token, for error messages.
    pos: usize,
    /// The action's text, for error messages (`<.Foo>`).
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.` or `.A.B` (path empty for `.`).
    Dot {
        path: Vec<String>,
        pos: usize,
    },
    /// `$` or `$.A.B`.
    Root {
        path: Vec<String>,
        pos: usize,
    },
    Func(String, usize),
    Str(String),
    Int(i64),
    Bool(bool),
    Nil,
    Sub(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(Vec<String>),
    RootField(Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Pipe,
    Open,
    Close,
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let nodes = Parser::new(source).parse()?;
        Ok(Template {
            source: source.to_string(),
            nodes,
        })
    }

    /// Parses a `--format` value: `json` alone means `{{json .}}` (Docker's
    /// `formatter.JSONFormatKey`).
    pub fn parse_format_flag(source: &str) -> Result<Template, TemplateError> {
        if source == "json" {
            Template::parse("{{json .}}")
        } else {
            Template::parse(source)
        }
    }

    /// The template text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the template with `data` as `.`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let ex = Exec {
            root: data,
            source: &self.source,
        };
        ex.nodes(&self.nodes, &Some(data.clone()), &mut out)?;
        Ok(out)
    }
}

// --- lexing and parsing ------------------------------------------------------------------

struct Parser<'a> {
    src: &'a str,
}

/// One `{{ ... }}` with its trim markers resolved.
struct RawAction<'a> {
    body: &'a str,
    /// Byte offset of `body` in the source.
    pos: usize,
}

enum Piece<'a> {
    Text(String),
    Action(RawAction<'a>),
}

/// A frame of the block stack while parsing: the node being built and where its children
/// currently go.
struct Frame {
    kind: BlockKind,
    pipe: Pipeline,
    then: Vec<Node>,
    otherwise: Vec<Node>,
    in_else: bool,
    /// Opened by `{{else if}}`/`{{else with}}`: closed by the same `{{end}}` as its parent.
    chained: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    If,
    With,
    Range,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src }
    }

    fn err(&self, pos: usize, msg: impl fmt::Display) -> TemplateError {
        TemplateError::Parse(format!("{}: {msg}", line_of(self.src, pos)))
    }

    /// Splits the source into text and actions, applying `{{-` / `-}}` trimming.
    fn pieces(&self) -> Result<Vec<Piece<'a>>, TemplateError> {
        let src = self.src;
        let mut pieces = Vec::new();
        let mut rest = 0usize;
        let mut trim_next = false;
        while let Some(found) = src[rest..].find("{{") {
            let open = rest + found;
            let mut text = src[rest..open].to_string();
            if trim_next {
                text = text.trim_start().to_string();
            }
            let mut start = open + 2;
            let bytes = src.as_bytes();
            let trim_left = bytes.get(start) == Some(&b'-')
                && bytes
                    .get(start + 1)
                    .is_some_and(|b| b.is_ascii_whitespace());
            if trim_left {
                text = text.trim_end().to_string();
                start += 1;
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text));
            }
            let close = find_close(src, start).ok_or_else(|| self.err(open, "unclosed action"))?;
            let mut end = close;
            trim_next = false;
            if close > start
                && bytes[close - 1] == b'-'
                && close >= start + 2
                && bytes[close - 2].is_ascii_whitespace()
            {
                end = close - 1;
                trim_next = true;
            }
            pieces.push(Piece::Action(RawAction {
                body: &src[start..end],
                pos: start,
            }));
            rest = close + 2;
        }
        let mut text = src[rest..].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(pieces)
    }

    fn parse(&self) -> Result<Vec<Node>, TemplateError> {
        let mut top: Vec<Node> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();

        fn push(stack: &mut [Frame], top: &mut Vec<Node>, node: Node) {
            match stack.last_mut() {
                Some(f) if f.in_else => f.otherwise.push(node),
                Some(f) => f.then.push(node),
                None => top.push(node),
            }
        }

        for piece in self.pieces()? {
            let action = match piece {
                Piece::Text(t) => {
                    push(&mut stack, &mut top, Node::Text(t));
                    continue;
                }
                Piece::Action(a) => a,
            };
            let trimmed = action.body.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") || trimmed.len() < 4 {
                    return Err(self.err(action.pos, "unclosed comment"));
                }
                continue;
            }
            let lead = action.body.len() - action.body.trim_start().len();
            let pos = action.pos + lead;
            let tokens = self.lex(trimmed, pos)?;
            let keyword = match tokens.first() {
                Some((Token::Ident(k), _)) => Some(k.as_str()),
                _ => None,
            };
            match keyword {
                Some("if") | Some("with") | Some("range") => {
                    let kind = match keyword {
                        Some("if") => BlockKind::If,
                        Some("with") => BlockKind::With,
                        _ => BlockKind::Range,
                    };
                    let pipe = self.pipeline(&tokens[1..], pos, trimmed)?;
                    stack.push(Frame {
                        kind,
                        pipe,
                        then: Vec::new(),
                        otherwise: Vec::new(),
                        in_else: false,
                        chained: false,
                    });
                }
                Some("else") => {
                    let Some(frame) = stack.last_mut() else {
                        return Err(self.err(pos, "unexpected {{else}}"));
                    };
                    if frame.in_else {
                        return Err(self.err(pos, "expected end; found {{else}}"));
                    }
                    frame.in_else = true;
                    match tokens.get(1) {
                        None => {}
                        Some((Token::Ident(k), _)) if k == "if" || k == "with" => {
                            let kind = if k == "if" {
                                BlockKind::If
                            } else {
                                BlockKind::With
                            };
                            let pipe = self.pipeline(&tokens[2..], pos, trimmed)?;
                            stack.push(Frame {
                                kind,
                                pipe,
                                then: Vec::new(),
                                otherwise: Vec::new(),
                                in_else: false,
                                chained: true,
                            });
                        }
                        Some(_) => return Err(self.err(pos, "unexpected token after else")),
                    }
                }
                Some("end") => {
                    if tokens.len() > 1 {
                        return Err(self.err(pos, "unexpected token after end"));
                    }
                    loop {
                        let Some(frame) = stack.pop() else {
                            return Err(self.err(pos, "unexpected {{end}}"));
                        };
                        let chained = frame.chained;
                        let node = match frame.kind {
                            BlockKind::If => Node::If {
                                cond: frame.pipe,
                                then: frame.then,
                                otherwise: frame.otherwise,
                            },
                            BlockKind::With => Node::With {
                                value: frame.pipe,
                                then: frame.then,
                                otherwise: frame.otherwise,
                            },
                            BlockKind::Range => Node::Range {
                                over: frame.pipe,
                                body: frame.then,
                                otherwise: frame.otherwise,
                            },
                        };
                        push(&mut stack, &mut top, node);
                        if !chained {
                            break;
                        }
                    }
                }
                Some(k @ ("define" | "template" | "block" | "break" | "continue")) => {
                    return Err(self.err(pos, format!("{{{{{k}}}}} is not supported by berth")));
                }
                _ => {
                    let pipe = self.pipeline(&tokens, pos, trimmed)?;
                    push(&mut stack, &mut top, Node::Action(pipe));
                }
            }
        }
        if let Some(f) = stack.last() {
            return Err(self.err(
                f.pipe.pos,
                "unexpected EOF: an {{if}}, {{with}} or {{range}} lacks its {{end}}",
            ));
        }
        Ok(top)
    }

    fn lex(&self, body: &str, base: usize) -> Result<Vec<(Token, usize)>, TemplateError> {
        let b = body.as_bytes();
        let mut i = 0;
        let mut out = Vec::new();
        let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        while i < b.len() {
            let c = b[i];
            let pos = base + i;
            if c.is_ascii_whitespace() {
                i += 1;
            } else if c == b'|' {
                out.push((Token::Pipe, pos));
                i += 1;
            } else if c == b'(' {
                out.push((Token::Open, pos));
                i += 1;
            } else if c == b')' {
                out.push((Token::Close, pos));
                i += 1;
            } else if c == b'.' || c == b'$' {
                let start = i;
                if c == b'$' {
                    i += 1;
                    if i < b.len() && is_ident(b[i]) {
                        return Err(
                            self.err(pos, "template variables other than $ are not supported")
                        );
                    }
                }
                let mut path = Vec::new();
                while i < b.len() && b[i] == b'.' {
                    i += 1;
                    let s = i;
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                    if s == i {
                        // A lone "." (dot itself) is fine only as the whole token.
                        if !(c == b'.' && path.is_empty() && i == start + 1) {
                            return Err(
                                self.err(pos, format!("bad field in {:?}", &body[start..i]))
                            );
                        }
                        break;
                    }
                    path.push(body[s..i].to_string());
                }
                if i < b.len() && !(b[i].is_ascii_whitespace() || b[i] == b'|' || b[i] == b')') {
                    return Err(self.err(
                        pos,
                        format!(
                            "unexpected {:?} in operand",
                            body[i..].chars().next().unwrap_or(' ')
                        ),
                    ));
                }
                out.push((
                    if c == b'$' {
                        Token::RootField(path)
                    } else {
                        Token::Field(path)
                    },
                    pos,
                ));
            } else if c == b'"' {
                let mut s = String::new();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    let ch = body[i..].chars().next().unwrap_or('\0');
                    i += ch.len_utf8();
                    match ch {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => {
                            let esc = body[i..].chars().next().unwrap_or('\0');
                            i += esc.len_utf8();
                            s.push(match esc {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                '\'' => '\'',
                                '0' => '\0',
                                other => {
                                    return Err(
                                        self.err(pos, format!("unsupported escape \\{other}"))
                                    )
                                }
                            });
                        }
                        ch => s.push(ch),
                    }
                }
                if !closed {
                    return Err(self.err(pos, "unterminated quoted string"));
                }
                out.push((Token::Str(s), pos));
            } else if c == b'`' {
                let Some(end) = body[i + 1..].find('`') else {
                    return Err(self.err(pos, "unterminated raw quoted string"));
                };
                out.push((Token::Str(body[i + 1..i + 1 + end].to_string()), pos));
                i += end + 2;
            } else if c.is_ascii_digit()
                || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                let s = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = body[s..i]
                    .parse::<i64>()
                    .map_err(|_| self.err(pos, format!("bad number {:?}", &body[s..i])))?;
                out.push((Token::Int(n), pos));
            } else if is_ident(c) {
                let s = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                out.push((Token::Ident(body[s..i].to_string()), pos));
            } else {
                return Err(self.err(
                    pos,
                    format!(
                        "unexpected {:?} in command",
                        body[i..].chars().next().unwrap_or(' ')
                    ),
                ));
            }
        }
        Ok(out)
    }

    fn pipeline(
        &self,
        tokens: &[(Token, usize)],
        pos: usize,
        text: &str,
    ) -> Result<Pipeline, TemplateError> {
        let (pipe, used) = self.pipeline_until(tokens, pos, text, false)?;
        debug_assert_eq!(used, tokens.len());
        Ok(pipe)
    }

    /// Parses commands separated by `|` up to the end of `tokens`, or up to a `)` when
    /// `nested`. Returns the pipeline and how many tokens it used (including the `)`).
    fn pipeline_until(
        &self,
        tokens: &[(Token, usize)],
        pos: usize,
        text: &str,
        nested: bool,
    ) -> Result<(Pipeline, usize), TemplateError> {
        let mut cmds: Vec<Vec<Arg>> = vec![Vec::new()];
        let mut i = 0;
        let mut closed = false;
        while i < tokens.len() {
            let (tok, tpos) = &tokens[i];
            i += 1;
            let arg = match tok {
                Token::Pipe => {
                    if cmds.last().is_some_and(Vec::is_empty) {
                        return Err(self.err(*tpos, "missing command before |"));
                    }
                    cmds.push(Vec::new());
                    continue;
                }
                Token::Close => {
                    if !nested {
                        return Err(self.err(*tpos, "unexpected right paren"));
                    }
                    closed = true;
                    break;
                }
                Token::Open => {
                    let (sub, used) = self.pipeline_until(&tokens[i..], *tpos, text, true)?;
                    i += used;
                    Arg::Sub(sub)
                }
                Token::Field(path) => Arg::Dot {
                    path: path.clone(),
                    pos: *tpos,
                },
                Token::RootField(path) => Arg::Root {
                    path: path.clone(),
                    pos: *tpos,
                },
                Token::Str(s) => Arg::Str(s.clone()),
                Token::Int(n) => Arg::Int(*n),
                Token::Ident(name) => match name.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    f if FUNCTIONS.contains(&f) => Arg::Func(f.to_string(), *tpos),
                    f => return Err(self.err(*tpos, format!("function {f:?} not defined"))),
                },
            };
            if let Some(cmd) = cmds.last_mut() {
                cmd.push(arg);
            }
        }
        if nested && !closed {
            return Err(self.err(pos, "unclosed left paren"));
        }
        if cmds.iter().any(Vec::is_empty) {
            return Err(self.err(pos, "missing value for command"));
        }
        for cmd in &cmds {
            if cmd.len() > 1 && !matches!(cmd[0], Arg::Func(..)) {
                return Err(self.err(pos, "can't give argument to non-function"));
            }
        }
        Ok((
            Pipeline {
                cmds,
                pos,
                text: text.to_string(),
            },
            i,
        ))
    }
}

/// Finds the `}}` closing an action opened before `from`, skipping quoted strings.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = from;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `line` (1-based) of byte offset `pos`, Go's parse error prefix.
fn line_of(src: &str, pos: usize) -> usize {
    src[..pos.min(src.len())].matches('\n').count() + 1
}

/// `line:col` of byte offset `pos`, Go's execution error prefix (col is 0-based bytes).
fn line_col(src: &str, pos: usize) -> String {
    let before = &src[..pos.min(src.len())];
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1);
    format!("{}:{col}", line_of(src, pos))
}

// --- evaluation ----------------------------------------------------------------------------

const FUNCTIONS: &[&str] = &[
    "json", "index", "join", "split", "upper", "lower", "title", "len", "eq", "ne", "not", "and",
    "or",
];

/// What an expression evaluates to: `None` is a missing map key (Go's `<no value>`).
type Val = Option<Value>;

struct Exec<'a> {
    root: &'a Value,
    source: &'a str,
}

impl Exec<'_> {
    fn err(&self, pipe: &Pipeline, pos: usize, msg: impl fmt::Display) -> TemplateError {
        TemplateError::Exec(format!(
            "{}: executing \"\" at <{}>: {msg}",
            line_col(self.source, pos),
            pipe.text
        ))
    }

    fn nodes(&self, nodes: &[Node], dot: &Val, out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => out.push_str(&print_value(&self.pipeline(p, dot)?)),
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    if truthy(&self.pipeline(cond, dot)?) {
                        self.nodes(then, dot, out)?;
                    } else {
                        self.nodes(otherwise, dot, out)?;
                    }
                }
                Node::With {
                    value,
                    then,
                    otherwise,
                } => {
                    let v = self.pipeline(value, dot)?;
                    if truthy(&v) {
                        self.nodes(then, &v, out)?;
                    } else {
                        self.nodes(otherwise, dot, out)?;
                    }
                }
                Node::Range {
                    over,
                    body,
                    otherwise,
                } => {
                    let items: Vec<Value> = match self.pipeline(over, dot)? {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(a)) => a,
                        Some(Value::Object(m)) => m.into_iter().map(|(_, v)| v).collect(),
                        Some(other) => {
                            return Err(self.err(
                                over,
                                over.pos,
                                format!("range can't iterate over {}", print_value(&Some(other))),
                            ))
                        }
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot, out)?;
                    }
                    for item in items {
                        self.nodes(body, &Some(item), out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn pipeline(&self, pipe: &Pipeline, dot: &Val) -> Result<Val, TemplateError> {
        let mut piped: Option<Val> = None;
        for cmd in &pipe.cmds {
            piped = Some(self.command(pipe, cmd, dot, piped)?);
        }
        Ok(piped.flatten())
    }

    fn command(
        &self,
        pipe: &Pipeline,
        cmd: &[Arg],
        dot: &Val,
        piped: Option<Val>,
    ) -> Result<Val, TemplateError> {
        match &cmd[0] {
            Arg::Func(name, pos) => {
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.arg(pipe, a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                call(name, &args)
                    .map_err(|m| self.err(pipe, *pos, format!("error calling {name}: {m}")))
            }
            single => {
                if piped.is_some() {
                    return Err(self.err(pipe, pipe.pos, "can't give argument to non-function"));
                }
                self.arg(pipe, single, dot)
            }
        }
    }

    fn arg(&self, pipe: &Pipeline, arg: &Arg, dot: &Val) -> Result<Val, TemplateError> {
        match arg {
            Arg::Dot { path, pos } => self.walk(pipe, dot.clone(), path, *pos),
            Arg::Root { path, pos } => self.walk(pipe, Some(self.root.clone()), path, *pos),
            Arg::Str(s) => Ok(Some(Value::String(s.clone()))),
            Arg::Int(n) => Ok(Some(Value::from(*n))),
            Arg::Bool(b) => Ok(Some(Value::Bool(*b))),
            Arg::Nil => Ok(Some(Value::Null)),
            Arg::Sub(p) => self.pipeline(p, dot),
            Arg::Func(name, pos) => call(name, &[])
                .map_err(|m| self.err(pipe, *pos, format!("error calling {name}: {m}"))),
        }
    }

    fn walk(
        &self,
        pipe: &Pipeline,
        start: Val,
        path: &[String],
        pos: usize,
    ) -> Result<Val, TemplateError> {
        let mut cur = start;
        for (i, name) in path.iter().enumerate() {
            cur = match cur {
                None => None,
                Some(Value::Object(m)) => lookup(&m, name).cloned(),
                Some(Value::Null) => {
                    return Err(self.err(
                        pipe,
                        pos,
                        format!("nil pointer evaluating .{}", path[..=i].join(".")),
                    ))
                }
                Some(other) => {
                    return Err(self.err(
                        pipe,
                        pos,
                        format!("can't evaluate field {name} in type {}", type_name(&other)),
                    ))
                }
            };
        }
        Ok(cur)
    }
}

/// Looks `name` up in `m`: exact key first, then ignoring ASCII case.
fn lookup<'m>(m: &'m serde_json::Map<String, Value>, name: &str) -> Option<&'m Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Go's truth: false, 0, nil, empty strings, slices and maps are false.
fn truthy(v: &Val) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// How `{{.X}}` prints a value (Go's `%v` on the corresponding Go value).
fn print_value(v: &Val) -> String {
    match v {
        None => "<no value>".to_string(),
        Some(v) => print_json(v),
    }
}

fn print_json(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(print_json).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut items: Vec<(&String, &Value)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", print_json(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

fn want_args(args: &[Val], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

fn as_str(v: &Val) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Ok(String::new()),
        Some(other) => Ok(print_json(other)),
    }
}

fn call(name: &str, args: &[Val]) -> Result<Val, String> {
    let s = |v: String| Ok(Some(Value::String(v)));
    match name {
        "json" => {
            want_args(args, 1)?;
            let text = match &args[0] {
                None => "null".to_string(),
                Some(v) => serde_json::to_string(v).map_err(|e| e.to_string())?,
            };
            s(text)
        }
        "index" => {
            if args.is_empty() {
                return Err("wrong number of args: want at least 1 got 0".into());
            }
            let mut cur = args[0].clone();
            for key in &args[1..] {
                cur = match (cur, key) {
                    (None | Some(Value::Null), _) => None,
                    (Some(Value::Object(m)), Some(Value::String(k))) => m.get(k.as_str()).cloned(),
                    (Some(Value::Array(a)), Some(Value::Number(n))) => {
                        let i = n
                            .as_u64()
                            .ok_or_else(|| format!("index out of range: {n}"))?;
                        Some(
                            a.get(usize::try_from(i).unwrap_or(usize::MAX))
                                .cloned()
                                .ok_or_else(|| format!("index out of range: {i}"))?,
                        )
                    }
                    (Some(c), k) => {
                        return Err(format!(
                            "can't index item of type {} with {}",
                            type_name(&c),
                            print_value(k)
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "join" => {
            want_args(args, 2)?;
            let sep = as_str(&args[1])?;
            let items: Vec<String> = match &args[0] {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.iter().map(print_json).collect(),
                Some(other) => return Err(format!("can't join a {}", type_name(other))),
            };
            s(items.join(&sep))
        }
        "split" => {
            want_args(args, 2)?;
            let text = as_str(&args[0])?;
            let sep = as_str(&args[1])?;
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        "upper" => {
            want_args(args, 1)?;
            s(as_str(&args[0])?.to_uppercase())
        }
        "lower" => {
            want_args(args, 1)?;
            s(as_str(&args[0])?.to_lowercase())
        }
        "title" => {
            want_args(args, 1)?;
            s(title_case(&as_str(&args[0])?))
        }
        "len" => {
            want_args(args, 1)?;
            let n = match &args[0] {
                Some(Value::String(t)) => t.len(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                None | Some(Value::Null) => 0,
                Some(other) => return Err(format!("len of type {}", type_name(other))),
            };
            Ok(Some(Value::from(n)))
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return Err(format!(
                    "wrong number of args: want at least 2 got {}",
                    args.len()
                ));
            }
            let first = normalize(&args[0]);
            let any = args[1..].iter().any(|a| normalize(a) == first);
            Ok(Some(Value::Bool(if name == "eq" { any } else { !any })))
        }
        "not" => {
            want_args(args, 1)?;
            Ok(Some(Value::Bool(!truthy(&args[0]))))
        }
        "and" | "or" => {
            if args.is_empty() {
                return Err("wrong number of args: want at least 1 got 0".into());
            }
            // Go returns the first falsy (and) / truthy (or) argument, else the last.
            let pick = args
                .iter()
                .find(|a| truthy(a) == (name == "or"))
                .unwrap_or(&args[args.len() - 1]);
            Ok(pick.clone())
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

/// Numbers compare by value (1 == 1.0), missing compares like an empty value.
fn normalize(v: &Val) -> Value {
    match v {
        None => Value::Null,
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n.clone()), Value::Number),
        Some(v) => v.clone(),
    }
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(t: &str, data: &Value) -> String {
        Template::parse(t)
            .unwrap_or_else(|e| panic!("parse {t:?}: {e}"))
            .render(data)
            .unwrap_or_else(|e| panic!("render {t:?}: {e}"))
    }

    fn version_data() -> Value {
        json!({
            "Client": {"Version": "0.1.0", "ApiVersion": "1.50", "Context": "default"},
            "Server": {
                "Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
                "Platform": {"Name": ""},
                "Components": [
                    {"Name": "Engine", "Version": "20.10.24", "Details": {"ApiVersion": "1.41"}},
                    {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "abc"}}
                ],
                "Experimental": false,
                "Labels": {"b": "2", "a": "1"},
                "Warnings": null,
                "List": ["x", "y"],
                "Num": 25276510208u64
            }
        })
    }

    #[test]
    fn bad_templates_are_parse_errors() {
        for t in [
            "{{",
            "{{.Foo",
            "{{nosuchfunc .}}",
            "{{if .A}}x",
            "{{end}}",
            "{{else}}",
            "{{.A \"x\"}}",
            "{{\"unterminated}}",
            "{{(json .}}",
            "{{json .)}}",
            "{{|json}}",
            "{{.A.}}",
            "{{$x := 1}}",
            "{{define \"x\"}}{{end}}",
            "{{/* unclosed }}",
            "{{if .A}}{{else}}{{else}}{{end}}",
        ] {
            match Template::parse(t) {
                Err(TemplateError::Parse(_)) => {}
                other => panic!("{t:?}: expected a parse error, got {other:?}"),
            }
        }
    }

    #[test]
    fn parse_error_message_reads_like_docker() {
        let e = Template::parse("{{nosuch .}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template parsing error: template: :1: function \"nosuch\" not defined"
        );
    }

    #[test]
    fn literal_text_passes_through() {
        assert_eq!(render("hello } { world", &json!({})), "hello } { world");
        assert_eq!(render("", &json!({})), "");
    }

    #[test]
    fn fields_and_nested_fields() {
        let d = version_data();
        assert_eq!(render("{{.Server.ApiVersion}}", &d), "1.41");
        assert_eq!(
            render("v{{.Client.Version}}/{{.Server.MinAPIVersion}}", &d),
            "v0.1.0/1.12"
        );
        assert_eq!(render("{{ .Server.Version }}", &d), "20.10.24");
    }

    #[test]
    fn go_field_names_match_json_keys_ignoring_case() {
        let d = version_data();
        assert_eq!(render("{{.Server.APIVersion}}", &d), "1.41");
        assert_eq!(render("{{.server.apiversion}}", &d), "1.41");
    }

    #[test]
    fn exact_key_wins_over_case_insensitive_match() {
        let d = json!({"id": "lower", "ID": "upper"});
        assert_eq!(render("{{.ID}}", &d), "upper");
        assert_eq!(render("{{.id}}", &d), "lower");
    }

    #[test]
    fn missing_field_prints_no_value() {
        let d = version_data();
        assert_eq!(render("{{.Server.Nope}}", &d), "<no value>");
        assert_eq!(render("{{.Nope.Deeper}}", &d), "<no value>");
        assert_eq!(render("{{json .Nope}}", &d), "null");
    }

    #[test]
    fn field_of_null_or_scalar_is_an_exec_error() {
        let d = json!({"P": null, "S": "x"});
        let e = Template::parse("{{.P.Name}}")
            .unwrap()
            .render(&d)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: :1:2: executing \"\" at <.P.Name>: nil pointer evaluating .P.Name"
        );
        let e = Template::parse("ab\n{{.S.Name}}")
            .unwrap()
            .render(&d)
            .unwrap_err();
        assert!(matches!(e, TemplateError::Exec(_)));
        assert!(e.to_string().starts_with("template: :2:2: "), "{e}");
    }

    #[test]
    fn json_function() {
        let d = version_data();
        assert_eq!(
            render("{{json .Client}}", &d),
            r#"{"ApiVersion":"1.50","Context":"default","Version":"0.1.0"}"#
        );
        assert_eq!(render("{{json .Server.Warnings}}", &d), "null");
        assert_eq!(render("{{json .Server.List}}", &d), r#"["x","y"]"#);
        assert_eq!(render("{{json \"<&>\"}}", &d), r#""<&>""#);
        let whole = render("{{json .}}", &d);
        assert_eq!(serde_json::from_str::<Value>(&whole).unwrap(), d);
        assert_eq!(render("{{. | json}}", &json!(1)), "1");
    }

    #[test]
    fn json_format_key() {
        let t = Template::parse_format_flag("json").unwrap();
        assert_eq!(t.render(&json!({"a": 1})).unwrap(), r#"{"a":1}"#);
        let t = Template::parse_format_flag("json ").unwrap();
        assert_eq!(t.render(&json!({"a": 1})).unwrap(), "json ");
    }

    #[test]
    fn values_print_like_go() {
        let d = version_data();
        assert_eq!(render("{{.Server.Experimental}}", &d), "false");
        assert_eq!(render("{{.Server.Num}}", &d), "25276510208");
        assert_eq!(render("{{.Server.List}}", &d), "[x y]");
        assert_eq!(render("{{.Server.Labels}}", &d), "map[a:1 b:2]");
        assert_eq!(render("{{.Server.Warnings}}", &d), "<nil>");
        assert_eq!(render("{{.Server.Platform}}", &d), "map[Name:]");
        assert_eq!(render("{{.}}", &json!("plain")), "plain");
        assert_eq!(render("{{$}}", &json!(7)), "7");
    }

    #[test]
    fn trim_markers() {
        let d = json!({"A": "a", "B": "b"});
        assert_eq!(render("x  {{- .A -}}  \n y", &d), "xay");
        assert_eq!(render("x {{.A}} y", &d), "x a y");
        // "{{-3}}" is the number -3, not a trim marker.
        assert_eq!(render("x {{-3}}", &d), "x -3");
        assert_eq!(render("{{.A}}\n{{- .B}}", &d), "ab");
    }

    #[test]
    fn comments_render_nothing() {
        assert_eq!(render("a{{/* note */}}b", &json!({})), "ab");
        assert_eq!(render("a {{- /* note */ -}} b", &json!({})), "ab");
    }

    #[test]
    fn braces_inside_strings_do_not_close_actions() {
        assert_eq!(render(r#"{{"}}"}}"#, &json!({})), "}}");
        assert_eq!(render("{{`a}}b`}}", &json!({})), "a}}b");
    }

    #[test]
    fn if_else_chains() {
        let t = "{{if .A}}A{{else if .B}}B{{else}}none{{end}}";
        assert_eq!(render(t, &json!({"A": true})), "A");
        assert_eq!(render(t, &json!({"A": false, "B": "x"})), "B");
        assert_eq!(render(t, &json!({"A": 0, "B": ""})), "none");
        assert_eq!(render(t, &json!({})), "none");
        let nested = "{{if .A}}{{if .B}}ab{{else}}a{{end}}{{end}}.";
        assert_eq!(render(nested, &json!({"A": 1, "B": []})), "a.");
        assert_eq!(render(nested, &json!({"A": 1, "B": [1]})), "ab.");
    }

    #[test]
    fn with_rebinds_dot() {
        let d = version_data();
        assert_eq!(
            render("{{with .Server}}{{.Version}}{{end}}", &d),
            "20.10.24"
        );
        assert_eq!(
            render("{{with .Nope}}x{{else}}{{.Client.Context}}{{end}}", &d),
            "default"
        );
        assert_eq!(
            render("{{with .Server}}{{$.Client.Version}}{{end}}", &d),
            "0.1.0"
        );
    }

    #[test]
    fn range_over_arrays_and_maps() {
        let d = version_data();
        assert_eq!(
            render(
                "{{range .Server.Components}}{{.Name}}={{.Version}};{{end}}",
                &d
            ),
            "Engine=20.10.24;runc=1.1.5;"
        );
        assert_eq!(render("{{range .Server.Labels}}{{.}}{{end}}", &d), "12");
        assert_eq!(
            render("{{range .Server.Warnings}}x{{else}}empty{{end}}", &d),
            "empty"
        );
        let e = Template::parse("{{range .Server.Version}}{{end}}")
            .unwrap()
            .render(&d);
        assert!(matches!(e, Err(TemplateError::Exec(_))));
    }

    #[test]
    fn functions() {
        let d = version_data();
        assert_eq!(render("{{index .Server.Labels \"a\"}}", &d), "1");
        assert_eq!(render("{{index .Server.List 1}}", &d), "y");
        assert_eq!(
            render(
                "{{index .Server.Components 0 \"Details\" \"ApiVersion\"}}",
                &d
            ),
            "1.41"
        );
        assert_eq!(render("{{join .Server.List \", \"}}", &d), "x, y");
        assert_eq!(render("{{.Client.Context | upper}}", &d), "DEFAULT");
        assert_eq!(render("{{lower \"AbC\"}}", &d), "abc");
        assert_eq!(
            render("{{title \"hello big world\"}}", &d),
            "Hello Big World"
        );
        assert_eq!(render("{{len .Server.List}}", &d), "2");
        assert_eq!(render("{{split \"a:b\" \":\"}}", &d), "[a b]");
        assert_eq!(render("{{join (split \"a:b\" \":\") \"-\"}}", &d), "a-b");
        assert_eq!(render("{{eq .Server.ApiVersion \"1.41\"}}", &d), "true");
        assert_eq!(
            render("{{eq .Server.ApiVersion \"1.0\" \"1.41\"}}", &d),
            "true"
        );
        assert_eq!(render("{{ne .Server.ApiVersion \"1.41\"}}", &d), "false");
        assert_eq!(
            render("{{eq 1 1}} {{not .Server.Experimental}}", &d),
            "true true"
        );
        assert_eq!(render("{{and 1 0}} {{or 0 \"x\"}}", &d), "0 x");
        assert_eq!(
            render("{{if eq .Server.ApiVersion \"1.41\"}}old{{end}}", &d),
            "old"
        );
    }

    #[test]
    fn function_errors_are_exec_errors() {
        let d = version_data();
        for t in [
            "{{json}}",
            "{{index .Server.List 5}}",
            "{{index .Server.Version \"x\"}}",
            "{{join .Server.Version \",\"}}",
            "{{eq 1}}",
            "{{.Server.Version | .Client}}",
        ] {
            match Template::parse(t).map(|t| t.render(&d)) {
                Ok(Err(TemplateError::Exec(_))) => {}
                other => panic!("{t:?}: expected an exec error, got {other:?}"),
            }
        }
    }
}
