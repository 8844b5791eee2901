//! Image routes. Image names may hold slashes and colons (`localhost:5000/a/b:tag`), so
//! the per-image routes share one wildcard and dispatch on the last path segment, as
//! dockerd's `{name:.*}` routes do.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use berth_api_types::filters::Filters;
use berth_api_types::image::ProgressMessage;
use berth_api_types::ApiVersion;
use berth_engine::distribution::RegistryAuth;
use berth_engine::images::{BodyReader, ImageListOptions, ImportRequest};
use berth_engine::Engine;

use super::body::try_receiver_body;
use super::distribution::{progress_response, registry_auth};
use super::legacy;
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route("/images/{*rest}", any(per_image))
}

fn filters(q: &Query) -> Result<Filters, ApiError> {
    Filters::parse(q.get("filters")).map_err(ApiError::from)
}

fn body_reader(body: Body) -> BodyReader {
    Box::new(crate::body::read_ahead(body))
}

/// One JSON progress line, as the streaming endpoints answer.
fn json_lines(messages: &[ProgressMessage]) -> Response {
    let mut out = Vec::new();
    for m in messages {
        serde_json::to_writer(&mut out, m).expect("progress serializes");
        out.extend_from_slice(b"\r\n");
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// `GET /images/search`: `term`, `limit` (moby reads it with Atoi), `filters`.
async fn search(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid limit specified: strconv.Atoi: parsing {l:?}: invalid syntax"
            ))
        })?,
    };
    let filters = filters(&q)?;
    let term = q.get("term").unwrap_or("");
    Ok(Json(engine.image_search(term, limit, &filters).await?).into_response())
}

async fn list(
    State(engine): State<AppState>,
    version: Option<Extension<ApiVersion>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let opts = ImageListOptions {
        all: q.bool("all"),
        filters: filters(&q)?,
    };
    let version = legacy::asked(version);
    let mut items = serde_json::to_value(engine.image_list(opts).await?)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    for item in items.as_array_mut().into_iter().flatten() {
        legacy::image_summary(item, version);
    }
    Ok(Json(items).into_response())
}

async fn create(
    State(engine): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::bad_request(
                "importing from a URL is not supported; pipe the archive instead (fromSrc=-)",
            ));
        }
        let req = ImportRequest {
            repo: q.get("repo").map(String::from),
            tag: q.get("tag").map(String::from),
            changes: q.all("changes"),
            message: q.get("message").unwrap_or_default().to_string(),
            platform: q.get("platform").map(String::from),
        };
        let id = engine.image_import(body_reader(body), req).await?;
        return Ok(json_lines(&[ProgressMessage::status(id)]));
    }
    if let Some(image) = q.get("fromImage") {
        let auth = registry_auth(&headers).unwrap_or_default();
        let rx = engine
            .image_pull(
                image.to_string(),
                q.get("tag").map(String::from),
                q.get("platform").map(String::from),
                auth,
            )
            .await?;
        return Ok(progress_response(rx));
    }
    Err(ApiError::bad_request(
        "either fromImage or fromSrc is required",
    ))
}

async fn load(State(engine): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let lines = engine.image_load(body_reader(body)).await?;
    let messages: Vec<_> = lines.into_iter().map(ProgressMessage::stream).collect();
    Ok(json_lines(&messages))
}

async fn save_many(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let names = Query::from_uri(&uri).all("names");
    save(&engine, names).await
}

async fn save(engine: &Engine, names: Vec<String>) -> Result<Response, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let rx = engine.image_save(names).await?;
    let body = try_receiver_body(rx);
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

async fn prune(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    Ok(Json(engine.image_prune(filters(&q)?).await?).into_response())
}

/// `/images/{name}` (DELETE), `/images/{name}/json|history|get` (GET),
/// `/images/{name}/tag|push` (POST).
async fn per_image(
    State(engine): State<AppState>,
    version: Option<Extension<ApiVersion>>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    if method == Method::DELETE {
        let items = engine
            .image_delete(rest, q.bool("force"), q.bool("noprune"))
            .await?;
        return Ok(Json(items).into_response());
    }
    let (name, action) = rest
        .rsplit_once('/')
        .ok_or_else(|| ApiError::not_found("page not found"))?;
    let name = name.to_string();
    match (method, action) {
        (Method::GET, "json") => {
            let mut image = serde_json::to_value(engine.image_inspect(name).await?)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let asked = legacy::image_inspect_version(legacy::asked(version), &headers);
            legacy::image_inspect(&mut image, asked);
            Ok(Json(image).into_response())
        }
        (Method::GET, "history") => Ok(Json(engine.image_history(name).await?).into_response()),
        (Method::GET, "get") => save(&engine, vec![name]).await,
        (Method::POST, "tag") => {
            let repo = q.get("repo").unwrap_or_default().to_string();
            if repo.is_empty() {
                return Err(ApiError::bad_request(
                    "repository name must have at least one component",
                ));
            }
            engine
                .image_tag(name, repo, q.get("tag").map(String::from))
                .await?;
            Ok(StatusCode::CREATED.into_response())
        }
        (Method::POST, "push") => {
            // Old clients send the credentials as the body instead of the header.
            let auth = match registry_auth(&headers) {
                Some(a) => a,
                None => {
                    let bytes = axum::body::to_bytes(body, 64 * 1024)
                        .await
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    RegistryAuth::from_json(&bytes).unwrap_or_default()
                }
            };
            let rx = engine
                .image_push(name, q.get("tag").map(String::from), auth)
                .await?;
            Ok(progress_response(rx))
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}
