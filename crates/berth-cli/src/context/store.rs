//! The docker CLI's context store on disk (`<config>/contexts/meta/<sha256(name)>/meta.json`,
//! `<config>/contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`; docker/cli
//! `cli/context/store`), which context a command uses ([`resolve_name`]) and where that
//! leads ([`selected_target`]). Files are read bounded ([`MAX_FILE`]); a TCP endpoint
//! becomes a [`Target`] only with all three TLS files and without `SkipTLSVerify`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use berth_tls::TlsPaths;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config_file::ConfigFile;
use crate::endpoint::{config_dir, parse_host, process_env, Host, Target};
use crate::error::Error;
use crate::options::GlobalOptions;
use crate::Session;

/// The context that stands for the flags and environment (never stored).
pub const DEFAULT_CONTEXT: &str = "default";
/// The one endpoint kind berth knows.
pub(crate) const DOCKER_ENDPOINT: &str = "docker";
/// The TLS files of an endpoint, in docker's order.
pub(crate) const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];
/// Largest `meta.json` or PEM file read.
pub(crate) const MAX_FILE: u64 = 1 << 20;

/// `meta.json`, field order as docker writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Metadata", default, deserialize_with = "object_or_null")]
    pub metadata: Map<String, Value>,
    #[serde(rename = "Endpoints", default, deserialize_with = "object_or_null")]
    pub endpoints: Map<String, Value>,
}

fn object_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

