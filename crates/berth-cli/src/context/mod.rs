//! `berth context ...` and the `--context` / `DOCKER_CONTEXT` selection ([`store`] holds
//! the store and the selection, [`archive`] export/import): named daemon
//! endpoints with their TLS material, kept in the docker CLI's own store so that a context
//! made by either client works with the other (docker/cli `cli/context/store`):
//! `<config>/contexts/meta/<sha256(name)>/meta.json` (`{"Name","Metadata","Endpoints"}`),
//! `<config>/contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`, and `currentContext`
//! in `<config>/config.json`.
//!
//! Which context a command uses ([`resolve_name`], docker's `resolveContextName`):
//! `--context`, else `default` when `-H`, `BERTH_HOST` or `DOCKER_HOST` is set, else
//! `DOCKER_CONTEXT`, else `currentContext`, else `default` (the flags and environment of
//! [`crate::connect`]). `--context` together with `-H` is an error, as in docker.
//!
//! Berth's rule holds here too: a TCP endpoint is used only with a CA, a client
//! certificate and its key, and `skip-tls-verify` is refused when creating and when using.
//! Files read from a context store or an imported archive are bounded in size; an archive's
//! entry names never become paths (only `meta.json` and `tls/<endpoint>/<file>.pem` are
//! taken, and written under names we choose).

mod archive;
mod store;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_tls::TlsPaths;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

pub use self::archive::{export_tar, import_tar};
pub use self::store::{
    context_id, resolve_name, resolve_name_with, selected_target, validate_name, Meta, Store,
    TlsMaterial, DEFAULT_CONTEXT,
};
use self::store::{io_err, read_bounded, DOCKER_ENDPOINT};
use crate::config_file::ConfigFile;
use crate::endpoint::{parse_host, process_env, Host, DEFAULT_HOST};
use crate::error::Error;
use crate::format::json_indent;
use crate::format::Template;
use crate::table::{list_format, render_list};
use crate::{write_err, write_out, Session};

/// Largest archive `context import` reads.
const MAX_ARCHIVE: u64 = 8 << 20;

/// `berth context ...`.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Create a context
    Create(CreateArgs),
    /// List contexts
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Set the current docker context
    Use(NameArg),
    /// Display detailed information on one or more contexts
    Inspect(InspectArgs),
    /// Remove one or more contexts
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Print the name of the current context
    Show,
    /// Update a context
    Update(UpdateArgs),
    /// Export a context to a tar archive FILE or a tar stream on STDOUT
    Export(ExportArgs),
    /// Import a context from a tar file
    Import(ImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct NameArg {
    #[arg(value_name = "CONTEXT")]
    pub name: String,
}

/// `context create`. `--docker` takes docker's keys: `host`, `ca`, `cert`, `key`, `from`
/// (and `skip-tls-verify`, refused). `--tls-dir DIR --host URL` is the shortcut for
/// `--docker host=URL,ca=DIR/ca.pem,cert=DIR/cert.pem,key=DIR/key.pem`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    #[arg(value_name = "CONTEXT")]
    pub name: String,
    /// Description of the context
    #[arg(long, value_name = "string")]
    pub description: Option<String>,
    /// set the docker endpoint (host=URL,ca=FILE,cert=FILE,key=FILE or from=CONTEXT)
    #[arg(long, value_name = "stringToString")]
    pub docker: Vec<String>,
    /// create context from a named context
    #[arg(long, value_name = "string")]
    pub from: Option<String>,
    /// Daemon address for the --tls-dir shortcut (tcp://HOST:2376)
    #[arg(long, value_name = "URL", requires = "tls_dir", conflicts_with_all = ["docker", "from"])]
    pub host: Option<String>,
    /// Directory holding ca.pem, cert.pem and key.pem (as DOCKER_CERT_PATH; `berth tls init`
    /// and `berth tls client` write one)
    #[arg(long = "tls-dir", value_name = "DIR", requires = "host")]
    pub tls_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only show context names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    #[arg(value_name = "CONTEXT")]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of a context in use
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "CONTEXT", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    #[arg(value_name = "CONTEXT")]
    pub name: String,
    /// Description of the context
    #[arg(long, value_name = "string")]
    pub description: Option<String>,
    /// set the docker endpoint (host=URL,ca=FILE,cert=FILE,key=FILE)
    #[arg(long, value_name = "stringToString")]
    pub docker: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(value_name = "CONTEXT")]
    pub name: String,
    /// Output file, or - for STDOUT (default CONTEXT.dockercontext)
    #[arg(value_name = "FILE")]
    pub file: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[arg(value_name = "CONTEXT")]
    pub name: String,
    /// A tar file, or - for STDIN
    #[arg(value_name = "FILE|-")]
    pub file: String,
}

