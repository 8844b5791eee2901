//! Role-based authorization (`berthd --authorization roles`): who a request's client is
//! ([`ClientIdentity`]) becomes a [`Role`], and each request is allowed or refused with
//! 403 before it reaches its route.
//!
//! Roles:
//! - `viewer`: reads only (GET and HEAD), but no attach, no `exec`, no container logs
//!   (unless the policy's `viewer_logs` is true), no archive or export GET.
//! - `operator`: containers, images, networks, volumes, except what weakens a container's
//!   confinement: `Privileged`, host bind mounts outside `bind_allow` (also as local
//!   volumes with `o=bind`), host pid/ipc/network/uts/userns/cgroup namespaces, devices,
//!   added capabilities, `SecurityOpt` other than `no-new-privileges`, unmasked system
//!   paths, `CgroupParent`, `VolumesFrom`; privileged exec; `/build` with host networking;
//!   networks on a bridge they name (`com.docker.network.bridge.name`: a host's bridge);
//!   no plugin or swarm changes, no `/session`. Nor may an operator attach, exec, copy
//!   files or export, or join the pid/ipc/network namespace of a container that has such
//!   options (an admin's): that would hand over what the options give.
//! - `admin`: everything.
//!
//! A client that maps to no role may call only `/_ping` and `/version` (GET, HEAD).
//!
//! Mapping, first match wins. TLS: an `OU=berth:ROLE` in the certificate's subject (what
//! `berth tls client NAME --role ROLE` writes); the policy's `subjects` (the whole RFC 4514
//! subject, e.g. `CN=ci,O=Acme`); the policy's `ous` (any OU of the subject; the most
//! privileged match). Unix socket (`SO_PEERCRED`): uid 0 is admin; the policy's `uids`,
//! then `gids` (the peer's primary gid); otherwise admin, as the socket's 0660 mode admits
//! only root and the socket group's members (Docker's `docker` group).
//!
//! The policy file (`--authorization-policy FILE`), every key optional:
//! ```json
//! {"subjects": {"CN=ci,O=Acme": "operator"}, "ous": {"Platform": "admin"},
//!  "uids": {"1000": "viewer"}, "gids": {"1001": "operator"},
//!  "bind_allow": ["/srv/data"], "viewer_logs": true}
//! ```
//! `bind_allow` paths are resolved (symlinks followed) when the policy loads; a bind
//! source is resolved the same way when checked, so a symlink inside an allowed directory
//! cannot point a bind elsewhere. A symlink swapped in after this check is caught at
//! start: a create passes its client's role on (a [`Role`] request extension), the engine
//! keeps it with the container's binds, and every start, by anyone, opens an operator's
//! bind sources beneath `bind_allow` with `openat2(RESOLVE_BENEATH)` and mounts them from
//! those descriptors ([`Authorizer::bind_policy`]). Allowed directories themselves (and
//! their parents) must not be writable by operators.
//!
//! Refusals are 403 with Docker's `{"message"}` body naming the rule (`rule: viewer.read_only`)
//! and one `warn` log line with the client's identity.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use crate::{ApiError, ClientIdentity};

/// The most bytes of a request body read to check it (container create and the like).
pub const MAX_CHECKED_BODY: usize = 4 << 20;
/// The largest policy file read.
const MAX_POLICY_FILE: u64 = 1 << 20;

/// What a client may do, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read authorization policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("authorization policy {path} is larger than {MAX_POLICY_FILE} bytes")]
    TooLarge { path: PathBuf },
    #[error("invalid authorization policy: {0}")]
    Invalid(String),
}

/// The policy file as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    subjects: BTreeMap<String, Role>,
    #[serde(default)]
    ous: BTreeMap<String, Role>,
    #[serde(default)]
    uids: BTreeMap<String, Role>,
    #[serde(default)]
    gids: BTreeMap<String, Role>,
    #[serde(default)]
    bind_allow: Vec<PathBuf>,
    #[serde(default)]
    viewer_logs: bool,
}

/// The mapping of identities to roles and the operator's bind allow-list.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    subjects: HashMap<String, Role>,
    ous: HashMap<String, Role>,
    uids: HashMap<u32, Role>,
    gids: HashMap<u32, Role>,
    bind_allow: Vec<PathBuf>,
    viewer_logs: bool,
}

