//! `.dockerignore` as Docker reads and applies it (moby/patternmatcher `ignorefile.ReadAll`
//! and `MatchesOrParentMatches`, docker/cli `TrimBuildFilesFromExcludes`, moby
//! `builder/remotecontext/detect.go`): comments, `!` exceptions where the last matching
//! pattern wins, leading `/` and `./` cleaned, Go `filepath.Match` syntax plus `**`, and a
//! path excluded when it or one of its parent directories matches.
//!
//! Matching runs an NFA over the compiled pattern, so time is linear in pattern × path and
//! no input can make it backtrack.

use crate::Error;

/// The longest pattern accepted (a line of a `.dockerignore` read by Go's scanner).
pub const MAX_PATTERN_LEN: usize = 65535;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one char that is not `/`.
    One,
    /// `*`: any run of non-`/` chars.
    Star,
    /// `**/` or `**` before more text: `(.*/)?`.
    DirStar,
    /// `**` at the end: `.*`.
    All,
    /// A `^` outside a class: in moby's regexp it anchors at the start.
    Anchor,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    /// `abc**`: a plain prefix.
    Prefix(String),
    /// `**abc`: a plain suffix.
    Suffix(String),
    Tokens(Vec<Tok>),
}

/// One `.dockerignore` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern without its `!`.
    pub cleaned: String,
    pub exclusion: bool,
    kind: Kind,
}

/// The patterns of one `.dockerignore`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    pub patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Reads a `.dockerignore` (moby `ignorefile.ReadAll`): one pattern a line, `#` comments,
/// blank lines skipped, `!` exceptions, paths cleaned and made relative.
pub fn read_patterns(data: &[u8]) -> Vec<String> {
    let data = data.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(data);
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pattern = String::new();
        if !p.is_empty() {
            pattern = clean(p);
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
        }
        if invert {
            pattern.insert(0, '!');
        }
        out.push(pattern);
    }
    out
}

impl Matcher {
    /// Compiles patterns (moby `patternmatcher.New`): `illegal exclusion pattern: "!"`,
    /// `syntax error in pattern` for an unclosed class or a trailing escape.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, Error> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            if p.len() > MAX_PATTERN_LEN {
                return Err(Error::Invalid("syntax error in pattern".into()));
            }
            let mut p = clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(Error::Invalid("illegal exclusion pattern: \"!\"".into()));
                }
                p.remove(0);
            }
            let kind =
                compile(&p).ok_or_else(|| Error::Invalid("syntax error in pattern".into()))?;
            out.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(Matcher { patterns: out })
    }

    /// Parses a `.dockerignore` file's bytes.
    pub fn from_dockerignore(data: &[u8]) -> Result<Matcher, Error> {
        Matcher::new(&read_patterns(data))
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out of the context:
    /// the last pattern that matches it or one of its parents decides (moby
    /// `MatchesOrParentMatches`).
    pub fn excluded(&self, path: &str) -> bool {
        let path = normalize(path);
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => ".",
        };
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            // The path itself, else each of its parent directories ("a", "a/b", ...).
            let m = p.matches(&path)
                || (parent != "."
                    && parent
                        .match_indices('/')
                        .map(|(i, _)| &parent[..i])
                        .chain(std::iter::once(parent))
                        .any(|dir| p.matches(dir)));
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a directory that is itself [`excluded`](Self::excluded) can be skipped
    /// without walking it: true unless some `!` pattern could re-include something inside
    /// (docker's archive walk: an exception pattern that starts with `dir/`).
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.excluded(dir) {
            return false;
        }
        let dir_slash = format!("{}/", normalize(dir));
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// The patterns the CLI sends when it builds the context: `.dockerignore` and the
    /// Dockerfile are always sent even when excluded (docker/cli
    /// `TrimBuildFilesFromExcludes`); the daemon removes them after reading.
    pub fn keep_build_files(
        patterns: &[String],
        dockerfile: &str,
        from_stdin: bool,
    ) -> Result<Vec<String>, Error> {
        let mut out = patterns.to_vec();
        if Matcher::new(&out)?.excluded(".dockerignore") {
            out.push("!.dockerignore".into());
        }
        if from_stdin {
            return Ok(out);
        }
        if Matcher::new(&out)?.excluded(dockerfile) {
            out.push(format!("!{dockerfile}"));
        }
        Ok(out)
    }

    /// The files the daemon removes from a received context once the Dockerfile is read
    /// (moby `removeDockerfile`): `.dockerignore` and the Dockerfile when excluded.
    pub fn removed_after_read(&self, dockerfile: &str) -> Vec<String> {
        [".dockerignore", dockerfile]
            .into_iter()
            .filter(|f| self.excluded(f))
            .map(String::from)
            .collect()
    }
}

