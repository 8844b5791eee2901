//! `POST /build`: the classic builder's query parameters read as dockerd reads them
//! (`newImageBuildOptions`), the context body handed to `Engine::build`, its messages
//! streamed back as JSON lines; `X-Registry-Config` decoded for FROM pulls.
//! `POST /build/prune` and `POST /build/cancel` too.
//!
//! Accepted and ignored (harmless here): `isolation`, `session`, `version` (1 only),
//! `outputs`, `cgroupparent`, `cpusetmems`. `squash` is refused as by a dockerd without
//! experimental mode.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use axum::Router;
use berth_api_types::filters::Filters;
use berth_engine::build::BuildOptions;
use berth_engine::distribution::RegistryAuth;
use serde_json::{json, Map, Value};

use super::distribution::progress_response;
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
        .route("/build/cancel", post(cancel))
}

/// `platform`: what containerd's `platforms.Parse` refuses gets its words; a valid
/// platform other than linux/amd64 is refused too (this daemon runs amd64 only).
fn check_platform(p: &str) -> Result<(), ApiError> {
    let norm = p.trim().to_ascii_lowercase();
    let mut parts = norm.split('/');
    let os = parts.next().unwrap_or_default();
    let arch = parts.next().unwrap_or("amd64");
    let known_os = [
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris",
    ];
    if norm.is_empty() {
        return Ok(());
    }
    if !known_os.contains(&os) || parts.count() > 1 {
        return Err(ApiError::bad_request(format!(
            "\"{p}\": unknown operating system or architecture: invalid argument"
        )));
    }
    if os == "linux" && matches!(arch, "amd64" | "x86_64" | "x86-64") {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "platform {p:?} is not supported: this daemon builds linux/amd64 images only"
    )))
}

fn json_map<T: serde::de::DeserializeOwned>(
    q: &Query,
    key: &str,
) -> Result<BTreeMap<String, T>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}"))),
    }
}

/// Reads the query as dockerd's `newImageBuildOptions`.
fn options(q: &Query) -> Result<BuildOptions, ApiError> {
    if let Some(p) = q.get("platform") {
        check_platform(p)?;
    }
    match q.get("version").unwrap_or_default() {
        "" | "1" => {}
        "2" => return Err(ApiError::bad_request(
            "unsupported builder version 2: this daemon has the classic builder (version 1) only",
        )),
        // moby `parseVersion`'s words.
        v => return Err(ApiError::bad_request(format!("invalid version {v:?}"))),
    }
    let network_mode = q.get("networkmode").unwrap_or_default().to_string();
    let options = BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or_default().to_string(),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        quiet: q.bool("q"),
        no_cache: q.bool("nocache"),
        // dockerd: `rm` defaults to true; `forcerm` implies it.
        remove: q.get("rm").is_none() || q.bool("rm") || q.bool("forcerm"),
        force_remove: q.bool("forcerm"),
        build_args: json_map::<Option<String>>(q, "buildargs")?,
        labels: json_map::<String>(q, "labels")?,
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        network_mode,
        host_config: host_config(q)?,
        cache_from: json_list(q, "cachefrom")?,
        pull: q.bool("pull"),
        auths: BTreeMap::new(),
        remote: q.get("remote").unwrap_or_default().to_string(),
        build_id: q.get("buildid").unwrap_or_default().to_string(),
    };
    // moby `postBuild`, once the options are read: squash needs experimental mode.
    if q.bool("squash") {
        return Err(ApiError::bad_request(
            "squash is only supported with experimental mode",
        ));
    }
    Ok(options)
}

fn json_list<T: serde::de::DeserializeOwned>(q: &Query, key: &str) -> Result<Vec<T>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}"))),
    }
}

fn int(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
        }),
    }
}

/// The `HostConfig` fields of RUN containers (moby `newImageBuildOptions`): the resource
/// limits, `shmsize`, `ulimits` (JSON) and `extrahosts` (repeated).
fn host_config(q: &Query) -> Result<Map<String, Value>, ApiError> {
    let mut hc = Map::new();
    for (param, field) in [
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuperiod", "CpuPeriod"),
        ("cpuquota", "CpuQuota"),
        ("shmsize", "ShmSize"),
    ] {
        if let Some(v) = int(q, param)?.filter(|v| *v != 0) {
            hc.insert(field.into(), json!(v));
        }
    }
    if let Some(c) = q.get("cpusetcpus").filter(|c| !c.is_empty()) {
        hc.insert("CpusetCpus".into(), json!(c));
    }
    let ulimits: Vec<Value> = json_list(q, "ulimits")?;
    if !ulimits.is_empty() {
        hc.insert("Ulimits".into(), Value::Array(ulimits));
    }
    let hosts: Vec<String> = q
        .all("extrahosts")
        .into_iter()
        .flat_map(|h| h.split(',').map(String::from).collect::<Vec<_>>())
        .filter(|h| !h.is_empty())
        .collect();
    if !hosts.is_empty() {
        hc.insert("ExtraHosts".into(), json!(hosts));
    }
    Ok(hc)
}

