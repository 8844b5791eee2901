//! Where the daemon is, from docker's global flags and environment alone: the address
//! syntax ([`parse_host`]), the client config directory, and the `default` context's
//! target ([`resolve_default`]). Named contexts ([`crate::context`]) build on this;
//! opening a connection is [`crate::connect`]'s.

use std::fmt;
use std::path::{Path, PathBuf};

use berth_tls::TlsPaths;

use crate::error::Error;
use crate::options::GlobalOptions;

/// berthd's default socket.
pub const DEFAULT_HOST: &str = "unix:///run/berth.sock";
/// The path of [`DEFAULT_HOST`].
pub const DEFAULT_SOCKET: &str = "/run/berth.sock";
/// Docker's port for TLS (`DefaultTLSHTTPPort`).
pub const DEFAULT_TLS_PORT: u16 = 2376;

/// A daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp { host, port } => write!(f, "tcp://{}:{port}", bracket(host)),
        }
    }
}

/// `[::1]` for IPv6 literals, the name otherwise.
pub fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Parses a `-H`/`DOCKER_HOST` value. A value without `scheme://` is `tcp://`, as in docker.
pub fn parse_host(raw: &str) -> Result<Host, Error> {
    let s = raw.trim();
    let bad = |why: &str| Error::client(format!("invalid daemon address {raw:?}: {why}"));
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("tcp".to_string(), s),
    };
    match scheme.as_str() {
        "unix" => {
            if rest.is_empty() {
                Ok(Host::Unix(PathBuf::from(DEFAULT_SOCKET)))
            } else if !rest.starts_with('/') {
                Err(bad(
                    "the socket path must be absolute, as in unix:///run/berth.sock",
                ))
            } else {
                Ok(Host::Unix(PathBuf::from(rest)))
            }
        }
        "tcp" | "https" => parse_tcp(rest).map_err(|why| bad(&why)),
        "http" => Err(bad(
            "Berth never talks plain HTTP over TCP; use tcp://HOST:2376 with --tlsverify",
        )),
        "ssh" | "npipe" | "fd" => Err(bad(&format!("{scheme}:// is not supported by berth"))),
        _ => Err(bad(&format!(
            "unknown scheme {scheme:?}; use unix:///PATH or tcp://HOST:PORT"
        ))),
    }
}

fn parse_tcp(rest: &str) -> Result<Host, String> {
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err("only tcp://HOST:PORT is supported (no path, query or user)".into());
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or("missing ] after an IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected :PORT after ]")?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err("put IPv6 addresses in brackets: tcp://[::1]:2376".into())
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_TLS_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("invalid port {p:?}")),
        },
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Ok(Host::Tcp {
        host: host.to_string(),
        port,
    })
}

/// A daemon address and, for TCP, the files of the mutual-TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    /// Always `Some` for [`Host::Tcp`], `None` for unix sockets.
    pub tls: Option<TlsPaths>,
}

/// The process environment, for [`resolve`] and [`config_dir`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The client config directory: `--config`, else `DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn config_dir(opts: &GlobalOptions, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dir) = &opts.config {
        return dir.clone();
    }
    if let Some(dir) = get("DOCKER_CONFIG") {
        return PathBuf::from(dir);
    }
    let home = get("HOME").unwrap_or_else(|| "/root".to_string());
    Path::new(&home).join(".docker")
}

/// The `default` context: flags over environment over defaults (see the module docs).
pub fn resolve_default(
    opts: &GlobalOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, Error> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    let raw_host = match opts.host.as_slice() {
        [] => get("BERTH_HOST")
            .or_else(|| get("DOCKER_HOST"))
            .unwrap_or_else(|| DEFAULT_HOST.to_string()),
        [one] => one.clone(),
        _ => return Err(Error::client("Specify only one -H")),
    };
    let host = parse_host(&raw_host)?;
    let verify = opts
        .tls_verify
        .unwrap_or_else(|| get("BERTH_TLS_VERIFY").is_some() || get("DOCKER_TLS_VERIFY").is_some());
    let cert_dir = get("BERTH_CERT_PATH")
        .or_else(|| get("DOCKER_CERT_PATH"))
        .map(PathBuf::from)
        .unwrap_or_else(|| config_dir(opts, env));
    let defaults = TlsPaths::in_dir(&cert_dir);
    let paths = TlsPaths {
        ca: opts.tls_ca_cert.clone().unwrap_or(defaults.ca),
        cert: opts.tls_cert.clone().unwrap_or(defaults.cert),
        key: opts.tls_key.clone().unwrap_or(defaults.key),
        crl: None,
    };
    let tls = match &host {
        Host::Unix(_) => None,
        Host::Tcp { .. } if verify => Some(paths),
        Host::Tcp { host: name, .. } => {
            let asked_tls = opts.tls == Some(true) || opts.tls_verify.is_some();
            return Err(refuse_unverified(&host, name, asked_tls));
        }
    };
    Ok(Target { host, tls })
}

