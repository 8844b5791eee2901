//! `berth version` and `berth info`: what the client is, what the daemon says about itself
//! and its host, printed line for line as `docker version` / `docker info` print them
//! (docker/cli `cli/command/system/version.go` and `info.go`), or through `--format`.
//!
//! Rendering is pure (`render_*` take the daemon's JSON and return text) so it is tested
//! against real dockerd output; the command functions only fetch and print.

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use berth_api_types::reference::Reference;

use crate::cli::FormatArgs;
use crate::connect::{Negotiated, CLIENT_API_VERSION};
use crate::error::Error;
use crate::format::Template;
use crate::humanize::{bytes_size, human_duration, human_size_precision};
use crate::table::{render_list, tabwrite};
use crate::{write_err, write_out, Session};

/// The client's own version facts (docker's `clientVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFacts {
    pub version: String,
    /// `rust1.95.0`, in the shape of Go's `go1.24.3`.
    pub rust_version: String,
    pub git_commit: String,
    /// ANSI C time (`Fri May 30 12:07:14 2025`), as docker prints it.
    pub build_time: String,
    pub os: String,
    /// Go's spelling (`amd64`), as docker prints it.
    pub arch: String,
    pub context: String,
}

impl ClientFacts {
    /// The running binary's facts.
    pub fn current() -> ClientFacts {
        ClientFacts {
            version: env!("CARGO_PKG_VERSION").to_string(),
            rust_version: env!("BERTH_RUSTC_VERSION").to_string(),
            git_commit: env!("BERTH_GIT_COMMIT").to_string(),
            build_time: reformat_date(env!("BERTH_BUILD_TIME")),
            os: std::env::consts::OS.to_string(),
            arch: go_arch(std::env::consts::ARCH).to_string(),
            context: "default".to_string(),
        }
    }

    /// docker's `clientVersion` JSON (`{{json .Client}}`); `GoVersion` keeps Docker's key
    /// and holds the Rust version. `api` is `None` when the daemon could not be reached.
    pub fn to_json(&self, api: Option<Negotiated>) -> Value {
        let api_version = api.map_or(CLIENT_API_VERSION, |n| n.version);
        json!({
            "Version": self.version,
            "ApiVersion": api_version.to_string(),
            "DefaultAPIVersion": CLIENT_API_VERSION.to_string(),
            "GitCommit": self.git_commit,
            "GoVersion": self.rust_version,
            "Os": self.os,
            "Arch": self.arch,
            "BuildTime": self.build_time,
            "Context": self.context,
        })
    }
}

/// Rust's `std::env::consts::ARCH` in Go's `GOARCH` spelling.
pub fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// docker's `reformatDate`: RFC 3339 → ANSI C (`Thu May  7 21:09:36 2026`); anything
/// else is returned unchanged.
pub fn reformat_date(s: &str) -> String {
    let ansic = format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .and_then(|t| t.format(&ansic).ok())
        .unwrap_or_else(|| s.to_string())
}

/// The template of `version`'s and `info`'s `--format` (`json` is `{{json .}}`).
fn format_template(args: &FormatArgs) -> Result<Option<Template>, Error> {
    let template = args.format.as_deref().map(Template::parse_format_flag);
    Ok(template.transpose()?)
}

// ---------------------------------------------------------------------------------------
// version

/// `berth version`.
pub async fn version(session: &Session, args: &FormatArgs) -> Result<(), Error> {
    let template = format_template(args)?;
    let mut facts = ClientFacts::current();
    facts.context = session.context_name();
    let (api, server) = match session.client().await {
        Ok(client) => (Some(client.api()), client.get_json("/version").await),
        Err(e) => (None, Err(e)),
    };
    let data = version_data(&facts, api, server.as_ref().ok());
    let rendered = match &template {
        Some(t) => t.render(&data),
        None => Ok(render_version(&data)),
    };
    match (rendered, server) {
        (Ok(text), server) => {
            write_out(&format!("{text}\n"))?;
            server.map(|_| ())
        }
        // The daemon's failure explains a template failure on its missing data.
        (Err(_), Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e.into()),
    }
}

/// `{"Client": ..., "Server": ...}` as docker's `versionInfo`, with docker's fix-ups of
/// the server part: the Engine component's BuildTime in ANSI C time, and an Engine
/// component made from the top-level fields when the daemon lists none.
pub fn version_data(facts: &ClientFacts, api: Option<Negotiated>, server: Option<&Value>) -> Value {
    let server = server.map(|s| {
        let mut s = s.clone();
        fix_components(&mut s);
        s
    });
    json!({
        "Client": facts.to_json(api),
        "Server": server.unwrap_or(Value::Null),
    })
}

