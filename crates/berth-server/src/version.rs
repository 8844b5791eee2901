//! The `/vX.Y` path prefix: parsed, checked against the served range, stripped before
//! routing, and kept as a request extension for version-dependent behaviour.

use axum::http::{Request, Uri};
use berth_api_types::version::check_supported;
use berth_api_types::ApiVersion;

use crate::ApiError;

/// Splits `/v1.41/containers/json` into (`1.41`, `/containers/json`). Paths without a
/// version prefix (or with a malformed one, which then fails to route) are left alone.
pub(crate) fn split_version(path: &str) -> Option<(ApiVersion, &str)> {
    let rest = path.strip_prefix("/v")?;
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let v = ver.parse().ok()?;
    Some((v, tail))
}

/// Applies the version prefix to a request: returns the version the client asked for
/// (the current one when unversioned) or Docker's 400 for one out of range.
pub(crate) fn apply<B>(req: &mut Request<B>) -> Result<ApiVersion, ApiError> {
    let Some((version, tail)) = split_version(req.uri().path()) else {
        return Ok(ApiVersion::CURRENT);
    };
    check_supported(version).map_err(ApiError::from)?;
    let new_path_and_query = match req.uri().query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        new_path_and_query
            .parse()
            .map_err(|_| ApiError::bad_request("invalid request path"))?,
    );
    *req.uri_mut() =
        Uri::from_parts(parts).map_err(|_| ApiError::bad_request("invalid request path"))?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_prefix() {
        let (v, tail) = split_version("/v1.41/containers/json").unwrap();
        assert_eq!(v.to_string(), "1.41");
        assert_eq!(tail, "/containers/json");
        assert_eq!(split_version("/v1.24").unwrap().1, "/");
        assert!(split_version("/version").is_none());
        assert!(split_version("/volumes").is_none());
        assert!(split_version("/_ping").is_none());
    }

    #[test]
    fn rewrites_uri_and_keeps_query() {
        let mut req = Request::builder()
            .uri("/v1.30/containers/json?all=1")
            .body(())
            .unwrap();
        let v = apply(&mut req).unwrap();
        assert_eq!(v.to_string(), "1.30");
        assert_eq!(req.uri().path(), "/containers/json");
        assert_eq!(req.uri().query(), Some("all=1"));
    }

    #[test]
    fn out_of_range_is_400() {
        let mut req = Request::builder().uri("/v1.99/info").body(()).unwrap();
        let e = apply(&mut req).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("is too new"));
        let mut req = Request::builder().uri("/v1.12/info").body(()).unwrap();
        assert!(apply(&mut req).unwrap_err().message.contains("is too old"));
    }
}
