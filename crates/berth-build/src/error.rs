//! The crate's error type: what a malformed Dockerfile, a bad expansion or a bad target
//! produces, with dockerd's wording and the line it was found on.

/// An error in a Dockerfile or in what the build asks of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The parser (moby `parser.Parse`) refused the text; dockerd prints the bare message.
    #[error("{message}")]
    Syntax { line: usize, message: String },
    /// An instruction is malformed (moby `instructions.Parse`): dockerd's
    /// `dockerfile parse error on line N: ...`.
    #[error("dockerfile parse error on line {line}: {message}")]
    Instruction { line: usize, message: String },
    /// Variable expansion failed (moby `shell.Lex`): `failed to process "word": ...`.
    #[error("failed to process {word}: {message}", word = crate::error::go_quote(.word))]
    Expansion { word: String, message: String },
    /// A build-level error (target not found, duplicate stage name...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The message dockerd sends the client for this error in a Dockerfile called `name`:
    /// parser errors come wrapped as `failed to parse <name>: ...` (moby
    /// `remotecontext/detect.go`), the others as they are.
    pub fn client_message(&self, name: &str) -> String {
        match self {
            Error::Syntax { message, .. } => format!("failed to parse {name}: {message}"),
            other => other.to_string(),
        }
    }

    /// The 1-based line the error is about, where it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Syntax { line, .. } | Error::Instruction { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Go's `strconv.Quote` (`%q`), which dockerd's messages use, for the ASCII cases and
/// `\u` escapes of other control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote("\x01"), r#""\x01""#);
    }

    #[test]
    fn instruction_error_text_is_dockerds() {
        let e = Error::Instruction {
            line: 3,
            message: "unknown instruction: FORM".into(),
        };
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 3: unknown instruction: FORM"
        );
        assert_eq!(e.line(), Some(3));
        assert_eq!(e.client_message("Dockerfile"), e.to_string());
        // As dockerd 20.10.24 answered `# escape=x`.
        let e = crate::parser::parse(b"# escape=x\nFROM scratch\n").unwrap_err();
        assert_eq!(
            e.client_message("Dockerfile"),
            "failed to parse Dockerfile: invalid escape token 'x' does not match ` or \\"
        );
    }
}
