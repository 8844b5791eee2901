//! Building requests the way docker does: `--filter name=value` lists, URL escaping of
//! path segments and query values, and the raw requests bollard has no call for (sent
//! through bollard's transport all the same).

use std::collections::HashMap;
use std::fmt::Write as _;

use bollard::errors::Error as BollardError;
use bollard::BollardRequest;
use futures_util::{Stream, StreamExt};
use http::header::{HeaderName, HeaderValue};
use http::Method;
use hyper::body::Bytes;

use crate::connect::Client;
use crate::error::Error;
use crate::write_out;

/// docker's `--filter name=value` (opts.FilterOpt): the name is lower-cased and trimmed.
pub fn parse_filters(values: &[String], flag: &str) -> Result<HashMap<String, Vec<String>>, Error> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for v in values {
        let Some((name, value)) = v.split_once('=') else {
            return Err(Error::Status {
                code: 125,
                message: format!(
                    "invalid argument {v:?} for \"{flag}\" flag: bad format of filter (expected name=value)"
                ),
            });
        };
        out.entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_string());
    }
    Ok(out)
}

/// A list call's path: `base`, with `?filters=<json>` when `--filter` gave any.
pub fn list_path(base: &str, filter: &[String]) -> Result<String, Error> {
    let filters = parse_filters(filter, "--filter")?;
    if filters.is_empty() {
        return Ok(base.to_string());
    }
    // As a JSON object: its keys sorted.
    let json = serde_json::json!(filters).to_string();
    Ok(format!("{base}?filters={}", query_escape(&json)))
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub fn query_escape(s: &str) -> String {
    escape(s, b"-._~")
}

/// Percent-encodes an image name for a URL path; `/`, `:` and `@` stay, as docker sends
/// `localhost:5000/a/b:tag` and `a@sha256:...` in paths.
pub fn path_escape(s: &str) -> String {
    escape(s, b"-._~/:@")
}

fn escape(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").expect("write to String");
        }
    }
    out
}

/// A request bollard has no fitting call for, sent through bollard all the same (same
/// transport, version prefix and error handling): bollard hands out a response body as it
/// came only from `export_image` (`GET /images/{name}/get`), so we send that call with a
/// request modifier that swaps in our method, path (with query) and headers. `path`
/// follows the version prefix, as `/images/x/json`.
pub(crate) fn raw_request(
    docker: &bollard::Docker,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> impl Stream<Item = Result<Bytes, BollardError>> + Unpin {
    const PLACEHOLDER: &str = "berth-raw-request";
    let suffix = format!("/images/{PLACEHOLDER}/get");
    let docker = docker
        .clone()
        .with_request_modifier(move |mut req: BollardRequest| {
            let uri = req.uri().to_string();
            if let Some(base) = uri.strip_suffix(&suffix) {
                if let Ok(u) = format!("{base}{path}").parse() {
                    *req.uri_mut() = u;
                }
            }
            *req.method_mut() = method.clone();
            for (name, value) in &headers {
                req.headers_mut().insert(name.clone(), value.clone());
            }
            req
        });
    Box::pin(docker.export_image(PLACEHOLDER))
}

pub(crate) async fn collect(
    mut body: impl Stream<Item = Result<Bytes, BollardError>> + Unpin,
) -> Result<Vec<u8>, BollardError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Runs `f` on each named object, printing the name on success; errors are joined, as
/// docker's `stop`, `kill`, `rm`, `pause` and `unpause` report them.
pub(crate) async fn for_each_name<F, Fut>(
    names: &[String],
    client: &Client,
    f: F,
) -> Result<(), Error>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), BollardError>>,
{
    let mut errors = Vec::new();
    for c in names {
        match f(c.clone()).await {
            Ok(()) => write_out(&format!("{c}\n"))?,
            Err(e) => errors.push(client.daemon_err(e).to_string()),
        }
    }
    Error::from_each(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_paths_carry_filters_as_json() {
        assert_eq!(list_path("/volumes", &[]).unwrap(), "/volumes");
        assert_eq!(
            list_path("/networks", &["name=a b".into(), "Driver=bridge".into()]).unwrap(),
            "/networks?filters=%7B%22driver%22%3A%5B%22bridge%22%5D%2C%22name%22%3A%5B%22a%20b%22%5D%7D"
        );
        assert!(list_path("/networks", &["oops".into()]).is_err());
    }

    #[test]
    fn filters_parse_like_docker() {
        let f = parse_filters(
            &[
                "Dangling = true".into(),
                "label=a=b".into(),
                "label=c".into(),
            ],
            "-f, --filter",
        )
        .unwrap();
        assert_eq!(f["dangling"], ["true"]);
        assert_eq!(f["label"], ["a=b", "c"]);
        let e = parse_filters(&["nope".into()], "-f, --filter").unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e
            .to_string()
            .contains("bad format of filter (expected name=value)"));
    }

    #[test]
    fn escapes() {
        assert_eq!(query_escape("CMD [\"sh\"]"), "CMD%20%5B%22sh%22%5D");
        assert_eq!(query_escape("LABEL a=b&c"), "LABEL%20a%3Db%26c");
        assert_eq!(
            path_escape("localhost:5000/a/b:v1"),
            "localhost:5000/a/b:v1"
        );
        assert_eq!(path_escape("a b?"), "a%20b%3F");
    }
}
