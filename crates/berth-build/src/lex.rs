//! Docker's shell-word lexer (moby/buildkit `frontend/dockerfile/shell/lex.go`): `$VAR`,
//! `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`, `${VAR:?w}`, `${VAR?w}`,
//! escapes, single and double quotes, and word splitting of expanded values. It is not a
//! shell: no command substitution, no globbing. Pattern modifiers (`#`, `%`, `/`) are
//! refused with the lexer's "unsupported modifier" error, as dockerd 20.10's lexer does.

use std::collections::{BTreeMap, BTreeSet};

/// The deepest `${a:-${b:-...}}` nesting processed (dockerd has no limit; real
/// Dockerfiles nest two or three).
pub const MAX_NESTING: usize = 64;

/// A set of variables as the lexer sees them: `KEY=value` strings, later ones win
/// (moby `shell.EnvsFromSlice`).
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    pub fn from_slice<S: AsRef<str>>(env: &[S]) -> Env {
        let mut m = BTreeMap::new();
        for e in env {
            let e = e.as_ref();
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            m.insert(k.to_string(), v.to_string());
        }
        Env(m)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

/// The lexer's options (moby `shell.Lex`).
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    pub escape: char,
    /// Keep the quote characters in the result.
    pub raw_quotes: bool,
    /// Keep the escape characters in the result.
    pub raw_escapes: bool,
    /// Leave `$VAR` of an unset variable as written.
    pub skip_unset_env: bool,
}

/// The result of processing one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    pub word: String,
    pub words: Vec<String>,
    /// Variables looked up and found.
    pub matched: BTreeSet<String>,
    /// Variables looked up and not set.
    pub unmatched: BTreeSet<String>,
}

#[derive(Debug)]
struct Failed(String);

impl Lex {
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
        }
    }

    /// The word with variables expanded and quotes removed (moby `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &Env) -> Result<String, crate::Error> {
        Ok(self.process(word, env)?.word)
    }

    /// The word split into words after expansion (moby `ProcessWords`): unquoted
    /// expansions split on whitespace, quoted ones do not.
    pub fn process_words(&self, word: &str, env: &Env) -> Result<Vec<String>, crate::Error> {
        Ok(self.process(word, env)?.words)
    }

    /// Both results and which variables were looked up.
    pub fn process(&self, word: &str, env: &Env) -> Result<Processed, crate::Error> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((w, words)) => Ok(Processed {
                word: w,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(Failed(message)) => Err(crate::Error::Expansion {
                word: word.to_string(),
                message,
            }),
        }
    }
}

