//! The audit log (`berthd --audit-log FILE`): one JSON line per mutating request (every
//! method but GET, HEAD and OPTIONS) and per attach, exec, archive, export and image save,
//! saying who asked for what and how it ended:
//!
//! ```json
//! {"time":"2026-12-07T14:05:23.123456789Z","client":{"subject":"CN=alice","serial":"1f"},
//!  "method":"POST","route":"/containers/{id}/start","path":"/v1.50/containers/web/start",
//!  "target":"web","status":204,"duration_ms":41.2}
//! ```
//!
//! `client` is the TLS client certificate's subject and serial, or the unix socket peer's
//! `uid`, `gid` and `pid` ([`ClientIdentity`]). `route` is the API route with its object
//! replaced by a placeholder (`null` for a path Berth does not serve), `path` the path as
//! sent (never the query), `target` the object the request names: the path's container,
//! exec, image, volume or network, or for creates the `name`, `fromImage`/`tag`, `t` or
//! `container` query parameter; a create that names nothing (a container without
//! `--name`, every volume and network create, whose name is in the body) gets the `Id`
//! or `Name` of its 201 answer. Request bodies and headers are never read, so registry
//! credentials (`X-Registry-Auth`), environment values and build arguments never reach
//! the log; no other query value is logged.
//!
//! Every request passes [`record`] once its answer is known (also a refusal before
//! routing, and the `101` of a hijacked attach or exec, when the upgrade is answered).
//! The line is written by one writer thread, and the request waits until it is written
//! before its answer goes out: a client never sees the result of a request the log does
//! not hold, and a slow disk slows mutating requests instead of losing lines (a full
//! channel, [`QUEUE`] lines, makes requests wait too). Lines go to the page cache, not
//! fsync'd. A write error is logged and the request goes on: the log is a record, not a
//! gate. The log is process-wide ([`install`], once at start-up).
//!
//! Rotation by size as json-file logs rotate: a line that would take the file past
//! `max_size` first renames `FILE` to `FILE.1` (`FILE.1` to `FILE.2`, …, the oldest
//! removed) so that at most `max_files` files exist; with `max_files` 1 the file is
//! truncated instead. The file is created mode 0600 and opened to append.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::{ApiError, ClientIdentity};

/// Lines that may wait for the writer before requests wait to queue theirs.
pub const QUEUE: usize = 4096;
/// The default rotation size (`--audit-log-max-size`): 100 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 100 << 20;
/// The default number of files kept, the live one included (`--audit-log-max-files`).
pub const DEFAULT_MAX_FILES: u32 = 5;
/// A target longer than this is cut (a path or query may be as long as a client likes).
const MAX_TARGET: usize = 512;
/// A create's answer read for its `Id`/`Name` (Berth's own JSON, a few hundred bytes).
const MAX_CREATE_ANSWER: usize = 1 << 20;

/// Where the log goes and how it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `None`: stderr (`--audit-log -`).
    pub path: Option<PathBuf>,
    pub max_size: u64,
    pub max_files: u32,
}

/// A handle on the writer thread.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<(String, oneshot::Sender<()>)>,
}

static LOG: OnceLock<AuditLog> = OnceLock::new();

/// Makes `log` the process's audit log; later calls change nothing.
pub fn install(log: AuditLog) {
    let _ = LOG.set(log);
}