// ---------------------------------------------------------------------------------------
// `--docker` values

/// The parsed `--docker` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSpec {
    pub from: Option<String>,
    pub host: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl EndpointSpec {
    fn is_empty(&self) -> bool {
        *self == EndpointSpec::default()
    }
}

/// `~/x` as `$HOME/x` (docker expands it in these paths).
fn expand_home(p: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match (p.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) if !home.is_empty() => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Parses `--docker` values (`key=value` pairs separated by commas, repeatable).
pub fn parse_docker_spec(
    values: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EndpointSpec, Error> {
    let mut spec = EndpointSpec::default();
    for pair in values.iter().flat_map(|v| v.split(',')) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            Error::client(format!(
                "invalid argument {pair:?} for \"--docker\" flag: {pair} must be formatted as key=value"
            ))
        })?;
        match k {
            "from" => spec.from = Some(v.to_string()),
            "host" => spec.host = Some(v.to_string()),
            "ca" => spec.ca = Some(expand_home(v, env)),
            "cert" => spec.cert = Some(expand_home(v, env)),
            "key" => spec.key = Some(expand_home(v, env)),
            "skip-tls-verify" => {
                if v.parse::<bool>().unwrap_or(true) {
                    return Err(Error::client(
                        "skip-tls-verify is refused: Berth never connects to a daemon without verifying its certificate",
                    ));
                }
            }
            _ => {
                return Err(Error::client(format!(
                    "unable to create docker endpoint config: unrecognized config key: {k}"
                )))
            }
        }
    }
    Ok(spec)
}

/// The endpoint (host and TLS files) a spec describes, read from the files it names.
fn endpoint_from_spec(
    store: &Store,
    session: &Session,
    spec: &EndpointSpec,
) -> Result<(String, TlsMaterial), Error> {
    if let Some(from) = &spec.from {
        return endpoint_of(store, session, from);
    }
    let host = spec
        .host
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let parsed = parse_host(&host)?;
    let mut tls = TlsMaterial::default();
    for (name, path) in [
        ("ca.pem", &spec.ca),
        ("cert.pem", &spec.cert),
        ("key.pem", &spec.key),
    ] {
        if let Some(p) = path {
            let data = read_bounded(p).map_err(|e| io_err("open", p, e))?;
            tls.files.insert(name.to_string(), data);
        }
    }
    if let Host::Tcp { .. } = parsed {
        if !tls.is_complete() {
            return Err(Error::client(format!(
                "refusing to create a context for {parsed} without ca=, cert= and key=: \
                 Berth talks to a daemon over TCP only with mutual TLS \
                 (`berth tls init --dir DIR` makes them; then use --tls-dir DIR --host {parsed})"
            )));
        }
    }
    Ok((host, tls))
}