impl Policy {
    /// Reads and checks a policy file (blocking: call it before serving or off the async
    /// workers).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        use std::io::Read;
        let read_err = |source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        f.take(MAX_POLICY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_POLICY_FILE {
            return Err(PolicyError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Policy::from_json(&bytes)
    }

    /// Parses a policy; `bind_allow` entries must be absolute and are resolved here.
    pub fn from_json(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let ids = |m: BTreeMap<String, Role>, what: &str| {
            m.into_iter()
                .map(|(k, r)| match k.trim().parse::<u32>() {
                    Ok(id) => Ok((id, r)),
                    Err(_) => Err(PolicyError::Invalid(format!(
                        "{what} key {k:?} is not a numeric id"
                    ))),
                })
                .collect::<Result<HashMap<_, _>, _>>()
        };
        let mut bind_allow = Vec::new();
        for p in file.bind_allow {
            if !p.is_absolute() {
                return Err(PolicyError::Invalid(format!(
                    "bind_allow path {} is not absolute",
                    p.display()
                )));
            }
            bind_allow.push(resolve_host_path(&p).ok_or_else(|| {
                PolicyError::Invalid(format!(
                    "bind_allow path {} may not contain '..'",
                    p.display()
                ))
            })?);
        }
        Ok(Policy {
            subjects: file.subjects.into_iter().collect(),
            ous: file.ous.into_iter().collect(),
            uids: ids(file.uids, "uids")?,
            gids: ids(file.gids, "gids")?,
            bind_allow,
            viewer_logs: file.viewer_logs,
        })
    }
}

/// The enforcing side of a policy.
#[derive(Debug, Clone)]
pub struct Authorizer {
    policy: Arc<Policy>,
}

/// A refusal: the rule and what it forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied {
    pub rule: &'static str,
    pub what: String,
}

fn deny(rule: &'static str, what: impl Into<String>) -> Denied {
    Denied {
        rule,
        what: what.into(),
    }
}

impl Authorizer {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// What the engine enforces at every start of a container whose binds an operator's
    /// create approved: each source opened beneath a `bind_allow` directory (the check
    /// here sees only the path as it was when the request came).
    pub fn bind_policy(&self) -> berth_engine::BindPolicy {
        berth_engine::BindPolicy {
            confined_roles: [Role::Viewer, Role::Operator]
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
            allow: self.policy.bind_allow.clone(),
        }
    }

    /// The role of a client, or `None`.
    pub fn role_of(&self, id: &ClientIdentity) -> Option<Role> {
        let p = &self.policy;
        if let Some(subject) = id.subject.as_deref() {
            let attrs = parse_subject(subject);
            let ous = || {
                attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("OU"))
                    .map(|(_, v)| v.as_str())
            };
            // Several berth: OUs: the least privileged one.
            if let Some(r) = ous()
                .filter_map(|v| v.strip_prefix("berth:").and_then(Role::parse))
                .min()
            {
                return Some(r);
            }
            if let Some(r) = p.subjects.get(subject) {
                return Some(*r);
            }
            return ous().filter_map(|v| p.ous.get(v).copied()).max();
        }
        let cred = id.unix?;
        if cred.uid == 0 {
            return Some(Role::Admin);
        }
        if let Some(r) = p.uids.get(&cred.uid) {
            return Some(*r);
        }
        if let Some(r) = p.gids.get(&cred.gid) {
            return Some(*r);
        }
        // The socket is mode 0660 root:GROUP (`--group`): any other peer got in as a
        // member of the socket's group.
        Some(Role::Admin)
    }

