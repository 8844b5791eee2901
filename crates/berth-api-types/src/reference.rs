//! Docker image references (`busybox`, `user/app:1.0`, `localhost:5000/a/b@sha256:…`) and
//! their normalisation to fully qualified names (`docker.io/library/busybox`).
//!
//! This follows `github.com/distribution/reference` (`ParseNormalizedNamed`,
//! `ParseDockerRef`, `FamiliarName`) including its error wording, because the docker CLI
//! and docker-py show those messages to users. The grammar:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] path-component ["/" path-component]*
//! domain           := host [":" port]
//! host             := domain-component ["." domain-component]* | "[" ipv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [\w][\w.-]{0,127}
//! digest           := algorithm ":" hex            (sha256 only, see `digest`)
//! ```
//!
//! It owns parsing and printing only; which image a reference points to is the tag store's
//! business.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Registry used when a reference names none (`busybox` lives on Docker Hub).
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Old spelling of Docker Hub that normalises to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of Docker Hub's official images (`busybox` = `library/busybox`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag given to references that have neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// distribution/reference `NameTotalLengthMax`.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest tag the grammar allows.
const TAG_MAX: usize = 128;

/// Why a reference string was refused. Every variant is the client's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not match the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part has upper-case letters.
    #[error("invalid reference format: repository name ({name}) must be lowercase")]
    Uppercase { name: String },
    /// `domain/path` is longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// The whole string is a 64-hex id, which would be ambiguous with image ids.
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier { input: String },
    /// A tag given on its own (to [`Reference::with_tag`]) is not a valid tag.
    #[error("invalid tag format")]
    InvalidTag,
    /// The digest part matched the grammar but is not a digest we accept.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// A normalised image reference: always has a domain and a path, optionally a tag and a
/// digest. `Display` prints the full form (`docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses what a user typed, the way Docker does (`ParseNormalizedNamed`): adds
    /// `docker.io` and `library/` where implied. Does not add a tag; see
    /// [`Reference::with_default_tag`].
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if is_hex_identifier(s) {
            return Err(ReferenceError::HexIdentifier {
                input: s.to_owned(),
            });
        }
        let (domain, remainder) = split_docker_domain(s);
        // Docker checks case on everything before the first ':' of the remainder (which
        // may reach into a digest; that part has no upper case when valid anyway).
        let remote_name = remainder.split(':').next().unwrap_or_default();
        if remote_name.to_lowercase() != remote_name {
            return Err(ReferenceError::Uppercase {
                name: remote_name.to_owned(),
            });
        }
        parse_parts(&domain, &remainder)
    }

    /// Parses like `docker pull` resolves a name (`ParseDockerRef`): normalised, `latest`
    /// when there is neither tag nor digest, and the tag dropped when a digest is given
    /// (the digest alone decides what is fetched).
    pub fn parse_docker_ref(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse(s)?;
        if r.digest.is_some() {
            r.tag = None;
        }
        Ok(r.with_default_tag())
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short name Docker shows: `busybox`, `user/app`, `localhost:5000/a/b`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.full_name();
        }
        // distribution/reference `familiarizeName`: only one level below `library/` is
        // an official image.
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// The familiar name with tag and digest, e.g. `busybox:latest`.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_tag_and_digest(&mut s);
        s
    }

    /// Adds the `latest` tag when the reference has neither tag nor digest
    /// (distribution/reference `TagNameOnly`).
    pub fn with_default_tag(mut self) -> Reference {
        if self.is_name_only() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The same repository with `tag` (replacing any tag; the digest is kept).
    pub fn with_tag(mut self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag);
        }
        self.tag = Some(tag.to_owned());
        Ok(self)
    }

    /// The same repository with `digest` (replacing any digest; the tag is kept).
    pub fn with_digest(mut self, digest: Digest) -> Reference {
        self.digest = Some(digest);
        self
    }

    /// The repository alone, without tag or digest.
    pub fn without_tag_or_digest(mut self) -> Reference {
        self.tag = None;
        self.digest = None;
        self
    }

    fn push_tag_and_digest(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.full_name();
        self.push_tag_and_digest(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// distribution/reference `splitDockerDomain`: the first component is a registry when it
/// has a `.` or `:`, is `localhost`, or has upper case (registries may; paths may not).
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// Checks `domain` and `path[:tag][@digest]` against the grammar and builds the reference.
fn parse_parts(domain: &str, remainder: &str) -> Result<Reference, ReferenceError> {
    let (name_and_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (remainder, None),
    };
    let (path, tag) = match name_and_tag.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (name_and_tag, None),
    };
    if !is_valid_domain(domain) || !is_valid_path(path) {
        return Err(ReferenceError::InvalidFormat);
    }
    if let Some(tag) = tag {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidFormat);
        }
    }
    let digest = match digest {
        Some(d) if !matches_digest_grammar(d) => return Err(ReferenceError::InvalidFormat),
        Some(d) => Some(Digest::parse(d)?),
        None => None,
    };
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    Ok(Reference {
        domain: domain.to_owned(),
        path: path.to_owned(),
        tag: tag.map(str::to_owned),
        digest,
    })
}

