//! The Dockerfile parser (moby/buildkit `frontend/dockerfile/parser`): parser directives
//! (`# syntax=`, `# escape=` before anything else), line continuations with the escape
//! character, comments (also inside continued lines, which are dropped), empty continuation
//! lines (a warning), heredocs for `RUN`/`COPY`/`ADD` (and under `ONBUILD`), builder flags
//! (`--from=...`), and the JSON (exec) form versus the shell form of each instruction.
//!
//! The result is a list of [`Node`]s, one per instruction, holding the instruction's
//! arguments as moby's AST yields them (`nodeArgs`); [`crate::instructions`] gives them
//! meaning. The parser does not know instruction names: an unknown one is refused there.
//!
//! Written here rather than taken from a crate: the published parsers (`parse-dockerfile`,
//! `dockerfile-parser`) do not reproduce moby's exact fallbacks (invalid JSON becomes shell
//! form, `ENV k v` legacy form, heredoc quoting rules) nor its error texts.

use crate::lex::{Env, Lex};
use crate::Error;

/// The largest Dockerfile accepted: dockerd reads the file into memory too; 10 MiB is far
/// beyond any real Dockerfile and bounds the heredocs it may carry.
pub const MAX_DOCKERFILE_SIZE: usize = 10 << 20;
/// The longest line, as Go's `bufio.Scanner` default (`bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE_SIZE: usize = 65535;
/// The most instructions one Dockerfile may hold.
pub const MAX_INSTRUCTIONS: usize = 10_000;

/// A heredoc attached to an instruction (`RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub file_descriptor: u32,
    /// Unquoted delimiter: the content undergoes expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the content.
    pub chomp: bool,
    pub content: String,
}

/// One instruction as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word as written (`run`, `RUN`...).
    pub cmd: String,
    /// Builder flags (`--from=x`), as written.
    pub flags: Vec<String>,
    /// The arguments as moby's `nodeArgs`: words, `key, value, sep` triples for ENV and
    /// LABEL, `type, cmd...` for HEALTHCHECK, the sub-instruction's for ONBUILD.
    pub args: Vec<String>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The logical line, continuations joined.
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    /// ONBUILD's instruction.
    pub sub: Option<Box<Node>>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    pub nodes: Vec<Node>,
    pub escape: char,
    /// `# syntax=` value, if any (recorded; the classic builder ignores it).
    pub syntax: Option<String>,
    pub warnings: Vec<String>,
}

struct Directives {
    escape: char,
    line: usize,
    done: bool,
    seen: Vec<String>,
    syntax: Option<String>,
}

impl Directives {
    /// moby `DirectiveParser.ParseLine`: `#\s*key\s*=\s*value` before anything else.
    fn parse_line(&mut self, line: &str) -> Result<bool, String> {
        self.line += 1;
        if self.done {
            return Ok(false);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(false);
        };
        let rest = rest.trim_start();
        let key_len = rest
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let (key, after) = rest.split_at(key_len);
        let value = after.trim_start().strip_prefix('=').map(|v| v.trim());
        let (Some(value), false) = (value, key.is_empty()) else {
            self.done = true;
            return Ok(false);
        };
        if value.is_empty() {
            self.done = true;
            return Ok(false);
        }
        let k = key.to_ascii_lowercase();
        if !matches!(k.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.seen.contains(&k) {
            return Err(format!("only one {k} parser directive can be used"));
        }
        self.seen.push(k.clone());
        match k.as_str() {
            "escape" => match value {
                "`" => self.escape = '`',
                "\\" => self.escape = '\\',
                _ => {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ))
                }
            },
            "syntax" => self.syntax = Some(value.to_string()),
            _ => {}
        }
        Ok(true)
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// moby's continuation regex `([^E])E[ \t]*$|^E[ \t]*$`: the line without its trailing
/// escape, and whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line.to_string(), true);
    };
    if before.is_empty() {
        return (String::new(), false);
    }
    if before.ends_with(escape) {
        return (line.to_string(), true);
    }
    (before.to_string(), false)
}

/// Splits `text` into lines that keep their `\n` (moby's `scanLines`).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
}