/// The endpoint of an existing context (`default`: the flags and environment).
fn endpoint_of(
    store: &Store,
    session: &Session,
    name: &str,
) -> Result<(String, TlsMaterial), Error> {
    if name == DEFAULT_CONTEXT {
        let opts = session.options().clone();
        let target = crate::endpoint::resolve_default(&opts, &process_env)?;
        let mut tls = TlsMaterial::default();
        if let Some(paths) = &target.tls {
            for (f, p) in [
                ("ca.pem", &paths.ca),
                ("cert.pem", &paths.cert),
                ("key.pem", &paths.key),
            ] {
                let data = read_bounded(p).map_err(|e| io_err("open", p, e))?;
                tls.files.insert(f.to_string(), data);
            }
        }
        return Ok((target.host.to_string(), tls));
    }
    let meta = store.load(name)?;
    Ok((meta.host().to_string(), store.load_tls(name)?))
}

// ---------------------------------------------------------------------------------------
// Commands

/// Runs `berth context ...`.
pub fn run(session: &Session, cmd: &ContextCommand) -> Result<(), Error> {
    let store = Store::for_session(session);
    match cmd {
        ContextCommand::Create(a) => create(session, &store, a),
        ContextCommand::Ls(a) => ls(session, &store, a),
        ContextCommand::Use(a) => use_context(session, &store, &a.name),
        ContextCommand::Inspect(a) => inspect(session, &store, a),
        ContextCommand::Rm(a) => rm(session, &store, a),
        ContextCommand::Show => write_out(&format!("{}\n", current_name(session)?)),
        ContextCommand::Update(a) => update(session, &store, a),
        ContextCommand::Export(a) => export(&store, a),
        ContextCommand::Import(a) => import(&store, a),
    }
}

fn config_path(session: &Session) -> PathBuf {
    ConfigFile::path_for(session)
}

fn current_name(session: &Session) -> Result<String, Error> {
    resolve_name(session.options(), &process_env)
}

fn create(session: &Session, store: &Store, a: &CreateArgs) -> Result<(), Error> {
    validate_name(&a.name)?;
    if store.exists(&a.name) {
        return Err(Error::client(format!(
            "context {:?} already exists",
            a.name
        )));
    }
    let mut spec = parse_docker_spec(&a.docker, &process_env)?;
    if let (Some(host), Some(dir)) = (&a.host, &a.tls_dir) {
        let p = TlsPaths::in_dir(dir);
        spec = EndpointSpec {
            host: Some(host.clone()),
            ca: Some(p.ca),
            cert: Some(p.cert),
            key: Some(p.key),
            from: None,
        };
    }
    let (host, tls) = match (&a.from, spec.is_empty()) {
        (Some(from), true) => endpoint_of(store, session, from)?,
        (Some(_), false) => {
            return Err(Error::client(
                "--from cannot be used with --docker: use --docker from=CONTEXT",
            ))
        }
        (None, false) => endpoint_from_spec(store, session, &spec)?,
        (None, true) => endpoint_of(store, session, &current_name(session)?)?,
    };
    let mut meta = Meta {
        name: a.name.clone(),
        metadata: Map::new(),
        endpoints: Map::new(),
    };
    meta.set_endpoint(&host);
    if let Some(d) = &a.description {
        meta.set_description(d);
    }
    store.save(&meta, &tls)?;
    write_out(&format!("{}\n", a.name))?;
    write_err(&format!("Successfully created context {:?}\n", a.name))
}

fn update(session: &Session, store: &Store, a: &UpdateArgs) -> Result<(), Error> {
    if a.name == DEFAULT_CONTEXT {
        return Err(Error::client("context \"default\" cannot be updated"));
    }
    let mut meta = store.load(&a.name)?;
    let mut tls = store.load_tls(&a.name)?;
    let spec = parse_docker_spec(&a.docker, &process_env)?;
    if !spec.is_empty() {
        if spec.host.is_none() && spec.from.is_none() {
            // Keep the host, replace only the files named.
            let (_, new_tls) = endpoint_from_spec(
                store,
                session,
                &EndpointSpec {
                    host: Some(DEFAULT_HOST.to_string()),
                    ..spec.clone()
                },
            )?;
            tls.files.extend(new_tls.files);
        } else {
            let (host, new_tls) = endpoint_from_spec(store, session, &spec)?;
            meta.set_endpoint(&host);
            tls = new_tls;
        }
        if let Ok(Host::Tcp { .. }) = parse_host(meta.host()) {
            if !tls.is_complete() {
                return Err(Error::client(
                    "a TCP endpoint needs ca=, cert= and key=: Berth talks to a daemon over TCP only with mutual TLS",
                ));
            }
        }
    }
    if let Some(d) = &a.description {
        meta.set_description(d);
    }
    store.save(&meta, &tls)?;
    write_out(&format!("{}\n", a.name))?;
    write_err(&format!("Successfully updated context {:?}\n", a.name))
}