    /// Checks one request; returns it (its body read and put back where it was inspected)
    /// or the 403 answer.
    pub(crate) async fn check<L: HostConfigs>(
        &self,
        req: Request<Body>,
        lookup: &L,
    ) -> Result<Request<Body>, Response> {
        let identity = req
            .extensions()
            .get::<ClientIdentity>()
            .cloned()
            .unwrap_or_default();
        let role = self.role_of(&identity);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let segs = segments(req.uri().path());
        let query: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
        let verdict = match role {
            _ if is_public(&method, &seg) => Ok(None),
            None => Err(deny(
                "no_role",
                "use this daemon: its certificate or user maps to no role; only /_ping and /version are open",
            )),
            Some(Role::Admin) => Ok(None),
            Some(Role::Viewer) => viewer(&method, &seg, self.policy.viewer_logs).map(|_| None),
            Some(Role::Operator) => match operator_route(&method, &seg, &query) {
                Ok(check) => match seg.as_slice() {
                    ["containers", id, op @ ("attach" | "exec" | "archive" | "export"), ..] => self
                        .check_target(lookup, id, op)
                        .await
                        .map(|()| check),
                    _ => Ok(check),
                },
                Err(d) => Err(d),
            },
        };
        let denied = match verdict {
            Ok(None) => return Ok(req),
            Ok(Some(kind)) => {
                let (parts, body) = req.into_parts();
                let bytes = match Limited::new(body, MAX_CHECKED_BODY).collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(e) => {
                        let msg = if e.is::<http_body_util::LengthLimitError>() {
                            format!(
                                "request body is larger than the {} MiB authorization checks read",
                                MAX_CHECKED_BODY >> 20
                            )
                        } else {
                            format!("cannot read the request body: {e}")
                        };
                        return Err(ApiError::bad_request(msg).into_response());
                    }
                };
                let checked = self.check_body(kind, &bytes, lookup).await;
                let req = Request::from_parts(parts, Body::from(bytes));
                match checked {
                    Ok(()) => return Ok(req),
                    Err(d) => d,
                }
            }
            Err(d) => d,
        };
        let role_name = role.map(Role::as_str).unwrap_or("none");
        tracing::warn!(
            client = identity.subject.as_deref().unwrap_or(""),
            uid = identity.unix.map(|c| c.uid),
            role = role_name,
            rule = denied.rule,
            detail = %denied.what,
            %method,
            %path,
            "authorization: request refused"
        );
        let msg = match role {
            Some(r) => format!(
                "authorization denied: role {r} may not {} (rule: {})",
                denied.what, denied.rule
            ),
            None => format!(
                "authorization denied: cannot {} (rule: {})",
                denied.what, denied.rule
            ),
        };
        Err(ApiError::new(StatusCode::FORBIDDEN, msg).into_response())
    }

    async fn check_body<L: HostConfigs>(
        &self,
        kind: BodyCheck,
        bytes: &Bytes,
        lookup: &L,
    ) -> Result<(), Denied> {
        // Parsed as the routes parse it (an all-blank body is empty); a body they cannot
        // parse is answered 400 by them, with nothing created.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Ok(body) = serde_json::from_slice::<Map<String, Value>>(bytes) else {
            return Ok(());
        };
        let binds = match kind {
            BodyCheck::Create => {
                let hc = get_ci(&body, "HostConfig")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let binds = host_config(&hc)?;
                for key in ["PidMode", "IpcMode", "NetworkMode"] {
                    let peer = get_ci(&hc, key)
                        .and_then(Value::as_str)
                        .and_then(|m| m.trim().strip_prefix("container:"));
                    if let Some(peer) = peer {
                        self.check_target(lookup, peer, "join the namespaces of")
                            .await?;
                    }
                }
                binds
            }
            BodyCheck::HostConfig => host_config(&body)?,
            BodyCheck::Exec => {
                if truthy(get_ci(&body, "Privileged")) {
                    return Err(deny("operator.privileged", "run privileged exec sessions"));
                }
                Vec::new()
            }
            BodyCheck::Network => {
                let named = get_ci(&body, "Options")
                    .and_then(Value::as_object)
                    .is_some_and(|o| non_empty(get_ci(o, "com.docker.network.bridge.name")));
                if named {
                    return Err(deny(
                        "operator.bridge_name",
                        "choose the network's Linux bridge (com.docker.network.bridge.name)",
                    ));
                }
                let subnets: Vec<String> = get_ci(&body, "IPAM")
                    .and_then(Value::as_object)
                    .and_then(|ipam| get_ci(ipam, "Config"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| get_ci(c.as_object()?, "Subnet")?.as_str())
                    .map(String::from)
                    .collect();
                if !subnets.is_empty() {
                    let hit = tokio::task::spawn_blocking(move || {
                        berth_engine::host_route_overlap(&subnets)
                    })
                    .await
                    .ok()
                    .flatten();
                    if let Some((subnet, route)) = hit {
                        return Err(deny(
                            "operator.host_subnet",
                            format!(
                                "create a network on {subnet}, which overlaps the host's own network {route}"
                            ),
                        ));
                    }
                }
                Vec::new()
            }
            BodyCheck::Volume => get_ci(&body, "DriverOpts")
                .and_then(Value::as_object)
                .and_then(volume_device)
                .into_iter()
                .collect(),
        };
        self.check_bind_paths(binds).await
    }

    async fn check_bind_paths(&self, binds: Vec<PathBuf>) -> Result<(), Denied> {
        if binds.is_empty() {
            return Ok(());
        }
        let allow = self.policy.bind_allow.clone();
        tokio::task::spawn_blocking(move || check_binds(&binds, &allow))
            .await
            .unwrap_or_else(|_| Err(deny("operator.bind", "bind host paths")))
    }

    /// An operator acting inside an existing container (attach, exec, archive, export,
    /// joining its namespaces): the container must be one an operator could have created,
    /// or the operator would reach what it was given (a privileged shell, a bind of `/`).
    /// A container that does not exist is left to the route (404).
    async fn check_target<L: HostConfigs>(
        &self,
        lookup: &L,
        id: &str,
        action: &str,
    ) -> Result<(), Denied> {
        let Some(mut hc) = lookup.host_config(id).await else {
            return Ok(());
        };
        // Stored as the daemon settled it: on cgroup v1 every container's cgroup namespace
        // is the host's, asked for or not.
        hc.retain(|k, _| !k.eq_ignore_ascii_case("CgroupnsMode"));
        let shown: String = id.chars().take(64).collect();
        let wrap = |d: Denied| {
            deny(
                "operator.unconfined_target",
                format!(
                    "{action} container {shown}: it has options an operator may not use ({})",
                    d.rule
                ),
            )
        };
        let binds = host_config(&hc).map_err(wrap)?;
        self.check_bind_paths(binds).await.map_err(wrap)
    }
}