/// `X-Registry-Config`: base64 (URL-safe or standard) of `{"registry": AuthConfig}`; one
/// that does not decode counts as none, as dockerd reads it.
fn registry_config(headers: &HeaderMap) -> BTreeMap<String, RegistryAuth> {
    use base64::Engine as _;
    let Some(v) = headers
        .get("x-registry-config")
        .and_then(|v| v.to_str().ok())
    else {
        return BTreeMap::new();
    };
    let v = v.trim();
    let engines = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(v).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

async fn build(
    State(engine): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let mut opts = options(&q)?;
    opts.auths = registry_config(&headers);
    let reader: berth_engine::images::BodyReader = Box::new(crate::body::read_ahead(body));
    let rx = engine.build(reader, opts).await?;
    Ok(progress_response(rx))
}

/// `POST /build/prune?all=&keep-storage=&filters=`.
async fn prune(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let filters = Filters::parse(q.get("filters")).map_err(ApiError::from)?;
    let keep = match q.get("keep-storage").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "keep-storage is in bytes and expects an integer, got {v}: strconv.Atoi: parsing {v:?}: invalid syntax"
            ))
        })?,
    }
    .max(0) as u64;
    let v = engine.build_prune(q.bool("all"), keep, &filters).await?;
    Ok(Json(v).into_response())
}

/// `POST /build/cancel?id=`.
async fn cancel(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    engine.build_cancel(q.get("id").unwrap_or_default());
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_as_dockerd_reads_it() {
        let uri: Uri =
            "/build?t=a&t=b%3A1&buildargs=%7B%22X%22%3Anull%2C%22Y%22%3A%221%22%7D&forcerm=1&rm=0"
                .parse()
                .unwrap();
        let o = options(&Query::from_uri(&uri)).unwrap();
        assert_eq!(o.tags, ["a", "b:1"]);
        assert_eq!(o.build_args.get("X"), Some(&None));
        assert_eq!(o.build_args.get("Y"), Some(&Some("1".into())));
        assert!(o.remove && o.force_remove);
        let bad: Uri = "/build?platform=linux/arm64".parse().unwrap();
        assert!(options(&Query::from_uri(&bad)).is_err());
        assert!(check_platform("linux/amd64").is_ok());
        // containerd's words for what does not parse, as dockerd 20.10.24 answered.
        let e = check_platform("foo").unwrap_err();
        assert_eq!(
            e.message,
            "\"foo\": unknown operating system or architecture: invalid argument"
        );
        let bad: Uri = "/build?buildargs=%5B1%5D".parse().unwrap();
        assert!(options(&Query::from_uri(&bad)).is_err());
        let limits: Uri = "/build?memory=67108864&cpushares=512&cpusetcpus=0&shmsize=1048576&extrahosts=a:1.2.3.4,b:5.6.7.8&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Soft%22%3A10%2C%22Hard%22%3A20%7D%5D&cachefrom=%5B%22x%22%5D&pull=1&remote=http%3A%2F%2Fh%2Fc.tar"
            .parse()
            .unwrap();
        let o = options(&Query::from_uri(&limits)).unwrap();
        assert_eq!(o.host_config["Memory"], 67108864);
        assert_eq!(o.host_config["CpuShares"], 512);
        assert_eq!(o.host_config["CpusetCpus"], "0");
        assert_eq!(o.host_config["ShmSize"], 1048576);
        assert_eq!(
            o.host_config["ExtraHosts"],
            json!(["a:1.2.3.4", "b:5.6.7.8"])
        );
        assert_eq!(o.host_config["Ulimits"][0]["Soft"], 10);
        assert_eq!(o.cache_from, ["x"]);
        assert!(o.pull);
        assert_eq!(o.remote, "http://h/c.tar");
        let bad: Uri = "/build?memory=lots".parse().unwrap();
        assert!(options(&Query::from_uri(&bad)).is_err());
        // dockerd without experimental mode; moby `BoolValue` reads "0" as false.
        for (query, refused) in [
            (
                "squash=1",
                Some("squash is only supported with experimental mode"),
            ),
            (
                "squash=notabool",
                Some("squash is only supported with experimental mode"),
            ),
            ("squash=0", None),
            ("version=0", Some("invalid version \"0\"")),
            ("version=1", None),
        ] {
            let uri: Uri = format!("/build?{query}").parse().unwrap();
            let got = options(&Query::from_uri(&uri)).err().map(|e| e.message);
            assert_eq!(got.as_deref(), refused, "{query}");
        }
        let mut h = HeaderMap::new();
        // {"localhost:5000":{"username":"u"}}
        h.insert(
            "x-registry-config",
            "eyJsb2NhbGhvc3Q6NTAwMCI6eyJ1c2VybmFtZSI6InUifX0="
                .parse()
                .unwrap(),
        );
        assert_eq!(registry_config(&h)["localhost:5000"].username, "u");
    }
}
