//! Where berthd listens: `-H` parsing (dockerd's spellings) and binding of unix sockets.
//!
//! A unix socket is created mode 0660, owned by root and the `--group` group, so only
//! root and that group reach the API. TCP is bound elsewhere only after TLS is set up.

use std::fs;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ServerError;

/// berthd's default socket.
pub const DEFAULT_UNIX_SOCKET: &str = "/run/berth.sock";
/// Docker's port for TLS (`tcp://host` without a port).
const DEFAULT_TLS_PORT: u16 = 2376;

/// One `-H` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
    /// systemd socket activation; `None` takes every passed socket.
    Fd(Option<i32>),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Fd(None) => write!(f, "fd://"),
            Endpoint::Fd(Some(n)) => write!(f, "fd://{n}"),
        }
    }
}

/// Parses a `-H` value as dockerd does: `unix:///path` (`unix://` alone is the default
/// socket), `tcp://host:port` (`tcp://:port` binds every address, no port means 2376),
/// `fd://` or `fd://N`.
pub fn parse_host(host: &str) -> Result<Endpoint, ServerError> {
    let invalid = |reason: &str| ServerError::InvalidHost {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    let host_trim = host.trim();
    if let Some(path) = host_trim.strip_prefix("unix://") {
        let path = if path.is_empty() {
            DEFAULT_UNIX_SOCKET
        } else {
            path
        };
        if !path.starts_with('/') {
            return Err(invalid("a unix socket path must be absolute"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = host_trim.strip_prefix("fd://") {
        if rest.is_empty() {
            return Ok(Endpoint::Fd(None));
        }
        return rest
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 3)
            .map(|n| Endpoint::Fd(Some(n)))
            .ok_or_else(|| invalid("fd:// takes a descriptor number of 3 or more"));
    }
    if let Some(rest) = host_trim.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(invalid("a tcp address takes no path"));
        }
        let (h, port) = split_host_port(rest).ok_or_else(|| invalid("expected tcp://HOST:PORT"))?;
        let port = match port {
            None => DEFAULT_TLS_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| invalid("invalid port"))?,
        };
        let h = if h.is_empty() { "0.0.0.0" } else { h };
        let addr = (h, port)
            .to_socket_addrs()
            .map_err(|e| invalid(&format!("cannot resolve host: {e}")))?
            .next()
            .ok_or_else(|| invalid("host resolves to no address"))?;
        return Ok(Endpoint::Tcp(addr));
    }
    Err(invalid("expected unix:///path, tcp://host:port or fd://"))
}

/// `host:port`, `[v6]:port`, `host` → (host, port).
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return match after {
            "" => Some((h, None)),
            p => Some((h, Some(p.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// Options for listeners that the daemon's flags set.
#[derive(Debug, Clone, Default)]
pub struct ListenerOptions {
    /// Group owning unix sockets (`--group`), as a gid.
    pub socket_gid: Option<u32>,
    /// Role-based authorization (`--authorization roles`); `None`: every client may do
    /// everything.
    pub authorization: Option<std::sync::Arc<crate::Authorizer>>,
}

/// Binds a unix socket: removes a stale socket file (never any other kind of file), then
/// sets mode 0660 and the group. Also binds berth-cri's socket.
pub fn bind_unix(
    path: &Path,
    opts: &ListenerOptions,
) -> Result<tokio::net::UnixListener, ServerError> {
    let bind_err = |source| ServerError::Bind {
        endpoint: format!("unix://{}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(bind_err)?;
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // Another daemon (a berthd on another data root, a dockerd) may be serving it:
            // taking its socket over would leave its clients talking to us. Only a socket
            // nobody answers on is stale.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(bind_err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process is listening on this socket (another berthd or dockerd?): \
                     stop it, or give this daemon another socket with -H unix:///PATH",
                )));
            }
            fs::remove_file(path).map_err(bind_err)?;
        }
        Ok(_) => {
            return Err(bind_err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "path exists and is not a socket",
            )))
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    if let Some(gid) = opts.socket_gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(bind_err)?;
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_host_spellings() {
        assert_eq!(
            parse_host("unix:///tmp/b.sock").unwrap(),
            Endpoint::Unix("/tmp/b.sock".into())
        );
        assert_eq!(
            parse_host("unix://").unwrap(),
            Endpoint::Unix(DEFAULT_UNIX_SOCKET.into())
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2376").unwrap(),
            Endpoint::Tcp("127.0.0.1:2376".parse().unwrap())
        );
        assert_eq!(
            parse_host("tcp://:2377").unwrap(),
            Endpoint::Tcp("0.0.0.0:2377".parse().unwrap())
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1").unwrap(),
            Endpoint::Tcp("127.0.0.1:2376".parse().unwrap())
        );
        assert_eq!(
            parse_host("tcp://[::1]:2376").unwrap(),
            Endpoint::Tcp("[::1]:2376".parse().unwrap())
        );
        assert_eq!(parse_host("fd://").unwrap(), Endpoint::Fd(None));
        assert_eq!(parse_host("fd://3").unwrap(), Endpoint::Fd(Some(3)));
    }

    #[test]
    fn rejects_bad_hosts() {
        for bad in [
            "",
            "http://x:1",
            "unix://relative.sock",
            "tcp://h:notaport",
            "tcp://h:99999",
            "tcp://h:1/path",
            "fd://1",
            "fd://x",
            "tcp://::1:2",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unix_socket_is_0660_and_replaces_stale_socket() {
        let dir = std::env::temp_dir().join(format!("berth-listen-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("api.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = bind_unix(&sock, &ListenerOptions::default()).unwrap();
            drop(l);
            // The socket file stays behind after drop: binding again must replace it.
            let _l = bind_unix(&sock, &ListenerOptions::default()).unwrap();
        });
        let mode = fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        let plain = dir.join("plain");
        fs::write(&plain, b"keep me").unwrap();
        let refused =
            rt.block_on(async { bind_unix(&plain, &ListenerOptions::default()).is_err() });
        assert_eq!(fs::read(&plain).unwrap(), b"keep me");
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o660);
        assert!(refused, "a regular file was replaced by a socket");
    }
}