fn fix_components(server: &mut Value) {
    let Some(obj) = server.as_object_mut() else {
        return;
    };
    let mut found = false;
    if let Some(Value::Array(components)) = obj.get_mut("Components") {
        for c in components.iter_mut() {
            if c.get("Name").and_then(Value::as_str) == Some("Engine") {
                found = true;
                if let Some(Value::String(t)) = c.pointer_mut("/Details/BuildTime") {
                    *t = reformat_date(t);
                }
            }
        }
    }
    if !found {
        let field = |k: &str| Value::String(text(obj.get(k)));
        let engine = json!({
            "Name": "Engine",
            "Version": field("Version"),
            "Details": {
                "ApiVersion": field("ApiVersion"),
                "MinAPIVersion": field("MinAPIVersion"),
                "GitCommit": field("GitCommit"),
                "GoVersion": field("GoVersion"),
                "Os": field("Os"),
                "Arch": field("Arch"),
                "BuildTime": reformat_date(&text(obj.get("BuildTime"))),
                "Experimental": obj.get("Experimental").and_then(Value::as_bool).unwrap_or(false).to_string(),
            }
        });
        match obj.get_mut("Components") {
            Some(Value::Array(list)) => list.push(engine),
            _ => {
                obj.insert("Components".into(), Value::Array(vec![engine]));
            }
        }
    }
}

/// docker's default `version` template, aligned by a (20, 1) tabwriter. No final newline.
pub fn render_version(data: &Value) -> String {
    let c = &data["Client"];
    let f = |v: &Value, k: &str| text(v.get(k));
    let mut s = String::from("Client:\n");
    s += &format!(" Version:\t{}\n", f(c, "Version"));
    let api = f(c, "ApiVersion");
    let default_api = f(c, "DefaultAPIVersion");
    s += &format!(" API version:\t{api}");
    if api != default_api {
        s += &format!(" (downgraded from {default_api})");
    }
    s += "\n";
    s += &format!(" Rust version:\t{}\n", f(c, "GoVersion"));
    s += &format!(" Git commit:\t{}\n", f(c, "GitCommit"));
    s += &format!(" Built:\t{}\n", f(c, "BuildTime"));
    s += &format!(" OS/Arch:\t{}/{}\n", f(c, "Os"), f(c, "Arch"));
    s += &format!(" Context:\t{}", f(c, "Context"));

    let server = &data["Server"];
    if server.is_object() {
        s += "\n\nServer:";
        let platform = text(server.pointer("/Platform/Name"));
        if !platform.is_empty() {
            s += &format!(" {platform}");
        }
        let empty = Vec::new();
        let components = server["Components"].as_array().unwrap_or(&empty);
        for comp in components {
            let name = f(comp, "Name");
            let details = &comp["Details"];
            let d = |k: &str| text(details.get(k));
            s += &format!("\n {name}:");
            if name == "Engine" {
                s += &format!("\n  Version:\t{}", f(comp, "Version"));
                s += &format!(
                    "\n  API version:\t{} (minimum version {})",
                    d("ApiVersion"),
                    d("MinAPIVersion")
                );
                let lang = d("GoVersion");
                let label = if lang.starts_with("rust") {
                    "Rust version"
                } else {
                    "Go version"
                };
                s += &format!("\n  {label}:\t{lang}");
                s += &format!("\n  Git commit:\t{}", d("GitCommit"));
                s += &format!("\n  Built:\t{}", d("BuildTime"));
                s += &format!("\n  OS/Arch:\t{}/{}", d("Os"), d("Arch"));
                s += &format!("\n  Experimental:\t{}", d("Experimental"));
            } else {
                s += &format!("\n  Version:\t{}", f(comp, "Version"));
                if let Some(map) = details.as_object() {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for k in keys {
                        s += &format!("\n  {k}:\t{}", text(map.get(k)));
                    }
                }
            }
        }
    }
    tabwrite(&s, 20, 1)
}

// ---------------------------------------------------------------------------------------
// info

/// `berth info`.
pub async fn info(session: &Session, args: &FormatArgs) -> Result<(), Error> {
    let template = format_template(args)?;
    let mut facts = ClientFacts::current();
    facts.context = session.context_name();
    let debug = session.debug();

    if let Some(template) = template {
        let client = session.client().await?;
        let server = client.get_json("/info").await?;
        let data = info_data(&facts, Some(client.api()), debug, server);
        let text = template.render(&data)?;
        return write_out(&format!("{text}\n"));
    }

    write_out(&render_info_client(&facts, debug))?;
    write_out("\nServer:\n")?;
    let client = session.client().await?;
    let server = client.get_json("/info").await?;
    let (text, warnings) = render_info_server(&server, debug);
    write_out(&text)?;
    for w in warnings {
        write_err(&format!("{w}\n"))?;
    }
    Ok(())
}

/// docker's `dockerInfo` JSON: the daemon's `/info` object plus `ClientInfo`.
pub fn info_data(
    facts: &ClientFacts,
    api: Option<Negotiated>,
    debug: bool,
    server: Value,
) -> Value {
    let mut client = facts.to_json(api);
    if let Some(obj) = client.as_object_mut() {
        obj.insert("Debug".into(), Value::Bool(debug));
        obj.insert("Plugins".into(), Value::Array(Vec::new()));
        obj.insert("Warnings".into(), Value::Null);
    }
    let mut data = match server {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("Server".into(), other);
            m
        }
    };
    data.insert("ClientInfo".into(), client);
    Value::Object(data)
}