/// The default context's endpoint as `ls` shows it: `-H`, `BERTH_HOST`, `DOCKER_HOST`,
/// else berth's socket.
fn default_endpoint(session: &Session) -> String {
    let opts = session.options().clone();
    match crate::endpoint::resolve_default(&opts, &process_env) {
        Ok(t) => t.host.to_string(),
        Err(_) => opts
            .host
            .first()
            .cloned()
            .or_else(|| process_env("BERTH_HOST").filter(|v| !v.is_empty()))
            .or_else(|| process_env("DOCKER_HOST").filter(|v| !v.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string()),
    }
}

/// `context ls` rows (docker's `ClientContext` fields).
pub fn ls_rows(
    stored: &[Meta],
    default_endpoint: &str,
    current: &str,
    mark_current: bool,
) -> Vec<Value> {
    let mut rows = vec![json!({
        "Name": DEFAULT_CONTEXT,
        "Description": "Current DOCKER_HOST based configuration",
        "DockerEndpoint": default_endpoint,
        "Current": current == DEFAULT_CONTEXT,
        "Error": "",
    })];
    for m in stored {
        rows.push(json!({
            "Name": m.name,
            "Description": m.description(),
            "DockerEndpoint": m.host(),
            "Current": m.name == current,
            "Error": "",
        }));
    }
    rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    if mark_current {
        for r in &mut rows {
            if r["Current"] == Value::Bool(true) {
                let name = format!("{} *", r["Name"].as_str().unwrap_or_default());
                r["Name"] = Value::String(name);
            }
        }
    }
    rows
}

fn ls(session: &Session, store: &Store, a: &LsArgs) -> Result<(), Error> {
    const TABLE: &str = "table {{.Name}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}";
    let format = list_format(a.format.as_deref(), a.quiet, "{{.Name}}", TABLE);
    let format = if format == "table" {
        TABLE.to_string()
    } else {
        format
    };
    let current = current_name(session)?;
    let rows = ls_rows(
        &store.list(),
        &default_endpoint(session),
        &current,
        format == TABLE,
    );
    let headers = json!({"Name": "NAME", "Description": "DESCRIPTION",
                         "DockerEndpoint": "DOCKER ENDPOINT", "Error": "ERROR"});
    write_out(&render_list(&format, &headers, &rows)?)
}

fn use_context(session: &Session, store: &Store, name: &str) -> Result<(), Error> {
    if name != DEFAULT_CONTEXT {
        store.load(name)?;
    }
    let path = config_path(session);
    let mut cfg = ConfigFile::load(&path)?;
    cfg.set_current_context((name != DEFAULT_CONTEXT).then_some(name));
    cfg.save().map_err(|e| io_err("write", &path, e))?;
    write_out(&format!("{name}\n"))?;
    write_err(&format!("Current context is now {name:?}\n"))?;
    let host_set = ["BERTH_HOST", "DOCKER_HOST"]
        .iter()
        .any(|v| process_env(v).is_some_and(|s| !s.is_empty()));
    if name != DEFAULT_CONTEXT && host_set {
        write_err(&format!(
            "Warning: DOCKER_HOST environment variable overrides the active context. \
             To use {name:?}, either set the global --context flag, or unset DOCKER_HOST environment variable.\n"
        ))?;
    }
    Ok(())
}

/// Go's `json.Marshal` escaping of `<`, `>` and `&` (they only occur inside strings).
fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `context inspect`'s object for one context (docker's `contextWithTLSListing`).
pub fn inspect_value(store: &Store, name: &str, default_endpoint: &str) -> Result<Value, Error> {
    if name == DEFAULT_CONTEXT {
        return Ok(json!({
            "Name": DEFAULT_CONTEXT,
            "Metadata": {},
            "Endpoints": {DOCKER_ENDPOINT: {"Host": default_endpoint, "SkipTLSVerify": false}},
            "TLSMaterial": {},
            "Storage": {"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"},
        }));
    }
    let meta = store.load(name)?;
    let files = store.tls_file_names(name);
    let tls = if files.is_empty() {
        json!({})
    } else {
        json!({DOCKER_ENDPOINT: files})
    };
    Ok(json!({
        "Name": meta.name,
        "Metadata": meta.metadata,
        "Endpoints": meta.endpoints,
        "TLSMaterial": tls,
        "Storage": {
            "MetadataPath": store.meta_dir(name).display().to_string(),
            "TLSPath": store.tls_dir(name).display().to_string(),
        },
    }))
}