/// Where the authorizer finds an existing container's host config (the engine; a map in
/// tests).
pub(crate) trait HostConfigs: Send + Sync {
    /// The container's `HostConfig` as its create request gave it (inspect fills in
    /// defaults, such as the masked paths, that nobody asked for); `None` if there is no
    /// such container.
    fn host_config(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Option<Map<String, Value>>> + Send;
}

impl HostConfigs for berth_engine::Engine {
    async fn host_config(&self, id: &str) -> Option<Map<String, Value>> {
        match self.container_host_config_as_created(id).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
}

/// The axum middleware: refuses or passes each request.
pub(crate) async fn layer(
    State((authz, engine)): State<(Arc<Authorizer>, Arc<berth_engine::Engine>)>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let role = req
        .extensions()
        .get::<ClientIdentity>()
        .and_then(|id| authz.role_of(id));
    match authz.check(req, engine.as_ref()).await {
        Ok(mut req) => {
            // The routes that record who approved something (a create's host binds).
            if let Some(role) = role {
                req.extensions_mut().insert(role);
            }
            next.run(req).await
        }
        Err(resp) => resp,
    }
}

/// Which body an operator's request needs checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyCheck {
    /// `POST /containers/create`: its `HostConfig`.
    Create,
    /// `POST /containers/{id}/update` and a legacy `start` body: a host config itself.
    HostConfig,
    /// `POST /containers/{id}/exec`.
    Exec,
    /// `POST /volumes/create`: `DriverOpts` binding a host directory.
    Volume,
    /// `POST /networks/create`: a bridge named by the client (it may be one the host
    /// uses, which the network would then take over).
    Network,
}

/// The path's segments, percent-decoded, empty ones dropped (so that a spelling the
/// router might still match classifies as the route it reaches).
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bytes = s.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while let Some(&b) = bytes.get(i) {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (b, hex) {
                    (b'%', Some(h)) => {
                        out.push(h);
                        i += 3;
                    }
                    _ => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// `/_ping` and `/version`, open to every client.
fn is_public(method: &Method, seg: &[&str]) -> bool {
    is_read(method) && matches!(seg, ["_ping"] | ["version"])
}

/// A viewer's request.
fn viewer(method: &Method, seg: &[&str], logs_allowed: bool) -> Result<(), Denied> {
    match seg {
        ["containers", _, "attach", ..] => Err(deny("viewer.attach", "attach to containers")),
        ["containers", _, "exec"] | ["exec", ..] if !is_read(method) => {
            Err(deny("viewer.exec", "run commands in containers"))
        }
        ["containers", _, "logs"] if !logs_allowed => Err(deny(
            "viewer.logs",
            "read container logs (the policy's viewer_logs allows it)",
        )),
        ["containers", _, "archive"] if method == Method::GET => {
            Err(deny("viewer.archive", "copy files out of containers"))
        }
        ["containers", _, "export"] => Err(deny("viewer.archive", "export containers")),
        _ if is_read(method) => Ok(()),
        _ => Err(deny(
            "viewer.read_only",
            format!("{method} /{}: viewers only read", seg.join("/")),
        )),
    }
}

/// An operator's request as far as its route and query tell; `Some` when its body must
/// be checked too.
fn operator_route(
    method: &Method,
    seg: &[&str],
    query: &[(String, String)],
) -> Result<Option<BodyCheck>, Denied> {
    let post = method == Method::POST;
    match seg {
        ["session", ..] => Err(deny("operator.session", "open sessions")),
        ["plugins", ..] if !is_read(method) => Err(deny("operator.plugins", "manage plugins")),
        ["swarm" | "nodes" | "services" | "secrets" | "configs" | "tasks", ..]
            if !is_read(method) =>
        {
            Err(deny("operator.swarm", "change the swarm"))
        }
        ["build"] if post => {
            let host = query
                .iter()
                .any(|(k, v)| k == "networkmode" && v.trim().eq_ignore_ascii_case("host"));
            if host {
                Err(deny(
                    "operator.host_namespaces",
                    "build with the host's network",
                ))
            } else {
                Ok(None)
            }
        }
        ["containers", "create"] if post => Ok(Some(BodyCheck::Create)),
        ["containers", _, "update" | "start"] if post => Ok(Some(BodyCheck::HostConfig)),
        ["containers", _, "exec"] if post => Ok(Some(BodyCheck::Exec)),
        ["volumes", "create"] if post => Ok(Some(BodyCheck::Volume)),
        ["networks", "create"] if post => Ok(Some(BodyCheck::Network)),
        _ => Ok(None),
    }
}

/// A JSON object's field, its name matched without regard to case (Go's decoder is
/// case-insensitive; checking the same way refuses every spelling a route might honour).
fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Set to anything but `null`, `false`, `0` or `""`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// A list or map with something in it (a non-empty string counts too).
fn non_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// Security options an operator may set: only ones that tighten confinement.
const ALLOWED_SECURITY_OPTS: &[&str] = &[
    "no-new-privileges",
    "no-new-privileges=true",
    "no-new-privileges:true",
];

/// The confinement rules on a host config (create's `HostConfig`, an update body);
/// returns the host paths it binds, to be checked against the allow-list.
fn host_config(hc: &Map<String, Value>) -> Result<Vec<PathBuf>, Denied> {
    if truthy(get_ci(hc, "Privileged")) {
        return Err(deny("operator.privileged", "create privileged containers"));
    }
    for (key, what) in [
        ("PidMode", "pid"),
        ("IpcMode", "ipc"),
        ("NetworkMode", "network"),
        ("UTSMode", "uts"),
        ("UsernsMode", "user"),
        ("CgroupnsMode", "cgroup"),
    ] {
        if let Some(v) = get_ci(hc, key) {
            let host = v
                .as_str()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("host"));
            if host || !(v.is_string() || v.is_null()) {
                return Err(deny(
                    "operator.host_namespaces",
                    format!("use the host's {what} namespace ({key})"),
                ));
            }
        }
    }
    for key in ["Devices", "DeviceRequests", "DeviceCgroupRules"] {
        if non_empty(get_ci(hc, key)) {
            return Err(deny(
                "operator.devices",
                format!("give containers devices ({key})"),
            ));
        }
    }
    if non_empty(get_ci(hc, "CapAdd")) {
        return Err(deny("operator.cap_add", "add capabilities (CapAdd)"));
    }
    match get_ci(hc, "SecurityOpt") {
        None | Some(Value::Null) => {}
        Some(Value::Array(opts)) => {
            for o in opts {
                let ok = o
                    .as_str()
                    .is_some_and(|s| ALLOWED_SECURITY_OPTS.contains(&s.trim()));
                if !ok {
                    let shown = o
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| o.to_string());
                    let shown: String = shown.chars().take(64).collect();
                    return Err(deny(
                        "operator.security_opt",
                        format!("set security option {shown:?} (only no-new-privileges)"),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(deny("operator.security_opt", "set security options"));
        }
    }
    for key in ["MaskedPaths", "ReadonlyPaths"] {
        if !matches!(get_ci(hc, key), None | Some(Value::Null)) {
            return Err(deny(
                "operator.system_paths",
                format!("change the masked or read-only system paths ({key})"),
            ));
        }
    }
    if non_empty(get_ci(hc, "CgroupParent")) {
        return Err(deny(
            "operator.cgroup_parent",
            "choose the cgroup parent (CgroupParent)",
        ));
    }
    if non_empty(get_ci(hc, "VolumesFrom")) {
        return Err(deny(
            "operator.volumes_from",
            "mount another container's volumes (VolumesFrom)",
        ));
    }
    let mut paths = Vec::new();
    match get_ci(hc, "Binds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(binds)) => {
            for b in binds {
                let Some(s) = b.as_str() else {
                    return Err(deny("operator.bind", "bind host paths"));
                };
                let source = s.split(':').next().unwrap_or("");
                if source.starts_with('/') {
                    paths.push(PathBuf::from(source));
                }
            }
        }
        Some(_) => return Err(deny("operator.bind", "bind host paths")),
    }
    match get_ci(hc, "Mounts") {
        None | Some(Value::Null) => {}
        Some(Value::Array(mounts)) => {
            for m in mounts {
                let Some(m) = m.as_object() else {
                    return Err(deny("operator.bind", "bind host paths"));
                };
                let typ = get_ci(m, "Type").and_then(Value::as_str).unwrap_or("");
                if typ.eq_ignore_ascii_case("volume") {
                    let opts = get_ci(m, "VolumeOptions")
                        .and_then(Value::as_object)
                        .and_then(|v| get_ci(v, "DriverConfig"))
                        .and_then(Value::as_object)
                        .and_then(|d| get_ci(d, "Options"))
                        .and_then(Value::as_object);
                    paths.extend(opts.and_then(volume_device));
                } else if !typ.eq_ignore_ascii_case("tmpfs") {
                    match get_ci(m, "Source") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) if !s.starts_with('/') => {}
                        Some(Value::String(s)) => paths.push(PathBuf::from(s)),
                        Some(_) => return Err(deny("operator.bind", "bind host paths")),
                    }
                }
            }
        }
        Some(_) => return Err(deny("operator.bind", "bind host paths")),
    }
    Ok(paths)
}

/// The host directory local-driver options bind (`device` with an absolute path).
fn volume_device(opts: &Map<String, Value>) -> Option<PathBuf> {
    get_ci(opts, "device")
        .and_then(Value::as_str)
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
}

/// Each bind source, resolved, must be at or under a resolved allow-list entry.
fn check_binds(paths: &[PathBuf], allow: &[PathBuf]) -> Result<(), Denied> {
    for p in paths {
        let ok = resolve_host_path(p).is_some_and(|r| allow.iter().any(|a| r.starts_with(a)));
        if !ok {
            let shown: String = p.display().to_string().chars().take(256).collect();
            return Err(deny(
                "operator.bind",
                format!("bind host path {shown} (not under the policy's bind_allow)"),
            ));
        }
    }
    Ok(())
}

/// An absolute host path with its symlinks resolved: the longest existing ancestor made
/// canonical, the rest appended. `None` when a part that does not exist is `..` (it
/// cannot be resolved without the directory) or the path is relative.
fn resolve_host_path(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Some(out);
        }
        let name = existing.file_name()?.to_os_string();
        rest.push(name);
        existing.pop();
        // `file_name` is None for `..`: a missing `..` part ends the walk with None.
        if !matches!(
            existing.components().next_back(),
            Some(Component::Normal(_)) | Some(Component::RootDir)
        ) {
            return None;
        }
    }
}