/// `Client:` and its lines.
pub fn render_info_client(facts: &ClientFacts, debug: bool) -> String {
    format!(
        "Client:\n Version:    {}\n Context:    {}\n Debug Mode: {debug}\n",
        facts.version, facts.context
    )
}

/// The lines after `Server:` (ending with docker's blank line), and the daemon's warnings
/// for stderr. `client_debug` adds the debug counters as `-D` does in docker.
pub fn render_info_server(info: &Value, client_debug: bool) -> (String, Vec<String>) {
    let mut out = Vec::<String>::new();
    let t = |k: &str| text(info.get(k));
    let mut line = |s: String| out.push(s);
    // fprintlnNonEmpty
    let non_empty = |out: &mut Vec<String>, label: &str, v: String| {
        if !v.is_empty() {
            out.push(format!("{label} {v}"));
        }
    };

    line(format!(" Containers: {}", t("Containers")));
    line(format!("  Running: {}", t("ContainersRunning")));
    line(format!("  Paused: {}", t("ContainersPaused")));
    line(format!("  Stopped: {}", t("ContainersStopped")));
    line(format!(" Images: {}", t("Images")));
    non_empty(&mut out, " Server Version:", t("ServerVersion"));
    non_empty(&mut out, " Storage Driver:", t("Driver"));
    for pair in pairs(info.get("DriverStatus")) {
        out.push(format!("  {}: {}", pair.0, pair.1));
    }
    for pair in pairs(info.get("SystemStatus")) {
        out.push(format!(" {}: {}", pair.0, pair.1));
    }
    non_empty(&mut out, " Logging Driver:", t("LoggingDriver"));
    non_empty(&mut out, " Cgroup Driver:", t("CgroupDriver"));
    non_empty(&mut out, " Cgroup Version:", t("CgroupVersion"));

    let plugins = info.get("Plugins").unwrap_or(&Value::Null);
    let plugin_list = |k: &str| strings(plugins.get(k)).join(" ");
    out.push(" Plugins:".into());
    out.push(format!("  Volume: {}", plugin_list("Volume")));
    out.push(format!("  Network: {}", plugin_list("Network")));
    let authz = plugin_list("Authorization");
    if !authz.is_empty() {
        out.push(format!("  Authorization: {authz}"));
    }
    out.push(format!("  Log: {}", plugin_list("Log")));

    let cdi = strings(info.get("CDISpecDirs"));
    if !cdi.is_empty() {
        out.push(" CDI spec directories:".into());
        for dir in cdi {
            out.push(format!("  {dir}"));
        }
    }

    let swarm = info.get("Swarm").unwrap_or(&Value::Null);
    let state = text(swarm.get("LocalNodeState"));
    out.push(format!(" Swarm: {state}"));
    if !matches!(state.as_str(), "" | "inactive" | "locked") {
        out.push(format!("  NodeID: {}", text(swarm.get("NodeID"))));
        let err = text(swarm.get("Error"));
        if !err.is_empty() {
            out.push(format!("  Error: {err}"));
        }
        out.push(format!(
            "  Is Manager: {}",
            text(swarm.get("ControlAvailable"))
        ));
        out.push(format!("  Node Address: {}", text(swarm.get("NodeAddr"))));
    }

    if let Some(runtimes) = info.get("Runtimes").and_then(Value::as_object) {
        if !runtimes.is_empty() {
            let mut names: Vec<&str> = runtimes.keys().map(String::as_str).collect();
            names.sort_unstable();
            out.push(format!(" Runtimes: {}", names.join(" ")));
            out.push(format!(" Default Runtime: {}", t("DefaultRuntime")));
        }
    }

    let os_type = t("OSType");
    if os_type == "linux" {
        out.push(format!(" Init Binary: {}", t("InitBinary")));
        for (label, key) in [
            ("containerd version", "ContainerdCommit"),
            ("runc version", "RuncCommit"),
            ("init version", "InitCommit"),
        ] {
            out.push(format!(
                " {label}: {}",
                text(info.get(key).and_then(|c| c.get("ID")))
            ));
        }
        let opts = strings(info.get("SecurityOptions"));
        if !opts.is_empty() {
            out.push(" Security Options:".into());
            for opt in opts {
                let (name, profile) = decode_security_option(&opt);
                out.push(format!("  {name}"));
                if let Some(p) = profile {
                    out.push(format!("   Profile: {p}"));
                }
            }
        }
    }
    if os_type == "windows" {
        out.push(format!(" Default Isolation: {}", t("Isolation")));
    }

    non_empty(&mut out, " Kernel Version:", t("KernelVersion"));
    non_empty(&mut out, " Operating System:", t("OperatingSystem"));
    non_empty(&mut out, " OSType:", os_type.clone());
    non_empty(&mut out, " Architecture:", t("Architecture"));
    out.push(format!(" CPUs: {}", t("NCPU")));
    let mem = info.get("MemTotal").and_then(Value::as_f64).unwrap_or(0.0);
    out.push(format!(" Total Memory: {}", bytes_size(mem)));
    non_empty(&mut out, " Name:", t("Name"));
    non_empty(&mut out, " ID:", t("ID"));
    out.push(format!(" Docker Root Dir: {}", t("DockerRootDir")));
    let daemon_debug = info.get("Debug").and_then(Value::as_bool).unwrap_or(false);
    out.push(format!(" Debug Mode: {daemon_debug}"));
    if daemon_debug || client_debug {
        out.push(format!("  File Descriptors: {}", t("NFd")));
        out.push(format!("  Goroutines: {}", t("NGoroutines")));
        out.push(format!("  System Time: {}", t("SystemTime")));
        out.push(format!("  EventsListeners: {}", t("NEventsListener")));
    }
    non_empty(&mut out, " HTTP Proxy:", t("HttpProxy"));
    non_empty(&mut out, " HTTPS Proxy:", t("HttpsProxy"));
    non_empty(&mut out, " No Proxy:", t("NoProxy"));
    let labels = strings(info.get("Labels"));
    if !labels.is_empty() {
        out.push(" Labels:".into());
        for l in labels {
            out.push(format!("  {l}"));
        }
    }
    out.push(format!(" Experimental: {}", t("ExperimentalBuild")));

    let registry = info.get("RegistryConfig").unwrap_or(&Value::Null);
    let cidrs = strings(registry.get("InsecureRegistryCIDRs"));
    let index = registry.get("IndexConfigs").and_then(Value::as_object);
    if !cidrs.is_empty() || index.is_some_and(|m| !m.is_empty()) {
        out.push(" Insecure Registries:".into());
        if let Some(index) = index {
            for cfg in index.values() {
                if cfg.get("Secure").and_then(Value::as_bool) == Some(false) {
                    out.push(format!("  {}", text(cfg.get("Name"))));
                }
            }
        }
        for c in cidrs {
            out.push(format!("  {c}"));
        }
    }
    let mirrors = strings(registry.get("Mirrors"));
    if !mirrors.is_empty() {
        out.push(" Registry Mirrors:".into());
        for m in mirrors {
            out.push(format!("  {m}"));
        }
    }
    out.push(format!(
        " Live Restore Enabled: {}",
        t("LiveRestoreEnabled")
    ));
    non_empty(&mut out, " Product License:", t("ProductLicense"));
    if let Some(pools) = info.get("DefaultAddressPools").and_then(Value::as_array) {
        if !pools.is_empty() {
            out.push(" Default Address Pools:".into());
            for p in pools {
                out.push(format!(
                    "   Base: {}, Size: {}",
                    text(p.get("Base")),
                    text(p.get("Size"))
                ));
            }
        }
    }
    out.push(String::new());

    let mut text_out = out.join("\n");
    text_out.push('\n');
    (text_out, strings(info.get("Warnings")))
}

