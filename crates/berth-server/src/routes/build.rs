//! `POST /build`: the classic builder's query parameters read as dockerd reads them, the
//! context body handed to `Engine::build`, its messages streamed back as JSON lines.
//!
//! Accepted and ignored (harmless here): `pull` (a missing base is pulled anyway),
//! `cachefrom`, `extrahosts`, `shmsize`, `memory`, `memswap`, `cpushares`, `cpusetcpus`,
//! `cpuperiod`, `cpuquota`, `ulimits`, `isolation`, `squash`, `session`, `buildid`,
//! `version` (1 only), `outputs`; `remote` is refused.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use berth_engine::build::BuildOptions;

use super::distribution::progress_response;
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/build", post(build))
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
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "building from a remote context (remote=) is not supported by this daemon yet",
        ));
    }
    if let Some(v) = q.get("version").filter(|v| !v.is_empty() && *v != "1") {
        return Err(ApiError::bad_request(format!(
            "unsupported builder version {v}: this daemon has the classic builder (version 1) only"
        )));
    }
    let network_mode = q.get("networkmode").unwrap_or_default().to_string();
    Ok(BuildOptions {
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
    })
}

async fn build(State(engine): State<AppState>, uri: Uri, body: Body) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let opts = options(&q)?;
    let reader: berth_engine::images::BodyReader = Box::new(crate::body::read_ahead(body));
    let rx = engine.build(reader, opts).await?;
    Ok(progress_response(rx))
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
    }
}
