//! The one error type of the client and its exit status. `main` prints [`Error`]'s
//! `Display` on stderr and exits with [`Error::exit_code`], as the docker CLI does: daemon
//! errors read "Error response from daemon: <message>", everything else is one sentence
//! that says what to do next.
//!
//! Turning transport failures (refused connections, TLS handshakes) into such sentences is
//! `connect`'s job; this module only carries the result.

use std::fmt;

use berth_api_types::reference::ReferenceError;

use crate::format::TemplateError;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The daemon answered with an error status and a `{"message": ...}` body.
    Daemon { status: u16, message: String },
    /// The client could not do what was asked (daemon unreachable, bad flags, TLS files);
    /// the message is complete.
    Client(String),
    /// A failure with a specific exit status (docker uses 64 for bad templates, 125 for
    /// `run`'s own failures).
    Status { code: i32, message: String },
}

impl Error {
    pub fn client(message: impl Into<String>) -> Self {
        Error::Client(message.into())
    }

    /// Docker's report of a command applied to several objects: success when no object
    /// failed, else each failure's message on its own line (exit status 1).
    pub fn from_each(errors: Vec<String>) -> Result<(), Error> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Client(errors.join("\n")))
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Daemon { .. } | Error::Client(_) => 1,
            Error::Status { code, .. } => *code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Daemon { message, .. } => write!(f, "Error response from daemon: {message}"),
            Error::Client(message) | Error::Status { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<TemplateError> for Error {
    fn from(e: TemplateError) -> Self {
        match e {
            // cli/command/system/version.go: StatusError{StatusCode: 64} for parse errors.
            TemplateError::Parse(_) => Error::Status {
                code: 64,
                message: e.to_string(),
            },
            TemplateError::Exec(_) => Error::Client(e.to_string()),
        }
    }
}

/// A reference the user typed that docker's CLI would refuse before asking the daemon;
/// the message is distribution/reference's own (status 1).
impl From<ReferenceError> for Error {
    fn from(e: ReferenceError) -> Self {
        Error::Client(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_errors_read_like_docker() {
        let e = Error::Daemon {
            status: 404,
            message: "No such container: x".into(),
        };
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such container: x"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn template_parse_errors_exit_64() {
        let e: Error = TemplateError::Parse("1: bad".into()).into();
        assert_eq!(e.exit_code(), 64);
        let e: Error = TemplateError::Exec("1:2: bad".into()).into();
        assert_eq!(e.exit_code(), 1);
    }

    /// The words docker 28's CLI prints for references it refuses before any request
    /// (checked with `docker pull` against no daemon).
    #[test]
    fn bad_references_read_like_the_docker_cli() {
        use berth_api_types::reference::Reference;
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let long = format!("a/{}", "b".repeat(260));
        let cases = [
            ("".to_owned(), "invalid reference format"),
            ("a:b:c".to_owned(), "invalid reference format"),
            (
                "Busybox".to_owned(),
                "invalid reference format: repository name (library/Busybox) must be lowercase",
            ),
            (
                format!("busybox@sha256:{}", hex.to_uppercase()),
                "invalid checksum digest format",
            ),
            (
                format!("busybox@sha256:{}", &hex[..32]),
                "invalid checksum digest length",
            ),
            (long, "repository name must not be more than 255 characters"),
        ];
        for (input, want) in cases {
            let e: Error = Reference::parse(&input).unwrap_err().into();
            assert_eq!(
                (e.to_string(), e.exit_code()),
                (want.to_owned(), 1),
                "{input:?}"
            );
        }
    }
}