/// Serializes `v` with docker's key order for the inspect object.
fn ordered_json(v: &Value) -> String {
    const ORDER: [&str; 5] = ["Name", "Metadata", "Endpoints", "TLSMaterial", "Storage"];
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|k| {
            obj.get(*k)
                .map(|val| format!("{}:{}", Value::from(*k), val))
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn inspect(session: &Session, store: &Store, a: &InspectArgs) -> Result<(), Error> {
    let names = if a.names.is_empty() {
        vec![current_name(session)?]
    } else {
        a.names.clone()
    };
    let endpoint = default_endpoint(session);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for n in &names {
        match inspect_value(store, n, &endpoint) {
            Ok(v) => found.push(v),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let template = a
        .format
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(Template::parse_format_flag)
        .transpose()?;
    let mut out = String::new();
    match template {
        None => {
            let joined = found.iter().map(ordered_json).collect::<Vec<_>>().join(",");
            out.push_str(&json_indent(&go_escape(&format!("[{joined}]")), "    "));
            out.push('\n');
        }
        Some(t) => {
            for v in &found {
                match t.render(v) {
                    Ok(text) => {
                        out.push_str(&text);
                        out.push('\n');
                    }
                    Err(e) => errors.push(format!("template parsing error: {e}")),
                }
            }
        }
    }
    write_out(&out)?;
    Error::from_each(errors)
}

fn rm(session: &Session, store: &Store, a: &RmArgs) -> Result<(), Error> {
    let current = current_name(session)?;
    let path = config_path(session);
    let mut errors = Vec::new();
    for name in &a.names {
        if name == DEFAULT_CONTEXT {
            errors.push(format!("context {name:?} cannot be removed"));
            continue;
        }
        if !store.exists(name) {
            if !a.force {
                errors.push(format!("context {name:?} does not exist"));
            }
            continue;
        }
        if *name == current && !a.force {
            errors.push(format!(
                "context {name:?} is in use, set -f flag to force remove"
            ));
            continue;
        }
        let mut cfg = ConfigFile::load(&path)?;
        if cfg.current_context() == Some(name.as_str()) {
            cfg.set_current_context(None);
            cfg.save().map_err(|e| io_err("write", &path, e))?;
        }
        match store.remove(name) {
            Ok(()) => write_out(&format!("{name}\n"))?,
            Err(e) => errors.push(e.to_string()),
        }
    }
    Error::from_each(errors)
}

fn export(store: &Store, a: &ExportArgs) -> Result<(), Error> {
    if a.name == DEFAULT_CONTEXT {
        return Err(Error::client("context \"default\" cannot be exported"));
    }
    let meta = store.load(&a.name)?;
    let data = export_tar(&meta, &store.load_tls(&a.name)?)?;
    let dest = a
        .file
        .clone()
        .unwrap_or_else(|| format!("{}.dockercontext", a.name));
    if dest == "-" {
        return io::stdout()
            .write_all(&data)
            .map_err(|e| Error::client(format!("cannot write to stdout: {e}")));
    }
    let path = PathBuf::from(&dest);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_err("open", &path, e))?;
    f.write_all(&data).map_err(|e| io_err("write", &path, e))?;
    write_err(&format!("Written file {dest:?}\n"))
}

fn import(store: &Store, a: &ImportArgs) -> Result<(), Error> {
    validate_name(&a.name)?;
    if store.exists(&a.name) {
        return Err(Error::client(format!(
            "context {:?} already exists",
            a.name
        )));
    }
    let mut data = Vec::new();
    let read = if a.file == "-" {
        io::stdin().take(MAX_ARCHIVE + 1).read_to_end(&mut data)
    } else {
        fs::File::open(&a.file).and_then(|f| f.take(MAX_ARCHIVE + 1).read_to_end(&mut data))
    };
    read.map_err(|e| Error::client(format!("open {}: {e}", a.file)))?;
    if data.len() as u64 > MAX_ARCHIVE {
        return Err(Error::client(format!(
            "{} is larger than {MAX_ARCHIVE} bytes",
            a.file
        )));
    }
    let (mut meta, tls) = import_tar(&data)?;
    meta.name = a.name.clone();
    if let Ok(Host::Tcp { .. }) = parse_host(meta.host()) {
        if meta.skip_tls_verify() || !tls.is_complete() {
            return Err(Error::client(format!(
                "refusing to import context {:?}: its TCP endpoint lacks a CA, client certificate \
                 and key or skips TLS verification, and Berth talks to a daemon over TCP only with \
                 verified mutual TLS",
                a.name
            )));
        }
    }
    store.save(&meta, &tls)?;
    write_out(&format!("{}\n", a.name))?;
    write_err(&format!("Successfully imported context {:?}\n", a.name))
}

#[cfg(test)]
mod tests {
    use super::store::tests::env;
    use super::*;

    #[test]
    fn docker_spec_parses_and_refuses_skip_verify() {
        let e = env(&[("HOME", "/home/u")]);
        let s = parse_docker_spec(
            &[
                "host=tcp://h:2376,ca=~/c/ca.pem".into(),
                "cert=/c,key=/k".into(),
            ],
            &e,
        )
        .unwrap();
        assert_eq!(s.host.as_deref(), Some("tcp://h:2376"));
        assert_eq!(s.ca, Some(PathBuf::from("/home/u/c/ca.pem")));
        assert_eq!(s.key, Some(PathBuf::from("/k")));
        assert!(parse_docker_spec(&["skip-tls-verify=true".into()], &e).is_err());
        assert!(parse_docker_spec(&["skip-tls-verify=false".into()], &e).is_ok());
        assert!(parse_docker_spec(&["bogus=1".into()], &e).is_err());
        assert!(parse_docker_spec(&["host".into()], &e).is_err());
    }

    #[test]
    fn ls_marks_the_current_one_only_in_the_table() {
        let mut m = Meta {
            name: "foo".into(),
            metadata: Map::new(),
            endpoints: Map::new(),
        };
        m.set_endpoint("tcp://localhost:2376");
        m.set_description("my d");
        let rows = ls_rows(&[m.clone()], "unix:///run/berth.sock", "foo", true);
        assert_eq!(rows[0]["Name"], "default");
        assert_eq!(rows[1]["Name"], "foo *");
        let rows = ls_rows(&[m], "unix:///run/berth.sock", "foo", false);
        assert_eq!(rows[1]["Name"], "foo");
        assert_eq!(rows[1]["Current"], true);
    }

    #[test]
    fn inspect_default_escapes_as_go() {
        assert_eq!(go_escape(r#""<IN MEMORY>""#), r#""\u003cIN MEMORY\u003e""#);
    }
}