fn normalize(path: &str) -> String {
    let c = clean(path);
    let c = c.trim_start_matches('/');
    if c.is_empty() {
        ".".into()
    } else {
        c.to_string()
    }
}

/// moby `Pattern.compile`, into tokens instead of a regexp; `None` for a bad pattern.
fn compile(pattern: &str) -> Option<Kind> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut kind_exact = true; // exactMatch
    let mut prefix = false;
    let mut suffix = false;
    let mut regexp = false;
    let mut i = 0;
    let mut idx = 0;
    while let Some(&ch) = chars.get(i) {
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind_exact && !regexp && !suffix {
                        prefix = true;
                    } else {
                        regexp = true;
                    }
                    toks.push(Tok::All);
                } else {
                    regexp = true;
                    toks.push(Tok::DirStar);
                }
                if idx == 0 {
                    suffix = true;
                    prefix = false;
                    regexp = false;
                }
                kind_exact = false;
            }
            '*' => {
                regexp = true;
                toks.push(Tok::Star);
            }
            '?' => {
                regexp = true;
                toks.push(Tok::One);
            }
            '\\' => match chars.get(i) {
                Some(&c) => {
                    i += 1;
                    regexp = true;
                    toks.push(Tok::Lit(c));
                }
                None => return None,
            },
            '[' => {
                regexp = true;
                let mut negated = false;
                if chars.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = *chars.get(i)?;
                    i += 1;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        let e = *chars.get(i)?;
                        i += 1;
                        e
                    } else {
                        c
                    };
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        i += 1;
                        let c = *chars.get(i)?;
                        i += 1;
                        hi = if c == '\\' {
                            let e = *chars.get(i)?;
                            i += 1;
                            e
                        } else {
                            c
                        };
                        if hi < lo {
                            return None;
                        }
                    }
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            ']' => {
                regexp = true;
                toks.push(Tok::Lit(']'));
            }
            '^' => toks.push(Tok::Anchor),
            c => toks.push(Tok::Lit(c)),
        }
        idx += 1;
    }
    if regexp {
        return Some(Kind::Tokens(toks));
    }
    if suffix {
        return Some(Kind::Suffix(pattern.get(2..).unwrap_or("").to_string()));
    }
    if prefix {
        let end = pattern.len().saturating_sub(2);
        return Some(Kind::Prefix(pattern.get(..end).unwrap_or("").to_string()));
    }
    if toks.contains(&Tok::Anchor) {
        return Some(Kind::Tokens(toks));
    }
    Some(Kind::Exact)
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens(t) => nfa_match(t, path),
        }
    }
}