/// The attributes of an RFC 4514 subject (`CN=alice,OU=berth:viewer`), in order, names
/// as written, values unescaped (`\,` and `\2C` both give `,`). Multi-valued RDNs (`+`)
/// give one attribute each.
pub(crate) fn parse_subject(s: &str) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    let mut key = String::new();
    let mut val: Vec<u8> = Vec::new();
    let mut in_value = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut push = |key: &mut String, val: &mut Vec<u8>, in_value: &mut bool| {
        if *in_value {
            attrs.push((
                key.trim().to_string(),
                String::from_utf8_lossy(val).into_owned(),
            ));
        }
        key.clear();
        val.clear();
        *in_value = false;
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let (c, step) = match hex {
                    Some(h) => (Some(h), 3),
                    None => (bytes.get(i + 1).copied(), 2),
                };
                if let Some(c) = c {
                    if in_value {
                        val.push(c);
                    } else {
                        key.push(char::from(c));
                    }
                }
                i += step;
                continue;
            }
            b',' | b'+' => push(&mut key, &mut val, &mut in_value),
            b'=' if !in_value => in_value = true,
            _ if in_value => val.push(b),
            _ => key.push(char::from(b)),
        }
        i += 1;
    }
    push(&mut key, &mut val, &mut in_value);
    attrs
}

#[cfg(test)]
mod tests;
