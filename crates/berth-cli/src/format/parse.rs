//! Lexing and parsing of a template into the node tree ([`super::Node`]): `{{ ... }}`
//! actions found (quoted `}}` skipped, trim markers applied), tokens, pipelines, and the
//! block stack of `if`/`with`/`range`/`else`/`end`; errors carry Go's `line:` prefix.

use std::fmt;

use super::functions::FUNCTIONS;
use super::{line_of, Arg, Node, Pipeline, TemplateError, Token};

pub(super) struct Parser<'a> {
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

impl Frame {
    /// A block just opened, its body empty.
    fn open(kind: BlockKind, pipe: Pipeline, chained: bool) -> Frame {
        Frame {
            kind,
            pipe,
            then: Vec::new(),
            otherwise: Vec::new(),
            in_else: false,
            chained,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    If,
    With,
    Range,
}

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str) -> Self {
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

    pub(super) fn parse(&self) -> Result<Vec<Node>, TemplateError> {
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
                    stack.push(Frame::open(kind, pipe, false));
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
                            stack.push(Frame::open(kind, pipe, true));
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