impl AuditLog {
    /// Opens (creates) the file and starts the writer thread.
    pub fn open(config: AuditConfig) -> io::Result<Self> {
        let mut sink = Sink::open(config)?;
        let (tx, mut rx) = mpsc::channel::<(String, oneshot::Sender<()>)>(QUEUE);
        std::thread::Builder::new()
            .name("berth-audit".into())
            .spawn(move || {
                let mut failing = false;
                while let Some((line, done)) = rx.blocking_recv() {
                    match sink.write_line(&line) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::error!(error = %e, "audit log: cannot write; requests go on unlogged until a write succeeds");
                        }
                        Err(_) => {}
                    }
                    let _ = done.send(());
                }
            })?;
        Ok(Self { tx })
    }

    /// Queues `line` and waits until the writer has written it.
    async fn write(&self, line: String) {
        let (done, written) = oneshot::channel();
        if self.tx.send((line, done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Records one request if it is audited; the answer comes back unchanged (a create's
/// body read for its ID is put back).
pub async fn record(
    identity: &ClientIdentity,
    method: &Method,
    uri: &axum::http::Uri,
    start: Instant,
    resp: Response<Body>,
) -> Response<Body> {
    match LOG.get() {
        Some(log) => record_to(log, identity, method, uri, start, resp).await,
        None => resp,
    }
}

async fn record_to(
    log: &AuditLog,
    identity: &ClientIdentity,
    method: &Method,
    uri: &axum::http::Uri,
    start: Instant,
    resp: Response<Body>,
) -> Response<Body> {
    let path = uri.path();
    let route = Route::of(method, path, uri.query());
    if !route.audited {
        return resp;
    }
    let status = resp.status();
    let (resp, created) =
        if route.target.is_none() && route.creates && status == StatusCode::CREATED {
            created_id(resp).await
        } else {
            (resp, None)
        };
    let target = route.target.clone().or(created);
    let micros = start.elapsed().as_micros();
    let line = line(
        &time_now(),
        identity,
        method,
        &route,
        path,
        target.as_deref(),
        status.as_u16(),
        micros,
    );
    log.write(line).await;
    resp
}

/// Reads a create's answer for the `Id` (or `Name`) it reports, then puts it back.
async fn created_id(resp: Response<Body>) -> (Response<Body>, Option<String>) {
    let (parts, body) = resp.into_parts();
    match http_body_util::Limited::new(body, MAX_CREATE_ANSWER)
        .collect()
        .await
    {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let id = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
                ["Id", "Name"]
                    .iter()
                    .find_map(|k| v.get(k).and_then(Value::as_str).map(cut))
            });
            (Response::from_parts(parts, Body::from(bytes)), id)
        }
        // Berth's own answers are far smaller; should one not be, the client hears why.
        Err(_) => (
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the create's answer could not be read for the audit log",
            )
            .into_response(),
            None,
        ),
    }
}