/// distribution/reference `anchoredIdentifierRegexp`: `^[a-f0-9]{64}$`.
fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `host[:port]` where host is dotted domain components or a bracketed IPv6 address.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if domain.starts_with('[') {
        return true;
    }
    host.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    })
}

/// One or more lowercase path components separated by `/`.
fn is_valid_path(path: &str) -> bool {
    path.split('/').all(is_valid_path_component)
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or `-`+.
fn is_valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// distribution/reference `DigestRegexp`:
/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}`.
/// Only a string matching this reaches the digest parser (and its specific messages).
fn matches_digest_grammar(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn err(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => panic!("{s:?} parsed as {r}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_references_are_refused_with_dockers_words() {
        let long_tag = format!("busybox:{}", "a".repeat(129));
        let long_name = format!("a/{}", "b".repeat(260));
        let short_digest = format!("busybox@sha256:{}", &HEX[..40]);
        let upper_digest = format!("busybox@sha256:{}", HEX.to_uppercase());
        let sha512 = format!("busybox@sha512:{HEX}{HEX}");
        let cases: &[(&str, &str)] = &[
            ("", "invalid reference format"),
            (":tag", "invalid reference format"),
            ("@sha256:abc", "invalid reference format"),
            ("a:b:c", "invalid reference format"),
            ("busybox/", "invalid reference format"),
            ("a//b", "invalid reference format"),
            ("/busybox", "invalid reference format"),
            ("..", "invalid reference format"),
            ("a/../b", "invalid reference format"),
            ("a/./b", "invalid reference format"),
            ("-busybox", "invalid reference format"),
            ("busybox-", "invalid reference format"),
            ("busy..box", "invalid reference format"),
            ("busy___box", "invalid reference format"),
            ("busy box", "invalid reference format"),
            ("busybox:", "invalid reference format"),
            ("busybox:-tag", "invalid reference format"),
            ("busybox:.tag", "invalid reference format"),
            ("busybox:ta/g", "invalid reference format"),
            (&long_tag, "invalid reference format"),
            ("busybox@", "invalid reference format"),
            ("busybox@sha256:abc", "invalid reference format"),
            ("busybox@sha256", "invalid reference format"),
            ("busybox@@sha256:abc", "invalid reference format"),
            (&short_digest, "invalid checksum digest length"),
            (&upper_digest, "invalid checksum digest format"),
            (&sha512, "unsupported digest algorithm"),
            // Docker would take this as a path with an empty domain; we refuse it.
            ("exa_mple.com/a", "invalid reference format"),
            ("-example.com/a", "invalid reference format"),
            ("example.com:/a", "invalid reference format"),
            ("example.com:50a0/a", "invalid reference format"),
            ("[::1/a", "invalid reference format"),
            ("[]:5000/a", "invalid reference format"),
            (
                "Busybox",
                "invalid reference format: repository name (library/Busybox) must be lowercase",
            ),
            (
                "user/App:Tag",
                "invalid reference format: repository name (user/App) must be lowercase",
            ),
            (
                "localhost:5000/A/b",
                "invalid reference format: repository name (A/b) must be lowercase",
            ),
            (
                HEX,
                "invalid repository name (e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855), cannot specify 64-byte hexadecimal strings",
            ),
            (
                &long_name,
                "repository name must not be more than 255 characters",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn normalises_like_docker() {
        // (input, Display, familiar_string, domain, path)
        let digested = format!("registry.example.com/x/y@sha256:{HEX}");
        let tagged_digested = format!("busybox:1.36@sha256:{HEX}");
        let cases: &[(&str, String, String, &str, &str)] = &[
            (
                "busybox",
                "docker.io/library/busybox".into(),
                "busybox".into(),
                "docker.io",
                "library/busybox",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36".into(),
                "busybox:1.36".into(),
                "docker.io",
                "library/busybox",
            ),
            (
                "user/app",
                "docker.io/user/app".into(),
                "user/app".into(),
                "docker.io",
                "user/app",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox".into(),
                "busybox".into(),
                "docker.io",
                "library/busybox",
            ),
            (
                "index.docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
                "docker.io",
                "library/busybox",
            ),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b".into(),
                "library/a/b".into(),
                "docker.io",
                "library/a/b",
            ),
            (
                "localhost/app",
                "localhost/app".into(),
                "localhost/app".into(),
                "localhost",
                "app",
            ),
            (
                "localhost:5000/a/b:tag",
                "localhost:5000/a/b:tag".into(),
                "localhost:5000/a/b:tag".into(),
                "localhost:5000",
                "a/b",
            ),
            (
                "127.0.0.1:5000/x",
                "127.0.0.1:5000/x".into(),
                "127.0.0.1:5000/x".into(),
                "127.0.0.1:5000",
                "x",
            ),
            (
                "[::1]:5000/x",
                "[::1]:5000/x".into(),
                "[::1]:5000/x".into(),
                "[::1]:5000",
                "x",
            ),
            (
                "Registry.Example.com/x",
                "Registry.Example.com/x".into(),
                "Registry.Example.com/x".into(),
                "Registry.Example.com",
                "x",
            ),
            (
                &digested,
                digested.clone(),
                digested.clone(),
                "registry.example.com",
                "x/y",
            ),
            (
                &tagged_digested,
                format!("docker.io/library/busybox:1.36@sha256:{HEX}"),
                tagged_digested.clone(),
                "docker.io",
                "library/busybox",
            ),
            (
                "my-registry.example.com/a.b-c__d--e/f_g.h:Tag_1.2-3",
                "my-registry.example.com/a.b-c__d--e/f_g.h:Tag_1.2-3".into(),
                "my-registry.example.com/a.b-c__d--e/f_g.h:Tag_1.2-3".into(),
                "my-registry.example.com",
                "a.b-c__d--e/f_g.h",
            ),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000".into(),
                "localhost:5000".into(),
                "docker.io",
                "library/localhost",
            ),
        ];
        for (input, full, familiar, domain, path) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(r.to_string(), *full, "Display of {input:?}");
            assert_eq!(r.familiar_string(), *familiar, "familiar of {input:?}");
            assert_eq!(r.domain(), *domain, "domain of {input:?}");
            assert_eq!(r.path(), *path, "path of {input:?}");
            // The printed form parses back to the same reference.
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn default_tag_and_names() {
        let r = Reference::parse("busybox").unwrap();
        assert!(r.is_name_only());
        assert_eq!(r.tag(), None);
        let r = r.with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.familiar_string(), "busybox:latest");
        assert_eq!(r.full_name(), "docker.io/library/busybox");
        assert_eq!(r.tag(), Some("latest"));

        let r = Reference::parse("localhost:5000/a/b").unwrap();
        assert_eq!(r.familiar_name(), "localhost:5000/a/b");
        assert_eq!(r.full_name(), "localhost:5000/a/b");

        // A digest alone is enough: no default tag.
        let d = format!("busybox@sha256:{HEX}");
        let r = Reference::parse(&d).unwrap().with_default_tag();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), HEX);
        assert_eq!(r.familiar_string(), d);
    }

    #[test]
    fn docker_ref_drops_tag_when_digested() {
        let r = Reference::parse_docker_ref(&format!("busybox:1.36@sha256:{HEX}")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        let r = Reference::parse_docker_ref("user/app").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:latest");
    }

    #[test]
    fn with_tag_validates_and_with_digest_keeps_tag() {
        let r = Reference::parse("busybox:old").unwrap();
        assert_eq!(
            r.clone().with_tag("bad tag").unwrap_err(),
            ReferenceError::InvalidTag
        );
        assert_eq!(
            r.clone().with_tag(&"t".repeat(129)).unwrap_err(),
            ReferenceError::InvalidTag
        );
        let r = r.with_tag("new").unwrap();
        assert_eq!(r.familiar_string(), "busybox:new");
        let r = r.with_digest(Digest::of(b""));
        assert_eq!(r.familiar_string(), format!("busybox:new@sha256:{HEX}"));
        assert_eq!(r.without_tag_or_digest().familiar_string(), "busybox");
        // The longest tag is fine.
        let max = format!("busybox:{}", "t".repeat(128));
        assert!(Reference::parse(&max).is_ok());
    }

    #[test]
    fn from_str_is_parse() {
        let r: Reference = "user/app:1".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:1");
        assert!("Bad".parse::<Reference>().is_err());
    }
}