impl Meta {
    /// The docker endpoint's `Host` (empty when none).
    pub fn host(&self) -> &str {
        self.endpoints
            .get(DOCKER_ENDPOINT)
            .and_then(|e| e.get("Host"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub(crate) fn skip_tls_verify(&self) -> bool {
        self.endpoints
            .get(DOCKER_ENDPOINT)
            .and_then(|e| e.get("SkipTLSVerify"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub(crate) fn description(&self) -> &str {
        self.metadata
            .get("Description")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub(crate) fn set_endpoint(&mut self, host: &str) {
        self.endpoints.insert(
            DOCKER_ENDPOINT.into(),
            json!({"Host": host, "SkipTLSVerify": false}),
        );
    }

    pub(crate) fn set_description(&mut self, d: &str) {
        if d.is_empty() {
            self.metadata.remove("Description");
        } else {
            self.metadata
                .insert("Description".into(), Value::String(d.to_string()));
        }
    }
}

/// PEM contents of an endpoint's `ca.pem`, `cert.pem`, `key.pem` (each may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl TlsMaterial {
    pub(crate) fn is_complete(&self) -> bool {
        TLS_FILES.iter().all(|f| self.files.contains_key(*f))
    }
}

/// The context store under a client config directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// docker's context directory name: the hex SHA-256 of the name.
pub fn context_id(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// docker's name rule (`^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.+-".contains(c));
    if !ok {
        return Err(Error::client(format!(
            "context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\""
        )));
    }
    if name == DEFAULT_CONTEXT {
        return Err(Error::client(format!(
            "{name:?} is a reserved context name"
        )));
    }
    Ok(())
}

/// Reads at most [`MAX_FILE`] bytes of `path`.
pub(crate) fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut data)?;
    if data.len() as u64 > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {MAX_FILE} bytes", path.display()),
        ));
    }
    Ok(data)
}

pub(crate) fn mkdir_private(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

pub(crate) fn io_err(what: &str, path: &Path, e: io::Error) -> Error {
    Error::client(format!("{what} {}: {e}", path.display()))
}

impl Store {
    /// The store of the config directory `dir` (`dir/contexts`).
    pub fn new(dir: &Path) -> Store {
        Store {
            root: dir.join("contexts"),
        }
    }

    /// The store the session's `--config` / `DOCKER_CONFIG` / `~/.docker` names.
    pub fn for_session(session: &Session) -> Store {
        Store::new(&config_dir(session.options(), &process_env))
    }

    pub(crate) fn meta_dir(&self, name: &str) -> PathBuf {
        self.root.join("meta").join(context_id(name))
    }

    pub(crate) fn tls_dir(&self, name: &str) -> PathBuf {
        self.root.join("tls").join(context_id(name))
    }

    pub(crate) fn endpoint_tls_dir(&self, name: &str) -> PathBuf {
        self.tls_dir(name).join(DOCKER_ENDPOINT)
    }

    /// Whether a context of that name is stored.
    pub fn exists(&self, name: &str) -> bool {
        self.meta_dir(name).join("meta.json").is_file()
    }

    /// Reads a context's `meta.json`.
    pub fn load(&self, name: &str) -> Result<Meta, Error> {
        let path = self.meta_dir(name).join("meta.json");
        let data = match read_bounded(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::client(format!(
                    "context {name:?}: context not found: open {}: no such file or directory",
                    path.display()
                )))
            }
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let meta: Meta = serde_json::from_slice(&data).map_err(|e| {
            Error::client(format!("context {name:?}: parsing {}: {e}", path.display()))
        })?;
        Ok(meta)
    }

    /// Every stored context, sorted by name; unreadable ones are skipped.
    pub fn list(&self) -> Vec<Meta> {
        let mut out = Vec::new();
        let Ok(dir) = fs::read_dir(self.root.join("meta")) else {
            return out;
        };
        for entry in dir.flatten() {
            let path = entry.path().join("meta.json");
            if let Some(meta) = read_bounded(&path)
                .ok()
                .and_then(|d| serde_json::from_slice::<Meta>(&d).ok())
            {
                out.push(meta);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The endpoint's TLS files that exist.
    pub fn tls_file_names(&self, name: &str) -> Vec<String> {
        let dir = self.endpoint_tls_dir(name);
        TLS_FILES
            .iter()
            .filter(|f| dir.join(f).is_file())
            .map(|f| f.to_string())
            .collect()
    }

    /// Reads the endpoint's TLS files.
    pub fn load_tls(&self, name: &str) -> Result<TlsMaterial, Error> {
        let dir = self.endpoint_tls_dir(name);
        let mut m = TlsMaterial::default();
        for f in TLS_FILES {
            let p = dir.join(f);
            match read_bounded(&p) {
                Ok(d) => {
                    m.files.insert(f.to_string(), d);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("read", &p, e)),
            }
        }
        Ok(m)
    }

    /// Writes `meta.json` and replaces the endpoint's TLS files with `tls`.
    pub fn save(&self, meta: &Meta, tls: &TlsMaterial) -> Result<(), Error> {
        let mdir = self.meta_dir(&meta.name);
        mkdir_private(&mdir).map_err(|e| io_err("create", &mdir, e))?;
        let text = serde_json::to_vec(meta).map_err(|e| Error::client(e.to_string()))?;
        let mpath = mdir.join("meta.json");
        berth_sys::fs::atomic_write(&mpath, &text, 0o644)
            .map_err(|e| io_err("write", &mpath, e))?;
        let tdir = self.endpoint_tls_dir(&meta.name);
        if tdir.exists() {
            fs::remove_dir_all(&tdir).map_err(|e| io_err("remove", &tdir, e))?;
        }
        if tls.files.is_empty() {
            return Ok(());
        }
        mkdir_private(&tdir).map_err(|e| io_err("create", &tdir, e))?;
        for (f, data) in &tls.files {
            let p = tdir.join(f);
            berth_sys::fs::atomic_write(&p, data, 0o600).map_err(|e| io_err("write", &p, e))?;
        }
        Ok(())
    }

    /// Removes a context's metadata and TLS directories.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        for dir in [self.meta_dir(name), self.tls_dir(name)] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &dir, e)),
            }
        }
        Ok(())
    }

    /// The connection a stored context describes (see the module docs for the TLS rule).
    pub fn target(&self, name: &str) -> Result<Target, Error> {
        let meta = self.load(name)?;
        let raw = meta.host();
        if raw.is_empty() {
            return Err(Error::client(format!(
                "context {name:?} has no docker endpoint"
            )));
        }
        let host = parse_host(raw)?;
        let tls = match &host {
            Host::Unix(_) => None,
            Host::Tcp { .. } => {
                if meta.skip_tls_verify() {
                    return Err(Error::client(format!(
                        "context {name:?} sets skip-tls-verify: Berth never connects to {host} without verifying the daemon; \
                         recreate it with ca=, cert= and key="
                    )));
                }
                let present = self.tls_file_names(name);
                if present.len() != TLS_FILES.len() {
                    return Err(Error::client(format!(
                        "context {name:?} reaches {host} without a CA, client certificate and key: \
                         Berth talks to a daemon over TCP only with mutual TLS; \
                         recreate it with --docker host=...,ca=...,cert=...,key=..."
                    )));
                }
                Some(TlsPaths::in_dir(&self.endpoint_tls_dir(name)))
            }
        };
        Ok(Target { host, tls })
    }
}

// ---------------------------------------------------------------------------------------
// Which context

/// The context a command uses (docker's `resolveContextName`, see the module docs).
/// `current` is `currentContext` from config.json.
pub fn resolve_name_with(
    opts: &GlobalOptions,
    env: &dyn Fn(&str) -> Option<String>,
    current: Option<&str>,
) -> Result<String, Error> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(c) = opts.context.as_deref().filter(|c| !c.is_empty()) {
        if !opts.host.is_empty() {
            return Err(Error::client(
                "conflicting options: either specify --host or --context, not both",
            ));
        }
        return Ok(c.to_string());
    }
    if !opts.host.is_empty() || get("BERTH_HOST").is_some() || get("DOCKER_HOST").is_some() {
        return Ok(DEFAULT_CONTEXT.to_string());
    }
    if let Some(c) = get("DOCKER_CONTEXT") {
        return Ok(c);
    }
    Ok(current.unwrap_or(DEFAULT_CONTEXT).to_string())
}