/// `name=seccomp,profile=default` → (`seccomp`, Some(`default`)); an old-style bare name
/// (`apparmor`) is its own name.
fn decode_security_option(opt: &str) -> (String, Option<String>) {
    let mut name = String::new();
    let mut profile = None;
    for part in opt.split(',') {
        match part.split_once('=') {
            Some(("name", v)) => name = v.to_string(),
            Some(("profile", v)) => profile = Some(v.to_string()),
            Some(_) => {}
            None if name.is_empty() => name = part.to_string(),
            None => {}
        }
    }
    (name, profile)
}

/// A JSON value as Go's `Println` prints the corresponding field: strings bare, numbers
/// and bools as usual, null and missing as empty.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// A JSON array of strings (non-strings printed as JSON); null or missing is empty.
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|x| text(Some(x))).collect())
        .unwrap_or_default()
}

/// `[["Backing Filesystem", "extfs"], ...]`.
fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((text(p.first()), text(p.get(1))))
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// system df

/// `berth system df [-v]`: fetches `/system/df` and prints it as docker's CLI does.
pub async fn df(session: &Session, verbose: bool) -> Result<(), Error> {
    let client = session.client().await?;
    let df = client.get_json("/system/df").await?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    write_out(&render_df(&df, verbose, now)?)
}

/// `x (NN%)` as docker prints a reclaimable size (integer percent of `total`).
fn reclaimable(amount: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            crate::humanize::human_size(amount as f64),
            amount * 100 / total
        )
    } else {
        crate::humanize::human_size(amount as f64)
    }
}

/// docker/cli `formatter.diskUsageContainersContext.isActive`.
fn container_active(c: &Value) -> bool {
    matches!(
        c["State"].as_str(),
        Some("running" | "paused" | "restarting")
    )
}

