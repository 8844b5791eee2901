//! Container filesystem routes: `changes` (docker diff), `export`, `/commit`, and the
//! archive API (`HEAD`/`GET`/`PUT /containers/{id}/archive`, docker cp).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use berth_engine::containers::fs_views::CommitOptions;
use serde_json::{json, Map, Value};

use super::body::try_receiver_body;
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/export", get(export))
        .route("/commit", post(commit))
        .route(
            "/containers/{id}/archive",
            get(archive_get).head(archive_head).put(archive_put),
        )
}

async fn changes(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.container_changes(&id).await?).into_response())
}

async fn export(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rx = engine.container_export(&id).await?;
    let body = try_receiver_body(rx);
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

async fn commit(
    State(engine): State<AppState>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("No container name or ID supplied"))?
        .to_string();
    let config: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
        {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    };
    let opts = CommitOptions {
        repo: q.get("repo").map(String::from),
        tag: q.get("tag").map(String::from),
        comment: q.get("comment").unwrap_or("").to_string(),
        author: q.get("author").unwrap_or("").to_string(),
        // moby: pause unless the client says otherwise.
        pause: q.get("pause").is_none_or(|_| q.bool("pause")),
        // The docker CLI sends one `changes` per instruction; bollard joins them with
        // newlines (`apply_changes` reads them line by line).
        changes: q.all("changes"),
        config,
    };
    let id = engine.container_commit(&container, opts).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response())
}

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// The body as a reader polled by the request's own task (the one that reads the
/// connection), without `crate::body`'s read-ahead task: the engine batches it into large
/// chunks itself, and a second task would be woken for every frame.
fn direct_reader(body: Body) -> berth_engine::images::BodyReader {
    use futures_util::TryStreamExt;
    Box::new(tokio_util::io::StreamReader::new(
        body.into_data_stream().map_err(std::io::Error::other),
    ))
}

fn path_param(q: &Query) -> Result<String, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("bad parameter: path cannot be empty")),
    }
}

fn stat_header(stat: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(stat.to_string())
}

async fn archive_head(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = path_param(&Query::from_uri(&uri))?;
    let stat = engine.container_path_stat(&id, &path).await?;
    Ok(([(STAT_HEADER, stat_header(&stat))], StatusCode::OK).into_response())
}

async fn archive_get(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = path_param(&Query::from_uri(&uri))?;
    let (stat, rx) = engine.container_archive(&id, &path).await?;
    let body = try_receiver_body(rx);
    Ok((
        [
            (
                header::CONTENT_TYPE.as_str(),
                "application/x-tar".to_string(),
            ),
            (STAT_HEADER, stat_header(&stat)),
        ],
        body,
    )
        .into_response())
}

async fn archive_put(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let path = path_param(&q)?;
    engine
        .container_extract(
            &id,
            &path,
            direct_reader(body),
            q.bool("noOverwriteDirNonDir"),
            q.bool("copyUIDGID"),
        )
        .await?;
    Ok(StatusCode::OK.into_response())
}