/// [`resolve_name_with`] reading `currentContext` from the config directory's config.json.
pub fn resolve_name(
    opts: &GlobalOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    let cfg = ConfigFile::load(&config_dir(opts, env).join("config.json"))?;
    resolve_name_with(opts, env, cfg.current_context())
}

/// The target of the selected context, or `None` for `default` (the flags and environment
/// decide then).
pub fn selected_target(
    opts: &GlobalOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Target>, Error> {
    let name = resolve_name(opts, env)?;
    if name == DEFAULT_CONTEXT {
        return Ok(None);
    }
    Store::new(&config_dir(opts, env)).target(&name).map(Some)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An environment of just `vars`, for the resolution functions' `env` argument.
    pub(in crate::context) fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// A scratch config dir, removed when dropped.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn id_is_docker_sha256_of_the_name() {
        // docker context create foo wrote contexts/meta/2c26b4.../meta.json
        assert_eq!(
            context_id("foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["ab", "my-ctx", "a.b_c+d", "9z"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "a", "-ab", "a/b", "../x", "a b", "default"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_is_dockers() {
        let opts = GlobalOptions::default();
        let e = env(&[]);
        assert_eq!(resolve_name_with(&opts, &e, None).unwrap(), "default");
        assert_eq!(resolve_name_with(&opts, &e, Some("cur")).unwrap(), "cur");
        let e = env(&[("DOCKER_CONTEXT", "envctx")]);
        assert_eq!(resolve_name_with(&opts, &e, Some("cur")).unwrap(), "envctx");
        let e = env(&[("DOCKER_CONTEXT", "envctx"), ("DOCKER_HOST", "unix:///x")]);
        assert_eq!(
            resolve_name_with(&opts, &e, Some("cur")).unwrap(),
            "default"
        );
        let flag = GlobalOptions {
            context: Some("flag".into()),
            ..Default::default()
        };
        assert_eq!(resolve_name_with(&flag, &e, Some("cur")).unwrap(), "flag");
        let both = GlobalOptions {
            context: Some("flag".into()),
            host: vec!["unix:///y".into()],
            ..Default::default()
        };
        let err = resolve_name_with(&both, &e, None).unwrap_err().to_string();
        assert!(err.contains("either specify --host or --context"), "{err}");
    }

    #[test]
    fn meta_json_reads_dockers_and_writes_its_order() {
        let text = r#"{"Name":"foo","Metadata":{"Description":"my d"},"Endpoints":{"docker":{"Host":"tcp://localhost:2376","SkipTLSVerify":false}}}"#;
        let m: Meta = serde_json::from_str(text).unwrap();
        assert_eq!(m.host(), "tcp://localhost:2376");
        assert_eq!(m.description(), "my d");
        assert_eq!(serde_json::to_string(&m).unwrap(), text);
        let null: Meta = serde_json::from_str(r#"{"Name":"x","Metadata":null}"#).unwrap();
        assert_eq!(null.host(), "");
    }

    #[test]
    fn store_targets_refuse_unverified_tcp() {
        let dir = Scratch(std::env::temp_dir().join(format!(
            "berth-ctx-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )));
        let store = Store::new(&dir.0);
        let mut m = Meta {
            name: "plain".into(),
            metadata: Map::new(),
            endpoints: Map::new(),
        };
        m.set_endpoint("tcp://h:2376");
        store.save(&m, &TlsMaterial::default()).unwrap();
        let e = store.target("plain").unwrap_err().to_string();
        assert!(e.contains("mutual TLS"), "{e}");

        let mut tls = TlsMaterial::default();
        for f in TLS_FILES {
            tls.files.insert(f.into(), b"pem".to_vec());
        }
        m.name = "skip".into();
        m.endpoints.insert(
            "docker".into(),
            json!({"Host": "tcp://h:2376", "SkipTLSVerify": true}),
        );
        store.save(&m, &tls).unwrap();
        let e = store.target("skip").unwrap_err().to_string();
        assert!(e.contains("skip-tls-verify"), "{e}");

        m.name = "good".into();
        m.set_endpoint("tcp://h:2376");
        store.save(&m, &tls).unwrap();
        let t = store.target("good").unwrap();
        let paths = t.tls.unwrap();
        assert_eq!(paths.ca, store.endpoint_tls_dir("good").join("ca.pem"));
        assert_eq!(
            store.tls_file_names("good"),
            ["ca.pem", "cert.pem", "key.pem"]
        );

        let e = store.target("absent").unwrap_err().to_string();
        assert!(e.contains("context \"absent\": context not found"), "{e}");
        store.remove("good").unwrap();
        assert!(!store.exists("good"));
        assert_eq!(store.list().len(), 2);
    }
}