struct ShellWord<'a> {
    lex: Lex,
    chars: Vec<char>,
    /// Nesting of `${...}` being processed: Go grows its stack, we refuse past
    /// [`MAX_NESTING`] rather than overflow ours.
    depth: usize,
    pos: usize,
    env: &'a Env,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), Failed> {
        if self.depth >= MAX_NESTING {
            return Err(Failed(format!(
                "syntax error: more than {MAX_NESTING} nested substitutions"
            )));
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), Failed> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' => Some(self.process_single_quote()?),
                '"' => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            let mut ch = match self.next() {
                Some(c) => c,
                None => break,
            };
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                ch = match self.next() {
                    Some(c) => c,
                    None => break,
                };
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(Failed(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, Failed> {
        let mut result = String::new();
        let q = self.next();
        if self.lex.raw_quotes {
            result.extend(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(Failed(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    ))
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, Failed> {
        let mut result = String::new();
        let q = self.next();
        if self.lex.raw_quotes {
            result.extend(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(Failed(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    ))
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, Failed> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(Failed("syntax error: missing '}'".into())),
            Some('{' | '}' | ':') => return Err(Failed("syntax error: bad substitution".into())),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        // Go's string(scanner.EOF) is U+FFFD.
        let mut chs: String = ch.unwrap_or('\u{FFFD}').to_string();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(first @ (':' | '+' | '-' | '?')) => {
                let null_is_unset = first == ':';
                let op = if null_is_unset {
                    let c = self.next();
                    chs.push(c.unwrap_or('\u{FFFD}'));
                    c
                } else {
                    Some(first)
                };
                if !matches!(op, Some('+' | '-' | '?')) {
                    return Err(Failed(format!(
                        "unsupported modifier ({chs}) in substitution"
                    )));
                }
                let word = match self.process_stop_on(Some('}'), false) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(Failed("syntax error: missing '}'".into()));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    Some('-') => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if unset { String::new() } else { word }),
                    _ => match value {
                        None => Err(Failed(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) if null_is_unset && v.is_empty() => Err(Failed(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) => Ok(v),
                    },
                }
            }
            _ => Err(Failed(format!(
                "unsupported modifier ({chs}) in substitution"
            ))),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(c) = self.peek().filter(|c| c.is_ascii_digit()) {
                    self.next();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut result = String::from("<<");
        while let Some(c) = self.peek().filter(|c| *c == ' ' || *c == '\t') {
            result.push(c);
            self.next();
        }
        result
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_slice(&[
            "PWD=/home",
            "SHELL=bash",
            "KOREAN=한국어",
            "NULL=",
            "TWO=a  b",
        ])
    }

    fn word(s: &str) -> Result<String, crate::Error> {
        Lex::new('\\').process_word(s, &env())
    }

    // Cases in the spirit of moby's shell/envVarTest table.
    #[test]
    fn expands_like_docker() {
        let table = [
            ("hello", "hello"),
            ("he'll'o", "hello"),
            ("he'llo", "ERR"),
            ("he\\'llo", "he'llo"),
            ("he\\\\'llo", "ERR"),
            ("abc\\\\def", "abc\\def"),
            ("\"abc\\\\def\"", "abc\\def"),
            ("'abc\\\\def'", "abc\\\\def"),
            ("hello\\", "hello"),
            ("he\"llo", "ERR"),
            ("he\"l\"lo", "hello"),
            ("\"a\\\"b\"", "a\"b"),
            ("$PWD", "/home"),
            ("${PWD}", "/home"),
            ("\\$PWD", "$PWD"),
            ("'$PWD'", "$PWD"),
            ("\"$PWD\"", "/home"),
            ("\"\\$PWD\"", "$PWD"),
            ("$PWD/x", "/home/x"),
            ("$PWDx", ""),
            ("${PWD}x", "/homex"),
            ("${UNSET:-def}", "def"),
            ("${NULL:-def}", "def"),
            ("${NULL-def}", ""),
            ("${UNSET-def}", "def"),
            ("${PWD:-def}", "/home"),
            ("${PWD:+alt}", "alt"),
            ("${NULL:+alt}", ""),
            ("${NULL+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${PWD}}", "/home"),
            ("${UNSET:-'a b'}", "a b"),
            ("$", "$"),
            ("$ x", "$ x"),
            ("${", "ERR"),
            ("${}", "ERR"),
            ("${:}", "ERR"),
            ("${PWD", "ERR"),
            ("${PWD:-x", "ERR"),
            ("${PWD:=x}", "ERR"),
            ("${PWD#x}", "ERR"),
            ("${KOREAN}", "한국어"),
            ("${UNSET:?}", "ERR"),
            ("${PWD:?}", "/home"),
            ("$1", ""),
            ("$@x", "x"),
        ];
        for (input, want) in table {
            match word(input) {
                Ok(got) => assert_eq!(got, want, "input {input:?}"),
                Err(e) => assert_eq!("ERR", want, "input {input:?}: {e}"),
            }
        }
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            word("${UNSET:?must be set}").unwrap_err().to_string(),
            r#"failed to process "${UNSET:?must be set}": UNSET: must be set"#
        );
        assert_eq!(
            word("'x").unwrap_err().to_string(),
            r#"failed to process "'x": unexpected end of statement while looking for matching single-quote"#
        );
        assert_eq!(
            word("${PWD%x}").unwrap_err().to_string(),
            r#"failed to process "${PWD%x}": unsupported modifier (%) in substitution"#
        );
        assert_eq!(
            word("${x").unwrap_err().to_string(),
            "failed to process \"${x\": unsupported modifier (\u{FFFD}) in substitution"
        );
    }

    #[test]
    fn word_splitting() {
        let l = Lex::new('\\');
        let e = env();
        let words = |s| l.process_words(s, &e).unwrap();
        assert_eq!(words("a b  c"), ["a", "b", "c"]);
        assert_eq!(words("$TWO"), ["a", "b"]);
        assert_eq!(words("\"$TWO\""), ["a  b"]);
        assert_eq!(words("'a b' c"), ["a b", "c"]);
        assert_eq!(words("x$TWO"), ["xa", "b"]);
        assert_eq!(words("\\ a"), [" a"]);
        assert_eq!(words("$UNSET"), Vec::<String>::new());
        assert_eq!(words("'' x"), ["x"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "${a:-".repeat(20_000);
        let e = word(&deep).unwrap_err().to_string();
        assert!(
            e.ends_with("syntax error: more than 64 nested substitutions"),
            "{e}"
        );
        let ok = format!(
            "{}x{}",
            "${a:-".repeat(MAX_NESTING - 1),
            "}".repeat(MAX_NESTING - 1)
        );
        assert_eq!(word(&ok).unwrap(), "x");
        // Through the parser too: a heredoc line is lexed whole.
        let line = format!("FROM a\nRUN <<EOF {}\nEOF\n", "\"${a:-".repeat(10_000));
        assert!(crate::parser::parse(line.as_bytes()).is_ok());
    }

    #[test]
    fn backtick_escape() {
        let l = Lex::new('`');
        assert_eq!(l.process_word("a`$PWD", &env()).unwrap(), "a$PWD");
        assert_eq!(l.process_word("a\\b", &env()).unwrap(), "a\\b");
    }

    #[test]
    fn skip_unset_and_matches() {
        let mut l = Lex::new('\\');
        l.skip_unset_env = true;
        assert_eq!(
            l.process_word("$X ${Y} ${Z:-d}", &env()).unwrap(),
            "$X ${Y} ${Z:-d}"
        );
        let p = Lex::new('\\').process("$PWD $NOPE", &env()).unwrap();
        assert!(p.matched.contains("PWD"));
        assert!(p.unmatched.contains("NOPE"));
    }
}