/// The text of `docker system df` (and `-v`) for the daemon's `/system/df` answer
/// (docker/cli `cli/command/formatter/disk_usage.go`, v28).
pub fn render_df(df: &Value, verbose: bool, now: i64) -> Result<String, Error> {
    use crate::humanize::human_size;
    let arr = |k: &str| df[k].as_array().cloned().unwrap_or_default();
    let (images, containers, volumes, cache) = (
        arr("Images"),
        arr("Containers"),
        arr("Volumes"),
        arr("BuildCache"),
    );
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    // Images: the layers' total, less what used images hold alone.
    let layers = int(&df["LayersSize"]);
    let mut used = 0;
    for i in images.iter().filter(|i| int(&i["Containers"]) != 0) {
        if int(&i["Size"]) != -1 && int(&i["SharedSize"]) != -1 {
            used += int(&i["Size"]) - int(&i["SharedSize"]);
        }
    }
    let active_images = images.iter().filter(|i| int(&i["Containers"]) > 0).count();
    // Containers: the writable layers, those of stopped ones reclaimable.
    let ctr_size: i64 = containers.iter().map(|c| int(&c["SizeRw"])).sum();
    let ctr_free: i64 = containers
        .iter()
        .filter(|c| !container_active(c))
        .map(|c| int(&c["SizeRw"]))
        .sum();
    // Volumes: those no container refers to are reclaimable.
    let vol_size = |pred: &dyn Fn(&Value) -> bool| -> i64 {
        volumes
            .iter()
            .filter(|v| int(&v["UsageData"]["Size"]) != -1 && pred(v))
            .map(|v| int(&v["UsageData"]["Size"]))
            .sum()
    };
    let vol_total = vol_size(&|_| true);
    let vol_free = vol_size(&|v| int(&v["UsageData"]["RefCount"]) == 0);
    let used_vols = volumes
        .iter()
        .filter(|v| int(&v["UsageData"]["RefCount"]) > 0)
        .count();
    // Build cache: records not shared count, those in use are not reclaimable.
    let shared = |c: &Value| c["Shared"].as_bool().unwrap_or(false);
    let in_use = |c: &Value| c["InUse"].as_bool().unwrap_or(false);
    let builder: i64 = cache
        .iter()
        .filter(|c| !shared(c))
        .map(|c| int(&c["Size"]))
        .sum();
    let builder_busy: i64 = cache
        .iter()
        .filter(|c| in_use(c) && !shared(c))
        .map(|c| int(&c["Size"]))
        .sum();
    if !verbose {
        let rows = vec![
            json!({"Type": "Images", "TotalCount": images.len().to_string(),
                   "Active": active_images.to_string(), "Size": human_size(layers as f64),
                   "Reclaimable": reclaimable(layers - used, layers)}),
            json!({"Type": "Containers", "TotalCount": containers.len().to_string(),
                   "Active": containers.iter().filter(|c| container_active(c)).count().to_string(),
                   "Size": human_size(ctr_size as f64), "Reclaimable": reclaimable(ctr_free, ctr_size)}),
            json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(),
                   "Active": used_vols.to_string(), "Size": human_size(vol_total as f64),
                   "Reclaimable": reclaimable(vol_free, vol_total)}),
            json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(),
                   "Active": cache.iter().filter(|c| in_use(c)).count().to_string(),
                   "Size": human_size(builder as f64),
                   "Reclaimable": human_size((builder - builder_busy) as f64)}),
        ];
        let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
                             "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
        return render_list(
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            &headers,
            &rows,
        );
    }
    let mut out = String::from("Images space usage:\n\n");
    let image_rows: Vec<Value> = images
        .iter()
        .map(|i| {
            let listed = crate::image::ListedImage {
                id: i["Id"].as_str().unwrap_or("").to_string(),
                repo_tags: strings(Some(&i["RepoTags"])),
                repo_digests: strings(Some(&i["RepoDigests"])),
                created: int(&i["Created"]),
                size: int(&i["Size"]),
                shared_size: int(&i["SharedSize"]),
                containers: int(&i["Containers"]),
            };
            // Only the first tag, `<none>` for dangling images.
            let (mut repo, mut tag) = ("<none>".to_string(), "<none>".to_string());
            let dangling = listed.repo_tags.is_empty() || listed.repo_tags[0] == "<none>:<none>";
            if !dangling {
                if let Ok(r) = Reference::parse(&listed.repo_tags[0]) {
                    if let Some(t) = r.tag() {
                        (repo, tag) = (r.familiar_name(), t.to_owned());
                    }
                }
            }
            crate::image::ImageRow {
                image: &listed,
                repository: repo,
                tag,
                digest: String::new(),
            }
            .to_json(true, now)
        })
        .collect();
    out.push_str(&render_list(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
                "CreatedSince": "CREATED", "Size": "SIZE", "SharedSize": "SHARED SIZE",
                "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"}),
        &image_rows,
    )?);
    out.push_str("\nContainers space usage:\n\n");
    let mut ctr_rows = Vec::new();
    for c in &containers {
        let mut summary: bollard::models::ContainerSummary =
            serde_json::from_value(c.clone()).unwrap_or_default();
        // docker shows no virtual size here.
        summary.size_root_fs = None;
        let mut row = crate::container::ps_row(&summary, true, now);
        let local = c["Mounts"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["Driver"] == "local").count());
        row["LocalVolumes"] = json!(local.to_string());
        ctr_rows.push(row);
    }
    out.push_str(&render_list(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &crate::container::ps_headers(),
        &ctr_rows,
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    let vol_rows: Vec<Value> = volumes
        .iter()
        .map(|v| {
            let u = &v["UsageData"];
            let na = |n: i64, f: &dyn Fn(i64) -> String| {
                if u.is_null() || n == -1 {
                    "N/A".to_string()
                } else {
                    f(n)
                }
            };
            json!({"Name": v["Name"],
                   "Links": na(int(&u["RefCount"]), &|n| n.to_string()),
                   "Size": na(int(&u["Size"]), &|n| human_size(n as f64))})
        })
        .collect();
    out.push_str(&render_list(
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        &vol_rows,
    )?);
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(builder as f64)
    ));
    let cache_rows: Vec<Value> = cache
        .iter()
        .map(|c| {
            let since = |k: &str| {
                c[k].as_str()
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                    .map_or(String::new(), |t| {
                        format!(
                            "{} ago",
                            human_duration(now - t.unix_timestamp())
                        )
                    })
            };
            let id = c["ID"].as_str().unwrap_or("");
            json!({"ID": if in_use(c) { format!("{}*", &id[..id.len().min(12)]) } else { id.chars().take(12).collect() },
                   "CacheType": c["Type"], "Size": human_size_precision(int(&c["Size"]) as f64, 3),
                   "CreatedSince": since("CreatedAt"), "LastUsedSince": since("LastUsedAt"),
                   "UsageCount": int(&c["UsageCount"]).to_string(),
                   "Shared": shared(c).to_string()})
        })
        .collect();
    out.push_str(&render_list(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
                "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}),
        &cache_rows,
    )?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use berth_api_types::ApiVersion;

    use super::*;

    /// dockerd 20.10's `/system/df` and what docker CLI 28.2 printed for it.
    const DF_JSON: &str = r#"{"LayersSize": 1984294, "Images": [{"Containers": 0, "Created": 1795877950, "Id": "sha256:f0e4d0ddddccd41a4173bb69d5ca109ba56bb5abfb764f1f6ca2ef31b2097f8c", "Labels": null, "ParentId": "", "RepoDigests": null, "RepoTags": ["unused:1"], "SharedSize": 1984294, "Size": 1984294, "VirtualSize": 1984294}, {"Containers": 2, "Created": 1795877578, "Id": "sha256:d910ff9ba9f83c175af0d16e12fb7c6ef91b230f62273ebc8b7ae7eaac67674c", "Labels": null, "ParentId": "", "RepoDigests": null, "RepoTags": ["busybox:latest", "other:1"], "SharedSize": 1984294, "Size": 1984294, "VirtualSize": 1984294}], "Containers": [{"Id": "0a2b3582bac47ae4eaf3f1bd7e79afa6d6e7b8dd76dbe20327b25c4cddf4a251", "Names": ["/runr"], "Image": "busybox", "ImageID": "sha256:d910ff9ba9f83c175af0d16e12fb7c6ef91b230f62273ebc8b7ae7eaac67674c", "Command": "sh -c 'head -c 3000 /dev/zero > /d/x; sleep 1000'", "Created": 1795877948, "Ports": [], "SizeRootFs": 1984294, "Labels": {}, "State": "running", "Status": "Up 15 minutes", "HostConfig": {"NetworkMode": "default"}, "Mounts": [{"Type": "volume", "Name": "dv1", "Source": "/tmp/refD/root/volumes/dv1/_data", "Destination": "/d", "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""}]}, {"Id": "763a25cf05cb90fce5954e8a69b90729c2165ae02f54c0eee7113f10c841512d", "Names": ["/sz"], "Image": "busybox", "ImageID": "sha256:d910ff9ba9f83c175af0d16e12fb7c6ef91b230f62273ebc8b7ae7eaac67674c", "Command": "sh -c 'head -c 5000 /dev/zero > /f'", "Created": 1795877947, "Ports": [], "SizeRw": 5000, "SizeRootFs": 1989294, "Labels": {}, "State": "exited", "Status": "Exited (0) 15 minutes ago", "HostConfig": {"NetworkMode": "default"}, "Mounts": []}], "Volumes": [{"CreatedAt": "2026-11-28T14:59:08Z", "Driver": "local", "Labels": null, "Mountpoint": "/tmp/refD/root/volumes/dv1/_data", "Name": "dv1", "Options": null, "Scope": "local", "UsageData": {"RefCount": 1, "Size": 3000}}, {"CreatedAt": "2026-11-28T15:14:28Z", "Driver": "local", "Labels": null, "Mountpoint": "/tmp/refD/root/volumes/dv2/_data", "Name": "dv2", "Options": null, "Scope": "local", "UsageData": {"RefCount": 0, "Size": 7000}}], "BuildCache": null, "BuilderSize": 0}"#;

    #[test]
    fn system_df_renders_as_docker() {
        let df: Value = serde_json::from_str(DF_JSON).unwrap();
        let now = 1795878868;
        assert_eq!(
            render_df(&df, false, now).unwrap(),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          2         1         1.984MB   1.984MB (100%)\n\
             Containers      2         1         5kB       5kB (100%)\n\
             Local Volumes   2         1         10kB      7kB (70%)\n\
             Build Cache     0         0         0B        0B\n"
        );
        let want = "Images space usage:\n\n\
REPOSITORY   TAG       IMAGE ID       CREATED          SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS\n\
unused       1         f0e4d0ddddcc   15 minutes ago   1.98MB    1.984MB       0B            0\n\
busybox      latest    d910ff9ba9f8   21 minutes ago   1.98MB    1.984MB       0B            2\n\
\n\
Containers space usage:\n\n\
CONTAINER ID   IMAGE     COMMAND                  LOCAL VOLUMES   SIZE      CREATED          STATUS                      NAMES\n\
0a2b3582bac4   busybox   \"sh -c 'head -c 3000…\"   1               0B        15 minutes ago   Up 15 minutes               runr\n\
763a25cf05cb   busybox   \"sh -c 'head -c 5000…\"   0               5kB       15 minutes ago   Exited (0) 15 minutes ago   sz\n\
\n\
Local Volumes space usage:\n\n\
VOLUME NAME   LINKS     SIZE\n\
dv1           1         3kB\n\
dv2           0         7kB\n\
\n\
Build cache usage: 0B\n\n\
CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n";
        assert_eq!(render_df(&df, true, now).unwrap(), want);
        // Nothing at all: plain sizes, no percentages.
        let empty = json!({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": null});
        assert!(render_df(&empty, false, now)
            .unwrap()
            .contains("Images          0         0         0B        0B\n"));
    }

    /// `curl --unix-socket docker.sock http://x/info` from dockerd 20.10.24 on this host.
    const DOCKERD_INFO: &str = include_str!("../tests/fixtures/dockerd-20.10-info.json");
    /// `docker info` (CLI 28.2.2) against that daemon, Server part.
    const DOCKER_INFO_SERVER: &str = include_str!("../tests/fixtures/docker-28-info-server.txt");
    /// `GET /version` from the same dockerd.
    const DOCKERD_VERSION: &str = include_str!("../tests/fixtures/dockerd-20.10-version.json");

    fn text_of(v: &Value) -> String {
        text(Some(v))
    }

    fn facts() -> ClientFacts {
        ClientFacts {
            version: "28.2.2".into(),
            rust_version: "go1.24.3".into(),
            git_commit: "e6534b4".into(),
            build_time: "Fri May 30 12:07:14 2025".into(),
            os: "linux".into(),
            arch: "amd64".into(),
            context: "default".into(),
        }
    }

    #[test]
    fn info_server_matches_docker_line_for_line() {
        let info: Value = serde_json::from_str(DOCKERD_INFO).unwrap();
        let (text, warnings) = render_info_server(&info, false);
        assert_eq!(text, DOCKER_INFO_SERVER);
        assert!(warnings.is_empty());
    }

    #[test]
    fn info_client_section_matches_docker() {
        assert_eq!(
            render_info_client(&facts(), false),
            "Client:\n Version:    28.2.2\n Context:    default\n Debug Mode: false\n"
        );
    }

    #[test]
    fn info_warnings_and_debug_counters() {
        let mut info: Value = serde_json::from_str(DOCKERD_INFO).unwrap();
        info["Warnings"] = json!(["WARNING: No swap limit support"]);
        let (text, warnings) = render_info_server(&info, true);
        assert_eq!(warnings, vec!["WARNING: No swap limit support"]);
        let counters =
            format!(
            "\n Debug Mode: false\n  File Descriptors: {}\n  Goroutines: {}\n  System Time: {}\n",
            info["NFd"], info["NGoroutines"], text_of(&info["SystemTime"])
        );
        assert!(text.contains(&counters), "{text}");
    }

    #[test]
    fn info_tolerates_an_empty_object() {
        let (text, warnings) = render_info_server(&json!({}), false);
        assert!(text.starts_with(" Containers: \n"), "{text}");
        assert!(text.contains(" Total Memory: 0B\n"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn security_options_decode() {
        assert_eq!(
            decode_security_option("name=seccomp,profile=default"),
            ("seccomp".into(), Some("default".into()))
        );
        assert_eq!(
            decode_security_option("name=rootless"),
            ("rootless".into(), None)
        );
        assert_eq!(
            decode_security_option("apparmor"),
            ("apparmor".into(), None)
        );
    }

    #[test]
    fn info_json_has_client_info() {
        let info: Value = serde_json::from_str(DOCKERD_INFO).unwrap();
        let data = info_data(&facts(), None, true, info);
        let t =
            Template::parse("{{.ServerVersion}} {{.ClientInfo.Debug}} {{.HTTPProxy}}|").unwrap();
        assert_eq!(t.render(&data).unwrap(), "20.10.24+dfsg1 true |");
    }

    #[test]
    fn version_matches_docker_layout() {
        let server: Value = serde_json::from_str(DOCKERD_VERSION).unwrap();
        let api = Negotiated::from_header(Some("1.41"));
        let data = version_data(&facts(), Some(api), Some(&server));
        let want = "Client:
 Version:           28.2.2
 API version:       1.41 (downgraded from 1.50)
 Rust version:      go1.24.3
 Git commit:        e6534b4
 Built:             Fri May 30 12:07:14 2025
 OS/Arch:           linux/amd64
 Context:           default

Server:
 Engine:
  Version:          20.10.24+dfsg1
  API version:      1.41 (minimum version 1.12)
  Go version:       go1.19.8
  Git commit:       5d6db84
  Built:            Thu May  7 21:09:36 2026
  OS/Arch:          linux/amd64
  Experimental:     false
 containerd:
  Version:          1.6.20~ds1
  GitCommit:        1.6.20~ds1-1+deb12u3
 runc:
  Version:          1.1.5+ds1
  GitCommit:        1.1.5+ds1-1+deb12u1
 docker-init:
  Version:          0.19.0
  GitCommit:        ";
        assert_eq!(render_version(&data), want);
    }

    #[test]
    fn version_without_server_prints_the_client_only() {
        let data = version_data(&facts(), None, None);
        let text = render_version(&data);
        assert!(text.starts_with("Client:\n Version:           28.2.2\n API version:       1.50\n"));
        assert!(text.ends_with(" Context:           default"));
        assert!(!text.contains("Server"));
    }

    #[test]
    fn version_synthesizes_an_engine_component() {
        let server = json!({
            "Platform": {"Name": "Berth Engine"},
            "Version": "0.1.0", "ApiVersion": "1.50", "MinAPIVersion": "1.24",
            "GitCommit": "abc", "GoVersion": "rust1.95.0", "Os": "linux", "Arch": "amd64",
            "BuildTime": "2026-01-02T03:04:05Z"
        });
        let data = version_data(
            &facts(),
            Some(Negotiated::from_header(Some("1.50"))),
            Some(&server),
        );
        let text = render_version(&data);
        assert!(
            text.contains("\n\nServer: Berth Engine\n Engine:\n  Version:          0.1.0\n"),
            "{text}"
        );
        assert!(text.contains("  Rust version:     rust1.95.0\n"), "{text}");
        assert!(
            text.contains("  Built:            Fri Jan  2 03:04:05 2026\n"),
            "{text}"
        );
        assert!(text.contains(" API version:       1.50\n"), "{text}");
    }

    #[test]
    fn version_format_templates() {
        let server: Value = serde_json::from_str(DOCKERD_VERSION).unwrap();
        let api = Negotiated {
            version: ApiVersion::new(1, 41),
            server: Some(ApiVersion::new(1, 41)),
        };
        let data = version_data(&facts(), Some(api), Some(&server));
        let r = |t: &str| {
            Template::parse_format_flag(t)
                .unwrap()
                .render(&data)
                .unwrap()
        };
        assert_eq!(r("{{.Server.APIVersion}}"), "1.41");
        assert_eq!(r("{{.Server.ApiVersion}}"), "1.41");
        assert_eq!(r("{{.Client.Version}}"), "28.2.2");
        assert_eq!(r("{{.Client.APIVersion}}"), "1.41");
        let json: Value = serde_json::from_str(&r("{{json .}}")).unwrap();
        assert_eq!(json["Client"]["DefaultAPIVersion"], "1.50");
        assert_eq!(
            json["Server"]["Components"][0]["Details"]["BuildTime"],
            "Thu May  7 21:09:36 2026"
        );
        let server_json: Value = serde_json::from_str(&r("{{json .Server}}")).unwrap();
        assert_eq!(server_json["MinAPIVersion"], "1.12");
        assert_eq!(r("json"), r("{{json .}}"));
    }

    #[test]
    fn dates_reformat_like_docker() {
        assert_eq!(
            reformat_date("2026-05-07T21:09:36.000000000+00:00"),
            "Thu May  7 21:09:36 2026"
        );
        assert_eq!(
            reformat_date("2025-05-30T12:07:14Z"),
            "Fri May 30 12:07:14 2025"
        );
        assert_eq!(
            reformat_date("2025-05-30T14:07:14+02:00"),
            "Fri May 30 14:07:14 2025"
        );
        assert_eq!(reformat_date("not a date"), "not a date");
        assert_eq!(reformat_date(""), "");
    }

    #[test]
    fn arch_names_are_go_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
    }
}