/// RFC 3339 UTC with nanoseconds.
fn time_now() -> String {
    use time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    now.format(&Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[allow(clippy::too_many_arguments)]
fn line(
    time: &str,
    identity: &ClientIdentity,
    method: &Method,
    route: &Route,
    path: &str,
    target: Option<&str>,
    status: u16,
    micros: u128,
) -> String {
    let client = match (&identity.subject, &identity.serial, &identity.unix) {
        (Some(subject), serial, _) => {
            json!({"subject": &**subject, "serial": serial.as_deref()})
        }
        (None, _, Some(cred)) => json!({"uid": cred.uid, "gid": cred.gid, "pid": cred.pid}),
        _ => json!({}),
    };
    let path: String = path.chars().take(2048).collect();
    let v = json!({
        "time": time,
        "client": client,
        "method": method.as_str(),
        "route": route.template,
        "path": path,
        "target": target,
        "status": status,
        "duration_ms": micros as f64 / 1000.0,
    });
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// What the audit log knows of a request from its method and path alone.
#[derive(Debug, PartialEq, Eq)]
struct Route {
    audited: bool,
    /// The route with its object as a placeholder; `None` for a path Berth does not serve.
    template: Option<String>,
    target: Option<String>,
    /// A create whose answer names the object when the query does not.
    creates: bool,
}

/// `/containers/{id}/…` actions.
const CONTAINER_ACTIONS: &[&str] = &[
    "json",
    "start",
    "stop",
    "kill",
    "restart",
    "attach",
    "attach/ws",
    "wait",
    "logs",
    "rename",
    "pause",
    "unpause",
    "update",
    "resize",
    "exec",
    "archive",
    "export",
    "changes",
    "top",
    "stats",
];
/// Read-only requests audited all the same: they hand out a container's streams or files,
/// or an image's content.
const READS_AUDITED: &[&str] = &[
    "/containers/{id}/attach",
    "/containers/{id}/attach/ws",
    "/containers/{id}/archive",
    "/containers/{id}/export",
    "/images/get",
    "/images/{name}/get",
    "/exec/{id}/start",
];

impl Route {
    fn of(method: &Method, raw_path: &str, query: Option<&str>) -> Self {
        let path = crate::version::split_version(raw_path).map_or(raw_path, |(_, tail)| tail);
        let (template, target) = classify(path, query);
        let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let audited = mutating
            || template
                .as_deref()
                .is_some_and(|t| READS_AUDITED.contains(&t));
        let creates = matches!(
            template.as_deref(),
            Some("/containers/create" | "/volumes/create" | "/networks/create")
        );
        Self {
            audited,
            template,
            target: target.map(|t| cut(&t)),
            creates,
        }
    }
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_TARGET).collect()
}

/// The first value of `key` in the query, if not empty.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Every value of `key`, joined with commas (`/build?t=a&t=b`).
fn query_values(query: Option<&str>, key: &str) -> Option<String> {
    let all: Vec<String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.into_owned())
        .collect();
    (!all.is_empty()).then(|| all.join(","))
}

/// The route template and target of an unversioned path.
fn classify(path: &str, query: Option<&str>) -> (Option<String>, Option<String>) {
    let fixed = |t: &str| (Some(t.to_string()), None);
    let Some(rest) = path.strip_prefix('/') else {
        return (None, None);
    };
    let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match (head, tail) {
        ("containers", "create") => (
            Some("/containers/create".into()),
            query_value(query, "name"),
        ),
        ("containers", "json" | "prune") => fixed(&format!("/containers/{tail}")),
        ("containers", t) if !t.is_empty() => match t.split_once('/') {
            None => (Some("/containers/{id}".into()), Some(t.into())),
            Some((id, action)) if CONTAINER_ACTIONS.contains(&action) && !id.is_empty() => (
                Some(format!("/containers/{{id}}/{action}")),
                Some(id.into()),
            ),
            Some(_) => (None, None),
        },
        ("exec", t) => match t.split_once('/') {
            Some((id, action @ ("start" | "resize" | "json"))) if !id.is_empty() => {
                (Some(format!("/exec/{{id}}/{action}")), Some(id.into()))
            }
            _ => (None, None),
        },
        ("images", "create") => {
            let target = match (query_value(query, "fromImage"), query_value(query, "tag")) {
                (Some(image), Some(tag)) if tag.starts_with("sha256:") => {
                    Some(format!("{image}@{tag}"))
                }
                (Some(image), Some(tag)) => Some(format!("{image}:{tag}")),
                (Some(image), None) => Some(image),
                (None, tag) => match (query_value(query, "repo"), tag) {
                    (Some(repo), Some(tag)) => Some(format!("{repo}:{tag}")),
                    (repo, _) => repo,
                },
            };
            (Some("/images/create".into()), target)
        }
        ("images", "json" | "load" | "get" | "prune" | "search") => {
            fixed(&format!("/images/{tail}"))
        }
        ("images", t) if !t.is_empty() => {
            for action in ["json", "history", "get", "tag", "push"] {
                if let Some(name) = t
                    .strip_suffix(action)
                    .and_then(|n| n.strip_suffix('/'))
                    .filter(|n| !n.is_empty())
                {
                    return (
                        Some(format!("/images/{{name}}/{action}")),
                        Some(name.into()),
                    );
                }
            }
            (Some("/images/{name}".into()), Some(t.into()))
        }
        ("volumes" | "networks", "create" | "prune") => fixed(&format!("/{head}/{tail}")),
        ("volumes", t) if !t.is_empty() && !t.contains('/') => {
            (Some("/volumes/{name}".into()), Some(t.into()))
        }
        ("networks", t) if !t.is_empty() => match t.split_once('/') {
            None => (Some("/networks/{id}".into()), Some(t.into())),
            Some((id, action @ ("connect" | "disconnect"))) if !id.is_empty() => {
                (Some(format!("/networks/{{id}}/{action}")), Some(id.into()))
            }
            Some(_) => (None, None),
        },
        ("build", "") => (Some("/build".into()), query_values(query, "t")),
        ("build", "prune") => fixed("/build/prune"),
        ("build", "cancel") => (Some("/build/cancel".into()), query_value(query, "id")),
        ("commit", "") => (Some("/commit".into()), query_value(query, "container")),
        ("auth" | "session" | "grpc" | "events" | "info" | "version" | "_ping", "")
        | ("containers" | "volumes" | "networks" | "images" | "system", "")
        | ("system", "df") => fixed(path),
        _ => (None, None),
    }
}

/// The file (or stderr) and its rotation.
struct Sink {
    config: AuditConfig,
    file: Option<File>,
    size: u64,
}

impl Sink {
    fn open(config: AuditConfig) -> io::Result<Self> {
        let (file, size) = match &config.path {
            None => (None, 0),
            Some(p) => {
                let f = open_append(p)?;
                let size = f.metadata()?.len();
                (Some(f), size)
            }
        };
        Ok(Self { config, file, size })
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let Some(path) = self.config.path.clone() else {
            return io::stderr().lock().write_all(line.as_bytes());
        };
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.config.max_size {
            self.rotate(&path)?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(open_append(&path)?),
        };
        file.write_all(line.as_bytes())?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    fn rotate(&mut self, path: &Path) -> io::Result<()> {
        self.file = None;
        let numbered = |n: u32| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let keep = self.config.max_files.max(1);
        if keep == 1 {
            File::create(path)?;
        } else {
            match std::fs::remove_file(numbered(keep - 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..keep - 1).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(path, numbered(1))?;
        }
        self.size = 0;
        self.file = Some(open_append(path)?);
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerCred;

    fn route(method: Method, pq: &str) -> Route {
        let (path, query) = pq.split_once('?').map_or((pq, None), |(p, q)| (p, Some(q)));
        Route::of(&method, path, query)
    }

    #[test]
    fn mutating_requests_and_stream_reads_are_audited_other_reads_not() {
        let r = route(Method::POST, "/v1.50/containers/web/start");
        assert!(r.audited);
        assert_eq!(r.template.as_deref(), Some("/containers/{id}/start"));
        assert_eq!(r.target.as_deref(), Some("web"));
        let r = route(Method::GET, "/containers/web/archive?path=/etc");
        assert!(r.audited);
        assert_eq!(r.target.as_deref(), Some("web"));
        assert!(route(Method::HEAD, "/v1.41/containers/web/archive").audited);
        assert!(route(Method::GET, "/containers/web/attach/ws").audited);
        assert!(route(Method::GET, "/images/library/busybox:latest/get").audited);
        assert!(route(Method::GET, "/images/get?names=a").audited);
        assert!(!route(Method::GET, "/v1.50/containers/json").audited);
        assert!(!route(Method::GET, "/containers/web/json").audited);
        assert!(!route(Method::GET, "/containers/web/logs").audited);
        assert!(!route(Method::HEAD, "/_ping").audited);
        // A path Berth does not serve, if mutating, is recorded without a route.
        let r = route(Method::POST, "/containers/web/frobnicate");
        assert!(r.audited);
        assert_eq!((r.template, r.target), (None, None));
        let r = route(Method::DELETE, "/images/reg.example:5000/a/b:1");
        assert_eq!(r.template.as_deref(), Some("/images/{name}"));
        assert_eq!(r.target.as_deref(), Some("reg.example:5000/a/b:1"));
        let r = route(Method::POST, "/images/a/b:1/tag?repo=c&tag=2");
        assert_eq!(r.template.as_deref(), Some("/images/{name}/tag"));
        assert_eq!(r.target.as_deref(), Some("a/b:1"));
    }

    #[test]
    fn creates_take_their_target_from_the_query_and_no_other_query_value() {
        let r = route(Method::POST, "/containers/create?name=web");
        assert_eq!(r.target.as_deref(), Some("web"));
        assert!(r.creates);
        let r = route(Method::POST, "/images/create?fromImage=busybox&tag=1.36");
        assert_eq!(r.target.as_deref(), Some("busybox:1.36"));
        let r = route(Method::POST, "/images/create?fromSrc=-&repo=mine&tag=2");
        assert_eq!(r.target.as_deref(), Some("mine:2"));
        let r = route(
            Method::POST,
            "/build?t=a:1&t=b&buildargs=%7B%22PASSWORD%22%3A%22hunter2%22%7D",
        );
        assert_eq!(r.target.as_deref(), Some("a:1,b"));
        let r = route(Method::POST, "/build/cancel?id=job-1");
        assert_eq!(
            (r.template.as_deref(), r.target.as_deref()),
            (Some("/build/cancel"), Some("job-1"))
        );
        let r = route(
            Method::POST,
            "/commit?container=web&repo=x&changes=ENV%20SECRET%3Dhunter2",
        );
        assert_eq!(r.target.as_deref(), Some("web"));
        let huge = format!("/containers/{}/start", "x".repeat(10_000));
        assert_eq!(route(Method::POST, &huge).target.unwrap().len(), MAX_TARGET);
    }

    #[test]
    fn a_line_names_the_client_and_never_a_query_value() {
        let tls = ClientIdentity {
            subject: Some("CN=alice,OU=ops".into()),
            serial: Some("1f2e".into()),
            unix: None,
        };
        let r = route(
            Method::POST,
            "/v1.50/build?t=app&buildargs=%7B%22PASSWORD%22%3A%22hunter2%22%7D",
        );
        let l = line(
            "2026-12-07T14:05:23.1Z",
            &tls,
            &Method::POST,
            &r,
            "/v1.50/build",
            r.target.as_deref(),
            200,
            41_250,
        );
        assert!(l.ends_with('\n') && !l.trim_end().contains('\n'));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            v,
            json!({"time": "2026-12-07T14:05:23.1Z",
                   "client": {"subject": "CN=alice,OU=ops", "serial": "1f2e"},
                   "method": "POST", "route": "/build", "path": "/v1.50/build",
                   "target": "app", "status": 200, "duration_ms": 41.25})
        );
        assert!(!l.contains("hunter2") && !l.contains("buildargs"));
        let unix = ClientIdentity {
            unix: Some(PeerCred {
                uid: 1000,
                gid: 100,
                pid: Some(4242),
            }),
            ..ClientIdentity::default()
        };
        let l = line("t", &unix, &Method::DELETE, &r, "/", None, 204, 0);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["client"], json!({"uid": 1000, "gid": 100, "pid": 4242}));
        assert_eq!(v["target"], Value::Null);
    }

    /// Through `record_to`: a create with registry credentials in a header and Env values
    /// in its body logs neither (the log never sees headers or bodies); the answer's ID
    /// becomes the target and the client still gets the whole answer.
    #[tokio::test]
    async fn a_create_logs_its_answers_id_and_no_secret() {
        let dir = std::env::temp_dir().join(format!("berth-audit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let log = AuditLog::open(AuditConfig {
            path: Some(path.clone()),
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        })
        .unwrap();
        let req = axum::http::Request::post("/v1.50/containers/create")
            .header("X-Registry-Auth", "eyJwYXNzd29yZCI6Imh1bnRlcjIifQ==")
            .body(Body::from(
                r#"{"Image":"busybox","Env":["PASSWORD=hunter2"]}"#,
            ))
            .unwrap();
        let answer = r#"{"Id":"0123abcd","Warnings":[]}"#;
        let resp = Response::builder()
            .status(StatusCode::CREATED)
            .body(Body::from(answer))
            .unwrap();
        let resp = record_to(
            &log,
            &ClientIdentity::default(),
            req.method(),
            req.uri(),
            Instant::now(),
            resp,
        )
        .await;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(body, answer.as_bytes());
        let text = std::fs::read_to_string(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["route"], "/containers/create");
        assert_eq!(v["target"], "0123abcd");
        assert_eq!(v["status"], 201);
        for secret in ["hunter2", "eyJ", "Env", "Registry"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    /// A sink writing `audit.log` in a fresh directory named after `tag`.
    fn sink_in(tag: &str, max_size: u64, max_files: u32) -> (PathBuf, PathBuf, Sink) {
        let dir = std::env::temp_dir().join(format!("berth-audit-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let sink = Sink::open(AuditConfig {
            path: Some(path.clone()),
            max_size,
            max_files,
        })
        .unwrap();
        (dir, path, sink)
    }

    #[test]
    fn rotation_keeps_max_files_and_never_passes_max_size() {
        let (dir, _, mut sink) = sink_in("rot", 100, 3);
        // 40-byte lines: two per file.
        for i in 0..7 {
            sink.write_line(&format!("{i:039}\n")).unwrap();
        }
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).ok();
        let (live, one, two, three) = (
            read("audit.log"),
            read("audit.log.1"),
            read("audit.log.2"),
            read("audit.log.3"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let nums = |s: Option<String>| {
            s.map(|s| {
                s.lines()
                    .map(|l| l.trim_start_matches('0').to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(nums(live), Some(vec!["6".to_string()]));
        assert_eq!(nums(one), Some(vec!["4".to_string(), "5".to_string()]));
        assert_eq!(nums(two), Some(vec!["2".to_string(), "3".to_string()]));
        assert_eq!(three, None, "at most max_files files");
    }

    #[test]
    fn max_files_one_truncates() {
        let (dir, path, mut sink) = sink_in("one", 50, 1);
        sink.write_line(&format!("{:039}\n", 1)).unwrap();
        sink.write_line(&format!("{:039}\n", 2)).unwrap();
        let live = std::fs::read_to_string(&path).unwrap();
        let rotated = dir.join("audit.log.1").exists();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(live, format!("{:039}\n", 2));
        assert!(!rotated);
    }
}