/// Runs the token list as an NFA over `text`: state `2i` is "before token i", `2i+1` is
/// "inside the `.*` of a `(.*/)?` at token i".
fn nfa_match(toks: &[Tok], text: &str) -> bool {
    let n = toks.len();
    let mut cur = vec![false; 2 * n + 2];
    let mut next = vec![false; 2 * n + 2];
    cur[0] = true;
    closure(toks, &mut cur, true);
    for c in text.chars() {
        next.iter_mut().for_each(|s| *s = false);
        for (i, t) in toks.iter().enumerate() {
            if cur[2 * i] {
                match t {
                    Tok::Lit(l) if *l == c => next[2 * i + 2] = true,
                    Tok::One if c != '/' => next[2 * i + 2] = true,
                    Tok::Star if c != '/' => next[2 * i] = true,
                    Tok::All => next[2 * i] = true,
                    Tok::DirStar => {
                        next[2 * i + 1] = true;
                        if c == '/' {
                            next[2 * i + 2] = true;
                        }
                    }
                    Tok::Class { negated, ranges } => {
                        let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                        if inside != *negated {
                            next[2 * i + 2] = true;
                        }
                    }
                    _ => {}
                }
            }
            if cur[2 * i + 1] {
                next[2 * i + 1] = true;
                if c == '/' {
                    next[2 * i + 2] = true;
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
        closure(toks, &mut cur, false);
        if !cur.iter().any(|s| *s) {
            return false;
        }
    }
    cur[2 * n]
}

/// Epsilon moves: `*`, `**` and `(.*/)?` may match nothing; `^` only at the start.
fn closure(toks: &[Tok], states: &mut [bool], at_start: bool) {
    for (i, t) in toks.iter().enumerate() {
        if states[2 * i] {
            let skip = match t {
                Tok::Star | Tok::All | Tok::DirStar => true,
                Tok::Anchor => at_start,
                _ => false,
            };
            if skip {
                states[2 * i + 2] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> Matcher {
        Matcher::new(patterns).unwrap()
    }

    // Cases in the spirit of moby/patternmatcher's TestMatches table.
    #[test]
    fn single_patterns() {
        let table: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ];
        for (pattern, path, want) in table {
            let got = m(&[pattern]).excluded(path);
            assert_eq!(got, *want, "pattern {pattern:?} path {path:?}");
        }
    }

    #[test]
    fn star_does_not_cross_directories() {
        let p = |pat: &str, path: &str| m(&[pat]).patterns[0].matches(path);
        assert!(!p("*", "a/b"));
        assert!(!p("a*", "a/b"));
        assert!(p("*/b", "a/b"));
        assert!(!p("a?b", "a/b"));
        // moby compiles classes to a regexp class, which does match '/'.
        assert!(p("a[^x]b", "a/b"));
    }

    #[test]
    fn parents_and_exceptions() {
        let pm = m(&["docs", "!docs/README.md"]);
        assert!(pm.excluded("docs"));
        assert!(pm.excluded("docs/a.md"));
        assert!(!pm.excluded("docs/README.md"));
        assert!(!pm.excluded("src/a.rs"));
        assert!(!pm.can_skip_dir("docs"));
        let pm = m(&["*.md", "!README*.md", "README-secret.md"]);
        assert!(pm.excluded("a.md"));
        assert!(!pm.excluded("README.md"));
        assert!(pm.excluded("README-secret.md"));
        let pm = m(&["node_modules"]);
        assert!(pm.excluded("node_modules/a/b/c.js"));
        assert!(pm.can_skip_dir("node_modules"));
        assert!(!pm.can_skip_dir("src"));
        // "*" does not match across directories, but a matched parent excludes the child.
        let pm = m(&["*/temp*"]);
        assert!(pm.excluded("somedir/temporary.txt"));
        assert!(pm.excluded("somedir/temp/x"));
        assert!(!pm.excluded("a/b/temp"));
    }

    #[test]
    fn reading_dockerignore() {
        let pats =
            read_patterns(b"\xEF\xBB\xBF# comment\n  \n/abs\n./rel/\n!  /keep\n a/../b \n#x\n");
        assert_eq!(pats, ["abs", "rel", "!keep", "b"]);
        assert_eq!(
            Matcher::new(&["!"]).unwrap_err().to_string(),
            "illegal exclusion pattern: \"!\""
        );
        assert_eq!(
            Matcher::new(&["a["]).unwrap_err().to_string(),
            "syntax error in pattern"
        );
        assert!(Matcher::new(&["a\\"]).is_err());
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a"), "/a");
    }

    #[test]
    fn build_files_are_still_sent() {
        let pats = vec!["*".to_string()];
        let kept = Matcher::keep_build_files(&pats, "Dockerfile", false).unwrap();
        assert_eq!(kept, ["*", "!.dockerignore", "!Dockerfile"]);
        let pm = Matcher::new(&kept).unwrap();
        assert!(!pm.excluded("Dockerfile"));
        assert!(pm.excluded("src"));
        let kept = Matcher::keep_build_files(&pats, "Dockerfile", true).unwrap();
        assert_eq!(kept, ["*", "!.dockerignore"]);
        assert_eq!(
            m(&["*"]).removed_after_read("Dockerfile"),
            [".dockerignore", "Dockerfile"]
        );
        assert!(m(&["x"]).removed_after_read("Dockerfile").is_empty());
    }

    #[test]
    fn linear_time_on_hostile_patterns() {
        let pat = "*a".repeat(200);
        let path = "a".repeat(5000);
        assert!(m(&[pat.as_str()]).excluded(&path));
        assert!(!m(&[format!("{pat}b").as_str()]).excluded(&path));
    }
}