fn refuse_unverified(host: &Host, name: &str, asked_tls: bool) -> Error {
    let why = if asked_tls {
        "TLS without --tlsverify would not check the daemon's certificate"
    } else {
        "Berth talks to a daemon over TCP only with mutual TLS"
    };
    Error::client(format!(
        "refusing to connect to {host} without verifying the daemon: {why}.\n\
         Set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to a directory holding ca.pem, cert.pem \
         and key.pem (or pass --tlsverify with --tlscacert/--tlscert/--tlskey).\n\
         To create them: berth tls init --dir DIR --san {name}"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn opts() -> GlobalOptions {
        GlobalOptions::default()
    }

    fn tcp(host: &str, port: u16) -> Host {
        Host::Tcp {
            host: host.into(),
            port,
        }
    }
    #[test]
    fn bad_hosts_are_refused() {
        for raw in [
            "unix://relative/path",
            "http://h:2375",
            "ssh://user@h",
            "fd://",
            "npipe:////./pipe/docker",
            "foo://x",
            "tcp://h:0",
            "tcp://h:99999",
            "tcp://h:port",
            "tcp://h:2376/path",
            "tcp://user@h:2376",
            "tcp://::1:2376",
            "tcp://[::1",
            "tcp://[::1]x",
        ] {
            assert!(parse_host(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn plain_http_error_says_why() {
        let e = parse_host("http://h:2375").unwrap_err().to_string();
        assert!(e.contains("never talks plain HTTP"), "{e}");
    }

    #[test]
    fn hosts_parse_like_docker() {
        assert_eq!(
            parse_host("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse_host("unix://").unwrap(),
            Host::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(parse_host("tcp://h:1234").unwrap(), tcp("h", 1234));
        assert_eq!(parse_host("tcp://h").unwrap(), tcp("h", 2376));
        assert_eq!(parse_host("tcp://h/").unwrap(), tcp("h", 2376));
        assert_eq!(parse_host("tcp://:2400").unwrap(), tcp("localhost", 2400));
        assert_eq!(
            parse_host("https://10.0.0.1:2376").unwrap(),
            tcp("10.0.0.1", 2376)
        );
        assert_eq!(
            parse_host("h.example:2376").unwrap(),
            tcp("h.example", 2376)
        );
        assert_eq!(parse_host(" TCP://h:1 ").unwrap(), tcp("h", 1));
        assert_eq!(parse_host("tcp://[::1]:2376").unwrap(), tcp("::1", 2376));
        assert_eq!(parse_host("tcp://[::1]").unwrap(), tcp("::1", 2376));
    }

    #[test]
    fn hosts_display_as_urls() {
        assert_eq!(
            Host::Unix("/run/berth.sock".into()).to_string(),
            DEFAULT_HOST
        );
        assert_eq!(tcp("::1", 2376).to_string(), "tcp://[::1]:2376");
        assert_eq!(tcp("h", 1).to_string(), "tcp://h:1");
    }

    #[test]
    fn default_is_berths_socket() {
        let t = resolve_default(&opts(), &env(&[])).unwrap();
        assert_eq!(t.host, Host::Unix(DEFAULT_SOCKET.into()));
        assert_eq!(t.tls, None);
    }

    #[test]
    fn host_precedence_flag_then_berth_then_docker() {
        let both = env(&[
            ("BERTH_HOST", "unix:///b.sock"),
            ("DOCKER_HOST", "unix:///d.sock"),
        ]);
        assert_eq!(
            resolve_default(&opts(), &both).unwrap().host,
            Host::Unix("/b.sock".into())
        );
        let docker_only = env(&[("DOCKER_HOST", "unix:///d.sock"), ("BERTH_HOST", "")]);
        assert_eq!(
            resolve_default(&opts(), &docker_only).unwrap().host,
            Host::Unix("/d.sock".into())
        );
        let mut o = opts();
        o.host = vec!["unix:///f.sock".into()];
        assert_eq!(
            resolve_default(&o, &both).unwrap().host,
            Host::Unix("/f.sock".into())
        );
    }

    #[test]
    fn only_one_host_flag() {
        let mut o = opts();
        o.host = vec!["unix:///a".into(), "unix:///b".into()];
        assert_eq!(
            resolve_default(&o, &env(&[])).unwrap_err().to_string(),
            "Specify only one -H"
        );
    }

    #[test]
    fn tcp_without_verification_is_refused_with_the_fix() {
        let e = resolve_default(&opts(), &env(&[("DOCKER_HOST", "tcp://myhost:2376")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refusing to connect to tcp://myhost:2376"),
            "{e}"
        );
        assert!(e.contains("DOCKER_TLS_VERIFY=1"), "{e}");
        assert!(e.contains("DOCKER_CERT_PATH"), "{e}");
        assert!(e.contains("berth tls init --dir DIR --san myhost"), "{e}");

        let mut o = opts();
        o.tls = Some(true);
        o.host = vec!["tcp://h:1".into()];
        let e = resolve_default(&o, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("without --tlsverify"), "{e}");
    }

    #[test]
    fn tlsverify_flag_overrides_env() {
        let e = env(&[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "1")]);
        let mut o = opts();
        o.tls_verify = Some(false);
        assert!(resolve_default(&o, &e).is_err());
        o.tls_verify = None;
        assert!(resolve_default(&o, &e).unwrap().tls.is_some());
    }

    #[test]
    fn any_non_empty_tls_verify_value_turns_it_on() {
        for v in ["1", "0", "false", "yes"] {
            let e = env(&[("DOCKER_HOST", "tcp://h"), ("DOCKER_TLS_VERIFY", v)]);
            assert!(resolve_default(&opts(), &e).unwrap().tls.is_some(), "{v}");
            let e = env(&[("DOCKER_HOST", "tcp://h"), ("BERTH_TLS_VERIFY", v)]);
            assert!(resolve_default(&opts(), &e).unwrap().tls.is_some(), "{v}");
        }
        let e = env(&[("DOCKER_HOST", "tcp://h"), ("DOCKER_TLS_VERIFY", "")]);
        assert!(resolve_default(&opts(), &e).is_err());
    }

    #[test]
    fn cert_paths_precedence() {
        let base = [
            ("DOCKER_HOST", "tcp://h"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("HOME", "/home/u"),
        ];
        let t = resolve_default(&opts(), &env(&base)).unwrap();
        assert_eq!(
            t.tls.unwrap(),
            TlsPaths::in_dir(Path::new("/home/u/.docker"))
        );

        let mut vars = base.to_vec();
        vars.push(("DOCKER_CONFIG", "/cfg"));
        let t = resolve_default(&opts(), &env(&vars)).unwrap();
        assert_eq!(t.tls.unwrap(), TlsPaths::in_dir(Path::new("/cfg")));

        let mut o = opts();
        o.config = Some("/flagcfg".into());
        let t = resolve_default(&o, &env(&vars)).unwrap();
        assert_eq!(t.tls.unwrap(), TlsPaths::in_dir(Path::new("/flagcfg")));

        vars.push(("DOCKER_CERT_PATH", "/dcerts"));
        let t = resolve_default(&o, &env(&vars)).unwrap();
        assert_eq!(t.tls.unwrap(), TlsPaths::in_dir(Path::new("/dcerts")));

        vars.push(("BERTH_CERT_PATH", "/bcerts"));
        let t = resolve_default(&o, &env(&vars)).unwrap();
        assert_eq!(t.tls.unwrap(), TlsPaths::in_dir(Path::new("/bcerts")));

        o.tls_key = Some("/k.pem".into());
        o.tls_ca_cert = Some("/ca.pem".into());
        let t = resolve_default(&o, &env(&vars)).unwrap().tls.unwrap();
        assert_eq!(t.key, PathBuf::from("/k.pem"));
        assert_eq!(t.ca, PathBuf::from("/ca.pem"));
        assert_eq!(t.cert, PathBuf::from("/bcerts/cert.pem"));
    }

    #[test]
    fn unix_hosts_ignore_tls_settings() {
        let e = env(&[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_HOST", "unix:///x.sock"),
        ]);
        assert_eq!(resolve_default(&opts(), &e).unwrap().tls, None);
    }
}