fn is_ws_regex(c: char) -> bool {
    // moby's reWhitespace `[\t\v\f\r ]+`
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// `reWhitespace.Split(s, n)` with n = 2 (`Some`) or -1 (`None`).
fn split_ws(s: &str, two: bool) -> Vec<String> {
    if two {
        return match s.find(is_ws_regex) {
            Some(i) => {
                let rest = s[i..].trim_start_matches(is_ws_regex);
                vec![s[..i].to_string(), rest.to_string()]
            }
            None => vec![s.to_string()],
        };
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_ws = false;
    for c in s.chars() {
        if is_ws_regex(c) {
            if !in_ws {
                out.push(std::mem::take(&mut cur));
            }
            in_ws = true;
        } else {
            in_ws = false;
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Parses a Dockerfile.
pub fn parse(data: &[u8]) -> Result<Ast, Error> {
    if data.len() > MAX_DOCKERFILE_SIZE {
        return Err(Error::Syntax {
            line: 0,
            message: format!("dockerfile exceeds the maximum size of {MAX_DOCKERFILE_SIZE} bytes"),
        });
    }
    let data = data.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(data);
    let text = String::from_utf8_lossy(data);
    let mut d = Directives {
        escape: '\\',
        line: 0,
        done: false,
        seen: Vec::new(),
        syntax: None,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut current = 0usize;
    let mut it = lines(&text).peekable();
    let syntax = |line: usize, message: String| Error::Syntax { line, message };

    while let Some(raw) = it.next() {
        if trim_newline(raw).len() > MAX_LINE_SIZE {
            return Err(syntax(
                current + 1,
                format!("dockerfile line greater than max allowed size of {MAX_LINE_SIZE}"),
            ));
        }
        let token = trim_newline(raw).trim_start();
        d.parse_line(token).map_err(|m| syntax(current, m))?;
        let processed = if is_comment(token) { "" } else { token };
        current += 1;
        let start = current;
        let (first, mut end_of_line) = trim_continuation(processed, d.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut buf = first;
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = it.next() else { break };
            if trim_newline(raw).len() > MAX_LINE_SIZE {
                return Err(syntax(
                    current + 1,
                    format!("dockerfile line greater than max allowed size of {MAX_LINE_SIZE}"),
                ));
            }
            let token = trim_newline(raw);
            d.parse_line(token).map_err(|m| syntax(current, m))?;
            current += 1;
            if is_comment(raw) {
                continue;
            }
            if token.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(token, d.escape);
            end_of_line = eol;
            buf.push_str(&part);
        }
        if empty_continuation {
            warnings.push(format!("Empty continuation line found in: {buf}"));
        }
        let mut node = node_from_line(&buf, d.escape, 0).map_err(|m| syntax(start, m))?;
        if node.can_contain_heredoc() && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|m| syntax(start, m))?;
            for mut doc in docs {
                let mut content = String::new();
                let mut terminated = false;
                for raw in it.by_ref() {
                    current += 1;
                    let mut t = trim_newline(raw);
                    if doc.chomp {
                        t = t.trim_start_matches('\t');
                    }
                    if t == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(syntax(start, "unterminated heredoc".into()));
                }
                doc.content = content;
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = current;
        nodes.push(node);
        if nodes.len() > MAX_INSTRUCTIONS {
            return Err(syntax(
                start,
                format!("dockerfile has more than {MAX_INSTRUCTIONS} instructions"),
            ));
        }
    }
    if nodes.is_empty() {
        return Err(syntax(current, "file with no instructions".into()));
    }
    Ok(Ast {
        nodes,
        escape: d.escape,
        syntax: d.syntax,
        warnings,
    })
}

impl Node {
    fn can_contain_heredoc(&self) -> bool {
        let n = match (&self.sub, self.cmd.eq_ignore_ascii_case("onbuild")) {
            (Some(sub), true) => sub,
            _ => self,
        };
        matches!(n.cmd.to_ascii_lowercase().as_str(), "add" | "copy" | "run") && !n.json
    }
}

fn node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, String> {
    let (cmd, flags, args) = split_command(line, escape);
    let mut node = Node {
        cmd: cmd.clone(),
        flags,
        args: Vec::new(),
        json: false,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        sub: None,
    };
    match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => {
            (node.args, node.json) = parse_maybe_json_to_list(&args)?;
        }
        "cmd" | "entrypoint" | "run" | "shell" => {
            (node.args, node.json) = parse_maybe_json(&args)?;
        }
        "arg" => node.args = parse_words(&args, escape),
        "env" => node.args = parse_name_val(&args, "ENV", escape)?,
        "label" => node.args = parse_name_val(&args, "LABEL", escape)?,
        "expose" | "from" => node.args = parse_strings_ws(&args),
        "healthcheck" => (node.args, node.json) = parse_health_config(&args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" if !args.is_empty() => {
            node.args = vec![args];
        }
        // moby recurses without bound; one level is all ONBUILD allows (ONBUILD ONBUILD is
        // refused later), a few more keep the error path the same.
        "onbuild" if !args.is_empty() && depth < 4 => {
            let sub = node_from_line(&args, escape, depth + 1)?;
            node.args = std::iter::once(sub.cmd.clone())
                .chain(sub.args.iter().cloned())
                .collect();
            node.json = sub.json;
            node.sub = Some(Box::new(sub));
        }
        _ => {}
    }
    Ok(node)
}

/// moby `splitCommand`: the instruction word, its builder flags, the rest.
fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let mut parts = split_ws(line.trim(), true).into_iter();
    let cmd = parts.next().unwrap_or_default();
    match parts.next() {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(&rest, escape);
            (cmd, flags, args.trim().to_string())
        }
        None => (cmd, Vec::new(), String::new()),
    }
}

/// moby `extractBuilderFlags`: leading `--words` (quotes and escapes processed) up to the
/// first word that is not one, or a bare `--`.
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let cur = chars.get(pos).copied();
        if phase == Phase::Spaces {
            let Some((off, ch)) = cur else { break };
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            let next_dash = chars.get(pos + 1).map(|c| c.1) == Some('-');
            if ch != '-' || !next_dash {
                return (line[off..].to_string(), words);
            }
            phase = Phase::Word;
        }
        let Some((off, ch)) = cur else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[off..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
        } else if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        // A character of the word, in or out of quotes; an escape takes the next one, and
        // one at the very end adds nothing (and ends a quote).
        let c = if ch == escape {
            match chars.get(pos + 1) {
                None => {
                    phase = Phase::Word;
                    pos += 1;
                    continue;
                }
                Some(&(_, n)) => {
                    pos += 1;
                    n
                }
            }
        } else {
            ch
        };
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// moby `parseWords`: whitespace-separated words, quotes and escapes kept as written.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut b = String::new();
    let mut pos = 0;
    loop {
        let cur = chars.get(pos).copied();
        if phase == Phase::Spaces {
            let Some(ch) = cur else { break };
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        let Some(mut ch) = cur else {
            if blank_ok || !b.is_empty() {
                words.push(b);
            }
            break;
        };
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !b.is_empty() {
                    words.push(std::mem::take(&mut b));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                b.push(ch);
                pos += 1;
                let Some(&next) = chars.get(pos) else { break };
                ch = next;
            }
            b.push(ch);
            pos += 1;
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            b.push(ch);
            let Some(&next) = chars.get(pos) else { break };
            ch = next;
        }
        b.push(ch);
        pos += 1;
    }
    words
}

fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts = split_ws(rest, true);
        let [k, v] = parts.as_slice() else {
            return Err(format!("{key} must have two arguments"));
        };
        return Ok(vec![k.clone(), v.clone(), String::new()]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                crate::error::go_quote(w)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn parse_strings_ws(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws(rest, false)
}

enum JsonError {
    NotArray,
    NotStrings,
}

fn parse_json(rest: &str) -> Result<Vec<String>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotArray);
    }
    let values: Vec<serde_json::Value> =
        serde_json::from_str(rest).map_err(|_| JsonError::NotArray)?;
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(JsonError::NotStrings),
        })
        .collect()
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(JsonError::NotStrings) => Err(NOT_STRING_ARRAY.into()),
        Err(JsonError::NotArray) => Ok((vec![rest.to_string()], false)),
    }
}

fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(JsonError::NotStrings) => Err(NOT_STRING_ARRAY.into()),
        Err(JsonError::NotArray) => Ok((parse_strings_ws(rest), false)),
    }
}

fn parse_health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = parse_maybe_json(cmd)?;
    args.insert(0, typ.to_string());
    Ok((args, json))
}

/// moby `heredocsFromLine`: the heredocs a line opens, in order.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lex {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
    };
    let words = lex.process_words(line, &Env::default()).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(doc) = parse_heredoc(&w)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// moby `ParseHeredoc`: `[n]<<[-]WORD` with WORD possibly quoted; `None` when `src` is not
/// a heredoc word.
pub fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, String> {
    // ^(\d*)<<(-?)\s*([^<]*)$
    let digits = src.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = src[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = src[..digits].parse::<u32>().unwrap_or(0);
    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let env = Env::default();
    let words = lex.process_words(rest, &env).map_err(|e| e.to_string())?;
    let [word] = words.as_slice() else {
        return Ok(None);
    };
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &env).map_err(|e| e.to_string())?;
    let [raw] = raw.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Heredoc {
        name: word.clone(),
        file_descriptor: fd,
        expand: quotes(word) == quotes(raw),
        chomp,
        content: String::new(),
    }))
}

/// Strips leading tabs from every line (moby `ChompHeredocContent`).
pub fn chomp_heredoc_content(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(s: &str) -> Vec<Node> {
        parse(s.as_bytes()).unwrap().nodes
    }

    fn one(s: &str) -> Node {
        let mut n = nodes(s);
        assert_eq!(n.len(), 1, "{s:?}");
        n.remove(0)
    }

    #[test]
    fn continuation_comments_and_lines() {
        let n = nodes("FROM busybox\nRUN echo a \\\n# dropped\n  b \\\n\n  c\nCMD x\n");
        assert_eq!(n.len(), 3);
        assert_eq!(n[1].args, ["echo a   b   c"]);
        assert_eq!((n[1].start_line, n[1].end_line), (2, 6));
        assert_eq!(n[2].start_line, 7);
        let ast = parse(b"FROM a\nRUN x \\\n\n y\n").unwrap();
        assert_eq!(ast.warnings.len(), 1);
        assert!(ast.warnings[0].starts_with("Empty continuation line found in: RUN x"));
    }

    #[test]
    fn escaped_escape_is_not_a_continuation() {
        let n = nodes("FROM a\nRUN echo \\\\\nCMD y\n");
        assert_eq!(n[1].args, ["echo \\\\"]);
        assert_eq!(n.len(), 3);
        let n = nodes("FROM a\nRUN x\\\n\\\ny\n");
        assert_eq!(n[1].args, ["xy"]);
    }

    #[test]
    fn directives() {
        let ast = parse(b"# escape=`\n# syntax=docker/dockerfile:1\nFROM a\nRUN dir c:\\ `\n  x\n")
            .unwrap();
        assert_eq!(ast.escape, '`');
        assert_eq!(ast.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(ast.nodes[1].args, ["dir c:\\   x"]);
        // After a comment or an instruction, a directive is a comment.
        let ast = parse(b"# hello\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(ast.escape, '\\');
        let ast = parse(b"FROM a\n# escape=`\n").unwrap();
        assert_eq!(ast.escape, '\\');
        assert_eq!(
            parse(b"# escape=`\n# escape=\\\nFROM a\n")
                .unwrap_err()
                .to_string(),
            "only one escape parser directive can be used"
        );
        assert_eq!(
            parse(b"# escape=x\nFROM a\n").unwrap_err().to_string(),
            "invalid escape token 'x' does not match ` or \\"
        );
        // Case-insensitive key, spaces around '='.
        assert_eq!(parse(b"#ESCAPE = `\nFROM a\n").unwrap().escape, '`');
        // A BOM is dropped.
        assert_eq!(one("\u{feff}FROM a").cmd, "FROM");
    }

    #[test]
    fn json_or_shell_form() {
        let n = one(r#"CMD ["a", "b c"]"#);
        assert!(n.json);
        assert_eq!(n.args, ["a", "b c"]);
        let n = one(r#"CMD [ "a" , "b" ]  "#);
        assert!(n.json);
        // Invalid JSON falls back to the shell form.
        let n = one("CMD [a, b]");
        assert!(!n.json);
        assert_eq!(n.args, ["[a, b]"]);
        let n = one(r#"CMD ['a']"#);
        assert!(!n.json);
        let n = one(r#"CMD ["a"] x"#);
        assert!(!n.json);
        let n = one("CMD []");
        assert!(n.json && n.args.is_empty());
        assert_eq!(
            parse(br#"CMD ["a", 1]"#).unwrap_err().to_string(),
            NOT_STRING_ARRAY
        );
        let n = one("VOLUME /a  /b");
        assert_eq!(n.args, ["/a", "/b"]);
        let n = one(r#"VOLUME ["/a b"]"#);
        assert_eq!(n.args, ["/a b"]);
        let n = one("COPY a b /c/");
        assert_eq!(n.args, ["a", "b", "/c/"]);
    }

    #[test]
    fn env_and_label_forms() {
        let n = one(r#"ENV A=1 B="two words" C=x\ y"#);
        assert_eq!(
            n.args,
            ["A", "1", "=", "B", "\"two words\"", "=", "C", "x\\ y", "="]
        );
        let n = one("ENV A the rest  of it");
        assert_eq!(n.args, ["A", "the rest  of it", ""]);
        assert_eq!(
            parse(b"ENV A").unwrap_err().to_string(),
            "ENV must have two arguments"
        );
        assert_eq!(
            parse(b"LABEL a=b c").unwrap_err().to_string(),
            r#"Syntax error - can't find = in "c". Must be of the form: name=value"#
        );
        let n = one(r#"LABEL "com.x"="y z""#);
        assert_eq!(n.args, ["\"com.x\"", "\"y z\"", "="]);
    }

    #[test]
    fn flags() {
        let n = one("COPY --from=build --chown=1:1 a /b");
        assert_eq!(n.flags, ["--from=build", "--chown=1:1"]);
        assert_eq!(n.args, ["a", "/b"]);
        let n = one("COPY --from=\"a b\" -- --x /b");
        assert_eq!(n.flags, ["--from=a b"]);
        assert_eq!(n.args, ["--x", "/b"]);
        let n = one("RUN --mount=type=cache,target=/x echo");
        assert_eq!(n.flags, ["--mount=type=cache,target=/x"]);
        let n = one("FROM --platform=linux/amd64 a AS b");
        assert_eq!(n.args, ["a", "AS", "b"]);
        let n = one("RUN -x");
        assert!(n.flags.is_empty());
    }

    #[test]
    fn flag_words_take_escapes_in_and_out_of_quotes() {
        let f = |l: &str| extract_builder_flags(l, '\\');
        assert_eq!(f(r"--a=x\ y rest"), ("rest".into(), vec!["--a=x y".into()]));
        assert_eq!(
            f(r#"--a="q\"x" rest"#),
            ("rest".into(), vec![r#"--a=q"x"#.into()])
        );
        assert_eq!(f(r"--a=x\"), (String::new(), vec!["--a=x".into()]));
        assert_eq!(f(r#"--a="x\"#), (String::new(), vec!["--a=x".into()]));
        assert_eq!(
            f(r#"--a="x\" --b y"#),
            (String::new(), vec![r#"--a=x" --b y"#.into()])
        );
    }

    #[test]
    fn onbuild_and_healthcheck() {
        let n = one("ONBUILD RUN echo hi");
        assert_eq!(n.args, ["RUN", "echo hi"]);
        let n = one(r#"HEALTHCHECK --interval=5s CMD ["true"]"#);
        assert_eq!(n.flags, ["--interval=5s"]);
        assert_eq!(n.args, ["CMD", "true"]);
        assert!(n.json);
        let n = one("HEALTHCHECK NONE");
        assert_eq!(n.args, ["NONE"]);
    }

    #[test]
    fn heredocs() {
        let n = nodes("FROM a\nRUN <<EOF\necho $X\nEOF\nCMD x\n");
        assert_eq!(n.len(), 3);
        assert_eq!(n[1].heredocs[0].name, "EOF");
        assert_eq!(n[1].heredocs[0].content, "echo $X\n");
        assert!(n[1].heredocs[0].expand);
        assert_eq!((n[1].start_line, n[1].end_line), (2, 4));
        let n = one("RUN <<-'EOT' cat <<\"B\"\n\tx\n\tEOT\ny\nB\n");
        assert_eq!(n.heredocs.len(), 2);
        assert!(n.heredocs[0].chomp && !n.heredocs[0].expand);
        assert_eq!(n.heredocs[0].content, "\tx\n");
        assert_eq!(chomp_heredoc_content(&n.heredocs[0].content), "x\n");
        assert_eq!(n.heredocs[1].name, "B");
        assert_eq!(n.heredocs[1].content, "y\n");
        let n = one("COPY <<EOF /file\nhello\nEOF");
        assert_eq!(n.args, ["<<EOF", "/file"]);
        assert_eq!(n.heredocs[0].content, "hello\n");
        let n = one("ONBUILD RUN <<EOF\nx\nEOF\n");
        assert_eq!(n.heredocs[0].content, "x\n");
        // Exec form and other instructions take no heredoc.
        let n = nodes("CMD <<EOF\nEOF\n");
        assert_eq!(n.len(), 2);
        assert_eq!(
            parse(b"FROM a\nRUN <<EOF\nx\n").unwrap_err().to_string(),
            "unterminated heredoc"
        );
        assert_eq!(parse_heredoc("2<<EOF").unwrap().unwrap().file_descriptor, 2);
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("<<a b").unwrap().is_none());
    }

    #[test]
    fn heredoc_words() {
        for ok in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            assert_eq!(parse_heredoc(ok).unwrap().unwrap().name, "EOF", "{ok}");
        }
        for bad in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(bad).is_err(), "{bad}");
        }
        for not in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(parse_heredoc(not).unwrap(), None, "{not}");
        }
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        // The lexer keeps spaces after `<<` in the word, not after `<<-`: moby's own table
        // lists "EOF" here but only checks the heredocs it finds, and finds none.
        assert!(names("RUN <<- EOF").is_empty());
        assert_eq!(names("RUN << EOF"), ["EOF"]);
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
    }

    #[test]
    fn heredoc_extraction_cases() {
        let src = "FROM a\nUSER <<INVALID\nINVALID\nRUN 3<<EMPTY2\nEMPTY2\nRUN \"<<NOHEREDOC\"\n\
                   RUN <<-UNINDENT2\n\tbaz\n\tUNINDENT2\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n\
                   RUN <<eo'f'\necho foo\neof\nRUN <<eo\\'f\necho foo\neo'f\n\
                   RUN <<'e'o\\'f\necho foo\neo'f\nRUN <<'one two'\necho bar\none two\n\
                   RUN <<$EOF\n$EOF\nRUN <<  EOF  > foo\nEOF\nRUN [\"<<EOF\"]\n";
        let n = parse(src.as_bytes()).unwrap().nodes;
        let docs = |i: usize| -> Vec<(String, String, bool, bool, u32)> {
            n[i].heredocs
                .iter()
                .map(|h| {
                    (
                        h.name.clone(),
                        h.content.clone(),
                        h.expand,
                        h.chomp,
                        h.file_descriptor,
                    )
                })
                .collect()
        };
        let d = |name: &str, content: &str, expand: bool, chomp: bool, fd: u32| {
            (name.to_string(), content.to_string(), expand, chomp, fd)
        };
        assert!(docs(1).is_empty()); // USER takes none: INVALID is an instruction
        assert_eq!(n[2].cmd, "INVALID");
        assert_eq!(docs(3), [d("EMPTY2", "", true, false, 3)]);
        assert!(docs(4).is_empty());
        assert_eq!(docs(5), [d("UNINDENT2", "\tbaz\n", true, true, 0)]);
        assert_eq!(
            docs(6),
            [d("X", "Y\n", true, false, 0), d("Y", "X\n", true, false, 0)]
        );
        assert_eq!(docs(7), [d("eof", "echo foo\n", false, false, 0)]);
        assert_eq!(docs(8), [d("eo'f", "echo foo\n", true, false, 0)]);
        assert_eq!(docs(9), [d("eo'f", "echo foo\n", false, false, 0)]);
        assert_eq!(docs(10), [d("one two", "echo bar\n", false, false, 0)]);
        assert_eq!(docs(11), [d("$EOF", "", true, false, 0)]);
        assert_eq!(docs(12), [d("EOF", "", true, false, 0)]);
        assert!(docs(13).is_empty());
        assert_eq!(n.len(), 14);
    }

    #[test]
    fn empty_and_limits() {
        assert_eq!(
            parse(b"# only\n\n").unwrap_err().to_string(),
            "file with no instructions"
        );
        let long = format!("RUN {}", "x".repeat(MAX_LINE_SIZE));
        assert_eq!(
            parse(long.as_bytes()).unwrap_err().to_string(),
            "dockerfile line greater than max allowed size of 65535"
        );
        assert!(parse(&vec![b'#'; MAX_DOCKERFILE_SIZE + 1]).is_err());
    }

    #[test]
    fn case_insensitive_and_whitespace() {
        let n = one("  run\techo  a");
        assert_eq!(n.cmd, "run");
        assert_eq!(n.args, ["echo  a"]);
        let n = one("expose 80\t443/udp");
        assert_eq!(n.args, ["80", "443/udp"]);
    }
}
